/*
 * common.h - a small test framework for Disco's bare-metal RISC-V tests.
 *
 * Every test program is a single .S file:
 *
 *     #include "common.h"
 *     TEST_BEGIN
 *         TEST_CASE(1, a0, 42, li a1, 40; addi a0, a1, 2)
 *         ...
 *     TEST_PASS
 *     TEST_END
 *
 * The machine contract (Disco's runner, also QEMU -machine spike): every hart
 * starts at _start (0x80000000) in M-mode; a store of 1 to `tohost` means
 * PASS, a store of (N << 1) | 1 means "FAIL test N".
 *
 * Register conventions (the framework owns these; test code must not use
 * them for anything else):
 *   gp  (x3)   current test number (reported on failure; 1..254)
 *   tp  (x4)   hart id
 *   t6  (x31)  scratch of the CHECK macros (holds the expected value);
 *              CHECK_MASK also uses t5
 *   s6  (x22)  set by a trap handler: 3 = taken by the M handler, 1 = S handler
 *   s7  (x23)  set by a trap handler: mstatus (M) / sstatus (S) at trap entry
 *   s8  (x24)  trap "resume" address.  0 means that no trap is expected: a trap
 *              then fails the current test.  Otherwise the handler records the
 *              trap, clears s8 and returns to s8.  If bit 0 of s8 is set the M
 *              handler returns to M-mode (sets MPP=M) and the S handler returns
 *              to S-mode (sets SPP=S); otherwise it returns to the mode that
 *              trapped.  (A return to a more privileged mode that way
 *              continues with interrupts disabled: MIE = 0 or SIE = 0.)
 *   s9  (x25)  set by a trap handler: xepc
 *   s10 (x26)  set by a trap handler: xcause
 *   s11 (x27)  set by a trap handler: xtval
 * The handlers use no memory and no other register (mscratch/sscratch hold
 * t0 while they run).  On an interrupt the handler also clears that
 * interrupt's enable bit in mie (M handler) or sie (S handler), so that a
 * level-triggered source does not trap again right after the return, and
 * clears MPIE (SPIE): the code at s8 continues with MIE = 0 (SIE = 0).
 *
 * All code lives in .text.init (one section, so that the assembler can relax
 * out-of-range branches to `fail`).  TEST_BEGIN turns automatic compression
 * off (`.option norvc`) so that instruction encodings are the ones written;
 * the C test turns it on where it wants it.
 */
#ifndef DISCO_TEST_COMMON_H
#define DISCO_TEST_COMMON_H

/* `la` must be pc-relative (auipc + addi), not a GOT load: the compiler
 * defaults to PIE, and code may run at a virtual alias of its address. */
.option nopic

/* ---------------------------------------------------------------- CSRs */
#define MSTATUS_SIE     (1 << 1)
#define MSTATUS_MIE     (1 << 3)
#define MSTATUS_SPIE    (1 << 5)
#define MSTATUS_UBE     (1 << 6)
#define MSTATUS_MPIE    (1 << 7)
#define MSTATUS_SPP     (1 << 8)
#define MSTATUS_VS      (3 << 9)
#define MSTATUS_MPP     (3 << 11)
#define MSTATUS_MPP_U   (0 << 11)
#define MSTATUS_MPP_S   (1 << 11)
#define MSTATUS_MPP_M   (3 << 11)
#define MSTATUS_FS      (3 << 13)
#define MSTATUS_FS_OFF     (0 << 13)
#define MSTATUS_FS_INITIAL (1 << 13)
#define MSTATUS_FS_CLEAN   (2 << 13)
#define MSTATUS_FS_DIRTY   (3 << 13)
#define MSTATUS_XS      (3 << 15)
#define MSTATUS_MPRV    (1 << 17)
#define MSTATUS_SUM     (1 << 18)
#define MSTATUS_MXR     (1 << 19)
#define MSTATUS_TVM     (1 << 20)
#define MSTATUS_TW      (1 << 21)
#define MSTATUS_TSR     (1 << 22)
#define MSTATUS_UXL     (3 << 32)
#define MSTATUS_SXL     (3 << 34)
#define MSTATUS_SBE     (1 << 36)
#define MSTATUS_MBE     (1 << 37)
#define MSTATUS_SD      (1 << 63)

