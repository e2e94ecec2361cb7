# PMP: NAPOT, NA4 and TOR regions; R/W/X denial from S and U (load, store,
# fetch access faults with tval), M unaffected by unlocked entries, the
# lowest-numbered matching entry wins, no match fails for S/U but not for M,
# MPRV applies PMP with MPP's privilege, pmpaddr read back (G = 0), odd
# pmpcfg registers do not exist on RV64, locked entries (apply to M, ignore
# writes, a locked TOR entry locks the pmpaddr below it).
#include "common.h"

#define REGION     0x80600000         /* test pages */
#define NAPOT(base, size) (((base) >> 2) | (((size) >> 3) - 1))
#define CFG(i, v)  ((v) << (8 * ((i) % 8)))
#define RWX        (PMP_R | PMP_W | PMP_X)

#define R_RONLY    (REGION + 0x0000)  /* entry 0: NAPOT 4 KiB, R */
#define R_NA4      (REGION + 0x1000)  /* entry 1: NA4, no access */
#define R_TOR      (REGION + 0x1000)  /* entry 2: TOR [0x1000, 0x2000), RW */
#define R_XONLY    (REGION + 0x3000)  /* entry 3: NAPOT 4 KiB, X */
#define R_NOMATCH  (REGION + 0x8000)  /* no entry */
#define R_LOCKED   (REGION + 0x4000)  /* entry 5: locked NAPOT 4 KiB, R */
#define R_LTOR_LO  (REGION + 0x5000)  /* entry 7 (OFF): the base of ... */
#define R_LTOR_HI  (REGION + 0x6000)  /* entry 8: locked TOR, RW (no X) */

#define TEST_ACCESS_FAULT(n, cause, addr, insn...) \
    SET_TEST(n); li a1, addr; la s8, 77771f; 77770: insn; 77771: \
    CHECK_TRAPPED(cause); CHECK_EPC(77770b); CHECK_TVAL(addr)
#define TEST_FETCH_FAULT(n, addr) \
    SET_TEST(n); li a1, addr; la s8, 77771f; jalr ra, 0(a1); 77771: \
    CHECK_TRAPPED(CAUSE_FETCH_ACCESS); CHECK(s9, addr); CHECK_TVAL(addr)

