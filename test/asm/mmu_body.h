/*
 * mmu_body.h - the test body of mmu_sv39.S and mmu_sv48.S (after mmu.h and
 * the definition of MMU_EXTRA_S_TESTS).
 */
TEST_BEGIN
    /* ---- initialise the data pages (physical, M-mode) */
    li s0, DATA
    li a0, 0x1111111111111111
    li a1, 0x1000
    add a1, a1, s0
    sd a0, 0(a1)
    li a0, 0x3333333333333333
    li a1, 0x3000
    add a1, a1, s0
    sd a0, 0(a1)
    li a0, 0x4444444444444444
    li a1, 0x4000
    add a1, a1, s0
    sd a0, 0(a1)
    li a0, 0xfe000033                    /* an illegal instruction */
    li a1, 0x5000
    add a1, a1, s0
    sw a0, 0(a1)
    li a0, 0x6666666666666666
    li a1, 0x6000
    add a1, a1, s0
    sd a0, 0(a1)
    li a0, 0x7777777777777777
    li a1, 0x7000
    add a1, a1, s0
    sd a0, 0(a1)
    li a0, 0x8888888888888888
    li a1, 0x8000
    add a1, a1, s0
    sd a0, 0(a1)
    li a1, 0x9000                        /* code: li a0, 0x5a; ret */
    add a1, a1, s0
    la a2, code_tmpl
    lw a0, 0(a2)
    sw a0, 0(a1)
    lw a0, 4(a2)
    sw a0, 4(a1)
    li a0, 0x2222222222222222            /* the last dword of the 2 MiB page */
    li a1, DATA + 0x200000 - 8
    sd a0, 0(a1)
    fence.i

    /* ---- satp */
    SET_TEST(1)
    li a1, SATP(SATP_MODE, ROOT)
    csrw satp, a1
    sfence.vma
    csrr a0, satp
    CHECK_EQ(a0, a1)
    SET_TEST(2)
    li a2, SATP(3, ROOT)                 /* a reserved mode: the write has no effect */
    csrw satp, a2
    csrr a0, satp
    CHECK_EQ(a0, a1)
    li a2, SATP(7, ROOT)
    csrw satp, a2
    csrr a0, satp
    CHECK_EQ(a0, a1)

    ENTER_S
    /* ---- 4 KiB pages */
    TEST_LOAD(3, VA(IDX_RW), 0x1111111111111111)
    TEST_LOAD(4, VA(IDX_RO), 0x1111111111111111)
    SET_TEST(5)
    li a1, VA(IDX_RW)
    li a2, 0x5555555555555555
    sd a2, 8(a1)
    li a1, VA(IDX_RO)
    ld a0, 8(a1)
    CHECK_EQ(a0, a2)
    TEST_STORE_FAULT(6, VA(IDX_RO) + 0x10, CAUSE_STORE_PAGE_FAULT)
    TEST_LOAD(7, VA(IDX_RO) + 0x10, 0)  /* the store did not happen */
    /* ---- 2 MiB page */
    TEST_LOAD(8, 0x200000 + 0x1008, 0x5555555555555555)
    TEST_LOAD(9, 0x400000 - 8, 0x2222222222222222)
    SET_TEST(10)
    li a1, 0x200000 + 0x7000
    ld a0, 0(a1)
    CHECK(a0, 0x7777777777777777)
    /* ---- 1 GiB pages: the U alias, readable by S with SUM = 1 */
    SET_TEST(11)
    li t0, MSTATUS_SUM
    csrs sstatus, t0
    la a1, mmu_marker
    li t0, ALIAS_OFF
    sub a1, a1, t0
    ld a0, 0(a1)
    CHECK(a0, 0x0123456789abcdef)
    SET_TEST(12)
    li t0, MSTATUS_SUM
    csrc sstatus, t0
    la s8, 2f
