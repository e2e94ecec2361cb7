/*
 * mmu.h - the body of mmu_sv39.S and mmu_sv48.S (define MMU_SV48 for Sv48).
 *
 * Address map (physical):
 *   0x80000000  the program (code, data)
 *   PT(i)       page tables (0x80400000 + i * 4 KiB), static, see below
 *   DATA        0x80600000: data pages, initialised at run time by M-mode
 *
 * Virtual (the same for Sv39 and Sv48, whose extra root level points at the
 * Sv39-like table LVL2):
 *   0x80000000  1 GiB identity page, RWX, U=0: S-mode runs here
 *   0x40000000  1 GiB page -> 0x80000000, RWX, U=1: U-mode runs here (the
 *               code is position independent: `la` is pc-relative)
 *   0x00000000  4 KiB pages (table LVL0, see the list below)
 *   0x00200000  2 MiB page -> DATA (2 MiB aligned)
 *   0x00400000  2 MiB page, misaligned PPN -> page fault
 *   0xC0000000  1 GiB page, PPN[0] != 0 -> page fault
 *   0x100000000 1 GiB page, PPN[1] != 0 -> page fault
 *   0x140000000 a walk through a table at physical 0 (unmapped) -> access fault
 *   LVL2[256]   1 GiB page -> 0x80000000: Sv39 0xffffffc000000000 (canonical)
 *               and Sv48 0x0000004000000000 (canonical in Sv48 only)
 */

#define DATA       0x80600000
#define ALIAS_OFF  0x40000000        /* U alias VA = PA - ALIAS_OFF */

#define LEAF_RWX   (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define LEAF_RW    (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)

#ifdef MMU_SV48
#define SATP_MODE  SATP_MODE_SV48
#define ROOT       PT(0)
#define LVL2_T     5                  /* the level-2 table */
#else
#define SATP_MODE  SATP_MODE_SV39
#define ROOT       PT(0)
#define LVL2_T     0
#endif
#define LVL1_T     1                  /* level 1: VA 0 .. 1 GiB */
#define LVL0_T     2                  /* level 0: VA 0 .. 2 MiB */
#define BADWALK_T  3                  /* level 1 for VA 0x140000000 */
#define LVL0       PT(LVL0_T)

/* the level-0 entries (VA = index * 4 KiB) */
#define IDX_INVALID    0              /* V = 0 */
#define IDX_RW         1              /* -> DATA+0x1000, RW */
#define IDX_RO         2              /* -> DATA+0x1000, R (alias) */
#define IDX_WONLY      3              /* W without R: reserved */
#define IDX_AD0        4              /* -> DATA+0x3000, RW, A = D = 0 */
#define IDX_D0         5              /* -> DATA+0x4000, RW, A = 1, D = 0 */
#define IDX_XONLY      6              /* -> DATA+0x5000 (an illegal instruction), X */
#define IDX_RONLY_CODE 7              /* -> DATA+0x5000, R: not executable */
#define IDX_NOMEM      8              /* -> physical 0 (no memory), RW */
#define IDX_NONLEAF0   9              /* R = W = X = 0 at level 0 */
#define IDX_SFENCE     10             /* -> DATA+0x6000, later DATA+0x7000 */
#define IDX_USER       11             /* -> DATA+0x8000, RW, U */
#define IDX_LATER      12             /* invalid, made valid at run time */
#define IDX_RSVD       13             /* reserved bit 54 set */
#define IDX_CODE       14             /* -> DATA+0x9000 (code), RX */
#define IDX_CODE_A0    15             /* -> DATA+0x9000, RX, A = 0 */
#define VA(idx)        ((idx) * 0x1000)

/* level 2 (the Sv39 root) */
.macro LVL2_ENTRIES
    PT_ENTRY(LVL2_T, 0, PTE(PT(LVL1_T), PTE_V))
    PT_ENTRY(LVL2_T, 1, PTE(0x80000000, LEAF_RWX | PTE_U))
    PT_ENTRY(LVL2_T, 2, PTE(0x80000000, LEAF_RWX))
    PT_ENTRY(LVL2_T, 3, PTE(0x80001000, LEAF_RW))
    PT_ENTRY(LVL2_T, 4, PTE(0x80200000, LEAF_RW))
    PT_ENTRY(LVL2_T, 5, PTE(PT(BADWALK_T), PTE_V))
    PT_ENTRY(LVL2_T, 256, PTE(0x80000000, LEAF_RW))
    PT_END(LVL2_T + 1)
.endm

    .pushsection .pagetables, "aw", @progbits
#ifdef MMU_SV48
    /* Sv48 root (level 3) */
    PT_ENTRY(0, 0, PTE(PT(LVL2_T), PTE_V))
    PT_ENTRY(0, 1, PTE(0x0, LEAF_RW))                 /* 512 GiB page: VA 0x8000000000 -> 0 */
    PT_ENTRY(0, 2, PTE(0x80000000, LEAF_RW))          /* misaligned 512 GiB page */
    PT_ENTRY(0, 256, PTE(PT(LVL2_T), PTE_V))          /* 0xffff800000000000 -> same as 0 */
    PT_END(1)