TEST_BEGIN
    /* test data and code (physical, M) */
    li a1, REGION
    li a0, 0x1111111111111111
    sd a0, 0(a1)
    la a2, ret_insn
    lw a3, 0(a2)
    li a1, R_XONLY
    sw a3, 0(a1)                         # ret
    li a1, R_LTOR_LO
    sw a3, 0(a1)
    li a1, R_TOR + 0x100
    sw a3, 0(a1)
    li a1, R_NOMATCH
    sd a0, 0(a1)
    fence.i

    # ------------------------------------------------------ pmpaddr, pmpcfg
    SET_TEST(1)
    li a1, 0x123456789
    csrw pmpaddr4, a1
    csrr a0, pmpaddr4
    CHECK_EQ(a0, a1)                     # G = 0: read back as written
    li a1, 0x3ffffff
    csrw pmpaddr4, a1
    csrr a0, pmpaddr4
    CHECK_EQ(a0, a1)
    SET_TEST(2)
    li a1, CFG(0, PMP_NAPOT | PMP_R) | CFG(1, PMP_NA4 | PMP_X) | CFG(2, PMP_TOR | PMP_R | PMP_W | PMP_X)
    csrw pmpcfg0, a1
    csrr a0, pmpcfg0
    CHECK_EQ(a0, a1)
    csrw pmpcfg0, zero
    TEST_ILLEGAL(3, csrr a0, pmpcfg1)    # odd pmpcfg registers: RV32 only
    TEST_ILLEGAL(4, csrw pmpcfg3, zero)

    # ------------------------------------------------------ the regions
    csrw pmpcfg2, zero                   # everything off while changing
    csrw pmpcfg0, zero
    li t0, NAPOT(R_RONLY, 0x1000)
    csrw pmpaddr0, t0
    li t0, R_NA4 >> 2
    csrw pmpaddr1, t0
    li t0, (REGION + 0x2000) >> 2        # TOR top; the bottom is pmpaddr1
    csrw pmpaddr2, t0
    li t0, NAPOT(R_XONLY, 0x1000)
    csrw pmpaddr3, t0
    li t0, NAPOT(0x80000000, 0x400000)   # the program (4 MiB)
    csrw pmpaddr14, t0
    li t0, CFG(0, PMP_NAPOT | PMP_R) | CFG(1, PMP_NA4) | CFG(2, PMP_TOR | PMP_R | PMP_W) | \
           CFG(3, PMP_NAPOT | PMP_X)
    csrw pmpcfg0, t0
    li t0, CFG(14, PMP_NAPOT | RWX)
    csrw pmpcfg2, t0

    # M: not affected by unlocked entries, no match succeeds
    TEST_NO_TRAP(5, li a1, R_RONLY; sd a0, 8(a1); ld a0, 0(a1))
    TEST_NO_TRAP(6, li a1, R_NA4; lw a0, 0(a1); sw a0, 0(a1))
    TEST_NO_TRAP(7, li a1, R_NOMATCH; ld a0, 0(a1); sd a0, 0(a1))
    TEST_NO_TRAP(8, li a1, R_TOR + 0x100; jalr ra, 0(a1)) /* a ret, not executable for S/U */

    # S: the rules apply
    ENTER_S
    TEST_CASE(9, a0, 0x1111111111111111, li a1, R_RONLY; ld a0, 0(a1))
    TEST_ACCESS_FAULT(10, CAUSE_STORE_ACCESS, R_RONLY + 8, sd a0, 0(a1))
    TEST_ACCESS_FAULT(11, CAUSE_LOAD_ACCESS, R_NA4, lw a0, 0(a1))
    TEST_ACCESS_FAULT(12, CAUSE_STORE_ACCESS, R_NA4, sb a0, 0(a1))
    TEST_ACCESS_FAULT(13, CAUSE_LOAD_ACCESS, R_NA4 + 3, lbu a0, 0(a1))
    /* the lower-numbered NA4 entry wins; the rest of the TOR range is RW */
    TEST_NO_TRAP(14, li a1, R_TOR + 4; lw a0, 0(a1); sw a0, 0(a1); li a2, R_TOR + 0xffc; lw a0, 0(a2))
    TEST_ACCESS_FAULT(15, CAUSE_STORE_ACCESS, REGION + 0x2000, sd a0, 0(a1))  /* TOR top is exclusive: no match */
    TEST_FETCH_FAULT(16, R_TOR + 0x100)
    /* X only: executable, not readable */
    TEST_NO_TRAP(17, li a1, R_XONLY; jalr ra, 0(a1))
    TEST_ACCESS_FAULT(18, CAUSE_LOAD_ACCESS, R_XONLY, lw a0, 0(a1))
    TEST_FETCH_FAULT(19, R_RONLY)
    /* no matching entry: fails for S */
    TEST_ACCESS_FAULT(20, CAUSE_LOAD_ACCESS, R_NOMATCH, ld a0, 0(a1))
    TEST_FETCH_FAULT(21, R_NOMATCH)
    ENTER_M
    # U: the same
    ENTER_U
    TEST_CASE(22, a0, 0x1111111111111111, li a1, R_RONLY; ld a0, 0(a1))
    TEST_ACCESS_FAULT(23, CAUSE_STORE_ACCESS, R_RONLY, sw a0, 0(a1))
    TEST_ACCESS_FAULT(24, CAUSE_LOAD_ACCESS, R_NA4, lh a0, 0(a1))
    TEST_NO_TRAP(25, li a1, R_XONLY; jalr ra, 0(a1))
    TEST_FETCH_FAULT(26, R_TOR + 0x200)
    TEST_ACCESS_FAULT(27, CAUSE_STORE_ACCESS, R_NOMATCH, sd a0, 0(a1))
    ENTER_M

    # MPRV: M loads/stores checked with MPP's privilege
    SET_TEST(28)
    li t0, MSTATUS_MPP
    csrc mstatus, t0
    li t0, MSTATUS_MPRV | MSTATUS_MPP_S
    csrs mstatus, t0
    li a1, R_NA4
    la s8, 2f