1:  ld a0, 0(a1)
2:  CHECK_TRAPPED(CAUSE_LOAD_PAGE_FAULT)
    CHECK_EPC(1b)
    CHECK_TVAL_REG(a1)

    /* ---- invalid PTEs */
    TEST_LOAD_FAULT(13, VA(IDX_INVALID) + 0x10, CAUSE_LOAD_PAGE_FAULT)
    TEST_STORE_FAULT(14, VA(IDX_INVALID) + 0x18, CAUSE_STORE_PAGE_FAULT)
    TEST_FETCH_FAULT(15, VA(IDX_INVALID) + 0x20, CAUSE_FETCH_PAGE_FAULT)
    TEST_LOAD_FAULT(16, VA(IDX_WONLY), CAUSE_LOAD_PAGE_FAULT)
    TEST_STORE_FAULT(17, VA(IDX_WONLY), CAUSE_STORE_PAGE_FAULT)
    TEST_LOAD_FAULT(18, 0x400000 + 0x1000, CAUSE_LOAD_PAGE_FAULT)   /* misaligned 2 MiB */
    TEST_LOAD_FAULT(19, 0xC0000000, CAUSE_LOAD_PAGE_FAULT)         /* misaligned 1 GiB */
    TEST_LOAD_FAULT(20, 0x100000000 + 0x2000, CAUSE_LOAD_PAGE_FAULT)
    TEST_LOAD_FAULT(21, VA(IDX_NONLEAF0), CAUSE_LOAD_PAGE_FAULT)   /* non-leaf at level 0 */
    TEST_LOAD_FAULT(22, VA(IDX_RSVD), CAUSE_LOAD_PAGE_FAULT)       /* reserved PTE bits */
    /* ---- access faults after translation */
    TEST_LOAD_FAULT(23, VA(IDX_NOMEM) + 8, CAUSE_LOAD_ACCESS)
    TEST_STORE_FAULT(24, VA(IDX_NOMEM) + 16, CAUSE_STORE_ACCESS)
    /* the walk itself reads unmapped memory: an access fault (QEMU 7.2
     * raises a page fault; accepted with -DQEMU_QUIRKS) */
#ifdef QEMU_QUIRKS
    TEST_LOAD_FAULT(25, 0x140000000, CAUSE_LOAD_PAGE_FAULT)
#else
    TEST_LOAD_FAULT(25, 0x140000000, CAUSE_LOAD_ACCESS)
#endif
    /* ---- priorities: a fetch page fault comes before the illegal instruction */
    TEST_FETCH_FAULT(26, VA(IDX_RONLY_CODE), CAUSE_FETCH_PAGE_FAULT)
    SET_TEST(27)                         /* executable: now it is illegal */
    li a1, VA(IDX_XONLY)
    la s8, 2f
    jalr ra, 0(a1)
