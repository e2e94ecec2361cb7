# Interrupts: software interrupts through mip.SSIP and CLINT msip, the
# machine timer through CLINT mtimecmp, the supervisor timer through
# mip.STIP written by M, mip read-only bits, priorities (MSI > MTI > SEI >
# SSI > STI, all pending at once), global enables (MIE in M, always on below
# M), mepc/mcause/mtval of interrupts, wfi waking up with MIE = 0, vectored
# mtvec and stvec.  (Sstc's stimecmp: sstc.S; delegation: deleg.S.)
#include "common.h"

#define LOOP_LIMIT 2000000

#define READ_MTIME(reg) li reg, CLINT_MTIME; ld reg, 0(reg)
#define SET_MTIMECMP(reg) li t1, CLINT_MTIMECMP(0); sd reg, 0(t1)
#define MTIMECMP_NEVER li t0, -1; SET_MTIMECMP(t0)
#define SET_MSIP(v) li t1, CLINT_MSIP(0); li t0, v; sw t0, 0(t1)

TEST_BEGIN
    MTIMECMP_NEVER
    SET_MSIP(0)

    # ------------------------------------------------------ SSIP, not delegated
    SET_TEST(1)
    li t0, MIP_SSIP
    csrs mie, t0
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    la s8, 2f
    li t0, MIP_SSIP
1:  csrs mip, t0                         # pending now: taken before the next instruction
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(3)
    la t6, 1b + 4
    CHECK_EQ(s9, t6)                     # mepc: the next instruction
    CHECK_TVAL(0)
    CHECK_MASK(s7, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPIE | MSTATUS_MPP_M)
    SET_TEST(2)
    csrr a0, mip                         # still pending; the handler cleared mie
    CHECK_MASK(a0, MIP_SSIP, MIP_SSIP)
    csrr a0, mie
    CHECK(a0, 0)
    csrr a0, mstatus                     # and resumed with MIE = 0
    CHECK_MASK(a0, MSTATUS_MIE, 0)
    li t0, MIP_SSIP
    csrc mip, t0
    csrr a0, mip
    CHECK_MASK(a0, MIP_SSIP, 0)

    # MIE = 0: pending and enabled, but not taken in M
    SET_TEST(3)
    li t0, MIP_SSIP
    csrs mie, t0
    csrs mip, t0
    la s8, 1f
    nop
    nop
1:  CHECK_NO_TRAP
    SET_TEST(4)
    la s8, 2f
    li t0, MSTATUS_MIE
1:  csrs mstatus, t0                     # taken as soon as MIE = 1
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    la t6, 1b + 4
    CHECK_EQ(s9, t6)
    li t0, MIP_SSIP
    csrc mip, t0

    # ------------------------------------------------------ CLINT msip
    SET_TEST(5)
    li t0, MIP_MSIP
    csrs mip, t0                         # MSIP is read-only in mip
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP, 0)
    SET_MSIP(1)
    li a1, CLINT_MSIP(0)
    lw a0, 0(a1)
    CHECK(a0, 1)
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP, MIP_MSIP)
    li t0, MIP_MSIP
    csrc mip, t0                         # still read-only
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP, MIP_MSIP)
    SET_TEST(6)
    li t0, MIP_MSIP
    csrs mie, t0
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_SOFT))
    CHECK_TVAL(0)
    SET_TEST(7)
    SET_MSIP(0)
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP, 0)
    li a1, CLINT_MSIP(0)
    lw a0, 0(a1)
    CHECK(a0, 0)

    # ------------------------------------------------------ machine timer
    SET_TEST(8)
    READ_MTIME(a0)
    li s0, 1000
1:  READ_MTIME(a1)                       # mtime advances
    bne a1, a0, 2f
    addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  bltu a1, a0, fail
    SET_TEST(9)
    li t0, 0x123456789abc
    SET_MTIMECMP(t0)
    li a1, CLINT_MTIMECMP(0)
    ld a0, 0(a1)
    CHECK(a0, 0x123456789abc)
    csrr a0, mip
    CHECK_MASK(a0, MIP_MTIP, 0)          # far in the future: not pending
    SET_TEST(10)
    li t0, MIP_MTIP
    csrs mip, t0                         # MTIP is read-only in mip
    csrr a0, mip
    CHECK_MASK(a0, MIP_MTIP, 0)
    # mtimecmp = now + 100 ticks: MTIP becomes pending
    SET_TEST(11)
    READ_MTIME(a0)
    addi a0, a0, 100
    SET_MTIMECMP(a0)
    li s0, LOOP_LIMIT