#else
    LVL2_ENTRIES
#endif
    /* level 1: VA 0 .. 1 GiB */
    PT_ENTRY(LVL1_T, 0, PTE(PT(LVL0_T), PTE_V))
    PT_ENTRY(LVL1_T, 1, PTE(DATA, LEAF_RW))
    PT_ENTRY(LVL1_T, 2, PTE(DATA + 0x1000, LEAF_RW))
    PT_END(LVL1_T + 1)
    /* level 0: VA 0 .. 2 MiB */
    PT_ENTRY(LVL0_T, IDX_RW, PTE(DATA + 0x1000, LEAF_RW))
    PT_ENTRY(LVL0_T, IDX_RO, PTE(DATA + 0x1000, PTE_V | PTE_R | PTE_A))
    PT_ENTRY(LVL0_T, IDX_WONLY, PTE(DATA + 0x2000, PTE_V | PTE_W | PTE_A | PTE_D))
    PT_ENTRY(LVL0_T, IDX_AD0, PTE(DATA + 0x3000, PTE_V | PTE_R | PTE_W))
    PT_ENTRY(LVL0_T, IDX_D0, PTE(DATA + 0x4000, PTE_V | PTE_R | PTE_W | PTE_A))
    PT_ENTRY(LVL0_T, IDX_XONLY, PTE(DATA + 0x5000, PTE_V | PTE_X | PTE_A))
    PT_ENTRY(LVL0_T, IDX_RONLY_CODE, PTE(DATA + 0x5000, PTE_V | PTE_R | PTE_A))
    PT_ENTRY(LVL0_T, IDX_NOMEM, PTE(0x0, LEAF_RW))
    PT_ENTRY(LVL0_T, IDX_NONLEAF0, PTE(DATA, PTE_V))
    PT_ENTRY(LVL0_T, IDX_SFENCE, PTE(DATA + 0x6000, LEAF_RW))
    PT_ENTRY(LVL0_T, IDX_USER, PTE(DATA + 0x8000, LEAF_RW | PTE_U))
    PT_ENTRY(LVL0_T, IDX_RSVD, PTE(DATA + 0x1000, LEAF_RW) | (1 << 54))
    PT_ENTRY(LVL0_T, IDX_CODE, PTE(DATA + 0x9000, PTE_V | PTE_R | PTE_X | PTE_A))
    PT_ENTRY(LVL0_T, IDX_CODE_A0, PTE(DATA + 0x9000, PTE_V | PTE_R | PTE_X))
    PT_END(LVL0_T + 1)
    /* level 1 for VA 0x140000000: its level-0 table would be at physical 0 */
    PT_ENTRY(BADWALK_T, 0, PTE(0x0, PTE_V))
    PT_END(BADWALK_T + 1)
#ifdef MMU_SV48
    LVL2_ENTRIES
#endif
    .popsection

/* from M: continue in U-mode at the alias of the next instruction */
.macro ENTER_U_ALIAS
    li t0, MSTATUS_MPP | MSTATUS_MPIE
    csrc mstatus, t0
    la t0, 80003f
    li t1, ALIAS_OFF
    sub t0, t0, t1
    csrw mepc, t0
    mret
80003:
.endm
/* from U at the alias: back to M at the physical address */
.macro ENTER_M_FROM_ALIAS
    la s8, 80004f
    li t0, ALIAS_OFF
    add s8, s8, t0
    ori s8, s8, 1
    ecall
80004:
.endm

/* load (width `ld`) from va must trap with cause, tval = va */
#define TEST_LOAD_FAULT(n, va, cause) \
    SET_TEST(n); li a1, va; la s8, 77751f; 77750: ld a0, 0(a1); 77751: \
    CHECK_TRAPPED(cause); CHECK_EPC(77750b); CHECK_TVAL(va)
#define TEST_STORE_FAULT(n, va, cause) \
    SET_TEST(n); li a1, va; la s8, 77751f; 77750: sd a1, 0(a1); 77751: \
    CHECK_TRAPPED(cause); CHECK_EPC(77750b); CHECK_TVAL(va)
/* a jump to va must fault on the fetch: epc = tval = va */
#define TEST_FETCH_FAULT(n, va, cause) \
    SET_TEST(n); li a1, va; la s8, 77751f; jalr ra, 0(a1); 77751: \
    CHECK_TRAPPED(cause); CHECK(s9, va); CHECK_TVAL(va)
#define TEST_LOAD(n, va, exp) \
    TEST_CASE(n, a0, exp, li a1, va; ld a0, 0(a1))

/* the PTE of a level-0 index */
#define LOAD_PTE(reg, idx) li reg, LVL0 + (idx) * 8; ld reg, 0(reg)

