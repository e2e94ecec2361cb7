# Trap delegation: medeleg/mideleg to S, exceptions in U and S delegated to
# the S handler (scause/sepc/stval/sstatus.SPP/SPIE/SIE), exceptions in M are
# never delegated, delegated interrupts (masked in M, SIE in S, always taken
# in U), sstatus/sie/sip as restricted views of mstatus/mie/mip.
#include "common.h"

# status bits visible in sstatus (RV64, no V): SIE SPIE UBE SPP VS FS XS SUM MXR UXL SD
#define SSTATUS_MASK (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_UBE | MSTATUS_SPP | MSTATUS_VS | \
    MSTATUS_FS | MSTATUS_XS | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_UXL | MSTATUS_SD)
#define M_ONLY_BITS (MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_TVM | \
    MSTATUS_TW | MSTATUS_TSR | MSTATUS_SXL | MSTATUS_MBE | MSTATUS_SBE)


TEST_BEGIN
    # ------------------------------------------------------ medeleg / mideleg
    SET_TEST(1)
    li a1, (1 << CAUSE_USER_ECALL) | (1 << CAUSE_ILLEGAL_INSTRUCTION) | (1 << CAUSE_BREAKPOINT) | \
           (1 << CAUSE_LOAD_ACCESS) | (1 << CAUSE_STORE_ACCESS) | (1 << CAUSE_FETCH_ACCESS) | \
           (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT) | (1 << CAUSE_FETCH_PAGE_FAULT)
    csrw medeleg, a1
    csrr a0, medeleg
    CHECK_EQ(a0, a1)                     # all of these can be delegated
    SET_TEST(2)
    li a1, 1 << CAUSE_MACHINE_ECALL      # medeleg[11] is read-only zero
    csrw medeleg, a1
    csrr a0, medeleg
    csrw medeleg, zero
#ifndef QEMU_QUIRKS                      /* QEMU 7.2 lets the bit be set */
    CHECK(a0, 0)
#endif
    SET_TEST(3)
    li a1, MIP_SSIP | MIP_STIP | MIP_SEIP
    csrw mideleg, a1
    csrr a0, mideleg
    CHECK_EQ(a0, a1)
    csrw mideleg, zero

    # ------------------------------------------------------ exceptions delegated
    li a1, (1 << CAUSE_USER_ECALL) | (1 << CAUSE_ILLEGAL_INSTRUCTION) | (1 << CAUSE_BREAKPOINT) | \
           (1 << CAUSE_LOAD_ACCESS) | (1 << CAUSE_STORE_ACCESS) | (1 << CAUSE_FETCH_ACCESS)
    csrw medeleg, a1
    # M: never delegated
    TEST_TRAP(4, CAUSE_ILLEGAL_INSTRUCTION, .word 0xfe000033)
    CHECK_HANDLER(3)
    TEST_TRAP(5, CAUSE_BREAKPOINT, ebreak)
    CHECK_HANDLER(3)
    SET_TEST(6)
    li a1, 0x100
    la s8, 2f
1:  ld a0, 0(a1)
2:  CHECK_TRAPPED(CAUSE_LOAD_ACCESS)
    CHECK_HANDLER(3)
    CHECK_EPC(1b)
    CHECK_TVAL(0x100)
    SET_TEST(7)
    csrr a0, scause                      # the S CSRs were not touched
    bnez a0, fail
    csrr a0, sepc
    bnez a0, fail

    # U -> S
    li t0, MSTATUS_SIE
    csrs mstatus, t0                     # SIE = 1 in U: SPIE must catch it
    ENTER_U
    TEST_TRAP(8, CAUSE_USER_ECALL, ecall)
    CHECK_HANDLER(1)
    CHECK_TVAL(0)
    CHECK_SPP(PRV_U)
    CHECK_MASK(s7, MSTATUS_SIE | MSTATUS_SPIE, MSTATUS_SPIE)
    TEST_ILLEGAL(9, .word 0xfe000033)
    CHECK_HANDLER(1)
    TEST_ILLEGAL(10, csrr a0, sstatus)
    CHECK_HANDLER(1)
    TEST_TRAP(11, CAUSE_BREAKPOINT, ebreak)
    CHECK_HANDLER(1)
    SET_TEST(12)
    li a1, 0x108
    la s8, 2f
1:  sd a0, 0(a1)
2:  CHECK_TRAPPED(CAUSE_STORE_ACCESS)
    CHECK_HANDLER(1)
    CHECK_EPC(1b)
    CHECK_TVAL(0x108)
    SET_TEST(13)
    la s8, 2f
    jalr a1