1:  csrr a1, mip
    andi a1, a1, MIP_MTIP
    bnez a1, 2f
    addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  READ_MTIME(a1)
    bltu a1, a0, fail                    # not before mtimecmp
    SET_TEST(12)
    li t0, MIP_MTIP
    csrc mip, t0                         # read-only: still pending
    csrr a1, mip
    andi a1, a1, MIP_MTIP
    beqz a1, fail
    MTIMECMP_NEVER                       # a new mtimecmp clears it
    csrr a1, mip
    andi a1, a1, MIP_MTIP
    bnez a1, fail
    # the timer interrupt, taken in M
    SET_TEST(13)
    li t0, MIP_MTIP
    csrs mie, t0
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    la s8, 2f
    READ_MTIME(a0)
    addi a0, a0, 50
    SET_MTIMECMP(a0)
    li s0, LOOP_LIMIT
1:  addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_TIMER))
    CHECK_TVAL(0)
    CHECK_HANDLER(3)
    MTIMECMP_NEVER
    # the timer interrupt, taken from U (MIE does not matter below M)
    SET_TEST(14)
    li t0, MSTATUS_MIE
    csrc mstatus, t0
    li t0, MIP_MTIP
    csrs mie, t0
    READ_MTIME(a0)
    addi a0, a0, 50
    SET_MTIMECMP(a0)
    la s8, 2f
    ENTER_U
    li s0, LOOP_LIMIT
1:  addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_TIMER))
    CHECK_MPP(PRV_U)
    MTIMECMP_NEVER                       # (in U: the CLINT is accessible, PMP allows it)
    ENTER_M

    # ------------------------------------------------------ wfi with MIE = 0
    SET_TEST(15)
    li t0, MIP_MTIP
    csrs mie, t0
    READ_MTIME(a0)
    addi a0, a0, 200
    SET_MTIMECMP(a0)
    la s8, 2f
    li s0, LOOP_LIMIT
1:  wfi                                  # wakes up on the pending MTIP, no trap
    csrr a1, mip
    andi a1, a1, MIP_MTIP
    bnez a1, 3f
    addi s0, s0, -1                      # (wfi may also return early)
    bnez s0, 1b
    j fail
3:  CHECK_NO_TRAP
    READ_MTIME(a1)
    bltu a1, a0, fail
    MTIMECMP_NEVER
    SET_TEST(16)
    SET_MSIP(1)                          # already pending: wfi returns at once
    li t0, MIP_MSIP
    csrw mie, t0
    la s8, 2f
    wfi
    CHECK_NO_TRAP
    SET_MSIP(0)
    csrw mie, zero
    j 3f
2:  j fail
3:

    # ------------------------------------------------------ supervisor timer (STIP by M)
    SET_TEST(17)
    li t0, MIP_STIP
    csrs mideleg, t0
    csrs mie, t0                         # STIE
    csrs mip, t0                         # STIP, writable by M while menvcfg.STCE = 0
    csrr a0, sip
    CHECK(a0, MIP_STIP)
    li t0, MSTATUS_SIE
    csrc mstatus, t0
    ENTER_S
    SET_TEST(18)
    la s8, 2f
    li t0, MSTATUS_SIE
1:  csrs sstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_TIMER))
    CHECK_HANDLER(1)
    la t6, 1b + 4
    CHECK_EQ(s9, t6)
    CHECK_SPP(PRV_S)
    ENTER_M
    SET_TEST(19)
    li t0, MIP_STIP
    csrc mip, t0
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, 0)
    csrw mideleg, zero
    csrw mie, zero

    # ------------------------------------------------------ priorities
    # MSI, MTI, SEI, SSI and STI pending and enabled at once (none
    # delegated); each trap disables its source in mie, the next is taken as
    # soon as MIE is set again: MSI > MTI > SEI > SSI > STI.
    SET_TEST(20)
    SET_MSIP(1)
    li t0, 0
    SET_MTIMECMP(t0)                     # mtime >= 0: MTIP
    li t0, MIP_SEIP | MIP_SSIP | MIP_STIP
    csrs mip, t0
    li t0, MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP
    csrw mie, t0
    li s0, 0                             # the order seen, one cause per byte
    li s1, 5
    li t2, MSTATUS_MIE
1:  la s8, 2f
    csrs mstatus, t2
    j fail
2:  bnez s8, fail
    slli s0, s0, 8
    andi t0, s10, 0xff
    or s0, s0, t0
    addi s1, s1, -1
    bnez s1, 1b
#ifdef QEMU_QUIRKS
    /* QEMU 7.2 (without AIA) takes the lowest-numbered interrupt first */
    CHECK(s0, (IRQ_S_SOFT << 32) | (IRQ_M_SOFT << 24) | (IRQ_S_TIMER << 16) | (IRQ_M_TIMER << 8) | IRQ_S_EXT)
