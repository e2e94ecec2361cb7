# MMU permissions (Sv39): every combination of the R, W, X and U bits of a
# leaf PTE, accessed by a load, a store and an instruction fetch from S-mode
# (SUM = 0/1, MXR = 0/1) and from U-mode (MXR = 0/1): 6 x 16 numbered cases.
# Test N = 16 * configuration + combination + 1 (combination = U<<3 | X<<2 |
# W<<1 | R, configurations below).  Each access runs in S or U (a small stub
# entered by mret) and returns to M through the trap handler: an ecall means
# that the access succeeded, a page fault that it did not.
#include "common.h"

#define TP         0x80600000         /* the physical test page */
#define VA_BASE    0x10000            /* VA of combination c: VA_BASE + c * 4 KiB */
#define ALIAS_OFF  0x40000000         /* the U alias of the program: PA - ALIAS_OFF */
#define DATA_VALUE 0x0123456789abcdef /* at TP + 8 */

#define LEAF_RWX (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define COMBO_PTE(c) PT_ENTRY(2, 16 + (c), PTE(TP, PTE_V | PTE_A | PTE_D | ((c) << 1)))

    .pushsection .pagetables, "aw", @progbits
    PT_ENTRY(0, 0, PTE(PT(1), PTE_V))
    PT_ENTRY(0, 1, PTE(0x80000000, LEAF_RWX | PTE_U))   /* the U alias */
    PT_ENTRY(0, 2, PTE(0x80000000, LEAF_RWX))           /* identity, S */
    PT_END(1)
    PT_ENTRY(1, 0, PTE(PT(2), PTE_V))
    PT_END(2)
    COMBO_PTE(0)
    COMBO_PTE(1)
    COMBO_PTE(2)
    COMBO_PTE(3)
    COMBO_PTE(4)
    COMBO_PTE(5)
    COMBO_PTE(6)
    COMBO_PTE(7)
    COMBO_PTE(8)
    COMBO_PTE(9)
    COMBO_PTE(10)
    COMBO_PTE(11)
    COMBO_PTE(12)
    COMBO_PTE(13)
    COMBO_PTE(14)
    COMBO_PTE(15)
    PT_END(3)
    .popsection

TEST_BEGIN
    /* the test page: an ecall at offset 0, data at 8, store target at 16 */
    li a1, TP
    li a0, 0x00000073                    /* ecall */
    sw a0, 0(a1)
    li a0, DATA_VALUE
    sd a0, 8(a1)
    fence.i
    li a0, SATP(SATP_MODE_SV39, PT(0))
    csrw satp, a0
    sfence.vma

    li s0, 0                             /* configuration */
cfg_loop:
    la t0, cfg_table
    slli t1, s0, 4
    add t0, t0, t1
    ld s1, 0(t0)                         /* mode: PRV_S or PRV_U */
    ld s2, 8(t0)                         /* mstatus bits: SUM, MXR */
    li s3, 0                             /* combination */
combo_loop:
    slli gp, s0, 4
    add gp, gp, s3
    addi gp, gp, 1
    slli s4, s3, 12
    li t0, VA_BASE
    add s4, s4, t0                       /* the virtual address */
    la t0, expect
    slli t1, s0, 4
    add t0, t0, t1
    add t0, t0, s3
    lbu s5, 0(t0)                        /* expected: bit 0 load, 1 store, 2 fetch */
    addi a5, s1, CAUSE_USER_ECALL        /* the ecall cause of the mode: 8 or 9 */

    /* load */
    li a1, 0
    la a3, stub_load
    jal ra, run_stub
    andi t0, s5, 1
    beqz t0, 1f
    bne s10, a5, fail
    CHECK(a1, DATA_VALUE)
    j 2f
1:  CHECK(s10, CAUSE_LOAD_PAGE_FAULT)
    addi t0, s4, 8
    CHECK_TVAL_REG(t0)
