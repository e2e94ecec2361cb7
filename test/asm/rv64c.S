# RV64C: every compressed instruction, written with explicit c.* mnemonics:
# c.li c.lui c.addi c.addiw c.addi16sp c.addi4spn c.slli c.srli c.srai c.andi
# c.mv c.add c.sub c.xor c.or c.and c.subw c.addw c.lw c.ld c.sw c.sd c.lwsp
# c.ldsp c.swsp c.sdsp c.fld c.fsd c.fldsp c.fsdsp c.j c.beqz c.bnez c.jr
# c.jalr c.nop c.ebreak; 32-bit instructions at 2-byte aligned addresses;
# the illegal all-zero instruction; tval of an illegal 16-bit instruction.
#include "common.h"

TEST_BEGIN
    .option rvc

    # ------------------------------------------------------ constants
    TEST_CASE(1, a0, 31, c.li a0, 31)
    TEST_CASE(2, a0, 0xffffffffffffffe0, c.li a0, -32)
    TEST_CASE(3, a0, 0x000000000001f000, c.lui a0, 31)
    TEST_CASE(4, a0, 0xfffffffffffe0000, c.lui a0, 0xfffe0)
    TEST_CASE(5, a0, 0xfffffffffffff000, c.lui a0, 0xfffff)
    TEST_CASE(6, s1, 0x0000000000001000, c.lui s1, 1)

    # ------------------------------------------------------ immediates
    TEST_CASE(7, a0, 0xffffffffffffffff, li a0, 10; c.addi a0, -11)
    TEST_CASE(8, a0, 0x000000000000002a, li a0, 11; c.addi a0, 31)
    TEST_CASE(9, a0, 0xffffffff80000000, li a0, 0x7fffffff; c.addiw a0, 1)
    TEST_CASE(10, a0, 0x0000000000000005, li a0, 0xffffffff00000005; c.addiw a0, 0)
    TEST_CASE(11, a0, 0x000000007fffffe0, li a0, 0x0000000180000000; c.addiw a0, -32)
    SET_TEST(12)
    mv s1, sp
    c.addi16sp sp, -512
    sub a0, s1, sp
    CHECK(a0, 512)
    c.addi16sp sp, 496
    sub a0, s1, sp
    CHECK(a0, 16)
    c.addi16sp sp, 16
    bne sp, s1, fail
    SET_TEST(13)
    c.addi4spn a0, sp, 1020
    sub a0, a0, sp
    CHECK(a0, 1020)
    SET_TEST(14)
    c.addi4spn s1, sp, 4
    sub a0, s1, sp
    CHECK(a0, 4)

    # ------------------------------------------------------ shifts, logic
    TEST_CASE(15, a0, 0x8000000000000000, li a0, 1; c.slli a0, 63)
    TEST_CASE(16, a0, 0x0000000123456780, li a0, 0x12345678; c.slli a0, 4)
    TEST_CASE(17, a1, 0x0000000000000001, li a1, 0x8000000000000000; c.srli a1, 63)
    TEST_CASE(18, a1, 0x0000000080000000, li a1, 0x8000000000000000; c.srli a1, 32)
    TEST_CASE(19, a2, 0xffffffffffffffff, li a2, 0x8000000000000000; c.srai a2, 63)
    TEST_CASE(20, a2, 0xf800000000000000, li a2, 0x8000000000000000; c.srai a2, 4)
    TEST_CASE(21, a3, 0x000000000000f0f0, li a3, 0xf0f0; c.andi a3, -16)
    TEST_CASE(22, a3, 0x0000000000000014, li a3, 0x1234; c.andi a3, 0x1f)
    TEST_CASE(23, a3, 0x0000000000000000, li a3, 0x1234; c.andi a3, 0)

    # ------------------------------------------------------ register-register
    TEST_CASE(24, a0, 0x0000000123456789, li a1, 0x123456789; li a0, 0; c.mv a0, a1)
    TEST_CASE(25, t3, 0xfffffffffffffffe, li t3, 5; li t4, -7; c.add t3, t4)
    TEST_CASE(26, a0, 0xfffffffffffffffe, li a0, 5; li a1, 7; c.sub a0, a1)
    TEST_CASE(27, s0, 0xf00ff00ff00ff00f, li s0, 0xff00ff00ff00ff00; li s1, 0x0f0f0f0f0f0f0f0f; c.xor s0, s1)
    TEST_CASE(28, a4, 0xff0fff0fff0fff0f, li a4, 0xff00ff00ff00ff00; li a5, 0x0f0f0f0f0f0f0f0f; c.or a4, a5)
    TEST_CASE(29, a5, 0x0f000f000f000f00, li a5, 0xff00ff00ff00ff00; li a4, 0x0f0f0f0f0f0f0f0f; c.and a5, a4)
    TEST_CASE(30, a0, 0x000000007fffffff, li a0, 0x80000000; li a1, 1; c.subw a0, a1)
    TEST_CASE(31, a0, 0xffffffff80000000, li a0, 0; li a1, 0x80000000; c.subw a0, a1)
    TEST_CASE(32, a0, 0xffffffff80000000, li a0, 0x7fffffff; li a1, 1; c.addw a0, a1)
    TEST_CASE(33, a0, 0x0000000000000003, li a0, 0x100000001; li a1, 0x200000002; c.addw a0, a1)

    # ------------------------------------------------------ loads/stores
    la s0, cdata
    TEST_CASE(34, a0, 0xffffffff80000001, c.lw a0, 0(s0))
    TEST_CASE(35, a1, 0x0000000012345678, c.lw a1, 124(s0))
    TEST_CASE(36, a2, 0xcafef00d44332211, c.ld a2, 248(s0))
    TEST_CASE(37, a3, 0x0000000180000001, c.ld a3, 0(s0))
    SET_TEST(38)
    li a4, 0xaabbccdd11223344
    c.sw a4, 8(s0)                       # low word only
    ld a0, 8(s0)
    CHECK(a0, 0x0000000011223344)
    SET_TEST(39)
    c.sd a4, 16(s0)
    ld a0, 16(s0)
    CHECK(a0, 0xaabbccdd11223344)
    # sp-relative: point sp at the buffer for a moment
    mv s1, sp
    la sp, cdata
    TEST_CASE(40, a0, 0xffffffff80000001, c.lwsp a0, 0(sp))
    TEST_CASE(41, t0, 0xffffffffcafef00d, c.lwsp t0, 252(sp))
    TEST_CASE(42, a1, 0x0123456789abcdef, c.ldsp a1, 504(sp))
    TEST_CASE(43, ra, 0x0000000180000001, c.ldsp ra, 0(sp))
    SET_TEST(44)
    li t1, 0x1111222233334444
    c.swsp t1, 24(sp)
    ld a0, 24(sp)
    CHECK(a0, 0x0000000033334444)
    SET_TEST(45)
    c.sdsp t1, 32(sp)
    ld a0, 32(sp)
    CHECK(a0, 0x1111222233334444)
    SET_TEST(46)
    c.sdsp t1, 504(sp)
    ld a0, 504(sp)
    CHECK(a0, 0x1111222233334444)
    li a0, 0x0123456789abcdef            # restore
    sd a0, 504(sp)
    SET_TEST(47)
    c.swsp t1, 252(sp)
    ld a0, 248(sp)
    CHECK(a0, 0x3333444444332211)
    li a0, 0xcafef00d                    # restore
    sw a0, 252(sp)
    mv sp, s1

    # ------------------------------------------------------ FP loads/stores
    SET_TEST(48)
    c.fld fa0, 0(s0)
    fmv.x.d a0, fa0
    CHECK(a0, 0x0000000180000001)
    SET_TEST(49)
    c.fld fs1, 248(s0)
    fmv.x.d a0, fs1
    CHECK(a0, 0xcafef00d44332211)
    SET_TEST(50)
    li a0, 0x400921fb54442d18
    fmv.d.x fa5, a0
    c.fsd fa5, 40(s0)
    ld a1, 40(s0)
    CHECK(a1, 0x400921fb54442d18)
    SET_TEST(51)
    mv s1, sp
    la sp, cdata
    c.fldsp ft0, 504(sp)
    fmv.x.d a0, ft0
    CHECK(a0, 0x0123456789abcdef)
    SET_TEST(52)
    c.fsdsp ft0, 48(sp)
    ld a0, 48(sp)
    CHECK(a0, 0x0123456789abcdef)
    SET_TEST(53)
    li a0, 0xbff0000000000000
    fmv.d.x ft11, a0
    c.fsdsp ft11, 0(sp)
    c.fldsp fa1, 0(sp)
    fmv.x.d a1, fa1
    CHECK(a1, 0xbff0000000000000)
    mv sp, s1

    # ------------------------------------------------------ control transfer
    SET_TEST(54)
    li a0, 0
    c.j 1f
    li a0, 1
