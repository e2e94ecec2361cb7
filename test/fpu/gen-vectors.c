/*
 * gen-vectors.c — produces test/fpu/vectors.txt, the reference vectors for
 * src/cpu/fpu.ts.  Built for riscv64 and run under qemu-user (see
 * gen-vectors.sh): the RISC-V F/D hardware model of the emulator is the
 * oracle, this program only chooses operands and records what it did.
 *
 * Each case executes ONE real instruction word.  The word is patched into a
 * small stub copied to an executable buffer, so every encoding (every static
 * rm, reserved rm values, odd funct3 values) can be exercised without writing
 * one asm statement per combination.  The stub's register convention:
 *   f1, f2, f3  = rs1, rs2, rs3 (floating-point sources)
 *   x5  (t0)    = rs1 for integer sources (FCVT.fmt.int, FMV.fmt.X)
 *   f4          = rd for floating-point results
 *   x6  (t1)    = rd for integer results
 * so the test can tell from the rd field (4 or 6) which register file holds
 * the result.  fflags is cleared right before the instruction; frm is set to
 * the recorded value.  An instruction that traps (SIGILL) is recorded as "ill".
 *
 * Output, one case per line, all hex:
 *   INSN FRM OP1 [OP2 [OP3]] = RESULT FLAGS
 *   INSN FRM OP1 [OP2 [OP3]] = ill
 * OPn are the full 64-bit source registers (f1/f2/f3; OP1 is also x5), RESULT
 * the full 64-bit destination register (so NaN boxing is visible).
 *
 * Usage: gen-vectors [SCALE [SEED]]  (SCALE multiplies the random case counts;
 * the committed file uses SCALE=1 and the default seed.)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef uint64_t u64;
typedef uint32_t u32;

/* ------------------------------------------------------------------ stub */

struct state {
  u64 f1, f2, f3, x5, frm, f4, x6, fflags;
};

__asm__(
    ".text\n"
    ".option push\n"
    ".option norvc\n"
    ".globl stub_begin, stub_insn, stub_end\n"
    "stub_begin:\n"
    "  fld f1, 0(a0)\n"
    "  fld f2, 8(a0)\n"
    "  fld f3, 16(a0)\n"
    "  ld t0, 24(a0)\n"
    "  ld t2, 32(a0)\n"
    "  csrw frm, t2\n"
    "  fld f4, 40(a0)\n"
    "  ld t1, 48(a0)\n"
    "  csrwi fflags, 0\n"
    "stub_insn:\n"
    "  nop\n"
    "  fsd f4, 40(a0)\n"
    "  sd t1, 48(a0)\n"
    "  csrr t2, fflags\n"
    "  sd t2, 56(a0)\n"
    "  ret\n"
    "stub_end:\n"
    ".option pop\n");

extern char stub_begin[], stub_insn[], stub_end[];
static unsigned char *code;
static size_t insn_off;
static sigjmp_buf trap_env;

static void on_sigill(int sig) {
  (void)sig;
  siglongjmp(trap_env, 1);
}

static void stub_init(void) {
  size_t n = (size_t)(stub_end - stub_begin);
  code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (code == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  memcpy(code, stub_begin, n);
  insn_off = (size_t)(stub_insn - stub_begin);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigill;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGILL, &sa, NULL);
}

/* Returns 0 if the instruction executed, 1 if it trapped. */
static int run(u32 insn, struct state *st) {
  static u32 last = 0;
  if (insn != last) {
    memcpy(code + insn_off, &insn, 4);
    __builtin___clear_cache((char *)code, (char *)code + 4096);
    last = insn;
  }
  st->f4 = 0x5a5a5a5a5a5a5a5aULL; /* garbage: the op must overwrite it */
  st->x6 = 0xa5a5a5a5a5a5a5a5ULL;
  if (sigsetjmp(trap_env, 1)) return 1;
  ((void (*)(struct state *))(void *)code)(st);
  return 0;
}

/* ------------------------------------------------------------ encodings */

enum { RD_F = 4, RD_X = 6, RS1_F = 1, RS1_X = 5, RS2_F = 2, RS3_F = 3 };
enum { RNE, RTZ, RDN, RUP, RMM, RM5, RM6, DYN };

static u32 r_type(u32 funct7, u32 rs2, u32 rs1, u32 funct3, u32 rd) {
  return (funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) |
         (rd << 7) | 0x53;
}
static u32 r4_type(u32 opcode, u32 fmt, u32 rm) {
  return ((u32)RS3_F << 27) | (fmt << 25) | ((u32)RS2_F << 20) |
         ((u32)RS1_F << 15) | (rm << 12) | ((u32)RD_F << 7) | opcode;
}

/* ----------------------------------------------------------------- output */

static FILE *out;
static long ncases;