2:  CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION)
    CHECK(s9, VA(IDX_XONLY))
    CHECK_TVAL(0xfe000033)
    TEST_LOAD_FAULT(28, VA(IDX_XONLY), CAUSE_LOAD_PAGE_FAULT)      /* X only, MXR = 0 */
    SET_TEST(29)
    li t0, MSTATUS_MXR
    csrs sstatus, t0
    li a1, VA(IDX_XONLY)
    lw a0, 0(a1)
    csrc sstatus, t0
    CHECK(a0, 0xfffffffffe000033)
    /* ---- executing a mapped page */
    SET_TEST(30)
    li a0, 0
    li a1, VA(IDX_CODE)
    jalr ra, 0(a1)
    CHECK(a0, 0x5a)

    /* ---- A and D bits, set by the hardware */
    SET_TEST(31)
    LOAD_PTE(a0, IDX_AD0)
    CHECK_MASK(a0, PTE_A | PTE_D, 0)
    TEST_LOAD(31, VA(IDX_AD0), 0x3333333333333333)
    LOAD_PTE(a0, IDX_AD0)
    CHECK_MASK(a0, PTE_A | PTE_D, PTE_A)            /* a load sets A only */
    CHECK(a0, PTE(DATA + 0x3000, PTE_V | PTE_R | PTE_W | PTE_A))
    SET_TEST(32)
    li a1, VA(IDX_AD0)
    sd a1, 8(a1)
    LOAD_PTE(a0, IDX_AD0)
    CHECK(a0, PTE(DATA + 0x3000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D))
    SET_TEST(33)
    li a1, VA(IDX_D0)
    sd a1, 8(a1)
    LOAD_PTE(a0, IDX_D0)
    CHECK(a0, PTE(DATA + 0x4000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D))
    SET_TEST(34)
    li a0, 0
    li a1, VA(IDX_CODE_A0)
    jalr ra, 0(a1)
    CHECK(a0, 0x5a)
    LOAD_PTE(a0, IDX_CODE_A0)
    CHECK(a0, PTE(DATA + 0x9000, PTE_V | PTE_R | PTE_X | PTE_A))  /* a fetch sets A */
    /* a faulting access sets neither A nor D */
    SET_TEST(35)
    li a1, LVL0 + IDX_LATER * 8
    li a0, PTE(DATA + 0x1000, PTE_V | PTE_R)
    sd a0, 0(a1)                         /* read-only, A = 0 */
    sfence.vma
    TEST_STORE_FAULT(35, VA(IDX_LATER), CAUSE_STORE_PAGE_FAULT)
    LOAD_PTE(a0, IDX_LATER)
    CHECK(a0, PTE(DATA + 0x1000, PTE_V | PTE_R))

    /* ---- sfence.vma after changing a PTE */
    TEST_LOAD(36, VA(IDX_SFENCE), 0x6666666666666666)
    SET_TEST(37)
    li a1, LVL0 + IDX_SFENCE * 8
    li a0, PTE(DATA + 0x7000, LEAF_RW)
    sd a0, 0(a1)
    sfence.vma
    li a1, VA(IDX_SFENCE)
    ld a0, 0(a1)
    CHECK(a0, 0x7777777777777777)
    SET_TEST(38)
    li a1, LVL0 + IDX_SFENCE * 8
    li a0, PTE(DATA + 0x6000, LEAF_RW)
    sd a0, 0(a1)
    li a2, VA(IDX_SFENCE)
    sfence.vma a2, zero                  /* just this address */
    ld a0, 0(a2)
    CHECK(a0, 0x6666666666666666)
    /* invalid -> valid */
    SET_TEST(39)
    li a1, LVL0 + IDX_LATER * 8
    sd zero, 0(a1)
    sfence.vma
    TEST_LOAD_FAULT(39, VA(IDX_LATER), CAUSE_LOAD_PAGE_FAULT)
    SET_TEST(40)
    li a1, LVL0 + IDX_LATER * 8
    li a0, PTE(DATA + 0x4000, LEAF_RW)
    sd a0, 0(a1)
    li a2, VA(IDX_LATER)
    sfence.vma a2, zero
    ld a0, 0(a2)
    CHECK(a0, 0x4444444444444444)

    /* ---- canonical and non-canonical addresses */
    SET_TEST(41)
    la a1, mmu_marker
    li t0, 0x80000000
    sub a1, a1, t0                       /* offset in the gigapage */
    li a2, CANONICAL_VA
    add a2, a2, a1
    ld a0, 0(a2)
    CHECK(a0, 0x0123456789abcdef)
    SET_TEST(42)
    li a2, NONCANONICAL_VA
    add a2, a2, a1
    la s8, 2f
1:  ld a0, 0(a2)
2:  CHECK_TRAPPED(CAUSE_LOAD_PAGE_FAULT)
    CHECK_EPC(1b)
    CHECK_TVAL_REG(a2)
    SET_TEST(43)
    la s8, 2f
1:  sd a0, 0(a2)
2:  CHECK_TRAPPED(CAUSE_STORE_PAGE_FAULT)
    CHECK_TVAL_REG(a2)
    SET_TEST(44)
    la s8, 2f
    jalr ra, 0(a2)
2:  CHECK_TRAPPED(CAUSE_FETCH_PAGE_FAULT)
    CHECK_EQ(s9, a2)
    CHECK_TVAL_REG(a2)
    MMU_EXTRA_S_TESTS

    /* ---- S cannot execute U pages, even with SUM = 1 */
    SET_TEST(50)
    li t0, MSTATUS_SUM
    csrs sstatus, t0
    la a1, 1f
    li t0, ALIAS_OFF
    sub a1, a1, t0                       /* the U alias of 1: */
    la s8, 2f
    jr a1
1:  j fail
2:  CHECK_TRAPPED(CAUSE_FETCH_PAGE_FAULT)
    CHECK_EQ(s9, a1)
    CHECK_TVAL_REG(a1)
    li t0, MSTATUS_SUM
    csrc sstatus, t0
    ENTER_M

    /* ---- MPRV: M-mode loads and stores translated as S or U */
#define SET_MPRV(mpp) li t0, MSTATUS_MPP; csrc mstatus, t0; li t0, MSTATUS_MPRV | ((mpp) << 11); csrs mstatus, t0
#define CLEAR_MPRV li t0, MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR; csrc mstatus, t0
    SET_TEST(51)
    SET_MPRV(PRV_S)
    li a1, VA(IDX_RW)
    ld a0, 8(a1)
    CLEAR_MPRV
    CHECK(a0, 0x5555555555555555)
    SET_TEST(52)
    SET_MPRV(PRV_U)                      /* a U=0 page with U permissions */
    li a1, VA(IDX_RW)
    la s8, 2f