1:  CHECK(a0, 0)
    SET_TEST(55)
    c.j 2f
1:  c.j 3f
2:  c.j 1b                              # backwards
    j fail
3:
    SET_TEST(56)
    li a0, 0
    c.beqz a0, 1f
    j fail
1:  li a0, 0x100000000                  # only upper bits set: not zero
    c.beqz a0, 2f
    c.j 3f
2:  j fail
3:  c.bnez a0, 4f
    j fail
4:  li a0, 0
    c.bnez a0, 2b
    SET_TEST(57)
    li a1, 0
1:  addi a1, a1, 1
    li a0, 5
    sub a0, a0, a1
    c.bnez a0, 1b                       # backwards, taken 4 times
    CHECK(a1, 5)
    SET_TEST(58)
    la a0, 1f
    c.jr a0
    j fail
1:  SET_TEST(59)
    la a0, 1f
    addi a0, a0, 1                      # bit 0 is cleared
    c.jr a0
    j fail
1:  SET_TEST(60)
    la a0, 1f
    c.jalr a0
2:  j fail                              # ra = the address after c.jalr (pc + 2)
1:  CHECK_ADDR(ra, 2b)
    SET_TEST(61)
    la t2, 1f
    li ra, 0
    c.jalr t2
2:  c.j 3f
1:  CHECK_ADDR(ra, 2b)
    c.jr ra                             # return through ra