static void emit(u32 insn, u32 frm, int nops, u64 a, u64 b, u64 c) {
  struct state st = {a, b, c, a, frm, 0, 0, 0};
  int trapped = run(insn, &st);
  u32 rd = (insn >> 7) & 31;
  fprintf(out, "%08x %x %llx", insn, frm, (unsigned long long)a);
  if (nops > 1) fprintf(out, " %llx", (unsigned long long)b);
  if (nops > 2) fprintf(out, " %llx", (unsigned long long)c);
  if (trapped)
    fprintf(out, " = ill\n");
  else
    fprintf(out, " = %llx %x\n",
            (unsigned long long)(rd == RD_X ? st.x6 : st.f4),
            (unsigned)(st.fflags & 31));
  ncases++;
}

/* ------------------------------------------------------------- operands */

static u64 rng = 0x9e3779b97f4a7c15ULL;
static u64 rnd(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dULL;
}
static u32 rndn(u32 n) { return (u32)((rnd() >> 11) % n); }

#define BOX(x) (0xffffffff00000000ULL | (u32)(x))

static const u64 d_special[] = {
    0x0000000000000000ULL, 0x8000000000000000ULL, /* ±0 */
    0x0000000000000001ULL, 0x8000000000000001ULL, /* ±min subnormal */
    0x000fffffffffffffULL, 0x800fffffffffffffULL, /* ±max subnormal */
    0x0010000000000000ULL, 0x8010000000000000ULL, /* ±min normal */
    0x3ff0000000000000ULL, 0xbff0000000000000ULL, /* ±1 */
    0x7fefffffffffffffULL, 0xffefffffffffffffULL, /* ±max */
    0x7ff0000000000000ULL, 0xfff0000000000000ULL, /* ±inf */
    0x7ff8000000000000ULL, 0xfff8000000000123ULL, /* qNaN */
    0x7ff0000000000001ULL, 0xfff4000000000000ULL, /* sNaN */
    0x3ff8000000000000ULL, 0xbfe0000000000000ULL, /* 1.5, -0.5 */
    0x4000000000000000ULL, 0x3ff0000000000001ULL, /* 2, 1+ulp */
    0x3fefffffffffffffULL, 0x3fd5555555555555ULL, /* 1-ulp/2, 1/3 */
    0x3fb999999999999aULL, 0xc008000000000000ULL, /* 0.1, -3 */
    0x7fe0000000000000ULL, 0x0008000000000000ULL, /* 2^1023, 2^-1023 */
    0x3ca0000000000000ULL, 0xbcb0000000000000ULL, /* 2^-53, -2^-52 */
};
#define N_D_SPECIAL (sizeof d_special / sizeof d_special[0])
static const u32 s_special[] = {
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x807fffff,
    0x00800000, 0x80800000, 0x3f800000, 0xbf800000, 0x7f7fffff, 0xff7fffff,
    0x7f800000, 0xff800000, 0x7fc00000, 0xffc00123, 0x7f800001, 0xffa00000,
    0x3fc00000, 0xbf000000, 0x40000000, 0x3f800001, 0x3f7fffff, 0x3eaaaaab,
    0x3dcccccd, 0xc0400000, 0x7f000000, 0x00400000, 0x33800000, 0xb4000000,
};
#define N_S_SPECIAL (sizeof s_special / sizeof s_special[0])
/* The "core" specials used for the all-pairs tables (first entries). */
#define CORE 18

static u64 mk_d(u64 sign, u64 exp, u64 mant) {
  return (sign << 63) | ((exp & 0x7ff) << 52) | (mant & 0xfffffffffffffULL);
}
static u32 mk_s(u32 sign, u32 exp, u32 mant) {
  return (sign << 31) | ((exp & 0xff) << 23) | (mant & 0x7fffff);
}

