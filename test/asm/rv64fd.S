# RV64F/D: loads/stores, NaN boxing (visible through fmv.x.d), fcsr/frm/
# fflags access, every rounding mode on a few operations (static and
# dynamic), invalid rounding modes -> illegal instruction, fcvt saturation,
# fmin/fmax with -0/+0 and NaNs, fclass of all 10 classes, exception flags,
# FS=Off makes FP instructions and FP CSRs illegal, FS -> Dirty and SD.
#include "common.h"

#define BOX(x) (0xffffffff00000000 | (x))

# single precision: operands are boxed with fmv.w.x, the result register is
# checked in full (so results must be NaN-boxed), then fflags.
#define TEST_S1(n, exp, flags, a, insn...) \
    SET_TEST(n); li a1, a; fmv.w.x fa1, a1; csrw fflags, zero; insn; \
    fmv.x.d a0, fa0; CHECK(a0, BOX(exp)); frflags a1; CHECK(a1, flags)
#define TEST_S2(n, exp, flags, a, b, insn...) \
    SET_TEST(n); li a1, a; fmv.w.x fa1, a1; li a2, b; fmv.w.x fa2, a2; csrw fflags, zero; insn; \
    fmv.x.d a0, fa0; CHECK(a0, BOX(exp)); frflags a1; CHECK(a1, flags)
#define TEST_S3(n, exp, flags, a, b, c, insn...) \
    SET_TEST(n); li a1, a; fmv.w.x fa1, a1; li a2, b; fmv.w.x fa2, a2; li a3, c; fmv.w.x fa3, a3; \
    csrw fflags, zero; insn; fmv.x.d a0, fa0; CHECK(a0, BOX(exp)); frflags a1; CHECK(a1, flags)
# double precision
#define TEST_D1(n, exp, flags, a, insn...) \
    SET_TEST(n); li a1, a; fmv.d.x fa1, a1; csrw fflags, zero; insn; \
    fmv.x.d a0, fa0; CHECK(a0, exp); frflags a1; CHECK(a1, flags)
#define TEST_D2(n, exp, flags, a, b, insn...) \
    SET_TEST(n); li a1, a; fmv.d.x fa1, a1; li a2, b; fmv.d.x fa2, a2; csrw fflags, zero; insn; \
    fmv.x.d a0, fa0; CHECK(a0, exp); frflags a1; CHECK(a1, flags)
#define TEST_D3(n, exp, flags, a, b, c, insn...) \
    SET_TEST(n); li a1, a; fmv.d.x fa1, a1; li a2, b; fmv.d.x fa2, a2; li a3, c; fmv.d.x fa3, a3; \
    csrw fflags, zero; insn; fmv.x.d a0, fa0; CHECK(a0, exp); frflags a1; CHECK(a1, flags)
# results in an integer register (a0): compares, fclass, fcvt to integer
#define TEST_SX(n, exp, flags, a, b, insn...) \
    SET_TEST(n); li a1, a; fmv.w.x fa1, a1; li a2, b; fmv.w.x fa2, a2; csrw fflags, zero; insn; \
    CHECK(a0, exp); frflags a1; CHECK(a1, flags)
#define TEST_DX(n, exp, flags, a, b, insn...) \
    SET_TEST(n); li a1, a; fmv.d.x fa1, a1; li a2, b; fmv.d.x fa2, a2; csrw fflags, zero; insn; \
    CHECK(a0, exp); frflags a1; CHECK(a1, flags)
# integer source (a1) to FP result (fa0, checked in full)
#define TEST_XF(n, exp, flags, xval, insn...) \
    SET_TEST(n); li a1, xval; csrw fflags, zero; insn; fmv.x.d a0, fa0; CHECK(a0, exp); \
    frflags a1; CHECK(a1, flags)

#define NX 0x01
#define UF 0x02
#define OF 0x04
#define DZ 0x08
#define NV 0x10

#define S_ONE    0x3f800000
#define S_TWO    0x40000000
#define S_THREE  0x40400000
#define S_HALF   0x3f000000
#define S_MONE   0xbf800000
#define S_INF    0x7f800000
#define S_NINF   0xff800000
#define S_QNAN   0x7fc00000
#define S_SNAN   0x7f800001
#define S_MAX    0x7f7fffff
#define S_NZERO  0x80000000
#define D_ONE    0x3ff0000000000000
#define D_TWO    0x4000000000000000
#define D_THREE  0x4008000000000000
#define D_MONE   0xbff0000000000000
#define D_INF    0x7ff0000000000000
#define D_NINF   0xfff0000000000000
#define D_QNAN   0x7ff8000000000000
#define D_SNAN   0x7ff0000000000001
#define D_NZERO  0x8000000000000000