3:  SET_TEST(62)
    li a0, 7
    c.nop
    c.nop
    CHECK(a0, 7)

    # ------------------------------------------------------ mixed widths
    # 32-bit instructions at addresses that are 2 mod 4, and jumps to them
    SET_TEST(63)
    .align 2
    c.nop
    .option norvc
    addi a0, zero, 0x123                # at 2 mod 4
    jal ra, 1f                          # at 2 mod 4, target 2 mod 4
    .option rvc
    j fail
    c.nop
1:  CHECK(a0, 0x123)
    SET_TEST(64)
    .align 2
    c.nop
1:  c.li a0, 9
    la a1, 1b                           # 2 mod 4
    andi a2, a1, 3
    CHECK(a2, 2)
    la a1, 2f
    jr a1
    j fail
    .align 2
    c.nop
2:  c.li a1, 3                          # reached through jalr at 2 mod 4
    CHECK(a1, 3)

    # ------------------------------------------------------ traps
    SET_TEST(65)
    la s8, 2f
1:  c.ebreak
2:  CHECK_TRAPPED(CAUSE_BREAKPOINT)
    CHECK_EPC(1b)
    beqz s11, 3f                        # tval: 0 or the pc
    CHECK_TVAL_ADDR(1b)
3:
    # the all-zero 16-bit instruction is illegal; tval 0 (also the bits)
    SET_TEST(66)
    la s8, 2f
1:  .hword 0
2:  CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION)
    CHECK_EPC(1b)
    CHECK_TVAL(0)
    # c.fld with FS = Off is illegal: tval holds its 16 bits (upper bits zero)
    SET_TEST(67)
    li t0, MSTATUS_FS
    csrc mstatus, t0
    la s8, 2f
1:  c.fld fa0, 0(s0)
2:  CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION)
    CHECK_EPC(1b)
    la a0, 1b
    lhu a0, 0(a0)
    CHECK_TVAL_REG(a0)
    SET_TEST(68)
    la s8, 2f
1:  c.fsdsp fa0, 8(sp)
2:  CHECK_TRAPPED(CAUSE_ILLEGAL_INSTRUCTION)
    CHECK_EPC(1b)
    la a0, 1b
    lhu a0, 0(a0)
    CHECK_TVAL_REG(a0)
    li t0, MSTATUS_FS_INITIAL
    csrs mstatus, t0

    TEST_PASS

    .data
    .align 8
cdata:
    .word 0x80000001, 0x00000001        # 0
    .org cdata + 124
    .word 0x12345678
    .org cdata + 248
    .dword 0xcafef00d44332211
    .org cdata + 504
    .dword 0x0123456789abcdef
    .org cdata + 512
TEST_END
