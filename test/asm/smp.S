# Two harts: hart 1 waits in wfi for an IPI (CLINT msip) from hart 0; then
# both harts increment shared counters many thousand times each with
# amoadd.d, amoadd.w, lr.d/sc.d, lr.w/sc.w and a test-and-set spinlock around
# a plain load/add/store; hart 0 waits for hart 1 and checks that every
# total is exact.  Also: an sc fails after a store by the other hart between
# the lr and the sc; hart 1 interrupts hart 0 through msip; mhartid.
# Tests 1..19 fail on hart 0, 100.. on hart 1.
# disco: --cpus 2 --max-instructions 400000000
# (a hart's bounded waits, WAIT_LIMIT iterations of 5 instructions, outlast the
# runner's default of 50 M instructions: with translated spin loops that is
# ~50 ms, less than the other hart's thread may wait for a core on a busy host)
#include "common.h"

#define N          4000               /* iterations of each loop, per hart */
#define WAIT_LIMIT 20000000           /* bounded waits (loop iterations) */

# spin until the dword at `label` equals `value` (bounded)
#define WAIT_EQ(label, value) \
    la t1, label; li t2, value; li t3, WAIT_LIMIT; \
    77781: ld t4, 0(t1); beq t4, t2, 77782f; .word 0x0100000f; \
    addi t3, t3, -1; bnez t3, 77781b; j fail; 77782: fence r, rw

# the loops (a0 = number of iterations), used by both harts
.macro COUNT_LOOPS
    la s0, cnt_amo_d
    li a0, N
1:  li t0, 1
    amoadd.d zero, t0, (s0)
    addi a0, a0, -1
    bnez a0, 1b
    la s0, cnt_amo_w
    li a0, N
1:  li t0, 1
    amoadd.w zero, t0, (s0)
    addi a0, a0, -1
    bnez a0, 1b
    la s0, cnt_lrsc_d
    li a0, N
1:  lr.d t0, (s0)
    addi t0, t0, 1
    sc.d t1, t0, (s0)
    bnez t1, 1b
    addi a0, a0, -1
    bnez a0, 1b
    la s0, cnt_lrsc_w
    li a0, N
1:  lr.w t0, (s0)
    addi t0, t0, 1
    sc.w t1, t0, (s0)
    bnez t1, 1b
    addi a0, a0, -1
    bnez a0, 1b
    la s0, lock
    la s1, cnt_locked
    li a0, N
1:  li t0, 1
2:  amoswap.d.aq t1, t0, (s0)            # acquire
    bnez t1, 2b
    ld t2, 0(s1)                         # a plain increment under the lock
    addi t2, t2, 1
    sd t2, 0(s1)
    amoswap.d.rl zero, zero, (s0)        # release
    addi a0, a0, -1
    bnez a0, 1b
.endm

TEST_BEGIN
    # ---- hart 0
    SET_TEST(1)                          # hart 1 is running
    WAIT_EQ(h1_alive, 1)
    SET_TEST(2)
    la t0, h1_hartid
    ld a0, 0(t0)
    CHECK(a0, 1)
    csrr a0, mhartid
    CHECK(a0, 0)
    # wake hart 1 with an IPI; it clears its msip and acknowledges
    SET_TEST(3)
    li t0, CLINT_MSIP(1)
    li t1, 1
    sw t1, 0(t0)
    WAIT_EQ(h1_ipi_seen, 1)
    SET_TEST(4)
    li t0, CLINT_MSIP(1)
    lw a0, 0(t0)
    CHECK(a0, 0)
    csrr a0, mip                         # hart 0's own msip was not set
    CHECK_MASK(a0, MIP_MSIP, 0)

    # ---- both harts count
    SET_TEST(5)
    COUNT_LOOPS
    SET_TEST(6)
    WAIT_EQ(h1_counted, 1)
    SET_TEST(7)
    la t0, cnt_amo_d
    ld a0, 0(t0)
    CHECK(a0, 2 * N)
    SET_TEST(8)
    la t0, cnt_amo_w
    ld a0, 0(t0)
    CHECK(a0, 2 * N)                     # (the upper word is untouched)
    SET_TEST(9)
    la t0, cnt_lrsc_d
    ld a0, 0(t0)
    CHECK(a0, 2 * N)
    SET_TEST(10)
    la t0, cnt_lrsc_w
    ld a0, 0(t0)
    CHECK(a0, 2 * N)
    SET_TEST(11)
    la t0, cnt_locked
    ld a0, 0(t0)
    CHECK(a0, 2 * N)

    # ---- an sc fails after the other hart stored to the reserved address
    SET_TEST(12)
    la s0, sc_target
    lr.d.aq a0, (s0)
    CHECK(a0, 0x1111)
    la t0, sc_step                       # tell hart 1 that the lr is done
    li t1, 1
    fence rw, w
    sd t1, 0(t0)
    WAIT_EQ(sc_step, 2)                  # hart 1 stored 0x2222, then step = 2
    li a1, 0x3333
    sc.d a2, a1, (s0)
    CHECK(a2, 1)                         # must fail
    ld a0, 0(s0)
    CHECK(a0, 0x2222)

    # ---- hart 1 interrupts hart 0 through msip
    SET_TEST(13)
    li t0, MIP_MSIP
    csrw mie, t0
    la s8, 2f
    li t0, MSTATUS_MIE
    csrs mstatus, t0
    la t0, sc_step
    li t1, 3                             # ask hart 1 for the IPI
    sd t1, 0(t0)
    li t3, WAIT_LIMIT
