# RV64I: integer computation, shifts (incl. W forms and edge amounts),
# lui/auipc, branches, jal/jalr, loads/stores of every width, misaligned
# accesses (performed or trapped), fence, fence.i after self-modifying code.
#include "common.h"

# rd = op(v1, v2)
#define TEST_RR(n, op, exp, v1, v2) \
    TEST_CASE(n, a0, exp, li a1, v1; li a2, v2; op a0, a1, a2)
# rd = op(v1, imm)
#define TEST_RI(n, op, exp, v1, imm) \
    TEST_CASE(n, a0, exp, li a1, v1; op a0, a1, imm)
# rd == rs1 == rs2
#define TEST_RR_SAME(n, op, exp, v1) \
    TEST_CASE(n, a1, exp, li a1, v1; op a1, a1, a1)

# branch must be taken (forward and backward)
#define TEST_BR_TAKEN(n, br, v1, v2) \
    SET_TEST(n); li a1, v1; li a2, v2; br a1, a2, 77701f; j fail; \
    77702: j 77703f; 77701: br a1, a2, 77702b; j fail; 77703:
# branch must not be taken
#define TEST_BR_NOT(n, br, v1, v2) \
    SET_TEST(n); li a1, v1; li a2, v2; br a1, a2, 77701f; j 77702f; \
    77701: j fail; 77702:

TEST_BEGIN

    # ---------------------------------------------------------- add/sub
    TEST_RR(1, add, 3, 1, 2)
    TEST_RR(2, add, 0x8000000000000000, 0x7fffffffffffffff, 1)
    TEST_RR(3, add, 0, -1, 1)
    TEST_RR(4, add, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff)
    TEST_RR(5, sub, 0xffffffffffffffff, 0, 1)
    TEST_RR(6, sub, 0x7fffffffffffffff, 0x8000000000000000, 1)
    TEST_RR(7, sub, 0x0000000100000000, 0x0000000100000005, 5)
    TEST_RR_SAME(8, add, 0x2468acf13579bde0, 0x123456789abcdef0)
    TEST_RR_SAME(9, sub, 0, 0x123456789abcdef0)

    TEST_RI(10, addi, -2048, 0, -2048)
    TEST_RI(11, addi, 0x80000000000007fe, 0x7fffffffffffffff, 2047)
    TEST_RI(12, addi, 0x00000000ffffffff, 0x0000000100000000, -1)
    TEST_RI(13, addiw, 0xffffffff80000000, 0x7fffffff, 1)
    TEST_RI(14, addiw, 5, 0xffffffff00000005, 0)
    TEST_RI(15, addiw, 0xffffffff80000000, 0x0000000080000000, 0)
    TEST_RI(16, addiw, 0x7fffffff, 0xffffffff80000000, -1)
    TEST_RR(17, addw, 0xffffffff80000000, 0x7fffffff, 1)
    TEST_RR(18, addw, 0, 0xffffffff, 1)
    TEST_RR(19, addw, 0x00000000579be001, 0x1111111144444444, 0x2222222213579bbd)
    TEST_RR(20, subw, 0xffffffff80000000, 0, 0x80000000)
    TEST_RR(21, subw, 0xffffffffffffffff, 1, 2)
    TEST_RR(22, subw, 0x7fffffff, 0x80000000, 1)

    # x0 is hard-wired
    TEST_CASE(23, zero, 0, addi zero, zero, 5; lui zero, 0x12345; li a1, 7; add zero, a1, a1)

    # ---------------------------------------------------------- compares
    TEST_RR(24, slt, 1, -1, 1)
    TEST_RR(25, slt, 0, 1, -1)
    TEST_RR(26, slt, 0, 5, 5)
    TEST_RR(27, slt, 1, 0x8000000000000000, 0x7fffffffffffffff)
    TEST_RR(28, sltu, 0, -1, 1)
    TEST_RR(29, sltu, 1, 1, -1)
    TEST_RR(30, sltu, 0, 5, 5)
    TEST_RR(31, sltu, 0, 0x8000000000000000, 0x7fffffffffffffff)
    TEST_RI(32, slti, 0, 5, -1)
    TEST_RI(33, slti, 1, -5, -1)
    TEST_RI(34, slti, 1, 0x8000000000000000, -2048)
    TEST_RI(35, sltiu, 1, 5, -1)          # the immediate is sign extended, then compared unsigned
    TEST_RI(36, sltiu, 0, -1, -1)
    TEST_RI(37, sltiu, 1, 0, 1)           # seqz
    TEST_RI(38, sltiu, 0, 0x100000000, 1)
    TEST_RR(39, sltu, 1, 0, 3)            # snez via x0 is checked below
    TEST_CASE(40, a0, 1, li a1, 0x8000; sltu a0, zero, a1)

    # ---------------------------------------------------------- logic
    TEST_RR(41, and, 0x0f000f000f000f00, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
    TEST_RR(42, or,  0xff0fff0fff0fff0f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
    TEST_RR(43, xor, 0xf00ff00ff00ff00f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
    TEST_RI(44, andi, 0x123456789abcdef0, 0x123456789abcdef0, -1)
    TEST_RI(45, andi, 0x00000000000006f0, 0x123456789abcdef0, 0x7f0)
    TEST_RI(46, andi, 0x123456789abcd800, 0x123456789abcdef0, -2048)
    TEST_RI(47, ori, 0xfffffffffffff800, 0, -2048)
    TEST_RI(48, ori, 0x123456789abcdfff, 0x123456789abcdef0, 0x7ff)
    TEST_RI(49, xori, 0xedcba9876543210f, 0x123456789abcdef0, -1)
    TEST_RI(50, xori, 0x123456789abcd90f, 0x123456789abcdef0, 0x7ff)

    # ---------------------------------------------------------- shifts
    TEST_RR(51, sll, 0x8000000000000000, 1, 63)
    TEST_RR(52, sll, 1, 1, 64)            # only rs2[5:0] is used
    TEST_RR(53, sll, 0x2468acf13579bde0, 0x123456789abcdef0, 0xffffffffffffffc1)
    TEST_RR(54, srl, 1, 0x8000000000000000, 63)
    TEST_RR(55, srl, 0x8000000000000000, 0x8000000000000000, 64)
    TEST_RR(56, srl, 0x0000000080000000, 0x8000000000000000, 32)
    TEST_RR(57, sra, 0xffffffffffffffff, 0x8000000000000000, 63)
    TEST_RR(58, sra, 0xffffffff80000000, 0x8000000000000000, 32)
    TEST_RR(59, sra, 0x3fffffffffffffff, 0x7fffffffffffffff, 1)
    TEST_RR(60, sra, 0x8000000000000000, 0x8000000000000000, 0)
    TEST_RI(61, slli, 0x8000000000000000, 1, 63)
    TEST_RI(62, slli, 0x89abcdef00000000, 0x0123456789abcdef, 32)
    TEST_RI(63, srli, 1, 0x8000000000000000, 63)
    TEST_RI(64, srli, 0x0000000001234567, 0x0123456789abcdef, 32)
    TEST_RI(65, srai, 0xffffffffffffffff, 0x8000000000000000, 63)
    TEST_RI(66, srai, 0xfffffffffedcba98, 0xfedcba9876543210, 32)
    TEST_RI(67, srai, 0x7edcba9876543210, 0x7edcba9876543210, 0)
    # W forms: 5-bit amounts, 32-bit results sign extended
    TEST_RR(68, sllw, 0xffffffff80000000, 1, 31)
    TEST_RR(69, sllw, 1, 1, 32)
    TEST_RR(70, sllw, 0xffffffffabcdef00, 0x12345678abcdef, 8)
    TEST_RR(71, srlw, 1, 0x80000000, 31)
    TEST_RR(72, srlw, 0xffffffff80000000, 0x80000000, 0)
    TEST_RR(73, srlw, 0x40000000, 0xffffffff80000000, 1)
    TEST_RR(74, srlw, 0xffffffff80000000, 0x80000000, 32)
    TEST_RR(75, sraw, 0xffffffffc0000000, 0x80000000, 1)
    TEST_RR(76, sraw, 0xfffffffff8000000, 0x0000000180000000, 4)
    TEST_RR(77, sraw, 0xffffffffffffffff, 0x80000000, 31)
    TEST_RR(78, sraw, 0x0000000076543210, 0x1234567876543210, 32)
    TEST_RI(79, slliw, 0xffffffff80000000, 1, 31)
    TEST_RI(80, slliw, 0x0000000076543210, 0xffffffff76543210, 0)
    TEST_RI(81, srliw, 0xffffffffffffffff, 0xffffffff, 0)
    TEST_RI(82, srliw, 1, 0xffffffff, 31)
    TEST_RI(83, srliw, 0x00000000000fff00, 0x12345678fff00000, 12)
    TEST_RI(84, sraiw, 0xffffffffffffffff, 0x80000000, 31)
    TEST_RI(85, sraiw, 0xfffffffffff00000, 0x12345678ff000000, 4)
    TEST_RI(86, sraiw, 0x0000000007f00000, 0xffffffff7f000000, 4)

    # ---------------------------------------------------------- lui/auipc
    TEST_CASE(87, a0, 0xffffffff80000000, lui a0, 0x80000)
    TEST_CASE(88, a0, 0x000000007ffff000, lui a0, 0x7ffff)
    TEST_CASE(89, a0, 0xfffffffffffff000, lui a0, 0xfffff)
    TEST_CASE(90, a0, 0x0000000012345678, lui a0, 0x12345; addi a0, a0, 0x678)
    SET_TEST(91)
1:  auipc a0, 0
    la a1, 1b
    bne a0, a1, fail
    SET_TEST(92)
1:  auipc a0, 1
    la a1, 1b
    sub a0, a0, a1
    CHECK(a0, 0x1000)
    SET_TEST(93)
1:  auipc a0, 0xfffff                 # pc - 4096
    la a1, 1b
    sub a0, a1, a0
    CHECK(a0, 0x1000)
    SET_TEST(94)
1:  auipc a0, 0x80000                 # pc - 2^31 (sign extended)
    la a1, 1b
    sub a0, a1, a0
    CHECK(a0, 0x80000000)

    # ---------------------------------------------------------- branches
    TEST_BR_TAKEN(95, beq, 5, 5)
    TEST_BR_NOT(96, beq, 5, 6)
    TEST_BR_NOT(97, beq, 0x100000005, 5)
    TEST_BR_TAKEN(98, bne, 0x100000005, 5)
    TEST_BR_NOT(99, bne, -1, -1)
    TEST_BR_TAKEN(100, blt, -1, 0)
    TEST_BR_NOT(101, blt, 0, -1)
    TEST_BR_NOT(102, blt, 7, 7)
    TEST_BR_TAKEN(103, blt, 0x8000000000000000, 0x7fffffffffffffff)
    TEST_BR_TAKEN(104, bge, 0, -1)
    TEST_BR_TAKEN(105, bge, 7, 7)
    TEST_BR_NOT(106, bge, -1, 0)
    TEST_BR_TAKEN(107, bltu, 0, -1)
    TEST_BR_NOT(108, bltu, -1, 0)
    TEST_BR_NOT(109, bltu, 7, 7)
    TEST_BR_TAKEN(110, bgeu, -1, 0)
    TEST_BR_TAKEN(111, bgeu, 7, 7)
    TEST_BR_NOT(112, bgeu, 0x7fffffffffffffff, 0x8000000000000000)
    # a branch that is not taken must not have side effects on the loop
    SET_TEST(113)
    li a0, 0
    li a1, 10
1:  addi a0, a0, 1
    blt a0, a1, 1b
    CHECK(a0, 10)

    # ---------------------------------------------------------- jal/jalr
    SET_TEST(114)
    li ra, 0
    jal ra, 1f
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(115)
    li a0, 0
    jal zero, 1f
    li a0, 1
1:  CHECK(a0, 0)
    # jal with a different link register, backwards
    SET_TEST(116)
    j 2f
1:  CHECK_ADDR(t1, 3f)
    j 4f
2:  jal t1, 1b
3:  j fail
4:
    # jalr: target = (rs1 + imm) & ~1
    SET_TEST(117)
    la t0, 1f
    jalr ra, 0(t0)
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(118)
    la t0, 1f
    addi t0, t0, 1                     # odd register value: bit 0 is cleared
    jalr ra, 0(t0)
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(119)
    la t0, 1f
    jalr ra, 1(t0)                     # odd immediate
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(120)
    la t0, 1f
    addi t0, t0, 16
    jalr ra, -16(t0)                   # negative immediate
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(121)
    la t0, 1f
    addi t0, t0, -3
    jalr ra, 4(t0)                     # rs1 + imm odd (t0 itself odd)
2:  j fail
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(122)
    la t0, 1f
    jalr t0, 0(t0)                     # rd == rs1: the old value is the target
2:  j fail
1:  CHECK_ADDR(t0, 2b)
    SET_TEST(123)
    la t0, 1f
    jalr zero, 0(t0)
    j fail
1:
    # call/return through a subroutine
    SET_TEST(124)
    li a0, 5
    jal ra, sub_double
    CHECK(a0, 10)

    # ---------------------------------------------------------- loads
    la s0, ldata
    TEST_CASE(125, a0, 0xffffffffffffff81, lb a0, 0(s0))
    TEST_CASE(126, a0, 0x0000000000000081, lbu a0, 0(s0))
    TEST_CASE(127, a0, 0x0000000000000072, lb a0, 1(s0))
    TEST_CASE(128, a0, 0x0000000000007281, lh a0, 0(s0))
    TEST_CASE(129, a0, 0xffffffffffff8f63, lh a0, 2(s0))
    TEST_CASE(130, a0, 0x0000000000008f63, lhu a0, 2(s0))
    TEST_CASE(131, a0, 0xffffffff8f637281, lw a0, 0(s0))
    TEST_CASE(132, a0, 0x000000008f637281, lwu a0, 0(s0))
    TEST_CASE(133, a0, 0x000000003c4d5ef4, lw a0, 4(s0))
    TEST_CASE(134, a0, 0x000000003c4d5ef4, lwu a0, 4(s0))
    TEST_CASE(135, a0, 0x3c4d5ef48f637281, ld a0, 0(s0))
    TEST_CASE(136, a0, 0xfedcba9876543210, ld a0, 8(s0))
    TEST_CASE(137, a0, 0xfffffffffffffffe, addi a1, s0, 16; lb a0, -1(a1))
    TEST_CASE(138, a0, 0x000000000000fedc, addi a1, s0, 16; lhu a0, -2(a1))
    TEST_CASE(139, a0, 0x3c4d5ef48f637281, addi a1, s0, 2047; ld a0, -2047(a1))
    TEST_CASE(140, a0, 0xfedcba9876543210, addi a1, s0, -2039; ld a0, 2047(a1))
    # a load into the base register
    TEST_CASE(141, a1, 0xfedcba9876543210, addi a1, s0, 8; ld a1, 0(a1))

    # ---------------------------------------------------------- stores
    la s0, sdata
    SET_TEST(142)
    li a1, -1
    sd a1, 0(s0)
    sd a1, 8(s0)
    li a1, 0x12
    sb a1, 0(s0)
    li a1, 0xabcd
    sh a1, 2(s0)
    li a1, 0x1122334455667788
    sw a1, 4(s0)                        # only the low 32 bits
    ld a0, 0(s0)
    CHECK(a0, 0x55667788abcdff12)
    SET_TEST(143)
    li a1, 0x0123456789abcdef
    sd a1, 8(s0)
    ld a0, 8(s0)
    CHECK(a0, 0x0123456789abcdef)
    SET_TEST(144)
    li a1, 0x99
    sb a1, 15(s0)
    li a1, 0x7788
    sh a1, 12(s0)
    ld a0, 8(s0)
    CHECK(a0, 0x9923778889abcdef)

    # ---------------------------------------------------------- misaligned
    # Either performed (check the value) or trapped (cause 4/6, tval = address).
#define TEST_MISALIGNED_LOAD(n, insn, off, exp) \
    SET_TEST(n); la s0, ldata; addi a1, s0, off; li a0, 0; \
    la s8, 77711f; insn a0, 0(a1); 77711: \
    bnez s8, 77712f; CHECK(s10, CAUSE_MISALIGNED_LOAD); CHECK_TVAL_REG(a1); j 77713f; \
    77712: li s8, 0; CHECK(a0, exp); 77713:
    TEST_MISALIGNED_LOAD(145, lh, 1, 0x0000000000006372)
    TEST_MISALIGNED_LOAD(146, lhu, 3, 0x000000000000f48f)
    TEST_MISALIGNED_LOAD(147, lw, 1, 0xfffffffff48f6372)
    TEST_MISALIGNED_LOAD(148, lwu, 2, 0x000000005ef48f63)
    TEST_MISALIGNED_LOAD(149, ld, 1, 0x103c4d5ef48f6372)
    TEST_MISALIGNED_LOAD(150, ld, 7, 0xdcba98765432103c)
    TEST_MISALIGNED_LOAD(151, lw, 6, 0x32103c4d)

#define TEST_MISALIGNED_STORE(n, insn, off, val, exp0, exp1) \
    SET_TEST(n); la s0, sdata; sd zero, 0(s0); sd zero, 8(s0); addi a1, s0, off; li a2, val; \
    la s8, 77711f; insn a2, 0(a1); 77711: \
    bnez s8, 77712f; CHECK(s10, CAUSE_MISALIGNED_STORE); CHECK_TVAL_REG(a1); \
    ld a0, 0(s0); bnez a0, fail; ld a0, 8(s0); bnez a0, fail; j 77713f; \
    77712: li s8, 0; ld a0, 0(s0); CHECK(a0, exp0); ld a0, 8(s0); CHECK(a0, exp1); 77713:
    TEST_MISALIGNED_STORE(152, sh, 7, 0xbbaa, 0xaa00000000000000, 0x00000000000000bb)
    TEST_MISALIGNED_STORE(153, sw, 5, 0x44332211, 0x3322110000000000, 0x0000000000000044)
    TEST_MISALIGNED_STORE(154, sd, 3, 0x8877665544332211, 0x5544332211000000, 0x0000000000887766)
    TEST_MISALIGNED_STORE(155, sd, 1, 0x8877665544332211, 0x7766554433221100, 0x0000000000000088)

    # ---------------------------------------------------------- fences
    SET_TEST(156)
    la s8, 1f                           # none of these may trap
    fence
    fence rw, rw
    fence r, r
    fence w, w
    fence io, io
    fence iorw, iorw
    fence.tso
    .word 0x0100000f                    # pause (Zihintpause: fence w, 0)
1:  CHECK_NO_TRAP

    # fence.i after self-modifying code
    SET_TEST(157)
    jal ra, smc_func                    # original: a0 = 1
    CHECK(a0, 1)
    SET_TEST(158)
    la a1, smc_func
    la a2, smc_tmpl2
    lw a3, 0(a2)
    sw a3, 0(a1)
    fence.i
    jal ra, smc_func
    CHECK(a0, 2)
    SET_TEST(159)
    la a2, smc_tmpl3
    lw a3, 0(a2)
    sw a3, 0(a1)
    fence.i
    jal ra, smc_func
    CHECK(a0, 0x333)
    # a loop whose body is patched between runs
    SET_TEST(160)
    la a1, smc_loop_insn
    la a2, smc_tmpl_add5
    lw a3, 0(a2)
    sw a3, 0(a1)
    fence.i
    li a0, 0
    li a4, 4
1:  jal ra, smc_loop
    addi a4, a4, -1
    bnez a4, 1b
    CHECK(a0, 20)

    TEST_PASS

sub_double:
    add a0, a0, a0
    ret

    .align 3
smc_func:
    li a0, 1
    ret
    nop
    nop
smc_loop:
smc_loop_insn:
    addi a0, a0, 1
    ret
smc_tmpl2:                              # templates copied over smc_func
    li a0, 2
smc_tmpl3:
    li a0, 0x333
smc_tmpl_add5:
    addi a0, a0, 5

    .data
    .align 4
ldata:
    .byte 0x81, 0x72, 0x63, 0x8f, 0xf4, 0x5e, 0x4d, 0x3c
    .dword 0xfedcba9876543210
    .align 4
sdata:
    .dword 0, 0

TEST_END
