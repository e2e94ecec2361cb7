# Sstc: stimecmp access rules (menvcfg.STCE, mcounteren.TM), mip.STIP
# driven by stimecmp <= time (and no longer writable by M), the supervisor
# timer interrupt from stimecmp taken in S (delegated) and in M (not
# delegated), and from U.
#include "common.h"

QEMU_NEEDS_VIRT                          /* stimecmp needs the time CSR */

#define MENVCFG_STCE (1 << 63)
#define LOOP_LIMIT 2000000

TEST_BEGIN
    li t0, -1
    csrw stimecmp, t0                    # M may always access it
    # ------------------------------------------------------ access rules
    SET_TEST(1)
    csrr a0, stimecmp
    CHECK(a0, -1)
    li t0, 0x123456789
    csrw stimecmp, t0
    csrr a0, stimecmp
    CHECK(a0, 0x123456789)
    li t0, -1
    csrw stimecmp, t0
    # STCE = 0: S may not access stimecmp (even with mcounteren.TM)
    li t0, 7
    csrw mcounteren, t0
    ENTER_S
    TEST_ILLEGAL(2, csrr a0, stimecmp)
    TEST_ILLEGAL(3, csrw stimecmp, zero)
    ENTER_M
    # STCE = 1, TM = 0: still illegal in S
    li t0, MENVCFG_STCE
    csrs menvcfg, t0
    SET_TEST(4)
    csrr a0, menvcfg
    bgez a0, fail                        # STCE is implemented
    csrw mcounteren, zero
    ENTER_S
    TEST_ILLEGAL(5, csrr a0, stimecmp)
    ENTER_M
    # STCE = 1, TM = 1: S reads and writes it; U never
    li t0, 2
    csrw mcounteren, t0
    ENTER_S
    TEST_NO_TRAP(6, csrr a0, stimecmp)
    CHECK(a0, -1)
    SET_TEST(7)
    li t0, 0x7654321
    csrw stimecmp, t0
    csrr a0, stimecmp
    CHECK(a0, 0x7654321)
    li t0, -1
    csrw stimecmp, t0
    ENTER_M
    li t0, 2
    csrw scounteren, t0
    ENTER_U
    TEST_ILLEGAL(8, csrr a0, stimecmp)
    ENTER_M

    # ------------------------------------------------------ STIP follows stimecmp
    SET_TEST(9)
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, 0)          # stimecmp = -1: not pending
    li t0, MIP_STIP
    csrs mip, t0                         # not writable with STCE = 1
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, 0)
    SET_TEST(10)
    csrw stimecmp, zero                  # time >= 0: pending
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, MIP_STIP)
    li t0, MIP_STIP
    csrc mip, t0                         # still pending
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, MIP_STIP)
    SET_TEST(11)
    rdtime a0
    li t0, 10000000                      # one second from now
    add a0, a0, t0
    csrw stimecmp, a0
    csrr a0, mip
    CHECK_MASK(a0, MIP_STIP, 0)
    # stimecmp = now + 100: pending after a while, and not before
    SET_TEST(12)
    rdtime a0
    addi a0, a0, 100
    csrw stimecmp, a0
    li s0, LOOP_LIMIT
1:  csrr a1, mip
    andi a1, a1, MIP_STIP
    bnez a1, 2f
    addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  rdtime a1
    bltu a1, a0, fail
    li t0, -1
    csrw stimecmp, t0

    # ------------------------------------------------------ interrupts
    # delegated, taken in S (SIE = 1)
    li t0, MIP_STIP
    csrw mideleg, t0
    csrw mie, t0
    ENTER_S
    SET_TEST(13)
    li t0, MSTATUS_SIE
    csrs sstatus, t0
    la s8, 2f
    rdtime a0
    addi a0, a0, 50
    csrw stimecmp, a0                    # S programs its own timer
    li s0, LOOP_LIMIT
1:  addi s0, s0, -1
    bnez s0, 1b
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_TIMER))
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_S)
    CHECK_TVAL(0)
    SET_TEST(14)
    csrr a0, sip
    CHECK(a0, MIP_STIP)
    li t0, -1
    csrw stimecmp, t0                    # a new stimecmp clears it
    csrr a0, sip
    CHECK(a0, 0)
    # taken from U, whatever SIE
    li t0, MIP_STIP
    csrs sie, t0
    li t0, MSTATUS_SIE
    csrc sstatus, t0
    ENTER_M
    SET_TEST(15)
    csrw stimecmp, zero
    la s8, 2f
    ENTER_U                              # taken at the first U instruction
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_TIMER))
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_U)
    ENTER_M
    SET_TEST(16)
    li t0, -1
    csrw stimecmp, t0
    # not delegated: taken in M
    csrw mideleg, zero
    li t0, MIP_STIP
    csrw mie, t0
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    la s8, 2f
    csrw stimecmp, zero
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_S_TIMER))
    CHECK_HANDLER(3)
    li t0, -1
    csrw stimecmp, t0
    csrw mie, zero
    li t0, MENVCFG_STCE
    csrc menvcfg, t0
    csrw mcounteren, zero
    csrw scounteren, zero

    TEST_PASS
TEST_END