/* A random operand of a varied kind.  is_d selects double or single. */
static u64 rand_val(int is_d) {
  u32 kind = rndn(16);
  u64 sign = rnd() & 1;
  if (is_d) {
    switch (kind) {
      case 0: return d_special[rndn(N_D_SPECIAL)];
      case 1: case 2: return rnd(); /* raw bits */
      case 3: case 4: case 5: case 6: /* moderate magnitude */
        return mk_d(sign, 1023 + rndn(61) - 30, rnd());
      case 7: case 8: { /* short mantissa: frequent exact results and ties */
        u32 k = rndn(30);
        u64 m = k ? (rnd() >> (64 - k)) << (52 - k) : 0;
        return mk_d(sign, 1023 + rndn(41) - 20, m);
      }
      case 9: /* subnormal or just above */
        return mk_d(sign, rndn(3), rnd() >> rndn(52));
      case 10: /* huge */
        return mk_d(sign, 2046 - rndn(3), rnd());
      case 11: { /* mantissa all ones / nearly (tie and carry patterns) */
        u64 m = 0xfffffffffffffULL ^ (rnd() & 7);
        return mk_d(sign, 1023 + rndn(41) - 20, m);
      }
      case 12: /* a NaN with random payload */
        return mk_d(sign, 2047, rnd() | (rndn(2) ? 0 : 1));
      default: /* any exponent */
        return mk_d(sign, rndn(2047), rnd());
    }
  } else {
    u32 r = (u32)rnd();
    u32 v;
    switch (kind) {
      case 0: v = s_special[rndn(N_S_SPECIAL)]; break;
      case 1: case 2: v = r; break;
      case 3: case 4: case 5: case 6: v = mk_s(sign, 127 + rndn(41) - 20, r); break;
      case 7: case 8: {
        u32 k = rndn(14);
        u32 m = k ? (r >> (32 - k)) << (23 - k) : 0;
        v = mk_s(sign, 127 + rndn(31) - 15, m);
        break;
      }
      case 9: v = mk_s(sign, rndn(3), r >> rndn(23)); break;
      case 10: v = mk_s(sign, 254 - rndn(3), r); break;
      case 11: v = mk_s(sign, 127 + rndn(31) - 15, 0x7fffff ^ (r & 7)); break;
      case 12: v = mk_s(sign, 255, r | 1); break;
      default: v = mk_s(sign, rndn(255), r); break;
    }
    /* A few improperly NaN-boxed operands. */
    if (rndn(40) == 0) return (rnd() & 0xffffffff00000000ULL) | v;
    return BOX(v);
  }
}

/* exponent field of a value (raw) */
static int expo(u64 v, int is_d) {
  return is_d ? (int)((v >> 52) & 0x7ff) : (int)((v >> 23) & 0xff);
}
static u64 with_exp(u64 v, int is_d, int e) {
  if (is_d) {
    if (e < 1) e = 1;
    if (e > 2046) e = 2046;
    return (v & ~(0x7ffULL << 52)) | ((u64)e << 52);
  }
  if (e < 1) e = 1;
  if (e > 254) e = 254;
  return BOX(((u32)v & ~(0xffu << 23)) | ((u32)e << 23));
}
static u64 flip_low(u64 v, int is_d) { /* nudge by a few ulps */
  u64 d = rnd() & 3;
  if (is_d) return (rnd() & 1) ? v + d : v - d;
  return BOX((u32)v + (u32)((rnd() & 1) ? d : -d));
}
static u64 neg(u64 v, int is_d) {
  return is_d ? v ^ (1ULL << 63) : BOX((u32)v ^ 0x80000000u);
}
static u64 moderate(int is_d) {
  return is_d ? mk_d(rnd() & 1, 1023 + rndn(21) - 10, rnd())
              : BOX(mk_s((u32)rnd() & 1, 127 + rndn(21) - 10, (u32)rnd()));
}

/* Pair generators targeting the interesting parts of each operation. */
enum { OP_ADD, OP_MUL, OP_DIV, OP_OTHER };
static void rand_pair(int op, int is_d, u64 *a, u64 *b) {
  int bias = is_d ? 1023 : 127, emax = is_d ? 2046 : 254;
  int p = is_d ? 53 : 24;
  u32 k = rndn(8);
  *a = rand_val(is_d);
  *b = rand_val(is_d);
  if (k < 3) return;
  *a = moderate(is_d);
  *b = moderate(is_d);
  switch (op) {
    case OP_ADD: /* close exponents: cancellation, ties, carries */
      *b = with_exp(*b, is_d, expo(*a, is_d) - (int)rndn(p + 3));
      if (k == 3) *b = flip_low(neg(*a, is_d), is_d);
      if (k == 4) { /* huge + huge: overflow */
        *a = with_exp(*a, is_d, emax - (int)rndn(2));
        *b = with_exp(*b, is_d, emax - (int)rndn(2));
      }
      if (k == 5) {
        /* b = M * 2^(ea-p) with M odd of j+1 bits: the last bit of b is worth
         * half an ulp of a, so a + b is often exactly halfway. */
        int j = 1 + (int)rndn(4), ea = expo(*a, is_d);
        u64 odd = ((rnd() & ((1u << (j - 1)) - 1)) << 1) | 1; /* M - 2^j */
        if (ea - p + j < 1) ea = p;
        *b = is_d ? mk_d(rnd() & 1, (u64)(ea - p + j), odd << (52 - j))
                  : BOX(mk_s((u32)rnd() & 1, (u32)(ea - p + j), (u32)odd << (23 - j)));
      }
      break;
    case OP_MUL: { /* product exponent near the overflow / underflow edges */
      int target = (k == 3 || k == 4) ? emax + bias - (int)rndn(3)
                                      : bias - (int)rndn(p + 4) + 1;
      int ea = bias + (int)rndn(200) - 100;
      if (k == 7) { /* normal range, (p+1)/2-bit mantissas: frequent ties */
        int h = (p + 1) / 2 + (int)rndn(2);
        target = 2 * bias;
        if (is_d) {
          *a = mk_d(rnd() & 1, 0, (rnd() >> (64 - h)) << (52 - h));
          *b = mk_d(rnd() & 1, 0, (rnd() >> (64 - h)) << (52 - h));
        } else {
          *a = BOX(mk_s((u32)rnd() & 1, 0, ((u32)rnd() >> (32 - h)) << (23 - h)));
          *b = BOX(mk_s((u32)rnd() & 1, 0, ((u32)rnd() >> (32 - h)) << (23 - h)));
        }
      }
      *a = with_exp(*a, is_d, ea);
      *b = with_exp(*b, is_d, target - ea);
      break;
    }
    case OP_DIV: {
      int target = (k == 3 || k == 4) ? emax - (int)rndn(3)
                                      : 1 - (int)rndn(p + 4) + 1;
      int eb = bias + (int)rndn(200) - 100;
      if (k == 7) break;
      *b = with_exp(*b, is_d, eb);
      *a = with_exp(*a, is_d, target + eb - bias);
      break;
    }
    default:
      if (k == 3) *b = *a;
      if (k == 4) *b = flip_low(*a, is_d);
      break;
  }
}