2:  CHECK_TRAPPED(CAUSE_FETCH_ACCESS)
    CHECK_HANDLER(1)
    CHECK(s9, 0x108)
    CHECK_TVAL(0x108)
    CHECK_SPP(PRV_U)
    # an ecall from U now lands in S: ENTER_M gets us to S (bit 0 = S there)
    ENTER_M
    SET_TEST(14)
    csrr a0, sstatus                     # in S now, SIE = 0 (see common.h), SPP = U
    CHECK_MASK(a0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP, MSTATUS_SPIE)

    # S -> S (illegal, ebreak), S -> M (ecall from S is not delegated)
    li t0, MSTATUS_SIE
    csrc sstatus, t0
    TEST_ILLEGAL(15, csrr a0, mstatus)
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_S)
    CHECK_MASK(s7, MSTATUS_SIE | MSTATUS_SPIE, 0)
    TEST_TRAP(16, CAUSE_BREAKPOINT, ebreak)
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_S)
    TEST_TRAP(17, CAUSE_SUPERVISOR_ECALL, ecall)
    CHECK_HANDLER(3)
    SET_TEST(18)
    csrr a0, scause                      # the last S trap: the ebreak
    CHECK(a0, CAUSE_BREAKPOINT)
    ENTER_M
    SET_TEST(19)
    CHECK(s10, CAUSE_SUPERVISOR_ECALL)
    CHECK_HANDLER(3)
    # with medeleg = 0 the same U exceptions go to M
    csrw medeleg, zero
    ENTER_U
    TEST_TRAP(20, CAUSE_USER_ECALL, ecall)
    CHECK_HANDLER(3)
    TEST_ILLEGAL(21, .word 0xfe000033)
    CHECK_HANDLER(3)
    ENTER_M

    # ------------------------------------------------------ sstatus view
    SET_TEST(22)
    li t0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM
    csrs mstatus, t0
    csrr a0, sstatus
    CHECK_MASK(a0, M_ONLY_BITS, 0)       # M-only bits are not visible
    csrr a1, mstatus
    li t0, SSTATUS_MASK
    and a1, a1, t0
    and a2, a0, t0
    CHECK_EQ(a1, a2)                     # the S bits are the mstatus bits
    # (QEMU 7.2 lets sstatus.UXL be written, even with the reserved value 3:
    # with -DQEMU_QUIRKS the writes below keep UXL = 2)
#ifdef QEMU_QUIRKS
#define SSTATUS_ONES ((-1 & ~MSTATUS_UXL) | (2 << 32))
#define SSTATUS_ZEROS (2 << 32)
#else
#define SSTATUS_ONES -1
#define SSTATUS_ZEROS 0
#endif
    SET_TEST(23)
    li t0, SSTATUS_ONES
    csrw sstatus, t0                     # sets only S-writable bits
    csrr a0, mstatus
    CHECK_MASK(a0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS, \
               MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS)
    CHECK_MASK(a0, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_MPRV | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM, \
               MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM)
    CHECK_MASK(a0, MSTATUS_UXL | MSTATUS_SXL, (2 << 32) | (2 << 34))  # read-only
    bgez a0, fail                        # SD (FS = Dirty)
    SET_TEST(24)
    li t0, SSTATUS_ZEROS
    csrw sstatus, t0
    csrr a0, mstatus
    CHECK_MASK(a0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS, 0)
    CHECK_MASK(a0, MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM, \
               MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM)
    CHECK_MASK(a0, MSTATUS_UXL, 2 << 32)
    bltz a0, fail
    SET_TEST(25)
    li t0, MSTATUS_SUM
    csrs mstatus, t0                     # and mstatus writes show in sstatus
    csrr a0, sstatus
    CHECK_MASK(a0, MSTATUS_SUM | MSTATUS_MXR, MSTATUS_SUM)
    li t0, MSTATUS_MPIE | MSTATUS_MPP | MSTATUS_TW | MSTATUS_TSR | MSTATUS_TVM | MSTATUS_SUM
    csrc mstatus, t0
    li t0, MSTATUS_FS_INITIAL
    csrs mstatus, t0

    # ------------------------------------------------------ sie / sip views
    # nothing delegated: sie/sip bits are read-only zero
    SET_TEST(26)
    csrw mideleg, zero
    li t0, -1
    csrw sie, t0
    csrr a0, mie
    CHECK(a0, 0)
    csrr a0, sie
    CHECK(a0, 0)
    SET_TEST(27)
    li t0, MIP_SSIP | MIP_STIP
    csrs mip, t0                         # pending in M (Sstc off: STIP writable by M)
    csrr a0, mip
    CHECK_MASK(a0, MIP_SSIP | MIP_STIP, MIP_SSIP | MIP_STIP)
    csrr a0, sip
    CHECK(a0, 0)
    li t0, MIP_SSIP
    csrc sip, t0                         # no effect: not delegated
    csrr a0, mip
    CHECK_MASK(a0, MIP_SSIP, MIP_SSIP)
    li t0, MIP_SSIP | MIP_STIP
    csrc mip, t0
    # delegated: visible and (SSIP, SSIE/STIE/SEIE) writable
    SET_TEST(28)
    li t0, MIP_SSIP | MIP_STIP | MIP_SEIP
    csrw mideleg, t0
    li t0, -1
    csrw sie, t0
    csrr a0, mie
    CHECK(a0, MIP_SSIP | MIP_STIP | MIP_SEIP)     # no M bits
    csrr a0, sie
    CHECK(a0, MIP_SSIP | MIP_STIP | MIP_SEIP)
    csrw sie, zero
    csrr a0, mie
    CHECK(a0, 0)
    SET_TEST(29)
    li t0, MIP_SSIP
    csrs sip, t0                         # SSIP is writable through sip
    csrr a0, mip
    CHECK_MASK(a0, MIP_SSIP, MIP_SSIP)
    csrr a0, sip
    CHECK(a0, MIP_SSIP)
    csrc sip, t0
    csrr a0, mip
    CHECK_MASK(a0, MIP_SSIP, 0)
    SET_TEST(30)
    li t0, MIP_STIP
    csrs sip, t0                         # STIP is read-only in sip
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, 0)
    csrs mip, t0                         # set by M, visible in sip
    csrr a0, sip
    CHECK(a0, MIP_STIP)
    csrc mip, t0
    csrr a0, sip
    CHECK(a0, 0)

    # ------------------------------------------------------ delegated interrupts
    # SSI delegated, enabled in sie and pending: masked in M even with MIE = 1
    SET_TEST(31)
    li t0, MIP_SSIP
    csrs mie, t0
    csrs mip, t0
    la s8, 1f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    nop
    nop
    csrc mstatus, t0