1:  ld a0, 0(a1)
2:  CLEAR_MPRV
    CHECK_TRAPPED(CAUSE_LOAD_PAGE_FAULT)
    CHECK_EPC(1b)
    CHECK_TVAL(VA(IDX_RW))
    CHECK_MPP(PRV_M)
    SET_TEST(53)
    SET_MPRV(PRV_U)
    li a1, VA(IDX_USER)
    ld a0, 0(a1)
    CLEAR_MPRV
    CHECK(a0, 0x8888888888888888)
    SET_TEST(54)
    SET_MPRV(PRV_S)                      /* a U page from S with SUM = 0 */
    li a1, VA(IDX_USER)
    la s8, 2f
1:  ld a0, 0(a1)
2:  CLEAR_MPRV
    CHECK_TRAPPED(CAUSE_LOAD_PAGE_FAULT)
    CHECK_TVAL(VA(IDX_USER))
    SET_TEST(55)
    SET_MPRV(PRV_S)
    li t0, MSTATUS_SUM
    csrs mstatus, t0
    li a1, VA(IDX_USER)
    ld a0, 0(a1)
    CLEAR_MPRV
    CHECK(a0, 0x8888888888888888)
    SET_TEST(56)
    SET_MPRV(PRV_S)
    li a1, VA(IDX_RO)
    la s8, 2f
1:  sd a0, 0(a1)
2:  CLEAR_MPRV
    CHECK_TRAPPED(CAUSE_STORE_PAGE_FAULT)
    CHECK_TVAL(VA(IDX_RO))
    SET_TEST(57)
    SET_MPRV(PRV_S)
    li t0, MSTATUS_MXR
    csrs mstatus, t0
    li a1, VA(IDX_XONLY)
    lw a0, 0(a1)
    CLEAR_MPRV
    CHECK(a0, 0xfffffffffe000033)
    SET_TEST(58)
    SET_MPRV(PRV_M)                      /* MPP = M: no translation */
    li a1, DATA + 0x1000
    ld a0, 8(a1)
    CLEAR_MPRV
    CHECK(a0, 0x5555555555555555)
    SET_TEST(59)
    li a1, DATA + 0x6000                 /* MPRV = 0: physical */
    ld a0, 0(a1)
    CHECK(a0, 0x6666666666666666)

    /* ---- U-mode (running at the U alias) */
    ENTER_U_ALIAS
    TEST_LOAD(60, VA(IDX_USER), 0x8888888888888888)
    TEST_LOAD_FAULT(61, VA(IDX_RW), CAUSE_LOAD_PAGE_FAULT)
    TEST_STORE_FAULT(62, VA(IDX_RW), CAUSE_STORE_PAGE_FAULT)
    SET_TEST(63)
    li a1, VA(IDX_USER)
    li a2, 0x9999
    sd a2, 8(a1)
    ld a0, 8(a1)
    CHECK(a0, 0x9999)
    SET_TEST(64)                         /* U cannot execute S pages */
    la a1, 1f
    li t0, ALIAS_OFF
    add a1, a1, t0                       /* the identity (S) address of 1: */
    la s8, 2f
    jr a1
1:  j fail
2:  CHECK_TRAPPED(CAUSE_FETCH_PAGE_FAULT)
    CHECK_EQ(s9, a1)
    CHECK_TVAL_REG(a1)
    CHECK_MPP(PRV_U)
    ENTER_M_FROM_ALIAS
    /* a page fault in U delegated to S */
    li t0, 1 << CAUSE_LOAD_PAGE_FAULT
    csrw medeleg, t0
    ENTER_U_ALIAS
    TEST_LOAD_FAULT(65, VA(IDX_RW) + 0x20, CAUSE_LOAD_PAGE_FAULT)
    CHECK_HANDLER(1)
    CHECK_SPP(PRV_U)
    ENTER_M_FROM_ALIAS
    csrw medeleg, zero

    /* ---- back to Bare: S accesses are physical */
    csrw satp, zero
    sfence.vma
    ENTER_S
    TEST_LOAD(66, DATA + 0x1008, 0x5555555555555555)
    ENTER_M

    TEST_PASS

    .align 2
code_tmpl:
    li a0, 0x5a
    ret

    .data
    .align 3
mmu_marker:
    .dword 0x0123456789abcdef
TEST_END