/* ------------------------------------------------------------ generators */

static int scale = 1;

static u32 other_frm(u32 rm) { return (rm + 2) % 5; }

/* Binary op with a rounding mode: all-pairs of core specials in RNE (and in
 * RDN for the sign-of-zero rules), then random pairs in every static mode,
 * then a few in dynamic mode. */
static void gen_binary_rm(u32 funct7, int is_d, int op, int nrand) {
  for (u32 i = 0; i < CORE; i++)
    for (u32 j = 0; j < CORE; j++) {
      u64 a = is_d ? d_special[i] : BOX(s_special[i]);
      u64 b = is_d ? d_special[j] : BOX(s_special[j]);
      emit(r_type(funct7, RS2_F, RS1_F, RNE, RD_F), 0, 2, a, b, 0);
      if (i < 2 || j < 2 || i == j + 1 || j == i + 1)
        emit(r_type(funct7, RS2_F, RS1_F, RDN, RD_F), 0, 2, a, b, 0);
    }
  for (int n = 0; n < nrand * scale; n++) {
    u64 a, b;
    rand_pair(op, is_d, &a, &b);
    for (u32 rm = 0; rm < 5; rm++)
      emit(r_type(funct7, RS2_F, RS1_F, rm, RD_F), other_frm(rm), 2, a, b, 0);
    if (n % 8 == 0)
      emit(r_type(funct7, RS2_F, RS1_F, DYN, RD_F), rndn(5), 2, a, b, 0);
  }
}