2:
    /* store */
    li a1, TP
    sd zero, 16(a1)
    la a3, stub_store
    jal ra, run_stub
    li a1, TP
    ld a1, 16(a1)
    andi t0, s5, 2
    beqz t0, 1f
    bne s10, a5, fail
    CHECK_EQ(a1, s4)                     /* the stub stores the VA */
    j 2f
1:  CHECK(s10, CAUSE_STORE_PAGE_FAULT)
    addi t0, s4, 16
    CHECK_TVAL_REG(t0)
    bnez a1, fail                        /* nothing written */
2:
    /* fetch: the page begins with an ecall */
    la a3, stub_fetch
    jal ra, run_stub
    andi t0, s5, 4
    beqz t0, 1f
    bne s10, a5, fail
    CHECK_EQ(s9, s4)                     /* the ecall on the test page */
    j 2f
1:  CHECK(s10, CAUSE_FETCH_PAGE_FAULT)
    CHECK_EQ(s9, s4)
    CHECK_TVAL_REG(s4)
2:
    addi s3, s3, 1
    li t0, 16
    blt s3, t0, combo_loop
    addi s0, s0, 1
    li t0, 6
    blt s0, t0, cfg_loop

    /* the configuration bits did not leak: the last run restored them */
    SET_TEST(97)
    csrr a0, mstatus
    CHECK_MASK(a0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_MPRV, 0)
    TEST_PASS

/* Run stub a3 (physical address) in mode s1 with mstatus bits s2, a0 = s4;
 * back in M with the trap registers set.  Clobbers t0, t1, a0, a2, a3. */
run_stub:
    li t0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_SUM | MSTATUS_MXR
    csrc mstatus, t0
    slli t0, s1, 11
    or t0, t0, s2
    csrs mstatus, t0
    bnez s1, 1f
    li t0, ALIAS_OFF                     /* U runs at the alias */
    sub a3, a3, t0
1:  csrw mepc, a3
    mv a0, s4
    mv a2, s4
    la s8, 2f
    ori s8, s8, 1
    mret
2:  li t0, MSTATUS_SUM | MSTATUS_MXR
    csrc mstatus, t0
    ret

    .align 2
stub_load:
    ld a1, 8(a0)
    ecall
stub_store:
    sd a2, 16(a0)
    ecall
stub_fetch:
    jalr zero, 0(a0)

    .data
    .align 3
cfg_table:
    .dword PRV_S, 0                            /* 0: S */
    .dword PRV_S, MSTATUS_SUM                  /* 1: S, SUM */
    .dword PRV_S, MSTATUS_MXR                  /* 2: S, MXR */
    .dword PRV_S, MSTATUS_SUM | MSTATUS_MXR    /* 3: S, SUM, MXR */
    .dword PRV_U, MSTATUS_SUM                  /* 4: U (SUM does not matter) */
    .dword PRV_U, MSTATUS_MXR                  /* 5: U, MXR */

/* Expected results, 1 = load, 2 = store, 4 = fetch, for combinations
 * (U=0)  -    R    W    RW   X    RX   WX   RWX
 * (U=1)  U    UR   UW   URW  UX   URX  UWX  URWX
 * R = W = X = 0 is a pointer to a next level: a page fault at level 0;
 * W without R is reserved. */
expect:
    /* S */
    .byte 0, 1, 0, 3, 4, 5, 0, 7
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    /* S, SUM: loads and stores of U pages, never fetches */
    .byte 0, 1, 0, 3, 4, 5, 0, 7
    .byte 0, 1, 0, 3, 0, 1, 0, 3
    /* S, MXR: X-only pages become readable */
    .byte 0, 1, 0, 3, 5, 5, 0, 7
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    /* S, SUM, MXR */
    .byte 0, 1, 0, 3, 5, 5, 0, 7
    .byte 0, 1, 0, 3, 1, 1, 0, 3
    /* U: only U pages */
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    .byte 0, 1, 0, 3, 4, 5, 0, 7
    /* U, MXR */
    .byte 0, 0, 0, 0, 0, 0, 0, 0
    .byte 0, 1, 0, 3, 5, 5, 0, 7
TEST_END