/* interrupt numbers (bit positions in mip/mie, cause codes) */
#define IRQ_S_SOFT   1
#define IRQ_M_SOFT   3
#define IRQ_S_TIMER  5
#define IRQ_M_TIMER  7
#define IRQ_S_EXT    9
#define IRQ_M_EXT    11
#define MIP_SSIP     (1 << IRQ_S_SOFT)
#define MIP_MSIP     (1 << IRQ_M_SOFT)
#define MIP_STIP     (1 << IRQ_S_TIMER)
#define MIP_MTIP     (1 << IRQ_M_TIMER)
#define MIP_SEIP     (1 << IRQ_S_EXT)
#define MIP_MEIP     (1 << IRQ_M_EXT)

/* exception causes */
#define CAUSE_MISALIGNED_FETCH   0
#define CAUSE_FETCH_ACCESS       1
#define CAUSE_ILLEGAL_INSTRUCTION 2
#define CAUSE_BREAKPOINT         3
#define CAUSE_MISALIGNED_LOAD    4
#define CAUSE_LOAD_ACCESS        5
#define CAUSE_MISALIGNED_STORE   6
#define CAUSE_STORE_ACCESS       7
#define CAUSE_USER_ECALL         8
#define CAUSE_SUPERVISOR_ECALL   9
#define CAUSE_MACHINE_ECALL      11
#define CAUSE_FETCH_PAGE_FAULT   12
#define CAUSE_LOAD_PAGE_FAULT    13
#define CAUSE_STORE_PAGE_FAULT   15
#define CAUSE_INTERRUPT          (1 << 63)
#define CAUSE_IRQ(n)             ((1 << 63) | (n))

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* satp */
#define SATP_MODE_BARE  0
#define SATP_MODE_SV39  8
#define SATP_MODE_SV48  9
#define SATP_MODE_SHIFT 60
#define SATP_ASID_SHIFT 44

/* PTE bits */
#define PTE_V (1 << 0)
#define PTE_R (1 << 1)
#define PTE_W (1 << 2)
#define PTE_X (1 << 3)
#define PTE_U (1 << 4)
#define PTE_G (1 << 5)
#define PTE_A (1 << 6)
#define PTE_D (1 << 7)
/* a PTE pointing at physical address pa (a constant) with the given flags */
#define PTE(pa, flags) ((((pa) >> 12) << 10) | (flags))

/* Page tables live at fixed physical addresses (see link.ld) so that they
 * can be written as constants: table i is at PT(i).  Write them statically
 * in the .pagetables section with PT_ENTRY, in increasing (table, index)
 * order, and close the section with PT_END(number of tables):
 *     .pushsection .pagetables, "aw", @progbits
 *     PT_ENTRY(0, 2, PTE(0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D))
 *     PT_END(1)
 *     .popsection
 * PT_VPN(va, level) is the index of va in a table of that level. */
#define PT_BASE 0x80400000
#define PT(i)   (PT_BASE + (i) * 0x1000)
#define PT_ENTRY(t, i, value) .org (t) * 0x1000 + (i) * 8; .dword (value)
#define PT_END(ntables) .org (ntables) * 0x1000
#define PT_VPN(va, level) (((va) >> (12 + 9 * (level))) & 0x1ff)
#define SATP(mode, root) (((mode) << SATP_MODE_SHIFT) | ((root) >> 12))

/* PMP configuration bits */
#define PMP_R     0x01
#define PMP_W     0x02
#define PMP_X     0x04
#define PMP_OFF   0x00
#define PMP_TOR   0x08
#define PMP_NA4   0x10
#define PMP_NAPOT 0x18
#define PMP_L     0x80

/* CLINT (SiFive/QEMU layout) */
#define CLINT_BASE       0x2000000
#define CLINT_MSIP(h)    (CLINT_BASE + 4 * (h))
#define CLINT_MTIMECMP(h) (CLINT_BASE + 0x4000 + 8 * (h))
#define CLINT_MTIME      (CLINT_BASE + 0xBFF8)

/* the finisher of QEMU's virt machine, only used as a fallback (below) */
#define SIFIVE_TEST_FINISHER 0x100000

#define MAX_HARTS 4
#define STACK_SIZE 4096