static void gen_fma(u32 opcode, int is_d, int nrand) {
  u32 fmt = is_d ? 1 : 0;
  /* specials for the all-triples table: 0, -0, min subnormal, 1, -1, max,
   * -inf, inf, qNaN, sNaN */
  static const int core[] = {0, 1, 2, 8, 9, 10, 13, 12, 14, 16};
  const int ncore = (int)(sizeof core / sizeof core[0]);
  for (int i = 0; i < ncore; i++)
    for (int j = 0; j < ncore; j++)
      for (int k = 0; k < ncore; k++) {
        u64 a = is_d ? d_special[core[i]] : BOX(s_special[core[i]]);
        u64 b = is_d ? d_special[core[j]] : BOX(s_special[core[j]]);
        u64 c = is_d ? d_special[core[k]] : BOX(s_special[core[k]]);
        emit(r4_type(opcode, fmt, RNE), 0, 3, a, b, c);
      }
  /* a finite product beyond the format's range plus an infinite or large
   * addend; a product below the subnormal range plus a tiny addend */
  {
    u64 two = is_d ? 0x4000000000000000ULL : BOX(0x40000000);
    u64 big = is_d ? d_special[10] : BOX(s_special[10]);
    u64 tiny = is_d ? d_special[2] : BOX(s_special[2]);
    u64 half = is_d ? 0x3fe0000000000000ULL : BOX(0x3f000000);
    u64 adds[] = {is_d ? d_special[12] : BOX(s_special[12]),
                  is_d ? d_special[13] : BOX(s_special[13]), big, neg(big, is_d),
                  tiny, neg(tiny, is_d), 0, two};
    for (unsigned k = 0; k < sizeof adds / sizeof adds[0]; k++)
      for (u32 rm = 0; rm < 5; rm++) {
        emit(r4_type(opcode, fmt, rm), 0, 3, big, two, adds[k]);
        emit(r4_type(opcode, fmt, rm), 0, 3, tiny, half, adds[k]);
        emit(r4_type(opcode, fmt, rm), 0, 3, tiny, neg(tiny, is_d), adds[k]);
      }
  }
  /* zero results: sign rules in every mode */
  for (int i = 0; i < 4; i++)
    for (u32 rm = 0; rm < 5; rm++) {
      u64 a = is_d ? d_special[8 + (i & 1)] : BOX(s_special[8 + (i & 1)]);
      u64 c = is_d ? d_special[8 + (i >> 1)] : BOX(s_special[8 + (i >> 1)]);
      u64 b = is_d ? d_special[8] : BOX(s_special[8]);
      emit(r4_type(opcode, fmt, rm), 0, 3, a, b, c);
      emit(r4_type(opcode, fmt, rm), 0, 3, is_d ? 0 : BOX(0), b,
           is_d ? d_special[i & 1] : BOX(s_special[i & 1]));
    }
  for (int n = 0; n < nrand * scale; n++) {
    u64 a, b, c;
    u32 kind = rndn(8);
    rand_pair(kind < 2 ? OP_OTHER : OP_MUL, is_d, &a, &b);
    c = rand_val(is_d);
    if (kind >= 6) {
      /* Short mantissas: the exact product has p+1 bits about half the time,
       * so it lies exactly halfway between two neighbours; a small addend
       * aligned with its last bits moves it onto, next to, or across ties. */
      int p = is_d ? 53 : 24, h = (p + 1) / 2 + (int)rndn(2);
      if (is_d) {
        a = mk_d(rnd() & 1, 1023 + rndn(9) - 4, (rnd() >> (64 - h)) << (52 - h));
        b = mk_d(rnd() & 1, 1023 + rndn(9) - 4, (rnd() >> (64 - h)) << (52 - h));
        c = kind == 6 ? 0 : mk_d(rnd() & 1, 1023 - 52 - rndn(6), rnd() & 0xff);
      } else {
        a = BOX(mk_s((u32)rnd() & 1, 127 + rndn(9) - 4, ((u32)rnd() >> (32 - h)) << (23 - h)));
        b = BOX(mk_s((u32)rnd() & 1, 127 + rndn(9) - 4, ((u32)rnd() >> (32 - h)) << (23 - h)));
        c = kind == 6 ? BOX(0) : BOX(mk_s((u32)rnd() & 1, 127 - 23 - rndn(6), (u32)rnd() & 0xff));
      }
    }
    if (kind >= 2 && kind < 6) {
      /* c close to -(a*b): cancellation, where a single rounding matters */
      if (is_d) {
        union { double d; u64 u; } x, y, z;
        x.u = a; y.u = b; z.d = -(x.d * y.d);
        c = z.u;
        if (kind == 3) c = flip_low(c, 1);
        if (kind == 4) c = with_exp(rand_val(1), 1, expo(c, 1) - (int)rndn(60));
        if (kind == 5) c = with_exp(c ^ (rnd() & 0xfffffffffULL), 1, expo(c, 1) - (int)rndn(3));
      } else {
        union { float f; u32 u; } x, y, z;
        x.u = (u32)a; y.u = (u32)b; z.f = -(x.f * y.f);
        c = BOX(z.u);
        if (kind == 3) c = flip_low(c, 0);
        if (kind == 4) c = with_exp(rand_val(0), 0, expo(c, 0) - (int)rndn(30));
        if (kind == 5) c = with_exp(BOX(z.u ^ ((u32)rnd() & 0xff)), 0, expo(c, 0) - (int)rndn(3));
      }
    }
    for (u32 rm = 0; rm < 5; rm++)
      emit(r4_type(opcode, fmt, rm), other_frm(rm), 3, a, b, c);
    if (n % 8 == 0) emit(r4_type(opcode, fmt, DYN), rndn(5), 3, a, b, c);
  }
}

static void gen_unary_rm(u32 funct7, u32 rs2, int is_d_src, u32 rd, int nrand,
                         const u64 *edges, int nedges) {
  for (int i = 0; i < nedges; i++)
    for (u32 rm = 0; rm < 5; rm++)
      emit(r_type(funct7, rs2, RS1_F, rm, rd), other_frm(rm), 1, edges[i], 0, 0);
  for (int n = 0; n < nrand * scale; n++) {
    u64 a = rand_val(is_d_src);
    if (n % 3 == 0) a = moderate(is_d_src);
    for (u32 rm = 0; rm < 5; rm++)
      emit(r_type(funct7, rs2, RS1_F, rm, rd), other_frm(rm), 1, a, 0, 0);
    if (n % 8 == 0) emit(r_type(funct7, rs2, RS1_F, DYN, rd), rndn(5), 1, a, 0, 0);
  }
}