#else
    CHECK(s0, (IRQ_M_SOFT << 32) | (IRQ_M_TIMER << 24) | (IRQ_S_EXT << 16) | (IRQ_S_SOFT << 8) | IRQ_S_TIMER)
#endif
    SET_TEST(21)
    csrr a0, mie
    CHECK(a0, 0)
    SET_MSIP(0)
    MTIMECMP_NEVER
    li t0, MIP_SEIP | MIP_SSIP | MIP_STIP
    csrc mip, t0
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP, 0)
    # a delegated interrupt never preempts M, even with a higher number: SEI
    # delegated and pending, SSI not delegated: M takes SSI
    SET_TEST(22)
    li t0, MIP_SEIP
    csrw mideleg, t0
    li t0, MIP_SEIP | MIP_SSIP
    csrs mip, t0
    csrw mie, t0
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(3)
    li t0, MSTATUS_MIE
    csrs mstatus, t0                     # SEI stays masked in M
    csrc mstatus, t0
    li t0, MIP_SEIP | MIP_SSIP
    csrc mip, t0
    csrw mie, zero
    csrw mideleg, zero

    # ------------------------------------------------------ vectored mtvec
    la t0, mvec_table
    ori t0, t0, 1
    csrw mtvec, t0
    csrr a0, mtvec
    SET_TEST(23)
    CHECK_EQ(a0, t0)                     # mode 1 is supported
    SET_TEST(24)
    li a7, -1
    li t0, MIP_SSIP
    csrw mie, t0
    csrs mip, t0
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK(a7, IRQ_S_SOFT)                # base + 4 * 1
    li t0, MIP_SSIP
    csrc mip, t0
    SET_TEST(25)
    li a7, -1
    SET_MSIP(1)
    li t0, MIP_MSIP
    csrw mie, t0
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_SOFT))
    CHECK(a7, IRQ_M_SOFT)                # base + 4 * 3
    SET_MSIP(0)
    SET_TEST(26)
    li a7, -1
    li t0, MIP_MTIP
    csrw mie, t0
    li t0, 0
    SET_MTIMECMP(t0)
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_TIMER))
    CHECK(a7, IRQ_M_TIMER)               # base + 4 * 7
    MTIMECMP_NEVER
    SET_TEST(27)
    li a7, -1
    la s8, 2f
1:  ecall
2:  CHECK_TRAPPED(CAUSE_MACHINE_ECALL)
    CHECK_EPC(1b)
    CHECK(a7, 0)                         # exceptions: base
    la t0, trap_m
    csrw mtvec, t0

    # ------------------------------------------------------ vectored stvec
    la t0, svec_table
    ori t0, t0, 1
    csrw stvec, t0
    li t0, MIP_SSIP | MIP_STIP
    csrw mideleg, t0
    csrw mie, t0
    li t0, 1 << CAUSE_ILLEGAL_INSTRUCTION
    csrw medeleg, t0
    ENTER_S
    SET_TEST(28)
    li a7, -1
    li t0, MIP_SSIP
    csrs sip, t0
    la s8, 2f
    li t0, MSTATUS_SIE
    csrs sstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(1)
    CHECK(a7, 0x100 + IRQ_S_SOFT)        # stvec base + 4 * 1
    li t0, MIP_SSIP
    csrc sip, t0
    ENTER_M
    SET_TEST(29)
    li t0, MIP_STIP
    csrs mip, t0
    ENTER_S
    li a7, -1
    la s8, 2f
    li t0, MSTATUS_SIE
    csrs sstatus, t0
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_TIMER))
    CHECK(a7, 0x100 + IRQ_S_TIMER)       # stvec base + 4 * 5
    SET_TEST(30)
    li a7, -1
    la s8, 2f
    .word 0xfe000033                     # an exception: stvec base
2:  CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION)
    CHECK(a7, 0x100)
    ENTER_M
    li t0, MIP_STIP
    csrc mip, t0
    csrw mideleg, zero
    csrw medeleg, zero
    csrw mie, zero
    la t0, trap_s
    csrw stvec, t0

    TEST_PASS

    # vector tables: entry n records n (S: 0x100 + n) in a7, then the
    # common handlers take over
    .align 8
mvec_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    j mvec_\n
    .endr
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
mvec_\n: li a7, \n
    j trap_m
    .endr
    .align 8
svec_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    j svec_\n
    .endr
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
svec_\n: li a7, 0x100 + \n
    j trap_s
    .endr
TEST_END
