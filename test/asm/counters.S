# Counters (Zicntr): cycle and instret advance, instret counts exactly
# (reads see the value before the reading instruction; a write replaces the
# increment of the writing instruction), mcycle/minstret writes, time reads
# the CLINT's mtime, mcounteren/scounteren gate S- and U-mode reads (illegal
# instruction when disabled), the counters are read-only.
#include "common.h"

QEMU_NEEDS_VIRT                          /* the time CSR */

#define CNT_CY 1
#define CNT_TM 2
#define CNT_IR 4

# reads of cycle, time, instret in the current mode: each either works or is
# illegal, as bits in `allowed` say
#define TEST_COUNTER_ACCESS(n, allowed) \
    SET_TEST(n); li a4, allowed; \
    la s8, 77761f; 77760: csrr a0, cycle; 77761: andi t0, a4, CNT_CY; \
    COUNTER_RESULT(77760b); \
    la s8, 77763f; 77762: csrr a0, time; 77763: andi t0, a4, CNT_TM; \
    COUNTER_RESULT(77762b); \
    la s8, 77765f; 77764: csrr a0, instret; 77765: andi t0, a4, CNT_IR; \
    COUNTER_RESULT(77764b)
# t0 != 0: the read must have worked; else it must have been illegal
#define COUNTER_RESULT(insn) \
    beqz t0, 77766f; CHECK_NO_TRAP; j 77767f; \
    77766: CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION); CHECK_EPC(insn); \
    la t6, insn; lwu t6, 0(t6); CHECK_TVAL_REG(t6); 77767:

TEST_BEGIN
    # ------------------------------------------------------ instret
    # QEMU 7.2 (without -icount) returns host ticks for instret: with
    # -DQEMU_QUIRKS only monotonicity is checked.
    SET_TEST(1)
    li t0, 1000
    csrw minstret, t0
    csrr a0, minstret                    # the write replaced the increment
    csrr a1, minstret
    nop
    nop
    nop
    csrr a2, minstret
    rdinstret a3                         # instret: the same counter
#ifdef QEMU_QUIRKS
    li t0, 1000
    bltu a0, t0, fail
    bleu a1, a0, fail
    bleu a2, a1, fail
    bleu a3, a2, fail
#else
    CHECK(a0, 1000)
    CHECK(a1, 1001)
    CHECK(a2, 1005)
    CHECK(a3, 1006)
#endif
    SET_TEST(2)
    rdinstret a0
    li a5, 100
1:  addi a5, a5, -1                      # 200 instructions: 202 with li, rdinstret
    bnez a5, 1b
    rdinstret a1
    sub a2, a1, a0
#ifdef QEMU_QUIRKS
    li t0, 202
    bltu a2, t0, fail
#else
    CHECK(a2, 202)
#endif
    # a loop of 2 x 1000 instructions
    SET_TEST(3)
    rdinstret a0
    li a5, 1000
1:  addi a5, a5, -1
    bnez a5, 1b
    rdinstret a1
    sub a2, a1, a0
#ifdef QEMU_QUIRKS
    li t0, 2002
    bltu a2, t0, fail
#else
    CHECK(a2, 2002)
#endif

    # ------------------------------------------------------ cycle
    SET_TEST(4)
    rdcycle a0
    li a5, 100
1:  addi a5, a5, -1
    bnez a5, 1b
    rdcycle a1
    bleu a1, a0, fail
    SET_TEST(5)
    li t0, 0x1000000000
    csrw mcycle, t0
    csrr a0, mcycle
    bltu a0, t0, fail
    li t1, 0x1000000000 + 1000000
    bgeu a0, t1, fail
    rdcycle a1
    bltu a1, a0, fail

    # ------------------------------------------------------ time = mtime
    SET_TEST(6)
    li a5, CLINT_MTIME
    ld a0, 0(a5)
    rdtime a1
    ld a2, 0(a5)
    bltu a1, a0, fail
    bltu a2, a1, fail
    li t0, 100000                        # and close to it (10 ms)
    sub a3, a2, a0
    bgeu a3, t0, fail
    SET_TEST(7)
    rdtime a0
    li a5, 1000
1:  rdtime a1
    bne a1, a0, 2f
    addi a5, a5, -1
    bnez a5, 1b
    j fail                               # time must advance
2:  bltu a1, a0, fail

    # ------------------------------------------------------ read-only
    TEST_ILLEGAL(8, csrw cycle, zero)
    TEST_ILLEGAL(9, csrw time, zero)
    TEST_ILLEGAL(10, csrwi instret, 1)
    TEST_ILLEGAL(11, csrs time, a0)

    # ------------------------------------------------------ counter-enable
    SET_TEST(12)
    li t0, -1
    csrw mcounteren, t0
    csrr a0, mcounteren
    CHECK_MASK(a0, 7, 7)
    csrw scounteren, t0
    csrr a0, scounteren
    CHECK_MASK(a0, 7, 7)
    csrw mcounteren, zero
    csrw scounteren, zero
    csrr a0, mcounteren
    CHECK(a0, 0)
    # M: always allowed
    TEST_COUNTER_ACCESS(13, CNT_CY | CNT_TM | CNT_IR)
    # all disabled
    ENTER_S
    TEST_COUNTER_ACCESS(14, 0)
    ENTER_M
    ENTER_U
    TEST_COUNTER_ACCESS(15, 0)
    ENTER_M
    # mcounteren alone: S may read, U may not
    li t0, CNT_CY | CNT_TM | CNT_IR
    csrw mcounteren, t0
    ENTER_S
    TEST_COUNTER_ACCESS(16, CNT_CY | CNT_TM | CNT_IR)
    SET_TEST(17)
    li t0, CNT_TM                        # S sets scounteren
    csrw scounteren, t0
    csrr a0, scounteren
    CHECK(a0, CNT_TM)
    ENTER_M
    ENTER_U
    TEST_COUNTER_ACCESS(18, CNT_TM)
    ENTER_M
    # each bit gates its own counter
    li t0, CNT_CY | CNT_IR
    csrw scounteren, t0
    ENTER_U
    TEST_COUNTER_ACCESS(19, CNT_CY | CNT_IR)
    ENTER_M
    li t0, CNT_IR
    csrw mcounteren, t0                  # mcounteren gates U too
    ENTER_U
    TEST_COUNTER_ACCESS(20, CNT_IR)
    ENTER_M
    ENTER_S
    TEST_COUNTER_ACCESS(21, CNT_IR)
    ENTER_M
    li t0, CNT_CY
    csrw mcounteren, t0
    csrw scounteren, zero
    ENTER_S
    TEST_COUNTER_ACCESS(22, CNT_CY)
    ENTER_M
    ENTER_U
    TEST_COUNTER_ACCESS(23, 0)
    ENTER_M
    # S and U cannot touch the M counters
    li t0, 7
    csrw mcounteren, t0
    csrw scounteren, t0
    ENTER_S
    TEST_ILLEGAL(24, csrr a0, mcycle)
    TEST_ILLEGAL(25, csrr a0, minstret)
    TEST_ILLEGAL(26, csrr a0, mcounteren)
    TEST_ILLEGAL(27, csrw cycle, zero)
    ENTER_M
    ENTER_U
    TEST_ILLEGAL(28, csrr a0, scounteren)
    TEST_ILLEGAL(29, csrr a0, mcycle)
    TEST_COUNTER_ACCESS(30, CNT_CY | CNT_TM | CNT_IR)
    ENTER_M
    csrw mcounteren, zero
    csrw scounteren, zero

    TEST_PASS
TEST_END