/* Binary op without rounding mode (funct3 selects the operation). */
static void gen_binary_norm(u32 funct7, u32 funct3, u32 rd, int is_d, int nrand) {
  for (u32 i = 0; i < N_D_SPECIAL && i < N_S_SPECIAL; i++)
    for (u32 j = 0; j < CORE; j++) {
      u64 a = is_d ? d_special[i] : BOX(s_special[i]);
      u64 b = is_d ? d_special[j] : BOX(s_special[j]);
      emit(r_type(funct7, RS2_F, RS1_F, funct3, rd), 0, 2, a, b, 0);
    }
  for (int n = 0; n < nrand * scale; n++) {
    u64 a, b;
    rand_pair(OP_OTHER, is_d, &a, &b);
    emit(r_type(funct7, RS2_F, RS1_F, funct3, rd), rndn(5), 2, a, b, 0);
  }
}

static void gen_unary_norm(u32 funct7, u32 funct3, u32 rs1, u32 rd, int is_d, int nrand) {
  for (u32 i = 0; i < N_D_SPECIAL; i++)
    emit(r_type(funct7, 0, rs1, funct3, rd), 0, 1,
         is_d ? d_special[i] : BOX(s_special[i % N_S_SPECIAL]), 0, 0);
  for (int n = 0; n < nrand * scale; n++) {
    u64 a = rand_val(is_d);
    if (n % 4 == 0) a = rnd();
    emit(r_type(funct7, 0, rs1, funct3, rd), 0, 1, a, 0, 0);
  }
}

/* Edge operands for float -> integer conversions. */
static u64 d_of(double d) { union { double d; u64 u; } x = {d}; return x.u; }
static u64 s_of(float f) { union { float f; u32 u; } x = {f}; return BOX(x.u); }

static int cvt_edges(int is_d, u64 *e) {
  static const double base[] = {
      0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1.0, -1.0, 0.25, 0.75,
      -0.75, 3.5, 1e-300, -1e-300, 2147483647.0, 2147483647.5, 2147483648.0,
      2147483648.5, -2147483648.0, -2147483648.5, -2147483649.0,
      -2147483648.75, 4294967295.0, 4294967295.5, 4294967296.0,
      4294967294.5, 9223372036854775808.0, -9223372036854775808.0,
      18446744073709551616.0, 1e300, -1e300, 4503599627370497.0,
      4503599627370496.5, 9007199254740993.0, -0.9999, 123456789.5,
  };
  int n = 0;
  for (unsigned i = 0; i < sizeof base / sizeof base[0]; i++)
    e[n++] = is_d ? d_of(base[i]) : s_of((float)base[i]);
  if (is_d) {
    e[n++] = d_of(9223372036854775808.0) - 1; /* largest below 2^63 */
    e[n++] = d_of(-9223372036854775808.0) + 1; /* next below -2^63 */
    e[n++] = d_of(18446744073709551616.0) - 1; /* largest below 2^64 */
    e[n++] = d_of(4294967296.0) - 1;
    e[n++] = d_of(2147483648.0) - 1;
  } else {
    e[n++] = s_of(9223372036854775808.0f) - 1;
    e[n++] = s_of(-9223372036854775808.0f) + 1;
    e[n++] = s_of(18446744073709551616.0f) - 1;
    e[n++] = s_of(4294967296.0f) - 1;
    e[n++] = s_of(2147483648.0f) - 1;
    e[n++] = s_of(2147483648.0f) + 1;
    e[n++] = 0x000000007f800000ULL; /* improperly boxed */
  }
  for (int i = 0; i < 8; i++) e[n++] = is_d ? d_special[12 + i] : BOX(s_special[12 + i]);
  return n;
}

static int cvt_sd_edges(u64 *e) { /* doubles around single-precision edges */
  static const double base[] = {
      3.4028234663852886e38,  /* FLT_MAX */
      3.4028235677973366e38,  /* FLT_MAX + half ulp: tie */
      3.4028235677973362e38,  /* just below the tie */
      3.4028235677973370e38,  /* just above the tie */
      3.402823669209385e38,   /* 2^128 */
      1.1754943508222875e-38, /* FLT_MIN */
      1.1754942807573643e-38, /* FLT_MIN - 2^-150 (tininess edge) */
      1.1754942106924411e-38, /* max subnormal */
      1.1754943157898259e-38, /* FLT_MIN - 2^-151: midpoint */
      1.401298464324817e-45,  /* min subnormal */
      7.006492321624085e-46,  /* half min subnormal */
      2.1019476964872256e-45, /* 1.5 min subnormal */
      1e-50, 1.0000000596046448, 1.0000000298023224, 1.0000000894069672,
      0.1, 1.0 / 3.0, 1e30, 1e-30, 65504.0,
  };
  int n = 0;
  for (unsigned i = 0; i < sizeof base / sizeof base[0]; i++) {
    e[n++] = d_of(base[i]);
    e[n++] = d_of(-base[i]);
    e[n++] = d_of(base[i]) + 1;
    e[n++] = d_of(base[i]) - 1;
  }
  for (int i = 0; i < 20; i++) e[n++] = d_special[i];
  return n;
}