TEST_BEGIN
    # FS = Initial at reset of the framework
    la s0, fdata

    # ------------------------------------------------------ loads/stores
    SET_TEST(1)
    flw fa0, 0(s0)                       # 1.5f: NaN-boxed in the register
    fmv.x.d a0, fa0
    CHECK(a0, 0xffffffff3fc00000)
    SET_TEST(2)
    flw fa0, 4(s0)                       # a signalling NaN is loaded unchanged
    fmv.x.d a0, fa0
    CHECK(a0, 0xffffffff7f800123)
    SET_TEST(3)
    fld fa1, 8(s0)
    fmv.x.d a0, fa1
    CHECK(a0, 0x7ff0000000000abc)        # a double sNaN, unchanged
    SET_TEST(4)
    fsd fa1, 16(s0)
    ld a0, 16(s0)
    CHECK(a0, 0x7ff0000000000abc)
    SET_TEST(5)
    li a1, -1
    sd a1, 24(s0)
    fsw fa0, 24(s0)                      # 32 bits only
    ld a0, 24(s0)
    CHECK(a0, 0xffffffff7f800123)
    SET_TEST(6)
    li a1, 0x123456783f800000            # not NaN-boxed
    fmv.d.x fa2, a1
    fsw fa2, 32(s0)                      # fsw stores the low 32 bits regardless
    lwu a0, 32(s0)
    CHECK(a0, 0x3f800000)
    TEST_CASE(7, a0, 0x000000003f800000, fmv.x.w a0, fa2)  # fmv.x.w too
    TEST_CASE(8, a0, 0xffffffffbf800000, li a1, S_MONE; fmv.w.x fa0, a1; fmv.x.w a0, fa0)  # sign extended
    TEST_CASE(9, a0, 0xffffffff3f800000, li a1, 0x123456783f800000; fmv.w.x fa0, a1; fmv.x.d a0, fa0)
    # an improperly boxed single is the canonical NaN to arithmetic
    SET_TEST(10)
    li a1, 0x123456783f800000
    fmv.d.x fa1, a1
    csrw fflags, zero
    fadd.s fa0, fa1, fa1
    fmv.x.d a0, fa0
    CHECK(a0, BOX(S_QNAN))
    frflags a1
    CHECK(a1, 0)
    TEST_CASE(11, a0, 0x200, fclass.s a0, fa1)
    SET_TEST(12)
    li a2, S_MONE
    fmv.w.x fa2, a2
    fsgnj.s fa0, fa1, fa2                # canonical NaN, sign of fa2
    fmv.x.d a0, fa0
    CHECK(a0, BOX(0xffc00000))
    SET_TEST(13)
    fmv.d.x fa1, zero                    # 0.0 double = not boxed for single
    fcvt.d.s fa0, fa1
    fmv.x.d a0, fa0
    CHECK(a0, D_QNAN)

    # ------------------------------------------------------ fcsr, frm, fflags
    SET_TEST(14)
    li a1, -1
    csrw fcsr, a1                        # bits 31:8 are reserved: read as 0
    csrr a0, fcsr
    CHECK(a0, 0xff)
    csrr a0, frm
    CHECK(a0, 7)
    csrr a0, fflags
    CHECK(a0, 0x1f)
    SET_TEST(15)
    csrwi frm, 2
    csrr a0, fcsr
    CHECK(a0, 0x5f)
    csrwi fflags, 0x3
    csrr a0, fcsr
    CHECK(a0, 0x43)
    SET_TEST(16)
    li a1, 0xffffffffffffffe9            # frm takes bits 2:0, fflags 4:0
    csrw frm, a1
    csrw fflags, a1
    csrr a0, fcsr
    CHECK(a0, 0x29)
    SET_TEST(17)
    li a1, 4
    fsrm a0, a1                          # swap: old value returned
    CHECK(a0, 1)
    frrm a0
    CHECK(a0, 4)
    li a1, 0x10
    fsflags a0, a1
    CHECK(a0, 0x09)
    frflags a0
    CHECK(a0, 0x10)
    SET_TEST(18)
    csrsi fflags, 0x3
    csrci fflags, 0x10
    frflags a0
    CHECK(a0, 0x03)
    frcsr a0
    CHECK(a0, 0x83)
    li a1, 0x5a
    fscsr a0, a1
    CHECK(a0, 0x83)
    frcsr a0
    CHECK(a0, 0x5a)
    csrw fcsr, zero

    # ------------------------------------------------------ exception flags
    TEST_S2(19, S_INF, DZ, S_ONE, 0, fdiv.s fa0, fa1, fa2)
    TEST_S2(20, S_QNAN, NV, 0, 0, fdiv.s fa0, fa1, fa2)
    TEST_S2(21, S_INF, OF | NX, S_MAX, S_TWO, fmul.s fa0, fa1, fa2)
    TEST_S2(22, 0x00400000, UF | NX, 0x00800001, S_HALF, fmul.s fa0, fa1, fa2)
    TEST_S2(23, 0x00400000, 0, 0x00800000, S_HALF, fmul.s fa0, fa1, fa2)  # exact: no underflow
    TEST_S2(24, 0x3eaaaaab, NX, S_ONE, S_THREE, fdiv.s fa0, fa1, fa2)
    TEST_S1(25, S_QNAN, NV, S_MONE, fsqrt.s fa0, fa1)
    TEST_S1(26, S_NZERO, 0, S_NZERO, fsqrt.s fa0, fa1)
    TEST_S1(27, 0x3fb504f3, NX, S_TWO, fsqrt.s fa0, fa1)
    TEST_S2(28, S_QNAN, NV, S_SNAN, S_ONE, fadd.s fa0, fa1, fa2)   # canonical NaN out
    TEST_S2(29, S_QNAN, 0, 0x7fc12345, S_ONE, fadd.s fa0, fa1, fa2)
    TEST_S2(30, S_QNAN, NV, S_INF, S_NINF, fadd.s fa0, fa1, fa2)
    TEST_D2(31, D_QNAN, NV, D_INF, 0, fmul.d fa0, fa1, fa2)
    TEST_D2(32, D_QNAN, 0, 0xfff8000000000123, D_ONE, fsub.d fa0, fa1, fa2)
    TEST_D2(33, 0x7fefffffffffffff, OF | NX, 0x7fefffffffffffff, D_TWO, fmul.d fa0, fa1, fa2, rtz)
    TEST_D1(34, 0x3ff6a09e667f3bcd, NX, D_TWO, fsqrt.d fa0, fa1)
    TEST_D2(35, 0x3fd5555555555555, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2)
    # flags accumulate
    SET_TEST(36)
    csrw fflags, zero
    li a1, S_ONE
    fmv.w.x fa1, a1
    fmv.w.x fa2, zero
    fdiv.s fa0, fa1, fa2                 # DZ
    li a1, S_THREE
    fmv.w.x fa2, a1
    fdiv.s fa0, fa1, fa2                 # NX
    frflags a0
    CHECK(a0, DZ | NX)

    # ------------------------------------------------------ rounding modes
    # 1 + 2^-24 is half way between 1 and 1 + 2^-23
    TEST_S2(37, 0x3f800000, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, rne)
    TEST_S2(38, 0x3f800000, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, rtz)
    TEST_S2(39, 0x3f800000, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, rdn)
    TEST_S2(40, 0x3f800001, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, rup)
    TEST_S2(41, 0x3f800001, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, rmm)
    TEST_S2(42, 0xbf800000, NX, S_MONE, 0xb3800000, fadd.s fa0, fa1, fa2, rne)
    TEST_S2(43, 0xbf800000, NX, S_MONE, 0xb3800000, fadd.s fa0, fa1, fa2, rtz)
    TEST_S2(44, 0xbf800001, NX, S_MONE, 0xb3800000, fadd.s fa0, fa1, fa2, rdn)
    TEST_S2(45, 0xbf800000, NX, S_MONE, 0xb3800000, fadd.s fa0, fa1, fa2, rup)
    TEST_S2(46, 0xbf800001, NX, S_MONE, 0xb3800000, fadd.s fa0, fa1, fa2, rmm)
    # 1 + 1.5 * 2^-24 (above half way)
    TEST_S2(47, 0x3f800001, NX, S_ONE, 0x33c00000, fadd.s fa0, fa1, fa2, rne)
    TEST_S2(48, 0x3f800000, NX, S_ONE, 0x33c00000, fadd.s fa0, fa1, fa2, rtz)
    # 1/3 in double
    TEST_D2(49, 0x3fd5555555555555, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2, rne)
    TEST_D2(50, 0x3fd5555555555555, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2, rtz)
    TEST_D2(51, 0x3fd5555555555555, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2, rdn)
    TEST_D2(52, 0x3fd5555555555556, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2, rup)
    TEST_D2(53, 0x3fd5555555555555, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2, rmm)
    TEST_D2(54, 0xbfd5555555555556, NX, D_MONE, D_THREE, fdiv.d fa0, fa1, fa2, rdn)
    TEST_D2(55, 0xbfd5555555555555, NX, D_MONE, D_THREE, fdiv.d fa0, fa1, fa2, rup)
    TEST_D1(56, 0x3ff6a09e667f3bcc, NX, D_TWO, fsqrt.d fa0, fa1, rdn)
    TEST_D1(57, 0x3ff6a09e667f3bcd, NX, D_TWO, fsqrt.d fa0, fa1, rup)
    # fcvt.w.s of +-2.5, +-0.5 in every mode
    TEST_SX(58, 2, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rne)
    TEST_SX(59, 2, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rtz)
    TEST_SX(60, 2, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rdn)
    TEST_SX(61, 3, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rup)
    TEST_SX(62, 3, NX, 0x40200000, 0, fcvt.w.s a0, fa1, rmm)
    TEST_SX(63, -2, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rne)
    TEST_SX(64, -2, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rtz)
    TEST_SX(65, -3, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rdn)
    TEST_SX(66, -2, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rup)
    TEST_SX(67, -3, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, rmm)
    TEST_SX(68, 2, NX, 0x3fc00000, 0, fcvt.w.s a0, fa1, rne)      # 1.5 -> 2 (even)
    TEST_SX(69, 0, NX, 0xbf000000, 0, fcvt.w.s a0, fa1, rne)      # -0.5 -> -0 = 0
    TEST_SX(70, -1, NX, 0xbf000000, 0, fcvt.w.s a0, fa1, rdn)
    TEST_SX(71, -1, NX, 0xbf000000, 0, fcvt.w.s a0, fa1, rmm)
    TEST_SX(72, 0, NX, 0xbf000000, 0, fcvt.w.s a0, fa1, rup)
    TEST_DX(73, 4, NX, 0x400c000000000000, 0, fcvt.l.d a0, fa1, rne)   # 3.5 -> 4
    TEST_DX(74, 3, NX, 0x400c000000000000, 0, fcvt.l.d a0, fa1, rtz)
    TEST_DX(75, -4, NX, 0xc00c000000000000, 0, fcvt.l.d a0, fa1, rmm)
    TEST_DX(76, -3, NX, 0xc00c000000000000, 0, fcvt.l.d a0, fa1, rup)
    # the dynamic rounding mode comes from frm