/* ------------------------------------------------------- test macros */
#define TESTNUM gp

/* Test numbers are 1..254: QEMU reports N as its exit status (mod 256). */
#define SET_TEST(n) \
    .if ((n) < 1) || ((n) > 254); .error "test numbers must be 1..254"; .endif; \
    li gp, n

/* fail unless reg == val (val: an assembly-time constant) */
#define CHECK(reg, val)   li t6, val; bne reg, t6, fail
/* fail unless (reg & mask) == val (clobbers t5) */
#define CHECK_MASK(reg, mask, val) li t6, mask; and t5, reg, t6; li t6, val; bne t5, t6, fail
/* fail unless reg1 == reg2 */
#define CHECK_EQ(r1, r2)  bne r1, r2, fail
/* fail unless reg holds the address of label */
#define CHECK_ADDR(reg, label) la t6, label; bne reg, t6, fail

/* TEST_CASE(n, reg, expected, code...): run code, then compare reg. */
#define TEST_CASE(n, reg, val, code...) \
    SET_TEST(n); code; CHECK(reg, val)

/* Expecting traps.  TEST_TRAP runs exactly one instruction `insn` that must
 * trap with the given cause; mepc/sepc must be that instruction. */
#define CHECK_TRAPPED(cause) \
    bnez s8, fail; li t6, cause; bne s10, t6, fail
#define CHECK_EPC(label)   la t6, label; bne s9, t6, fail
#define CHECK_TVAL(val)    li t6, val; bne s11, t6, fail
#define CHECK_TVAL_ADDR(label) la t6, label; bne s11, t6, fail
#define CHECK_TVAL_REG(reg) bne s11, reg, fail
/* which handler took the trap: 3 = M, 1 = S */
#define CHECK_HANDLER(lvl) li t6, lvl; bne s6, t6, fail
/* the privilege mode a trap came from, as seen by the handler (s7) */
#define CHECK_MPP(prv) CHECK_MASK(s7, MSTATUS_MPP, (prv) << 11)
#define CHECK_SPP(prv) CHECK_MASK(s7, MSTATUS_SPP, (prv) << 8)
/* a trap must not have happened (s8 still holds the resume address) */
#define CHECK_NO_TRAP      beqz s8, fail; li s8, 0

#define TEST_TRAP(n, cause, insn...) \
    SET_TEST(n); la s8, 88889f; 88888: insn; 88889: \
    CHECK_TRAPPED(cause); CHECK_EPC(88888b)

#define TEST_TRAP_TVAL(n, cause, tval, insn...) \
    TEST_TRAP(n, cause, insn); CHECK_TVAL(tval)

/* the 32-bit instruction must be illegal, with tval = its bits (read back
 * from memory, so the code must be readable in the current mode) */
#define TEST_ILLEGAL(n, insn...) \
    SET_TEST(n); la s8, 88889f; 88888: insn; 88889: \
    CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION); CHECK_EPC(88888b); \
    la t6, 88888b; lwu t6, 0(t6); CHECK_TVAL_REG(t6)

/* the instruction must not trap */
#define TEST_NO_TRAP(n, insn...) \
    SET_TEST(n); la s8, 88889f; insn; 88889: CHECK_NO_TRAP

/* ------------------------------------------------------- mode changes */

/* From M-mode: continue at the next instruction in U- or S-mode (with
 * mstatus.MIE = 0 there, which only matters for a later return to M). */
#define ENTER_U  ENTER_MODE PRV_U
#define ENTER_S  ENTER_MODE PRV_S
.macro ENTER_MODE mode
    li t0, MSTATUS_MPP | MSTATUS_MPIE
    csrc mstatus, t0
    li t0, (\mode << 11)
    csrs mstatus, t0
    la t0, 80001f
    csrw mepc, t0
    mret
80001:
.endm

/* From M-mode: jump to `label` in U- or S-mode. */
.macro GOTO_MODE mode, label
    li t0, MSTATUS_MPP | MSTATUS_MPIE
    csrc mstatus, t0
    li t0, (\mode << 11)
    csrs mstatus, t0
    la t0, \label
    csrw mepc, t0
    mret
.endm

/* From any mode: trap with ecall and continue at the next instruction in
 * M-mode (or in S-mode if the ecall is delegated to S).  Clobbers the trap
 * registers (s6, s7, s9, s10, s11). */