static void gen_int_to_fp(u32 funct7, u32 rs2, int nrand) {
  static const u64 edges[] = {
      0, 1, 2, 3, 0xffffffffffffffffULL, 0xfffffffffffffffeULL,
      0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL,
      0xffffffff80000000ULL, 0xffffffff7fffffffULL, 0x7fffffffffffffffULL,
      0x8000000000000000ULL, 0x8000000000000001ULL, 0x20000000000001ULL,
      0x20000000000003ULL, 0x1000001, 0x1000003, 0x1000002, 0xffffff,
      0xfffffffff, 0x7ffffe80, 0xfffffff0, 0x00000000ffffff80ULL,
      0xfffffffffffffc00ULL, 0xfffffffffffff800ULL, 0x7ffffffffffffe00ULL,
      0x12345678abcdef01ULL, 0x80000001, 0x7fffff80ffffffffULL,
  };
  for (unsigned i = 0; i < sizeof edges / sizeof edges[0]; i++)
    for (u32 rm = 0; rm < 5; rm++)
      emit(r_type(funct7, rs2, RS1_X, rm, RD_F), other_frm(rm), 1, edges[i], 0, 0);
  for (int n = 0; n < nrand * scale; n++) {
    u64 a = rnd();
    switch (n % 4) {
      case 1: a >>= rndn(64); break;
      case 2: a = (u64)((int64_t)a >> rndn(64)); break;
      case 3: a = (a & 0xff000000000000ffULL) >> rndn(40); break;
    }
    for (u32 rm = 0; rm < 5; rm++)
      emit(r_type(funct7, rs2, RS1_X, rm, RD_F), other_frm(rm), 1, a, 0, 0);
    if (n % 8 == 0) emit(r_type(funct7, rs2, RS1_X, DYN, RD_F), rndn(5), 1, a, 0, 0);
  }
}

/* Reserved static rm (5, 6) and dynamic rm with reserved frm (5, 6, 7) must
 * trap; so must unknown funct3 values of the rm-less operations. */
static void gen_illegal(void) {
  static const u32 rm_ops[][3] = {
      /* funct7, rs2, rd */
      {0x00, RS2_F, RD_F}, {0x01, RS2_F, RD_F}, {0x0c, RS2_F, RD_F},
      {0x2d, 0, RD_F},     {0x20, 1, RD_F},     {0x21, 0, RD_F},
      {0x60, 0, RD_X},     {0x61, 3, RD_X},     {0x68, 0, RD_F},
      {0x69, 0, RD_F},     {0x69, 1, RD_F},     {0x68, 3, RD_F},
  };
  u64 one = d_special[8];
  for (unsigned i = 0; i < sizeof rm_ops / sizeof rm_ops[0]; i++) {
    u32 f7 = rm_ops[i][0], rs2 = rm_ops[i][1], rd = rm_ops[i][2];
    u32 rs1 = (f7 & 0x78) == 0x68 ? RS1_X : RS1_F;
    u64 a = (f7 & 1) || rs1 == RS1_X ? one : BOX(0x3f800000);
    emit(r_type(f7, rs2, rs1, RM5, rd), 0, 2, a, a, 0);
    emit(r_type(f7, rs2, rs1, RM6, rd), 0, 2, a, a, 0);
    for (u32 frm = 5; frm < 8; frm++) emit(r_type(f7, rs2, rs1, DYN, rd), frm, 2, a, a, 0);
    emit(r_type(f7, rs2, rs1, DYN, rd), 4, 2, a, a, 0); /* legal */
  }
  for (u32 op = 0x43; op <= 0x4f; op += 4)
    for (u32 fmt = 0; fmt < 4; fmt++) {
      emit(r4_type(op, fmt, RM5), 0, 3, one, one, one);
      emit(r4_type(op, fmt, DYN), 7, 3, one, one, one);
      emit(r4_type(op, fmt, RNE), 0, 3, one, one, one); /* fmt 2/3: no Zfh/Q */
    }
  for (u32 f3 = 0; f3 < 8; f3++) {
    emit(r_type(0x10, RS2_F, RS1_F, f3, RD_F), 0, 2, one, one, 0); /* fsgnj.s */
    emit(r_type(0x15, RS2_F, RS1_F, f3, RD_F), 0, 2, one, one, 0); /* fmin.d */
    emit(r_type(0x51, RS2_F, RS1_F, f3, RD_X), 0, 2, one, one, 0); /* fcmp.d */
    emit(r_type(0x70, 0, RS1_F, f3, RD_X), 0, 1, one, 0, 0);       /* fmv.x.w */
    emit(r_type(0x79, 0, RS1_X, f3, RD_F), 0, 1, one, 0, 0);       /* fmv.d.x */
  }
  /* bad rs2 fields, bad funct7, H/Q formats */
  emit(r_type(0x2c, 1, RS1_F, RNE, RD_F), 0, 1, one, 0, 0);
  emit(r_type(0x20, 0, RS1_F, RNE, RD_F), 0, 1, one, 0, 0);
  emit(r_type(0x21, 1, RS1_F, RNE, RD_F), 0, 1, one, 0, 0);
  emit(r_type(0x60, 4, RS1_F, RNE, RD_X), 0, 1, one, 0, 0);
  emit(r_type(0x69, 5, RS1_X, RNE, RD_F), 0, 1, one, 0, 0);
  emit(r_type(0x70, 1, RS1_F, 0, RD_X), 0, 1, one, 0, 0);
  emit(r_type(0x78, 1, RS1_X, 0, RD_F), 0, 1, one, 0, 0);
  emit(r_type(0x02, RS2_F, RS1_F, RNE, RD_F), 0, 2, one, one, 0);
  emit(r_type(0x03, RS2_F, RS1_F, RNE, RD_F), 0, 2, one, one, 0);
  emit(r_type(0x30, RS2_F, RS1_F, RNE, RD_F), 0, 2, one, one, 0);
  emit(r_type(0x7c, RS2_F, RS1_F, RNE, RD_F), 0, 2, one, one, 0);
}