#define TEST_DYN(n, mode, exp_add, exp_cvt) \
    csrwi frm, mode; TEST_S2(n, exp_add, NX, S_ONE, 0x33800000, fadd.s fa0, fa1, fa2, dyn); \
    TEST_SX(n + 1, exp_cvt, NX, 0xc0200000, 0, fcvt.w.s a0, fa1, dyn)
    TEST_DYN(77, 0, 0x3f800000, -2)
    TEST_DYN(79, 1, 0x3f800000, -2)
    TEST_DYN(81, 2, 0x3f800000, -3)
    TEST_DYN(83, 3, 0x3f800001, -2)
    TEST_DYN(85, 4, 0x3f800001, -3)
    csrwi frm, 3                         # dyn for a double op and an fma
    TEST_D2(87, 0x3fd5555555555556, NX, D_ONE, D_THREE, fdiv.d fa0, fa1, fa2)
    TEST_S3(88, 0x3f800001, NX, S_ONE, S_ONE, 0x33800000, fmadd.s fa0, fa1, fa2, fa3)
    csrwi frm, 0

    # ------------------------------------------------------ invalid rounding modes
    TEST_ILLEGAL(89, .word 0x0020d053)   # fadd.s ft0, ft1, ft2, rm=5
    TEST_ILLEGAL(90, .word 0x0020e053)   # fadd.s ft0, ft1, ft2, rm=6
    TEST_ILLEGAL(91, .word 0xc005d553)   # fcvt.w.s a0, fa1, rm=5
    csrwi frm, 5
    TEST_ILLEGAL(92, fadd.s ft0, ft1, ft2, dyn)
    TEST_ILLEGAL(93, fmadd.d fa0, fa1, fa2, fa3, dyn)
    csrwi frm, 6
    TEST_ILLEGAL(94, fdiv.d fa0, fa1, fa2, dyn)
    csrwi frm, 7
    TEST_ILLEGAL(95, fsqrt.s fa0, fa1, dyn)
    # instructions without a rounding mode still work with an invalid frm
    TEST_S2(96, 0xbf800000, 0, S_ONE, S_MONE, fsgnj.s fa0, fa1, fa2)
    TEST_S2(97, S_MONE, 0, S_ONE, S_MONE, fmin.s fa0, fa1, fa2)
    TEST_SX(98, 1, 0, S_ONE, S_ONE, feq.s a0, fa1, fa2)
    csrwi frm, 0
    TEST_ILLEGAL(99, .word 0x6ac5e543)   # fmadd.d fa0, fa1, fa2, fa3, rm=6

    # ------------------------------------------------------ fcvt saturation
    TEST_SX(100, 0x000000007fffffff, NV, S_INF, 0, fcvt.w.s a0, fa1, rtz)
    TEST_SX(101, 0xffffffff80000000, NV, S_NINF, 0, fcvt.w.s a0, fa1, rtz)
    TEST_SX(102, 0x000000007fffffff, NV, S_QNAN, 0, fcvt.w.s a0, fa1, rtz)
    TEST_SX(103, 0x000000007fffffff, NV, 0xffc00000, 0, fcvt.w.s a0, fa1, rtz)  # -NaN too
    TEST_SX(104, 0x000000007fffffff, NV, 0x4f32d05e, 0, fcvt.w.s a0, fa1, rtz)  # 3e9
    TEST_SX(105, 0xffffffff80000000, 0, 0xcf000000, 0, fcvt.w.s a0, fa1, rtz)   # -2^31 exactly
    TEST_SX(106, 0xffffffffffffffff, NV, S_INF, 0, fcvt.wu.s a0, fa1, rtz)      # 2^32-1, sign extended
    TEST_SX(107, 0xffffffffffffffff, NV, S_QNAN, 0, fcvt.wu.s a0, fa1, rtz)
    TEST_SX(108, 0, NV, S_MONE, 0, fcvt.wu.s a0, fa1, rtz)
    TEST_SX(109, 0, NV, S_NINF, 0, fcvt.wu.s a0, fa1, rtz)
    TEST_SX(110, 0, NX, 0xbf000000, 0, fcvt.wu.s a0, fa1, rtz)                 # -0.5 -> 0: inexact only
    TEST_SX(111, 0xffffffff80000000, 0, 0x4f000000, 0, fcvt.wu.s a0, fa1, rtz) # 2^31: sign extended
    TEST_DX(112, 0x7fffffffffffffff, NV, 0x43e0000000000000, 0, fcvt.l.d a0, fa1, rtz)  # 2^63
    TEST_DX(113, 0x8000000000000000, 0, 0xc3e0000000000000, 0, fcvt.l.d a0, fa1, rtz)  # -2^63
    TEST_DX(114, 0x8000000000000000, NV, D_NINF, 0, fcvt.l.d a0, fa1, rtz)
    TEST_DX(115, 0x7fffffffffffffff, NV, D_QNAN, 0, fcvt.l.d a0, fa1, rtz)
    TEST_DX(116, 0xffffffffffffffff, NV, D_SNAN, 0, fcvt.lu.d a0, fa1, rtz)
    TEST_DX(117, 0, NV, D_MONE, 0, fcvt.lu.d a0, fa1, rtz)
    TEST_DX(118, 0xffffffffffffffff, NV, 0x43f0000000000000, 0, fcvt.lu.d a0, fa1, rtz)  # 2^64
    TEST_DX(119, 0xfffffffffffff800, 0, 0x43efffffffffffff, 0, fcvt.lu.d a0, fa1, rtz)
    TEST_DX(120, 0xffffffffffffffff, 0, 0x41efffffffe00000, 0, fcvt.wu.d a0, fa1, rtz)  # 2^32-1
    TEST_DX(121, 0x000000007fffffff, NV, 0x41e0000000000000, 0, fcvt.w.d a0, fa1, rtz)  # 2^31
    TEST_DX(122, 0xffffffff80000000, NX, 0xc1e0000000100000, 0, fcvt.w.d a0, fa1, rtz)  # -2^31 - 0.5
    TEST_SX(123, 0x7fffffffffffffff, NV, S_INF, 0, fcvt.l.s a0, fa1, rtz)
    TEST_SX(124, 0, NV, S_NINF, 0, fcvt.lu.s a0, fa1, rtz)

    # ------------------------------------------------------ fmin/fmax
    TEST_S2(125, S_NZERO, 0, 0, S_NZERO, fmin.s fa0, fa1, fa2)
    TEST_S2(126, S_NZERO, 0, S_NZERO, 0, fmin.s fa0, fa1, fa2)
    TEST_S2(127, 0, 0, 0, S_NZERO, fmax.s fa0, fa1, fa2)
    TEST_S2(128, 0, 0, S_NZERO, 0, fmax.s fa0, fa1, fa2)
    TEST_S2(129, S_ONE, 0, S_QNAN, S_ONE, fmin.s fa0, fa1, fa2)
    TEST_S2(130, S_ONE, NV, S_SNAN, S_ONE, fmin.s fa0, fa1, fa2)
    TEST_S2(131, S_ONE, NV, S_ONE, S_SNAN, fmax.s fa0, fa1, fa2)
    TEST_S2(132, S_QNAN, 0, 0x7fc00abc, 0xffc00000, fmax.s fa0, fa1, fa2)   # both NaN: canonical
    TEST_S2(133, S_QNAN, NV, S_SNAN, S_QNAN, fmin.s fa0, fa1, fa2)
    TEST_S2(134, S_MONE, 0, S_MONE, S_INF, fmin.s fa0, fa1, fa2)
    TEST_S2(135, S_INF, 0, S_MONE, S_INF, fmax.s fa0, fa1, fa2)
    TEST_D2(136, D_NZERO, 0, 0, D_NZERO, fmin.d fa0, fa1, fa2)
    TEST_D2(137, 0, 0, D_NZERO, 0, fmax.d fa0, fa1, fa2)
    TEST_D2(138, D_MONE, NV, D_SNAN, D_MONE, fmax.d fa0, fa1, fa2)
    TEST_D2(139, D_QNAN, 0, D_QNAN, 0x7ff8000000000001, fmin.d fa0, fa1, fa2)
    TEST_D2(140, D_ONE, 0, D_ONE, D_QNAN, fmax.d fa0, fa1, fa2)

    # ------------------------------------------------------ fclass