.macro ENTER_M
    la s8, 80002f
    ori s8, s8, 1
    ecall
80002:
.endm

/* ---------------------------------------------------------- the start */

.macro TEST_BEGIN
    .option norvc
    .section .text.init, "ax", @progbits
    .globl _start
_start:
    j reset_vector

/* ---- the M-mode trap handler (direct mode) */
    .align 2
    .globl trap_m
trap_m:
    csrw mscratch, t0
    csrr s10, mcause
    csrr s9, mepc
    csrr s11, mtval
    csrr s7, mstatus
    li s6, 3
    bgez s10, 1f
    /* an interrupt: disable it in mie (sll uses the low 6 bits of mcause),
     * and continue with MIE = 0 if it came from M */
    li t0, 1
    sll t0, t0, s10
    csrc mie, t0
    li t0, MSTATUS_MPIE
    csrc mstatus, t0
1:  beqz s8, trap_m_unexpected
    andi t0, s8, 1
    beqz t0, 2f
    li t0, MSTATUS_MPP
    csrs mstatus, t0
    li t0, MSTATUS_MPIE                  /* continue in M with MIE = 0 */
    csrc mstatus, t0
    xori s8, s8, 1
2:  csrw mepc, s8
    li s8, 0
    csrr t0, mscratch
    mret

/* ---- the S-mode trap handler (direct mode); stvec points here */
    .align 2
    .globl trap_s
trap_s:
    csrw sscratch, t0
    csrr s10, scause
    csrr s9, sepc
    csrr s11, stval
    csrr s7, sstatus
    li s6, 1
    bgez s10, 1f
    li t0, 1
    sll t0, t0, s10
    csrc sie, t0
    li t0, MSTATUS_SPIE
    csrc sstatus, t0
1:  beqz s8, trap_s_unexpected
    andi t0, s8, 1
    beqz t0, 2f
    li t0, MSTATUS_SPP
    csrs sstatus, t0
    li t0, MSTATUS_SPIE                  /* continue in S with SIE = 0 */
    csrc sstatus, t0
    xori s8, s8, 1
2:  csrw sepc, s8
    li s8, 0
    csrr t0, sscratch
    sret

trap_s_unexpected:
    /* report through M: an ecall from S with s8 = 0 fails the test */
    li s8, 0
    ecall
    j trap_s_unexpected

/* ---- fail: may be reached in any mode; reports gp through the M handler */
    .globl fail
fail:
    li s8, 0
    ecall
    j fail

/* ---- reached in M-mode with gp = the failing test */
trap_m_unexpected:
    la t0, trap_m
    csrw mtvec, t0
    li t0, MSTATUS_MPRV
    csrc mstatus, t0
    mv a0, gp
    bnez a0, 1f
    li a0, 255          /* a failure before the first test case */
1:  slli a1, a0, 1
    ori a1, a1, 1
    la t0, tohost
    sd a1, 0(t0)
    /* Disco and QEMU's spike machine stop at the tohost store.  Should the
     * program still be running (QEMU's virt machine has no HTIF), use the
     * SiFive test finisher: (code << 16) | 0x3333 = fail with code. */
    slli a1, a0, 16
    li t0, 0x3333
    or a1, a1, t0
    li t0, SIFIVE_TEST_FINISHER
    sw a1, 0(t0)
2:  j 2b

/* ---- pass: M-mode only (a PASS from another mode traps and fails) */
    .globl pass
pass:
    li t0, MSTATUS_MPRV
    csrc mstatus, t0
    li a1, 1
    la t0, tohost
    sd a1, 0(t0)
    li a1, 0x5555
    li t0, SIFIVE_TEST_FINISHER
    sw a1, 0(t0)
1:  j 1b