int main(int argc, char **argv) {
  if (argc > 1) scale = atoi(argv[1]);
  if (argc > 2) rng = strtoull(argv[2], NULL, 0) | 1;
  out = stdout;
  stub_init();
  u64 edges[256];
  int n;

  for (int is_d = 0; is_d < 2; is_d++) {
    u32 f = (u32)is_d; /* fmt bit in funct7 */
    gen_binary_rm(0x00 | f, is_d, OP_ADD, 100);  /* FADD */
    gen_binary_rm(0x04 | f, is_d, OP_ADD, 100);  /* FSUB */
    gen_binary_rm(0x08 | f, is_d, OP_MUL, 120);  /* FMUL */
    gen_binary_rm(0x0c | f, is_d, OP_DIV, 120);  /* FDIV */
    {                                            /* FSQRT */
      u64 e[N_D_SPECIAL];
      for (u32 i = 0; i < N_D_SPECIAL; i++)
        e[i] = is_d ? d_special[i] : BOX(s_special[i % N_S_SPECIAL]);
      gen_unary_rm(0x2c | f, 0, is_d, RD_F, 150, e, (int)N_D_SPECIAL);
    }
    for (u32 f3 = 0; f3 < 3; f3++) gen_binary_norm(0x10 | f, f3, RD_F, is_d, 30); /* FSGNJ* */
    for (u32 f3 = 0; f3 < 2; f3++) gen_binary_norm(0x14 | f, f3, RD_F, is_d, 40); /* FMIN/FMAX */
    for (u32 f3 = 0; f3 < 3; f3++) gen_binary_norm(0x50 | f, f3, RD_X, is_d, 40); /* FLE/FLT/FEQ */
    gen_unary_norm(0x70 | f, 1, RS1_F, RD_X, is_d, 40); /* FCLASS */
    gen_unary_norm(0x70 | f, 0, RS1_F, RD_X, is_d, 20); /* FMV.X.W / FMV.X.D */
    gen_unary_norm(0x78 | f, 0, RS1_X, RD_F, is_d, 20); /* FMV.W.X / FMV.D.X */
    n = cvt_edges(is_d, edges);
    for (u32 t = 0; t < 4; t++) gen_unary_rm(0x60 | f, t, is_d, RD_X, 50, edges, n); /* FCVT.int.fmt */
    for (u32 t = 0; t < 4; t++) gen_int_to_fp(0x68 | f, t, 40); /* FCVT.fmt.int */
    gen_fma(0x43, is_d, 110); /* FMADD */
    gen_fma(0x47, is_d, 110); /* FMSUB */
    gen_fma(0x4b, is_d, 110); /* FNMSUB */
    gen_fma(0x4f, is_d, 110); /* FNMADD */
  }
  n = cvt_sd_edges(edges);
  gen_unary_rm(0x20, 1, 1, RD_F, 200, edges, n); /* FCVT.S.D */
  {
    u64 e[N_S_SPECIAL + 1];
    for (u32 i = 0; i < N_S_SPECIAL; i++) e[i] = BOX(s_special[i]);
    e[N_S_SPECIAL] = 0x3f800000; /* improperly boxed */
    gen_unary_rm(0x21, 0, 0, RD_F, 40, e, (int)N_S_SPECIAL + 1); /* FCVT.D.S */
  }
  gen_illegal();
  fprintf(stderr, "gen-vectors: %ld cases\n", ncases);
  return 0;
}