1:  addi t3, t3, -1
    bnez t3, 1b
    j fail
2:  CHECK_TRAPPED(CAUSE_IRQ(IRQ_M_SOFT))
    li t0, CLINT_MSIP(0)
    sw zero, 0(t0)
    csrr a0, mip
    CHECK_MASK(a0, MIP_MSIP, 0)
    SET_TEST(14)
    WAIT_EQ(h1_finished, 1)

    TEST_PASS

    # ---- hart 1
    .globl secondary_main
secondary_main:
    csrr a0, mhartid
    li t0, 1
    bne a0, t0, park_other               # only hart 1 takes part
    li gp, 100
    la t0, h1_hartid
    sd a0, 0(t0)
    fence w, w
    la t0, h1_alive
    li t1, 1
    sd t1, 0(t0)
    # wait for the IPI with MIE = 0: wfi wakes up, nothing is taken
    li gp, 101
    li t0, MIP_MSIP
    csrw mie, t0
    li t3, WAIT_LIMIT
1:  wfi
    csrr t0, mip
    andi t0, t0, MIP_MSIP
    bnez t0, 2f
    addi t3, t3, -1
    bnez t3, 1b
    j fail
2:  li t0, CLINT_MSIP(1)
    sw zero, 0(t0)
    li gp, 102
    csrr t0, mip
    andi t0, t0, MIP_MSIP
    bnez t0, fail                        # cleared
    csrw mie, zero
    fence rw, w
    la t0, h1_ipi_seen
    li t1, 1
    sd t1, 0(t0)
    # count
    li gp, 103
    COUNT_LOOPS
    fence rw, w
    la t0, h1_counted
    li t1, 1
    sd t1, 0(t0)
    # the sc test: store between hart 0's lr and sc
    li gp, 104
    WAIT_EQ(sc_step, 1)
    la t0, sc_target
    li t1, 0x2222
    sd t1, 0(t0)
    fence w, w
    la t0, sc_step
    li t1, 2
    sd t1, 0(t0)
    # the IPI to hart 0
    li gp, 105
    WAIT_EQ(sc_step, 3)
    li t0, CLINT_MSIP(0)
    li t1, 1
    sw t1, 0(t0)
    fence rw, w
    la t0, h1_finished
    li t1, 1
    sd t1, 0(t0)
park_other:
    csrw mie, zero
1:  wfi
    j 1b

    .data
    .align 6
h1_alive:    .dword 0
h1_hartid:   .dword -1
h1_ipi_seen: .dword 0
h1_counted:  .dword 0
h1_finished: .dword 0
sc_step:     .dword 0
    .align 6
cnt_amo_d:   .dword 0
    .align 6
cnt_amo_w:   .dword 0
    .align 6
cnt_lrsc_d:  .dword 0
    .align 6
cnt_lrsc_w:  .dword 0
    .align 6
lock:        .dword 0
    .align 6
cnt_locked:  .dword 0
    .align 6
sc_target:   .dword 0x1111
TEST_END