#define TEST_FCLASS_S(n, v, cls) TEST_SX(n, cls, 0, v, 0, fclass.s a0, fa1)
#define TEST_FCLASS_D(n, v, cls) TEST_DX(n, cls, 0, v, 0, fclass.d a0, fa1)
    TEST_FCLASS_S(141, S_NINF, 0x001)
    TEST_FCLASS_S(142, S_MONE, 0x002)
    TEST_FCLASS_S(143, 0x807fffff, 0x004)
    TEST_FCLASS_S(144, S_NZERO, 0x008)
    TEST_FCLASS_S(145, 0x00000000, 0x010)
    TEST_FCLASS_S(146, 0x00000001, 0x020)
    TEST_FCLASS_S(147, S_MAX, 0x040)
    TEST_FCLASS_S(148, S_INF, 0x080)
    TEST_FCLASS_S(149, 0x7fbfffff, 0x100)
    TEST_FCLASS_S(150, 0xffc00001, 0x200)
    TEST_FCLASS_D(151, D_NINF, 0x001)
    TEST_FCLASS_D(152, 0xc000000000000000, 0x002)
    TEST_FCLASS_D(153, 0x8000000000000001, 0x004)
    TEST_FCLASS_D(154, D_NZERO, 0x008)
    TEST_FCLASS_D(155, 0x0000000000000000, 0x010)
    TEST_FCLASS_D(156, 0x000fffffffffffff, 0x020)
    TEST_FCLASS_D(157, 0x0010000000000000, 0x040)
    TEST_FCLASS_D(158, D_INF, 0x080)
    TEST_FCLASS_D(159, D_SNAN, 0x100)
    TEST_FCLASS_D(160, D_QNAN, 0x200)

    # ------------------------------------------------------ arithmetic, misc
    TEST_D3(161, 0x401c000000000000, 0, D_TWO, D_THREE, D_ONE, fmadd.d fa0, fa1, fa2, fa3)    # 7
    TEST_D3(162, 0x4014000000000000, 0, D_TWO, D_THREE, D_ONE, fmsub.d fa0, fa1, fa2, fa3)    # 5
    TEST_D3(163, 0xc01c000000000000, 0, D_TWO, D_THREE, D_ONE, fnmadd.d fa0, fa1, fa2, fa3)   # -7
    TEST_D3(164, 0xc014000000000000, 0, D_TWO, D_THREE, D_ONE, fnmsub.d fa0, fa1, fa2, fa3)   # -5
    TEST_S3(165, 0x40e00000, 0, S_TWO, S_THREE, S_ONE, fmadd.s fa0, fa1, fa2, fa3)
    TEST_S3(166, 0xc0a00000, 0, S_TWO, S_THREE, S_ONE, fnmsub.s fa0, fa1, fa2, fa3)
    TEST_S3(167, S_QNAN, NV, S_INF, 0, S_QNAN, fmadd.s fa0, fa1, fa2, fa3)  # inf*0 + qNaN: invalid
    # fused: (1 + 2^-23) * (1 - 2^-23) - 1 = -2^-46 exactly (not 0)
    TEST_S3(168, 0xa8800000, 0, 0x3f800001, 0x3f7ffffe, S_ONE, fmsub.s fa0, fa1, fa2, fa3)
    TEST_S2(169, 0xbf800000, 0, S_ONE, S_MONE, fsgnj.s fa0, fa1, fa2)
    TEST_S2(170, 0x3f800000, 0, S_ONE, S_MONE, fsgnjn.s fa0, fa1, fa2)
    TEST_S2(171, 0x3f800000, 0, S_MONE, S_MONE, fsgnjx.s fa0, fa1, fa2)
    TEST_D2(172, 0xfff0000000000abc, 0, 0x7ff0000000000abc, D_MONE, fsgnj.d fa0, fa1, fa2)  # no NaN canonicalisation
    TEST_D2(173, 0x7ff8000000000000, 0, D_QNAN, D_QNAN, fsgnjx.d fa0, fa1, fa2)
    TEST_SX(174, 1, 0, 0, S_NZERO, feq.s a0, fa1, fa2)
    TEST_SX(175, 0, 0, S_QNAN, S_ONE, feq.s a0, fa1, fa2)       # quiet compare
    TEST_SX(176, 0, NV, S_SNAN, S_ONE, feq.s a0, fa1, fa2)
    TEST_SX(177, 0, NV, S_QNAN, S_ONE, flt.s a0, fa1, fa2)      # signalling compare
    TEST_SX(178, 0, NV, S_ONE, S_QNAN, fle.s a0, fa1, fa2)
    TEST_SX(179, 0, 0, S_NZERO, 0, flt.s a0, fa1, fa2)
    TEST_SX(180, 1, 0, S_NZERO, 0, fle.s a0, fa1, fa2)
    TEST_DX(181, 1, 0, D_MONE, D_ONE, flt.d a0, fa1, fa2)
    TEST_DX(182, 0, NV, D_SNAN, D_SNAN, feq.d a0, fa1, fa2)
    TEST_XF(183, BOX(0xbf800000), 0, -1, fcvt.s.w fa0, a1)
    TEST_XF(184, BOX(0x40400000), 0, 0x1234567800000003, fcvt.s.w fa0, a1)  # low 32 bits
    TEST_XF(185, BOX(0x4f800000), NX, 0xffffffff, fcvt.s.wu fa0, a1)       # rounds to 2^32
    TEST_XF(186, BOX(0x5f000000), NX, 0x7fffffffffffffff, fcvt.s.l fa0, a1)
    TEST_XF(187, 0x43f0000000000000, NX, -1, fcvt.d.lu fa0, a1)
    TEST_XF(188, 0x41e0000000000000, 0, 0xffffffff80000000, fcvt.d.wu fa0, a1)
    TEST_XF(189, 0xc1e0000000000000, 0, 0x0000000080000000, fcvt.d.w fa0, a1)
    TEST_D1(190, BOX(0x3eaaaaab), NX, 0x3fd5555555555555, fcvt.s.d fa0, fa1)
    TEST_D1(191, BOX(S_QNAN), 0, 0x7ff8000000000abc, fcvt.s.d fa0, fa1)     # canonical NaN
    TEST_D1(192, BOX(S_INF), OF | NX, 0x47f0000000000000, fcvt.s.d fa0, fa1)
    TEST_CASE(193, a0, D_NZERO, li a1, S_NZERO; fmv.w.x fa1, a1; fcvt.d.s fa0, fa1; fmv.x.d a0, fa0)
    TEST_CASE(194, a0, 0x3ff8000000000000, li a1, 0x3fc00000; fmv.w.x fa1, a1; fcvt.d.s fa0, fa1; fmv.x.d a0, fa0)
    TEST_CASE(195, a0, D_QNAN, li a1, S_SNAN; fmv.w.x fa1, a1; csrw fflags, zero; fcvt.d.s fa0, fa1; fmv.x.d a0, fa0)
    TEST_CASE(196, a0, NV, frflags a0)

    # ------------------------------------------------------ FS and SD
    # FS = Off: every FP instruction and FP CSR access is illegal
    li t0, MSTATUS_FS
    csrc mstatus, t0
    TEST_ILLEGAL(197, fadd.s fa0, fa1, fa2)
    TEST_ILLEGAL(198, flw fa0, 0(s0))
    TEST_ILLEGAL(199, fsd fa0, 0(s0))
    TEST_ILLEGAL(200, fmv.x.d a0, fa0)
    TEST_ILLEGAL(201, fmv.d.x fa0, a0)
    TEST_ILLEGAL(202, csrr a0, fcsr)
    TEST_ILLEGAL(203, csrr a0, frm)
    TEST_ILLEGAL(204, csrwi fflags, 1)
    TEST_ILLEGAL(205, fcvt.d.w fa0, a0)
    TEST_ILLEGAL(206, fmadd.d fa0, fa1, fa2, fa3)
    # Off -> Initial: a write to an FP register makes FS Dirty and SD = 1
    SET_TEST(207)
    li t0, MSTATUS_FS_INITIAL
    csrs mstatus, t0
    csrr a0, mstatus
    bltz a0, fail                        # SD = 0 while FS = Initial
    li t0, 1
    fcvt.d.w fa0, t0
    csrr a0, mstatus
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK(a1, 3)
    bgez a0, fail                        # SD = 1
    # Clean: SD = 0; an FP load makes it Dirty
    SET_TEST(208)
    li t0, MSTATUS_FS
    csrc mstatus, t0
    li t0, MSTATUS_FS_CLEAN
    csrs mstatus, t0
    csrr a0, mstatus
    bltz a0, fail
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK(a1, 2)
    fld fa0, 8(s0)
    csrr a0, mstatus
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK(a1, 3)
    bgez a0, fail
    # Clean: a write to fcsr makes it Dirty
    SET_TEST(209)
    li t0, MSTATUS_FS
    csrc mstatus, t0
    li t0, MSTATUS_FS_CLEAN
    csrs mstatus, t0
    csrwi fflags, 1
    csrr a0, mstatus
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK(a1, 3)
    bgez a0, fail
    # sstatus shows FS and SD too
    SET_TEST(210)
    csrr a0, sstatus
    srli a1, a0, 13
    andi a1, a1, 3
    CHECK(a1, 3)
    bgez a0, fail
    li t0, MSTATUS_FS
    csrc sstatus, t0                     # FS = Off through sstatus
    csrr a0, mstatus
    and a0, a0, t0
    bnez a0, fail
    TEST_ILLEGAL(211, fadd.d fa0, fa1, fa2)
    li t0, MSTATUS_FS_INITIAL
    csrs mstatus, t0
    # the register contents survived FS = Off
    SET_TEST(212)
    fmv.x.d a0, fa0
    CHECK(a0, 0x7ff0000000000abc)

    TEST_PASS

    .data
    .align 4
fdata:
    .word 0x3fc00000, 0x7f800123         # 0: 1.5f, a signalling NaN
    .dword 0x7ff0000000000abc            # 8: a double signalling NaN
    .dword 0, 0, 0                       # 16..39
TEST_END