1:  CHECK_NO_TRAP
    # in S with SIE = 0: not taken
    li t0, MSTATUS_SIE
    csrc mstatus, t0
    ENTER_S
    TEST_NO_TRAP(33, nop; nop; nop)
    # in S with SIE = 1: taken by the S handler at once
    SET_TEST(34)
    la s8, 2f
    li t0, MSTATUS_SIE
1:  csrs sstatus, t0
    j fail                               # not reached: the interrupt comes first
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_S)
    CHECK_MASK(s7, MSTATUS_SIE | MSTATUS_SPIE, MSTATUS_SPIE)
    la t6, 1b + 4                        # sepc: the instruction after csrs
    CHECK_EQ(s9, t6)
    CHECK_TVAL(0)
    SET_TEST(35)
    csrr a0, sie                         # the handler disabled it in sie
    CHECK(a0, 0)
    csrr a0, sip
    CHECK(a0, MIP_SSIP)                  # still pending
    csrr a0, sstatus                     # the handler continues with SIE = 0
    CHECK_MASK(a0, MSTATUS_SIE | MSTATUS_SPIE, MSTATUS_SPIE)
    li t0, MSTATUS_SIE
    csrc sstatus, t0
    # in U: always taken (U < S), whatever SIE
    li t0, MSTATUS_SPIE | MSTATUS_SIE
    csrc sstatus, t0
    li t0, MIP_SSIP
    csrs sie, t0
    SET_TEST(36)
    la t0, 1f
    csrw sepc, t0
    li t0, MSTATUS_SPP
    csrc sstatus, t0
    la s8, 2f
    sret                                 # to U, SIE = SPIE = 0
1:  j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_U)
    CHECK_EPC(1b)
    # the handler returned to U: prove it
    TEST_ILLEGAL(37, csrr a0, sstatus)
    CHECK_HANDLER(3)                     # illegal is not delegated now
    ENTER_M
    SET_TEST(38)
    li t0, MIP_SSIP
    csrc mip, t0
    csrw mideleg, zero
    csrw mie, zero
    # not delegated: the same interrupt goes to M, even from S with SIE = 0
    # (M-level interrupts are always enabled below M)
    SET_TEST(39)
    li t0, MIP_SSIP
    csrs mie, t0
    csrs mip, t0
    la s8, 2f
    ENTER_S                              # taken at the first instruction in S
1:  j 1b
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_SOFT))
    CHECK_HANDLER(3)
    CHECK_MPP(PRV_S)
    ENTER_M
    li t0, MIP_SSIP
    csrc mip, t0
    csrw mie, zero

    TEST_PASS
TEST_END