/* ---- reset */
reset_vector:
    li x1, 0
    li x2, 0
    li x3, 0
    li x5, 0
    li x6, 0
    li x7, 0
    li x8, 0
    li x9, 0
    li x11, 0
    li x12, 0
    li x13, 0
    li x14, 0
    li x15, 0
    li x16, 0
    li x17, 0
    li x18, 0
    li x19, 0
    li x20, 0
    li x21, 0
    li x22, 0
    li x23, 0
    li x24, 0
    li x25, 0
    li x26, 0
    li x27, 0
    li x28, 0
    li x29, 0
    li x30, 0
    li x31, 0
    csrr tp, mhartid
    la t0, trap_m
    csrw mtvec, t0
    la t0, trap_s
    csrw stvec, t0
    csrw mie, zero
    csrw mip, zero
    csrw medeleg, zero
    csrw mideleg, zero
    csrw satp, zero
    csrw menvcfg, zero
    csrw mscratch, zero
    csrw sscratch, zero
    /* mstatus: everything off, FP on (Initial) for now */
    li t0, MSTATUS_FS_INITIAL
    csrw mstatus, t0
    /* zero the FP registers (makes FS Dirty), then FS = Initial */
    fmv.d.x f0, zero
    fmv.d.x f1, zero
    fmv.d.x f2, zero
    fmv.d.x f3, zero
    fmv.d.x f4, zero
    fmv.d.x f5, zero
    fmv.d.x f6, zero
    fmv.d.x f7, zero
    fmv.d.x f8, zero
    fmv.d.x f9, zero
    fmv.d.x f10, zero
    fmv.d.x f11, zero
    fmv.d.x f12, zero
    fmv.d.x f13, zero
    fmv.d.x f14, zero
    fmv.d.x f15, zero
    fmv.d.x f16, zero
    fmv.d.x f17, zero
    fmv.d.x f18, zero
    fmv.d.x f19, zero
    fmv.d.x f20, zero
    fmv.d.x f21, zero
    fmv.d.x f22, zero
    fmv.d.x f23, zero
    fmv.d.x f24, zero
    fmv.d.x f25, zero
    fmv.d.x f26, zero
    fmv.d.x f27, zero
    fmv.d.x f28, zero
    fmv.d.x f29, zero
    fmv.d.x f30, zero
    fmv.d.x f31, zero
    csrw fcsr, zero
    li t0, MSTATUS_FS
    csrc mstatus, t0
    li t0, MSTATUS_FS_INITIAL
    csrs mstatus, t0
    /* PMP: entry 0 = NAPOT over the whole (56-bit) physical address space,
     * RWX, so that S and U can access memory; all other entries off.
     * (pmpaddr0 = 2^53 - 1: 53 trailing ones = 2^56 bytes at 0.  The common
     * all-ones form is tested in pmp.S.) */
    csrw pmpcfg2, zero
    csrw pmpcfg0, zero
    li t0, (1 << 53) - 1
    csrw pmpaddr0, t0
    li t0, (PMP_NAPOT | PMP_R | PMP_W | PMP_X)
    csrw pmpcfg0, t0
    /* a stack per hart */
    la sp, stack_top
    slli t0, tp, 12
    sub sp, sp, t0
    li t0, 0
    /* harts other than 0 run `secondary_main` if the program defines it */
    bnez tp, secondary_entry
    j test_main

secondary_entry:
    la t0, secondary_ptr
    ld t0, 0(t0)
    beqz t0, park
    jr t0
park:
    wfi
    j park

/* ---- data of the framework */
    .pushsection .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .size tohost, 8
    .align 6
    .globl fromhost
fromhost: .dword 0
    .size fromhost, 8
    .popsection

    .pushsection .data, "aw", @progbits
    .align 3
    .weak secondary_main
secondary_ptr: .dword secondary_main
    .popsection

    .pushsection .bss, "aw", @nobits
    .align 12
stack_bottom:
    .space STACK_SIZE * MAX_HARTS
stack_top:
    .popsection

/* ---- the test body follows, in M-mode, hart 0 */
test_main:
.endm

#define TEST_PASS  j pass

.macro TEST_END
.endm

/* Mark a program that needs the `time` CSR (rdtime, Sstc).  QEMU's spike
 * machine has no time CSR, so test/asm/qemu-runner.sh runs such programs on
 * QEMU's virt machine (the same CPU, CLINT and RAM; the pass/fail fallback
 * above covers its lack of HTIF).  Disco ignores the marker. */
#define QEMU_NEEDS_VIRT \
    .pushsection .data, "aw", @progbits; .globl __qemu_needs_virt; \
    __qemu_needs_virt: .byte 1; .popsection

#endif