1:  lw a0, 0(a1)
2:  li t0, MSTATUS_MPRV | MSTATUS_MPP
    csrc mstatus, t0
    CHECK_TRAPPED(CAUSE_LOAD_ACCESS)
    CHECK_EPC(1b)
    CHECK_TVAL(R_NA4)
    SET_TEST(29)
    li t0, MSTATUS_MPRV                  # MPP = U
    csrs mstatus, t0
    li a1, R_RONLY
    ld a0, 0(a1)
    li t0, MSTATUS_MPRV
    csrc mstatus, t0
    CHECK(a0, 0x1111111111111111)

    # changing an entry takes effect at once: make entry 0 RW
    SET_TEST(30)
    li t0, 0xff
    csrc pmpcfg0, t0
    li t0, PMP_NAPOT | PMP_R | PMP_W
    csrs pmpcfg0, t0
    ENTER_S
    TEST_NO_TRAP(30, li a1, R_RONLY; li a0, 0x2222; sd a0, 8(a1))
    ENTER_M
    TEST_CASE(31, a0, 0x2222, li a1, R_RONLY; ld a0, 8(a1))

    # ------------------------------------------------------ locked entries
    # entry 5: NAPOT, R, locked -- applies to M
    li t0, NAPOT(R_LOCKED, 0x1000)
    csrw pmpaddr5, t0
    li t0, R_LTOR_LO >> 2
    csrw pmpaddr7, t0
    li t0, R_LTOR_HI >> 2
    csrw pmpaddr8, t0
    li t0, CFG(5, PMP_L | PMP_NAPOT | PMP_R)
    csrs pmpcfg0, t0
    li t0, CFG(8, PMP_L | PMP_TOR | PMP_R | PMP_W)
    csrs pmpcfg2, t0
    TEST_NO_TRAP(32, li a1, R_LOCKED; ld a0, 0(a1))
    TEST_ACCESS_FAULT(33, CAUSE_STORE_ACCESS, R_LOCKED + 0x10, sd a0, 0(a1))
    TEST_FETCH_FAULT(34, R_LOCKED)
    # entry 8: locked TOR without X: M cannot execute there, but can write
    TEST_FETCH_FAULT(35, R_LTOR_LO)
    TEST_NO_TRAP(36, li a1, R_LTOR_LO + 8; sd a0, 0(a1))
    # writes to locked entries are ignored
    SET_TEST(37)
    li t0, CFG(5, 0xff)
    csrc pmpcfg0, t0                     # try to clear entry 5
    li t0, CFG(5, RWX)
    csrs pmpcfg0, t0
    csrr a0, pmpcfg0
    srli a0, a0, 40
    andi a0, a0, 0xff
    CHECK(a0, PMP_L | PMP_NAPOT | PMP_R)
    SET_TEST(38)
    li t0, NAPOT(REGION, 0x100000)
    csrw pmpaddr5, t0
    csrr a0, pmpaddr5
    CHECK(a0, NAPOT(R_LOCKED, 0x1000))
    SET_TEST(39)
    li t0, 0x12345
    csrw pmpaddr8, t0                    # locked
    csrr a0, pmpaddr8
    CHECK(a0, R_LTOR_HI >> 2)
    csrw pmpaddr7, t0                    # the base of a locked TOR entry: locked too
    csrr a0, pmpaddr7
    CHECK(a0, R_LTOR_LO >> 2)
    SET_TEST(40)
    li t0, CFG(8, 0xff)
    csrc pmpcfg2, t0
    csrr a0, pmpcfg2
    andi a0, a0, 0xff
    CHECK(a0, PMP_L | PMP_TOR | PMP_R | PMP_W)
    TEST_ACCESS_FAULT(41, CAUSE_STORE_ACCESS, R_LOCKED, sw a0, 0(a1))  /* still enforced */
    # the other entries of the same pmpcfg register stay writable
    SET_TEST(42)
    li t0, CFG(6, 0xff)
    csrc pmpcfg0, t0
    li t0, CFG(6, PMP_NA4 | PMP_R)
    csrs pmpcfg0, t0
    csrr a0, pmpcfg0
    srli a0, a0, 48
    andi a0, a0, 0xff
    CHECK(a0, PMP_NA4 | PMP_R)
    li t0, CFG(6, 0xff)
    csrc pmpcfg0, t0

    # pmpaddr = all ones, NAPOT: the whole address space (the usual way to
    # give S and U all memory)
    SET_TEST(43)
    li t0, -1
    csrw pmpaddr15, t0
    li t0, CFG(15, PMP_NAPOT | RWX)
    csrs pmpcfg2, t0
    ENTER_S
    TEST_CASE(43, a0, 0x1111111111111111, li a1, R_NOMATCH; ld a0, 0(a1))
    TEST_NO_TRAP(44, li a1, R_NOMATCH; sd a0, 8(a1); li a1, REGION + 0x100000; sd a0, 0(a1))
    ENTER_M

    TEST_PASS

ret_insn:
    ret
TEST_END
