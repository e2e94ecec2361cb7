/**
 * The F and D extensions of RV64: IEEE 754-2008 binary32/binary64 arithmetic
 * exactly as the RISC-V unprivileged spec ("F" and "D" chapters) defines it —
 * all five rounding modes, all five exception flags with tininess detected
 * after rounding, NaN boxing of single-precision values, canonical NaNs.
 *
 * How it computes (no soft-float on the common path):
 *  - Double precision: the JS operation gives the round-to-nearest-even (RNE)
 *    result r.  An error-free transformation gives the exact error x - r (or
 *    at least its sign): TwoSum for add/sub, Dekker's TwoProduct for mul, the
 *    exact residual a - q*b for div and a - s*s for sqrt, a chain of both for
 *    FMA.  Knowing r = RN(x) and sign(x - r) decides every other rounding
 *    mode by at most one step to the adjacent double; RMM additionally needs
 *    to know whether x was exactly halfway, which the exact error tells.
 *    These transformations are exact only away from the overflow and
 *    subnormal ranges, so the fast path is guarded by magnitude checks;
 *    everything else (and FMA cases the fast check cannot decide) goes to an
 *    exact BigInt path: the exact value as mantissa*2^exp (+ sticky bit),
 *    rounded by `roundPack`.
 *  - Single precision: floats are exact doubles.  The double result d and the
 *    sign of the exact error x - d (from the same transformations, which never
 *    leave the safe range for float operands) determine the binary32 result
 *    in every mode, including overflow, subnormals and after-rounding
 *    tininess: see `roundS`.  No BigInt at all.
 *
 * Register access goes through typed-array views over the hart's state block
 * (see FpuRegs); NaN results are written as bit patterns, never through a JS
 * NaN, since engines do not preserve NaN payloads.
 */

/** Rounding modes (instruction rm field and fcsr.frm). */
export const RNE = 0; // round to nearest, ties to even
export const RTZ = 1; // round towards zero
export const RDN = 2; // round down (towards -inf)
export const RUP = 3; // round up (towards +inf)
export const RMM = 4; // round to nearest, ties to max magnitude
/** rm field value selecting the dynamic rounding mode fcsr.frm. */
export const DYN = 7;

/** fflags bits. */
export const NV = 0x10; // invalid operation
export const DZ = 0x08; // divide by zero
export const OF = 0x04; // overflow
export const UF = 0x02; // underflow
export const NX = 0x01; // inexact

/** Major opcodes handled here. */
export const OPC_OP_FP = 0x53;
export const OPC_MADD = 0x43;
export const OPC_MSUB = 0x47;
export const OPC_NMSUB = 0x4b;
export const OPC_NMADD = 0x4f;

export interface FpuRegs {
  /** View over the hart's state block; f register i is f64[fBase + i]. */
  f64: Float64Array;
  /** Same bytes as 32-bit words: f[i] low word at i32[2*(fBase+i)], high at +1;
   *  x[i] low word at i32[2*(xBase+i)], high at +1 (little-endian). */
  i32: Int32Array;
  /** Same bytes: x[i] is x[xBase + i]. */
  x: BigInt64Array;
  fBase: number;
  xBase: number;
}

// ---------------------------------------------------------------- constants

const TWO32 = 4294967296;
/** 2^-1021: above this, double results are normal with room for one step down. */
const D_FAST_MIN = 2 ** -1021;
/** 2^1023: below this, one step up from a double result cannot overflow. */
const D_FAST_MAX = 2 ** 1023;
/** Operand range in which Dekker's split and products are exact (no overflow
 *  in the split, no underflow of the partial products). */
const TP_MIN = 2 ** -969;
const TP_MAX = 2 ** 996;
/** Products at least this large have a representable exact error term. */
const TP_PROD_MIN = 2 ** -968;
/** Veltkamp splitter 2^27 + 1 for binary64. */
const SPLITTER = 134217729;

/**
 * Dekker's TwoProduct: the exact error x*y - p of the rounded product p = x*y
 * (Veltkamp splitting; valid while the partial products neither overflow nor
 * underflow, which the callers' range checks guarantee).
 */
function productError(x: number, y: number, p: number): number {
  let t = SPLITTER * x;
  const xh = t - (t - x);
  const xl = x - xh;
  t = SPLITTER * y;
  const yh = t - (t - y);
  const yl = y - yh;
  return xh * yh - p + xh * yl + xl * yh + xl * yl;
}

/** binary32 magnitude bit patterns. */
const S_INF = 0x7f800000;
const S_MAX = 0x7f7fffff;
const S_MIN_NORMAL = 0x00800000;
const S_CANON_NAN = 0x7fc00000;
const S_SIGN = -0x80000000; // 0x80000000 as int32
/** 2^128: the value the binary32 "infinity" pattern stands for when rounding. */
const TWO128 = 2 ** 128;
const S_MIN_NORMAL_VAL = 2 ** -126;
const S_MAX_VAL = (2 - 2 ** -23) * 2 ** 127;
/** Largest 24-bit value below 2^-126 with unbounded exponent, and the
 *  midpoint between it and 2^-126: the edges of after-rounding tininess. */
const S_TINY_EDGE = 2 ** -126 - 2 ** -150;
const S_TINY_MID = 2 ** -126 - 2 ** -151;

/** binary64 canonical NaN, high word (low word 0). */
const D_CANON_NAN_HI = 0x7ff80000;

// FCLASS result bits.
const CLASS_NEG_INF = 1 << 0;
const CLASS_NEG_NORMAL = 1 << 1;
const CLASS_NEG_SUBNORMAL = 1 << 2;
const CLASS_NEG_ZERO = 1 << 3;
const CLASS_POS_ZERO = 1 << 4;
const CLASS_POS_SUBNORMAL = 1 << 5;
const CLASS_POS_NORMAL = 1 << 6;
const CLASS_POS_INF = 1 << 7;
const CLASS_SNAN = 1 << 8;
const CLASS_QNAN = 1 << 9;

// ------------------------------------------------------------------ scratch

const scratch = new ArrayBuffer(8);
const sF64 = new Float64Array(scratch);
const sF32 = new Float32Array(scratch);
const sI32 = new Int32Array(scratch);

/** Exception flags raised by the instruction being executed. execute() is
 *  synchronous and not re-entrant, so one module-level accumulator is safe. */
let fl = 0;

/** Result of the exact path (`roundPack`): raw bits, high and low word. */
let resHi = 0;
let resLo = 0;

function f32Bits(v: number): number {
  sF32[0] = v;
  return sI32[0]!;
}
function f32FromBits(b: number): number {
  sI32[0] = b;
  return sF32[0]!;
}

/** The adjacent double further from zero (r finite, nonzero). */
function stepAway(r: number): number {
  sF64[0] = r;
  const lo = sI32[0]!;
  if (lo === -1) {
    sI32[0] = 0;
    sI32[1] = sI32[1]! + 1;
  } else {
    sI32[0] = lo + 1;
  }
  return sF64[0]!;
}

/** The adjacent double closer to zero (r finite, nonzero). */
function stepToward(r: number): number {
  sF64[0] = r;
  const lo = sI32[0]!;
  if (lo === 0) {
    sI32[0] = -1;
    sI32[1] = sI32[1]! - 1;
  } else {
    sI32[0] = lo - 1;
  }
  return sF64[0]!;
}

/**
 * Given r = RN(x) (a normal double, not the largest binade's top) and e with
 * the sign of x - r, returns x rounded in mode rm and raises NX if inexact.
 * When `exactErr` is set, e is exactly x - r and an RMM tie (x exactly
 * halfway, rounded to even towards zero by RN) is moved away from zero;
 * otherwise the caller guarantees x is never a tie (division, square root).
 */
function fixD(r: number, e: number, rm: number, exactErr: boolean): number {
  if (e === 0) return r;
  fl |= NX;
  switch (rm) {
    case RNE:
      return r;
    case RTZ:
      // |x| < |r| exactly when the error points back towards zero.
      return e > 0 !== r > 0 ? stepToward(r) : r;
    case RDN:
      return e < 0 ? (r > 0 ? stepToward(r) : stepAway(r)) : r;
    case RUP:
      return e > 0 ? (r > 0 ? stepAway(r) : stepToward(r)) : r;
    default: {
      // RMM differs from RNE only on exact ties that RNE rounded towards zero.
      if (exactErr && e > 0 === r > 0) {
        const away = stepAway(r);
        if (Math.abs(e) * 2 === Math.abs(away - r)) return away;
      }
      return r;
    }
  }
}

/** Sign of (x - g) for x = d + err, where err has the sign es and is smaller
 *  than the distance from d to any point g of interest other than d itself. */
function cmpExact(d: number, es: number, g: number): number {
  return d > g ? 1 : d < g ? -1 : es > 0 ? 1 : es < 0 ? -1 : 0;
}

/**
 * Rounds x = d + err to binary32 in mode rm; returns the binary32 result
 * (as a JS number, never NaN) and raises flags.  d is a finite nonzero
 * double and es has the sign of err, where |err| <= ulp(d)/2 (d = RN53(x),
 * or err = 0).  Every binary32 value and every midpoint between adjacent
 * binary32 values is a multiple of ulp(d) near d, so comparing x with them
 * reduces to comparing d, with es breaking the tie when d lies exactly on
 * one: d and the sign of err determine the correctly rounded binary32
 * result, overflow and tininess exactly.
 */
function roundS(d: number, es: number, rm: number): number {
  const f = Math.fround(d); // RN of d to binary32 (may be infinite)
  const af = Math.abs(f);
  if (af > S_MIN_NORMAL_VAL && af < S_MAX_VAL) {
    // Fast path: f and both its neighbours are normal and finite, and
    // |x| > 2^-126, so neither overflow nor tininess can occur.
    const c = d > f ? 1 : d < f ? -1 : es > 0 ? 1 : es < 0 ? -1 : 0; // sign of x - f
    if (c === 0) return f;
    fl |= NX;
    switch (rm) {
      case RTZ:
        return c > 0 === f > 0 ? f : nextS(f, c > 0);
      case RDN:
        return c < 0 ? nextS(f, false) : f;
      case RUP:
        return c > 0 ? nextS(f, true) : f;
      default: {
        // Nearest: fround(d) is right unless d lies exactly on a binary32
        // midpoint and either x lies beyond it (double rounding; possible for
        // FMA and 64-bit integer sources, never for + - * / sqrt of binary32
        // operands) or x is that midpoint and RMM wants the larger magnitude.
        if (d === f || (es !== 0 && d > f !== es > 0)) return f;
        if (es === 0 && (rm === RNE || af > Math.abs(d))) return f;
        const other = nextS(f, d > f);
        return d - f === (other - f) / 2 ? other : f;
      }
    }
  }
  return f32FromBits(roundSBits(d, es, rm));
}

/** The binary32 neighbour of a finite nonzero binary32 value f, towards
 *  +inf if up, else towards -inf. */
function nextS(f: number, up: boolean): number {
  const b = f32Bits(f);
  return f32FromBits(up === f > 0 ? b + 1 : b - 1);
}

/** roundS, giving binary32 bits: the general case. */
function roundSBits(d: number, es: number, rm: number): number {
  const neg = d < 0;
  const ad = neg ? -d : d;
  const me = neg ? -es : es; // sign of |x| - ad
  const f = Math.fround(ad); // nearest binary32 to ad; may be Infinity
  const fb = f32Bits(f); // S_INF stands for 2^128
  const fv = f === Infinity ? TWO128 : f;
  const c = cmpExact(ad, me, fv); // sign of |x| - fv
  if (c === 0) {
    if (fb === S_INF) return overflowS(neg, rm); // x is exactly 2^128
    return (neg ? S_SIGN : 0) | fb; // exact
  }
  fl |= NX;
  // x lies strictly between the adjacent binary32 magnitudes lo and hi.
  const lo = c > 0 ? fb : fb - 1;
  const hi = c > 0 ? fb + 1 : fb;
  let rb: number;
  switch (rm) {
    case RTZ:
      rb = lo;
      break;
    case RUP:
      rb = neg ? lo : hi;
      break;
    case RDN:
      rb = neg ? hi : lo;
      break;
    default: {
      if (lo >= S_INF) return overflowS(neg, rm);
      const lv = f32FromBits(lo);
      const hv = hi >= S_INF ? TWO128 : f32FromBits(hi);
      const cm = cmpExact(ad, me, (lv + hv) / 2);
      rb = cm > 0 ? hi : cm < 0 ? lo : rm === RMM ? hi : (lo & 1) === 0 ? lo : hi;
    }
  }
  if (rb >= S_INF) return overflowS(neg, rm);
  if (rb <= S_MIN_NORMAL && cmpExact(ad, me, S_MIN_NORMAL_VAL) < 0) {
    // |x| < 2^-126.  Tiny unless rounding with unbounded exponent (24-bit
    // significand) reaches 2^-126; x is inexact here, so tiny means UF.
    let reaches: boolean;
    if (rm === RNE || rm === RMM) reaches = cmpExact(ad, me, S_TINY_MID) >= 0;
    else if (rm === RUP ? !neg : rm === RDN ? neg : false) reaches = cmpExact(ad, me, S_TINY_EDGE) > 0;
    else reaches = false;
    if (!reaches) fl |= UF;
  }
  return (neg ? S_SIGN : 0) | rb;
}

/** binary32 overflow: the rounded result (unbounded exponent) exceeds the
 *  largest finite value.  RNE/RMM and rounding away give infinity, rounding
 *  towards zero gives the largest finite value. */
function overflowS(neg: boolean, rm: number): number {
  fl |= OF | NX;
  const toInf = rm === RNE || rm === RMM || (rm === RUP && !neg) || (rm === RDN && neg);
  return (neg ? S_SIGN : 0) | (toInf ? S_INF : S_MAX);
}

// ------------------------------------------------------------- exact path

/** Unpacked finite nonzero double: value = (-1)^uNeg * uM * 2^uE. */
let uNeg = false;
let uE = 0;
function unpack(v: number): bigint {
  sF64[0] = v;
  const lo = sI32[0]!;
  const hi = sI32[1]!;
  uNeg = hi < 0;
  const ex = (hi >>> 20) & 0x7ff;
  const m = BigInt((hi & 0xfffff) * TWO32 + (lo >>> 0));
  if (ex === 0) {
    uE = -1074;
    return m;
  }
  uE = ex - 1075;
  return m + (1n << 52n);
}

function bitLength(m: bigint): number {
  return m === 0n ? 0 : m.toString(2).length;
}

/** Integer square root: floor(sqrt(n)), n >= 0. */
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  // Start above the root (doubles approximate it to ~2^-52 relative).
  let x = BigInt(Math.ceil(Math.sqrt(Number(n))));
  x += (x >> 20n) + 2n;
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** Bits dropped by the last `shiftRound` were nonzero. */
let srInexact = false;
/** m * 2^-s (plus a sticky bit below m) rounded to an integer in mode rm
 *  for a value of sign `neg`. */
function shiftRound(m: bigint, s: number, sticky: boolean, neg: boolean, rm: number): bigint {
  let q: bigint;
  let above: boolean; // remainder > half
  let half: boolean; // remainder == half exactly
  if (s <= 0) {
    q = m << BigInt(-s);
    above = false;
    half = false;
  } else {
    const bs = BigInt(s);
    q = m >> bs;
    const rem = m - (q << bs);
    const h = 1n << (bs - 1n);
    above = rem > h || (rem === h && sticky);
    half = rem === h && !sticky;
    sticky = sticky || rem !== 0n;
  }
  srInexact = sticky;
  if (!sticky) return q;
  let up: boolean;
  switch (rm) {
    case RNE:
      up = above || (half && (q & 1n) === 1n);
      break;
    case RMM:
      up = above || half;
      break;
    case RTZ:
      up = false;
      break;
    case RDN:
      up = neg;
      break;
    default:
      up = !neg;
  }
  return up ? q + 1n : q;
}

/**
 * Rounds the exact value (-1)^neg * (m + sticky) * 2^e (m > 0; when sticky,
 * m must have at least p + 2 bits) to binary32 or binary64 in mode rm,
 * leaving the raw bits in resHi/resLo and raising flags.  Tininess is
 * detected after rounding: the result rounded to p bits with an unbounded
 * exponent is below the smallest normal.
 */
function roundPack(neg: boolean, m: bigint, e: number, sticky: boolean, isD: boolean, rm: number): void {
  const p = isD ? 53 : 24;
  const emin = isD ? -1022 : -126;
  const emax = isD ? 1023 : 127;
  const n = bitLength(m);
  let top = e + n - 1; // exponent of the leading bit
  let q = shiftRound(m, n - p, sticky, neg, rm);
  const inexact = srInexact;
  if (q === 1n << BigInt(p)) {
    q >>= 1n;
    top++;
  }
  let mag: bigint;
  if (top > emax) {
    fl |= OF | NX;
    const toInf = rm === RNE || rm === RMM || (rm === RUP && !neg) || (rm === RDN && neg);
    const maxMag = isD ? 0x7fefffffffffffffn : BigInt(S_MAX);
    mag = toInf ? (isD ? 0x7ff0000000000000n : BigInt(S_INF)) : maxMag;
  } else if (top < emin) {
    // Tiny: round again on the subnormal grid (LSB weight 2^(emin-p+1)).
    // A carry into 2^emin yields the smallest normal, whose encoding is the
    // same integer.
    mag = shiftRound(m, emin - p + 1 - e, sticky, neg, rm);
    if (srInexact) fl |= UF | NX;
  } else {
    if (inexact) fl |= NX;
    mag = (BigInt(top - emin + 1) << BigInt(p - 1)) | (q - (1n << BigInt(p - 1)));
  }
  if (isD) {
    resHi = Number(mag >> 32n) | (neg ? S_SIGN : 0);
    resLo = Number(mag & 0xffffffffn) | 0;
  } else {
    resHi = -1;
    resLo = Number(mag) | (neg ? S_SIGN : 0);
  }
}

/** Exact sum of two finite nonzero-sum doubles, rounded (binary64). */
function exactAddD(a: number, b: number, rm: number): void {
  const ma = unpack(a);
  const ea = uE;
  const na = uNeg;
  const mb = unpack(b);
  const eb = uE;
  const nb = uNeg;
  const e = Math.min(ea, eb);
  let s = (na ? -ma : ma) << BigInt(ea - e);
  s += (nb ? -mb : mb) << BigInt(eb - e);
  const neg = s < 0n;
  roundPack(neg, neg ? -s : s, e, false, true, rm);
}

/** Exact a*b + c of finite values (product nonzero, c nonzero), rounded. */
function exactFma(a: number, b: number, c: number, isD: boolean, rm: number): boolean {
  const ma = unpack(a);
  const ea = uE;
  const na = uNeg;
  const mb = unpack(b);
  const eb = uE;
  const nb = uNeg;
  const mc = unpack(c);
  const ec = uE;
  const nc = uNeg;
  const ep = ea + eb;
  const e = Math.min(ep, ec);
  const mp = ma * mb;
  let s = (na !== nb ? -mp : mp) << BigInt(ep - e);
  s += (nc ? -mc : mc) << BigInt(ec - e);
  if (s === 0n) return false; // exact zero: caller applies the sign rule
  const neg = s < 0n;
  roundPack(neg, neg ? -s : s, e, false, isD, rm);
  return true;
}

/** Rounds the exact product of finite nonzero doubles. */
function exactMul(a: number, b: number, isD: boolean, rm: number): void {
  const ma = unpack(a);
  const ea = uE;
  const na = uNeg;
  const mb = unpack(b);
  roundPack(na !== uNeg, ma * mb, ea + uE, false, isD, rm);
}

/** Rounds the exact quotient of finite nonzero doubles. */
function exactDiv(a: number, b: number, isD: boolean, rm: number): void {
  const ma = unpack(a);
  const ea = uE;
  const na = uNeg;
  const mb = unpack(b);
  // 128 extra bits: the quotient has at least 76 bits, plenty for p + 2.
  const num = ma << 128n;
  const q = num / mb;
  roundPack(na !== uNeg, q, ea - uE - 128, q * mb !== num, isD, rm);
}

/** Rounds the exact square root of a finite positive double. */
function exactSqrt(a: number, isD: boolean, rm: number): void {
  let m = unpack(a);
  let e = uE;
  if ((e & 1) !== 0) {
    m <<= 1n;
    e -= 1;
  }
  const n = m << 128n; // the root gets >= 64 bits
  const s = isqrt(n);
  roundPack(false, s, (e - 128) / 2, s * s !== n, isD, rm);
}

/** Sign of an exact zero sum x + y where x and y have signs nx, ny: the
 *  common sign if they agree, otherwise -0 in RDN and +0 in the others. */
function zeroSumNeg(nx: boolean, ny: boolean, rm: number): boolean {
  return nx === ny ? nx : rm === RDN;
}

function isNeg(v: number): boolean {
  return v < 0 || Object.is(v, -0);
}

// ---------------------------------------------------------------- the unit

export class Fpu {
  private readonly f64: Float64Array;
  private readonly i32: Int32Array;
  /** The same bytes as binary32 values: the low word of f[i] is f32[2*(fBase+i)]. */
  private readonly f32: Float32Array;
  private readonly fBase: number;
  private readonly xBase: number;

  constructor(regs: FpuRegs) {
    this.f64 = regs.f64;
    this.i32 = regs.i32;
    this.f32 = new Float32Array(regs.f64.buffer, regs.f64.byteOffset, regs.f64.length * 2);
    this.fBase = regs.fBase;
    this.xBase = regs.xBase;
  }

  /**
   * Executes one 32-bit instruction whose major opcode is OP-FP (0x53),
   * FMADD (0x43), FMSUB (0x47), FNMSUB (0x4B) or FNMADD (0x4F), for the F and
   * D extensions of RV64.  frm is fcsr.frm.  Returns -1 for an illegal
   * instruction (nothing modified), otherwise the fflags bits raised.
   */
  execute(insn: number, frm: number): number {
    const opcode = insn & 0x7f;
    const rd = (insn >>> 7) & 31;
    const f3 = (insn >>> 12) & 7;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    // Rounding mode for instructions with an rm field: 5 and 6 are reserved,
    // 7 selects frm, whose values 5..7 are reserved too.  The check applies
    // to every instruction with an rm field, including exact ones such as
    // FCVT.D.S and FCVT.D.W.
    const rm = f3 === DYN ? (frm >= 0 && frm < 5 ? frm : -1) : f3 < 5 ? f3 : -1;
    fl = 0;
    if (opcode !== OPC_OP_FP) {
      if (opcode !== OPC_MADD && opcode !== OPC_MSUB && opcode !== OPC_NMSUB && opcode !== OPC_NMADD) return -1;
      const fmt = (insn >>> 25) & 3;
      if (fmt > 1 || rm < 0) return -1; // fmt H (Zfh) and Q are not implemented
      const rs3 = insn >>> 27;
      // FMSUB: a*b - c; FNMSUB: -(a*b) + c; FNMADD: -(a*b) - c.
      const negProd = opcode === OPC_NMSUB || opcode === OPC_NMADD;
      const negC = opcode === OPC_MSUB || opcode === OPC_NMADD;
      if (fmt === 1) this.fmaD(rd, rs1, rs2, rs3, negProd, negC, rm);
      else this.fmaS(rd, rs1, rs2, rs3, negProd, negC, rm);
      return fl;
    }
    switch (insn >>> 25) {
      case 0x00: // FADD.S
        if (rm < 0) return -1;
        this.addS(rd, rs1, rs2, false, rm);
        return fl;
      case 0x01: // FADD.D
        if (rm < 0) return -1;
        this.addD(rd, rs1, rs2, false, rm);
        return fl;
      case 0x04: // FSUB.S
        if (rm < 0) return -1;
        this.addS(rd, rs1, rs2, true, rm);
        return fl;
      case 0x05: // FSUB.D
        if (rm < 0) return -1;
        this.addD(rd, rs1, rs2, true, rm);
        return fl;
      case 0x08: // FMUL.S
        if (rm < 0) return -1;
        this.mulS(rd, rs1, rs2, rm);
        return fl;
      case 0x09: // FMUL.D
        if (rm < 0) return -1;
        this.mulD(rd, rs1, rs2, rm);
        return fl;
      case 0x0c: // FDIV.S
        if (rm < 0) return -1;
        this.divS(rd, rs1, rs2, rm);
        return fl;
      case 0x0d: // FDIV.D
        if (rm < 0) return -1;
        this.divD(rd, rs1, rs2, rm);
        return fl;
      case 0x2c: // FSQRT.S
        if (rm < 0 || rs2 !== 0) return -1;
        this.sqrtS(rd, rs1, rm);
        return fl;
      case 0x2d: // FSQRT.D
        if (rm < 0 || rs2 !== 0) return -1;
        this.sqrtD(rd, rs1, rm);
        return fl;
      case 0x10: // FSGNJ.S, FSGNJN.S, FSGNJX.S
        if (f3 > 2) return -1;
        this.sgnjS(rd, rs1, rs2, f3);
        return fl;
      case 0x11: // FSGNJ.D, FSGNJN.D, FSGNJX.D
        if (f3 > 2) return -1;
        this.sgnjD(rd, rs1, rs2, f3);
        return fl;
      case 0x14: // FMIN.S, FMAX.S
        if (f3 > 1) return -1;
        this.minMaxS(rd, rs1, rs2, f3 === 1);
        return fl;
      case 0x15: // FMIN.D, FMAX.D
        if (f3 > 1) return -1;
        this.minMaxD(rd, rs1, rs2, f3 === 1);
        return fl;
      case 0x20: // FCVT.S.D
        if (rm < 0 || rs2 !== 1) return -1;
        this.cvtSD(rd, rs1, rm);
        return fl;
      case 0x21: // FCVT.D.S
        if (rm < 0 || rs2 !== 0) return -1;
        this.cvtDS(rd, rs1);
        return fl;
      case 0x50: // FLE.S, FLT.S, FEQ.S
        if (f3 > 2) return -1;
        this.cmp(rd, this.readS(rs1), this.readS(rs2), rs1, rs2, false, f3);
        return fl;
      case 0x51: // FLE.D, FLT.D, FEQ.D
        if (f3 > 2) return -1;
        this.cmp(rd, this.readD(rs1), this.readD(rs2), rs1, rs2, true, f3);
        return fl;
      case 0x60: // FCVT.W.S, FCVT.WU.S, FCVT.L.S, FCVT.LU.S
        if (rm < 0 || rs2 > 3) return -1;
        this.cvtToInt(rd, this.readS(rs1), rs2, rm);
        return fl;
      case 0x61: // FCVT.W.D, FCVT.WU.D, FCVT.L.D, FCVT.LU.D
        if (rm < 0 || rs2 > 3) return -1;
        this.cvtToInt(rd, this.readD(rs1), rs2, rm);
        return fl;
      case 0x68: // FCVT.S.W, FCVT.S.WU, FCVT.S.L, FCVT.S.LU
        if (rm < 0 || rs2 > 3) return -1;
        this.cvtFromInt(rd, rs1, false, rs2, rm);
        return fl;
      case 0x69: // FCVT.D.W, FCVT.D.WU, FCVT.D.L, FCVT.D.LU
        if (rm < 0 || rs2 > 3) return -1;
        this.cvtFromInt(rd, rs1, true, rs2, rm);
        return fl;
      case 0x70: // FMV.X.W, FCLASS.S
        if (rs2 !== 0 || f3 > 1) return -1;
        if (f3 === 0) this.fmvXW(rd, rs1);
        else this.writeX32(rd, this.classS(rs1));
        return fl;
      case 0x71: // FMV.X.D, FCLASS.D
        if (rs2 !== 0 || f3 > 1) return -1;
        if (f3 === 0) this.fmvXD(rd, rs1);
        else this.writeX32(rd, this.classD(rs1));
        return fl;
      case 0x78: // FMV.W.X
        if (rs2 !== 0 || f3 !== 0) return -1;
        this.writeSBits(rd, this.i32[2 * (this.xBase + rs1)]!);
        return fl;
      case 0x79: {
        // FMV.D.X
        if (rs2 !== 0 || f3 !== 0) return -1;
        const i32 = this.i32;
        const s = 2 * (this.xBase + rs1);
        const d = 2 * (this.fBase + rd);
        i32[d] = i32[s]!;
        i32[d + 1] = i32[s + 1]!;
        return fl;
      }
      default:
        return -1;
    }
  }

  // ------------------------------------------------------- register access

  private readD(r: number): number {
    return this.f64[this.fBase + r]!;
  }

  /** A single-precision operand: valid only if NaN-boxed (upper 32 bits all
   *  ones), otherwise the canonical NaN. */
  private readS(r: number): number {
    const i = 2 * (this.fBase + r);
    return this.i32[i + 1] === -1 ? this.f32[i]! : NaN;
  }

  /** Low word of a single operand as it reads (canonical NaN if unboxed). */
  private bitsS(r: number): number {
    const i = 2 * (this.fBase + r);
    return this.i32[i + 1] === -1 ? this.i32[i]! : S_CANON_NAN;
  }

  private isSNaNS(r: number): boolean {
    const b = this.bitsS(r);
    return (b & 0x7fc00000) === 0x7f800000 && (b & 0x003fffff) !== 0;
  }

  private isSNaND(r: number): boolean {
    const i = 2 * (this.fBase + r);
    const hi = this.i32[i + 1]!;
    return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) | this.i32[i]!) !== 0;
  }

  private writeD(rd: number, v: number): void {
    this.f64[this.fBase + rd] = v;
  }

  private writeNaND(rd: number): void {
    const i = 2 * (this.fBase + rd);
    this.i32[i] = 0;
    this.i32[i + 1] = D_CANON_NAN_HI;
  }

  /** Writes binary32 bits, NaN-boxed. */
  private writeSBits(rd: number, bits: number): void {
    const i = 2 * (this.fBase + rd);
    this.i32[i] = bits;
    this.i32[i + 1] = -1;
  }

  /** Writes a binary32 value (not NaN: engines may alter NaN bits), NaN-boxed. */
  private writeSVal(rd: number, v: number): void {
    const i = 2 * (this.fBase + rd);
    this.f32[i] = v;
    this.i32[i + 1] = -1;
  }

  private writeRes(rd: number): void {
    const i = 2 * (this.fBase + rd);
    this.i32[i] = resLo;
    this.i32[i + 1] = resHi;
  }

  /** Writes a 32-bit value sign-extended into x[rd] (never x0). */
  private writeX32(rd: number, v: number): void {
    if (rd === 0) return;
    const i = 2 * (this.xBase + rd);
    this.i32[i] = v;
    this.i32[i + 1] = v >> 31;
  }

  private writeX64(rd: number, hi: number, lo: number): void {
    if (rd === 0) return;
    const i = 2 * (this.xBase + rd);
    this.i32[i] = lo;
    this.i32[i + 1] = hi;
  }

  /** Canonical NaN result of a double op; NV if an operand is a signalling NaN. */
  private nanD(rd: number, rs1: number, rs2: number): void {
    if (this.isSNaND(rs1) || this.isSNaND(rs2)) fl |= NV;
    this.writeNaND(rd);
  }

  private nanS(rd: number, rs1: number, rs2: number): void {
    if (this.isSNaNS(rs1) || this.isSNaNS(rs2)) fl |= NV;
    this.writeSBits(rd, S_CANON_NAN);
  }

  // ------------------------------------------------------- double precision

  private addD(rd: number, rs1: number, rs2: number, sub: boolean, rm: number): void {
    const a = this.readD(rs1);
    const b = sub ? -this.readD(rs2) : this.readD(rs2);
    const r = a + b;
    const ar = Math.abs(r);
    if (ar >= D_FAST_MIN && ar < D_FAST_MAX) {
      // TwoSum: e = (a + b) - r exactly.
      const bb = r - a;
      const e = a - (r - bb) + (b - bb);
      this.writeD(rd, e === 0 ? r : fixD(r, e, rm, true));
      return;
    }
    if (r !== r) {
      // NaN operand, or inf - inf (invalid).
      if (a === a && b === b) fl |= NV;
      this.nanD(rd, rs1, rs2);
    } else if (r === 0) {
      this.writeD(rd, zeroSumNeg(isNeg(a), isNeg(b), rm) ? -0 : 0);
    } else if (ar < D_FAST_MIN || a - a !== 0 || b - b !== 0) {
      // Tiny sums are exact; an infinite operand gives that infinity.
      this.writeD(rd, r);
    } else {
      exactAddD(a, b, rm); // overflow range
      this.writeRes(rd);
    }
  }

  private mulD(rd: number, rs1: number, rs2: number, rm: number): void {
    const a = this.readD(rs1);
    const b = this.readD(rs2);
    const p = a * b;
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    const ap = Math.abs(p);
    if (ap >= TP_PROD_MIN && ap < D_FAST_MAX && aa >= TP_MIN && aa < TP_MAX && ab >= TP_MIN && ab < TP_MAX) {
      // productError() by hand: fmul.d is hot enough that the call costs a third of its
      // speed here (bench/fpu-ops: 77 → 51 M ops/s), as V8 does not inline it into this path.
      let t = SPLITTER * a;
      const ah = t - (t - a);
      const al = a - ah;
      t = SPLITTER * b;
      const bh = t - (t - b);
      const bl = b - bh;
      const e = ah * bh - p + ah * bl + al * bh + al * bl;
      this.writeD(rd, e === 0 ? p : fixD(p, e, rm, true));
      return;
    }
    if (p !== p) {
      if (a === a && b === b) fl |= NV; // inf * 0
      this.nanD(rd, rs1, rs2);
    } else if (p === 0 && (a === 0 || b === 0)) {
      this.writeD(rd, p); // exact zero, sign already the xor of the signs
    } else if (ap === Infinity && (aa === Infinity || ab === Infinity)) {
      this.writeD(rd, p);
    } else {
      exactMul(a, b, true, rm);
      this.writeRes(rd);
    }
  }

  private divD(rd: number, rs1: number, rs2: number, rm: number): void {
    const a = this.readD(rs1);
    const b = this.readD(rs2);
    const q = a / b;
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    const aq = Math.abs(q);
    if (aq >= D_FAST_MIN && aq < TP_MAX && ab >= TP_MIN && ab < TP_MAX && aa >= TP_PROD_MIN && aa < D_FAST_MAX) {
      // Remainder a - q*b is exactly representable; its sign (times b's)
      // is the sign of the quotient's error.  A quotient is never a tie.
      const p = q * b;
      const e = productError(q, b, p);
      const rem = a - p - e;
      this.writeD(rd, rem === 0 ? q : fixD(q, rem > 0 === b > 0 ? 1 : -1, rm, false));
      return;
    }
    if (q !== q) {
      if (a === a && b === b) fl |= NV; // 0/0, inf/inf
      this.nanD(rd, rs1, rs2);
    } else if (b === 0) {
      if (aa !== Infinity) fl |= DZ; // finite nonzero / 0
      this.writeD(rd, q);
    } else if (a === 0 || aa === Infinity || ab === Infinity) {
      this.writeD(rd, q); // exact: 0, or infinity
    } else {
      exactDiv(a, b, true, rm);
      this.writeRes(rd);
    }
  }

  private sqrtD(rd: number, rs1: number, rm: number): void {
    const a = this.readD(rs1);
    if (a >= TP_PROD_MIN && a < TP_MAX) {
      const s = Math.sqrt(a);
      const p = s * s;
      const e = productError(s, s, p);
      const rem = a - p - e; // exact a - s*s; a root is never a tie
      this.writeD(rd, rem === 0 ? s : fixD(s, rem, rm, false));
      return;
    }
    if (a !== a) {
      this.nanD(rd, rs1, rs1);
    } else if (a < 0) {
      fl |= NV; // negative nonzero, including -inf
      this.writeNaND(rd);
    } else if (a === 0 || a === Infinity) {
      this.writeD(rd, a); // sqrt(-0) = -0
    } else {
      exactSqrt(a, true, rm);
      this.writeRes(rd);
    }
  }

  private fmaD(rd: number, rs1: number, rs2: number, rs3: number, negProd: boolean, negC: boolean, rm: number): void {
    const a = negProd ? -this.readD(rs1) : this.readD(rs1);
    const b = this.readD(rs2);
    const c = negC ? -this.readD(rs3) : this.readD(rs3);
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    if (aa >= TP_MIN && aa < TP_MAX && ab >= TP_MIN && ab < TP_MAX && Math.abs(c) < D_FAST_MAX) {
      const p = a * b;
      const ap = Math.abs(p);
      if (ap >= TP_PROD_MIN && ap < D_FAST_MAX) {
        // x = a*b + c = p + pe + c exactly (TwoProduct), then TwoSums:
        // p + c = s + t;  t + pe = z + zz;  s + z = r + y;  y + zz = w + ww.
        // So x = r + (w + ww) with w = RN(y + zz) carrying the error's sign.
        const pe = productError(a, b, p);
        const s = p + c;
        let u = s - p;
        const t = p - (s - u) + (c - u);
        const z = t + pe;
        u = z - t;
        const zz = t - (z - u) + (pe - u);
        const r = s + z;
        u = r - s;
        const y = s - (r - u) + (z - u);
        const ar = Math.abs(r);
        if (ar >= D_FAST_MIN && ar < D_FAST_MAX) {
          const w = y + zz;
          if (w === 0) {
            // y + zz == 0 exactly (a sum of doubles rounds to 0 only if 0).
            this.writeD(rd, r);
            return;
          }
          // r = RN(x) iff |x - r| is below half the gap to the neighbour on
          // x's side; |w| < halfgap implies |y + zz| < halfgap (monotonic
          // rounding, halfgap a power of two), and then no tie is possible.
          const gap = w > 0 === r > 0 ? stepAway(r) - r : r - stepToward(r);
          if (Math.abs(w) < Math.abs(gap) / 2) {
            this.writeD(rd, fixD(r, w, rm, false));
            return;
          }
        }
      }
    }
    this.fmaSlow(rd, a, b, c, rs1, rs2, rs3, true, rm);
  }

  /**
   * a*b + c (negations already applied) for everything the fast paths leave:
   * NaNs, infinities, zeros, and the exact BigInt path.  Shared by S and D.
   */
  private fmaSlow(rd: number, a: number, b: number, c: number, rs1: number, rs2: number, rs3: number, isD: boolean, rm: number): void {
    if (a - a !== 0 || b - b !== 0 || c - c !== 0) {
      // Special operands.  Per RISC-V, inf * 0 is invalid even when the
      // addend is a quiet NaN.
      const aInf = a === Infinity || a === -Infinity;
      const bInf = b === Infinity || b === -Infinity;
      const infTimesZero = (aInf && b === 0) || (bInf && a === 0);
      if (a !== a || b !== b || c !== c) {
        const sNaN = isD
          ? this.isSNaND(rs1) || this.isSNaND(rs2) || this.isSNaND(rs3)
          : this.isSNaNS(rs1) || this.isSNaNS(rs2) || this.isSNaNS(rs3);
        if (sNaN || infTimesZero) fl |= NV;
        this.writeNaN(rd, isD);
        return;
      }
      if (infTimesZero) {
        fl |= NV;
        this.writeNaN(rd, isD);
        return;
      }
      if (aInf || bInf) {
        // Infinite product (the other factor is nonzero and not NaN).  A
        // product of finite factors is finite however large, so it is only
        // tested here, never from the overflowing JS product.
        const p = a * b;
        if (c - c !== 0 && p !== c) {
          fl |= NV; // inf - inf
          this.writeNaN(rd, isD);
          return;
        }
        this.writeFinal(rd, p, isD);
        return;
      }
      this.writeFinal(rd, c, isD); // c infinite, product finite
      return;
    }
    if (a === 0 || b === 0) {
      // Exact zero product: the result is c, or a signed zero.
      const pNeg = isNeg(a) !== isNeg(b);
      if (c === 0) this.writeFinal(rd, zeroSumNeg(pNeg, isNeg(c), rm) ? -0 : 0, isD);
      else this.writeFinal(rd, c, isD);
      return;
    }
    if (c === 0) {
      exactMul(a, b, isD, rm);
    } else if (!exactFma(a, b, c, isD, rm)) {
      this.writeFinal(rd, rm === RDN ? -0 : 0, isD);
      return;
    }
    this.writeRes(rd);
  }

  private writeNaN(rd: number, isD: boolean): void {
    if (isD) this.writeNaND(rd);
    else this.writeSBits(rd, S_CANON_NAN);
  }

  /** Writes a value already representable in the destination format. */
  private writeFinal(rd: number, v: number, isD: boolean): void {
    if (isD) this.writeD(rd, v);
    else this.writeSVal(rd, v);
  }

  // ------------------------------------------------------- single precision

  private addS(rd: number, rs1: number, rs2: number, sub: boolean, rm: number): void {
    const a = this.readS(rs1);
    const b = sub ? -this.readS(rs2) : this.readS(rs2);
    const d = a + b;
    if (d - d === 0 && d !== 0) {
      const bb = d - a;
      const e = a - (d - bb) + (b - bb); // TwoSum error
      this.writeSVal(rd, roundS(d, e, rm));
      return;
    }
    if (d !== d) {
      if (a === a && b === b) fl |= NV; // inf - inf
      this.nanS(rd, rs1, rs2);
    } else if (d === 0) {
      this.writeSBits(rd, zeroSumNeg(isNeg(a), isNeg(b), rm) ? S_SIGN : 0);
    } else {
      this.writeSVal(rd, d); // an infinite operand
    }
  }

  private mulS(rd: number, rs1: number, rs2: number, rm: number): void {
    const a = this.readS(rs1);
    const b = this.readS(rs2);
    const d = a * b; // exact: 48-bit product within the double range
    if (d - d === 0 && d !== 0) {
      this.writeSVal(rd, roundS(d, 0, rm));
    } else if (d !== d) {
      if (a === a && b === b) fl |= NV; // inf * 0
      this.nanS(rd, rs1, rs2);
    } else {
      this.writeSVal(rd, d); // zero or infinity, exact
    }
  }

  private divS(rd: number, rs1: number, rs2: number, rm: number): void {
    const a = this.readS(rs1);
    const b = this.readS(rs2);
    const d = a / b;
    if (d - d === 0 && d !== 0) {
      // Exact remainder a - d*b via TwoProduct; all terms stay well inside
      // the double range for float operands.
      const p = d * b;
      const e = productError(d, b, p);
      const rem = a - p - e;
      this.writeSVal(rd, roundS(d, rem === 0 ? 0 : rem > 0 === b > 0 ? 1 : -1, rm));
    } else if (d !== d) {
      if (a === a && b === b) fl |= NV; // 0/0, inf/inf
      this.nanS(rd, rs1, rs2);
    } else {
      if (b === 0 && a - a === 0) fl |= DZ; // finite nonzero / 0
      this.writeSVal(rd, d);
    }
  }

  private sqrtS(rd: number, rs1: number, rm: number): void {
    const a = this.readS(rs1);
    if (a > 0 && a !== Infinity) {
      const s = Math.sqrt(a);
      const p = s * s;
      const e = productError(s, s, p);
      const rem = a - p - e;
      this.writeSVal(rd, roundS(s, rem, rm));
    } else if (a !== a) {
      this.nanS(rd, rs1, rs1);
    } else if (a < 0) {
      fl |= NV;
      this.writeSBits(rd, S_CANON_NAN);
    } else {
      this.writeSVal(rd, a); // +-0, +inf
    }
  }

  private fmaS(rd: number, rs1: number, rs2: number, rs3: number, negProd: boolean, negC: boolean, rm: number): void {
    const a = negProd ? -this.readS(rs1) : this.readS(rs1);
    const b = this.readS(rs2);
    const c = negC ? -this.readS(rs3) : this.readS(rs3);
    const p = a * b; // exact
    const d = p + c;
    if (d - d === 0 && d !== 0 && p !== 0) {
      const u = d - p;
      const e = p - (d - u) + (c - u); // TwoSum error: x = d + e
      this.writeSVal(rd, roundS(d, e, rm));
      return;
    }
    if (d - d === 0 && d === 0 && p !== 0) {
      // Nonzero product cancelled exactly by c.
      this.writeSBits(rd, rm === RDN ? S_SIGN : 0);
      return;
    }
    this.fmaSlow(rd, a, b, c, rs1, rs2, rs3, false, rm);
  }

  // ------------------------------------------------------------ conversion

  private cvtSD(rd: number, rs1: number, rm: number): void {
    const a = this.readD(rs1);
    if (a - a === 0 && a !== 0) {
      this.writeSVal(rd, roundS(a, 0, rm));
    } else if (a !== a) {
      if (this.isSNaND(rs1)) fl |= NV;
      this.writeSBits(rd, S_CANON_NAN);
    } else {
      this.writeSVal(rd, a); // +-0, +-inf
    }
  }

  private cvtDS(rd: number, rs1: number): void {
    const a = this.readS(rs1);
    if (a !== a) {
      if (this.isSNaNS(rs1)) fl |= NV;
      this.writeNaND(rd);
    } else {
      this.writeD(rd, a); // widening is exact
    }
  }

  /**
   * FCVT.{W,WU,L,LU}.{S,D}: round to an integer in mode rm, then saturate.
   * Out of range (after rounding) or NaN raises NV and no NX; NaN and +inf
   * give the largest value, -inf the smallest.  32-bit results, WU included,
   * are sign-extended into x[rd].
   */
  private cvtToInt(rd: number, v: number, type: number, rm: number): void {
    if (v !== v) {
      fl |= NV;
      this.writeIntMax(rd, type);
      return;
    }
    let r = Math.trunc(v); // exact
    if (r !== v) {
      if (rm === RDN) r = Math.floor(v);
      else if (rm === RUP) r = Math.ceil(v);
      else if (rm !== RTZ) {
        const frac = Math.abs(v - r); // exact
        if (frac > 0.5 || (frac === 0.5 && (rm === RMM || r % 2 !== 0))) r += v < 0 ? -1 : 1;
      }
      fl |= NX;
    }
    let ok: boolean;
    switch (type) {
      case 0: // W
        ok = r >= -2147483648 && r <= 2147483647;
        break;
      case 1: // WU
        ok = r >= 0 && r <= 4294967295;
        break;
      case 2: // L
        ok = r >= -9223372036854775808 && r < 9223372036854775808;
        break;
      default: // LU
        ok = r >= 0 && r < 18446744073709551616;
    }
    if (!ok) {
      fl = NV;
      if (v < 0) this.writeIntMin(rd, type);
      else this.writeIntMax(rd, type);
      return;
    }
    if (type < 2) {
      this.writeX32(rd, r | 0);
    } else {
      const hi = Math.floor(r / TWO32);
      this.writeX64(rd, hi | 0, (r - hi * TWO32) | 0);
    }
  }

  private writeIntMax(rd: number, type: number): void {
    switch (type) {
      case 0:
        this.writeX32(rd, 0x7fffffff);
        break;
      case 1:
        this.writeX32(rd, -1); // 0xffffffff sign-extended
        break;
      case 2:
        this.writeX64(rd, 0x7fffffff, -1);
        break;
      default:
        this.writeX64(rd, -1, -1);
    }
  }

  private writeIntMin(rd: number, type: number): void {
    switch (type) {
      case 0:
        this.writeX32(rd, -0x80000000);
        break;
      case 2:
        this.writeX64(rd, -0x80000000, 0);
        break;
      default:
        this.writeX32(rd, 0); // unsigned: 0
    }
  }

  /** FCVT.{S,D}.{W,WU,L,LU}. */
  private cvtFromInt(rd: number, rs1: number, isD: boolean, type: number, rm: number): void {
    const i = 2 * (this.xBase + rs1);
    const lo = this.i32[i]!;
    let d: number;
    let e = 0;
    switch (type) {
      case 0: // W
        d = lo;
        break;
      case 1: // WU
        d = lo >>> 0;
        break;
      default: {
        const hi = this.i32[i + 1]!;
        const h = (type === 2 ? hi : hi >>> 0) * TWO32; // exact
        const l = lo >>> 0;
        d = h + l;
        // Fast2Sum (|h| >= |l| whenever h != 0): exact error of the sum.
        e = l - (d - h);
      }
    }
    if (isD) {
      this.writeD(rd, e === 0 ? d : fixD(d, e, rm, true));
    } else if (d === 0) {
      this.writeSBits(rd, 0);
    } else {
      this.writeSVal(rd, roundS(d, e, rm));
    }
  }

  // ------------------------------------------------------ bit manipulation

  private sgnjS(rd: number, rs1: number, rs2: number, kind: number): void {
    const a = this.bitsS(rs1);
    const b = this.bitsS(rs2);
    const s = kind === 0 ? b : kind === 1 ? ~b : a ^ b;
    this.writeSBits(rd, (a & 0x7fffffff) | (s & S_SIGN));
  }

  private sgnjD(rd: number, rs1: number, rs2: number, kind: number): void {
    const i32 = this.i32;
    const ia = 2 * (this.fBase + rs1);
    const a = i32[ia + 1]!;
    const b = i32[2 * (this.fBase + rs2) + 1]!;
    const s = kind === 0 ? b : kind === 1 ? ~b : a ^ b;
    const id = 2 * (this.fBase + rd);
    i32[id] = i32[ia]!;
    i32[id + 1] = (a & 0x7fffffff) | (s & S_SIGN);
  }

  private fmvXW(rd: number, rs1: number): void {
    this.writeX32(rd, this.i32[2 * (this.fBase + rs1)]!);
  }

  private fmvXD(rd: number, rs1: number): void {
    const i = 2 * (this.fBase + rs1);
    this.writeX64(rd, this.i32[i + 1]!, this.i32[i]!);
  }

  // -------------------------------------------------- min/max, compare, class

  /**
   * FMIN/FMAX (spec 2.2 semantics): -0 < +0; one NaN operand yields the
   * other operand; two NaNs yield the canonical NaN; any signalling NaN
   * raises NV.
   */
  private minMaxS(rd: number, rs1: number, rs2: number, max: boolean): void {
    const a = this.readS(rs1);
    const b = this.readS(rs2);
    if (this.isSNaNS(rs1) || this.isSNaNS(rs2)) fl |= NV;
    let pickA: boolean;
    if (a !== a) {
      if (b !== b) {
        this.writeSBits(rd, S_CANON_NAN);
        return;
      }
      pickA = false;
    } else if (b !== b) {
      pickA = true;
    } else if (a === b) {
      pickA = isNeg(a) !== max; // only differs for +0 / -0
    } else {
      pickA = a < b !== max;
    }
    this.writeSBits(rd, this.bitsS(pickA ? rs1 : rs2));
  }

  private minMaxD(rd: number, rs1: number, rs2: number, max: boolean): void {
    const a = this.readD(rs1);
    const b = this.readD(rs2);
    if (this.isSNaND(rs1) || this.isSNaND(rs2)) fl |= NV;
    let pickA: boolean;
    if (a !== a) {
      if (b !== b) {
        this.writeNaND(rd);
        return;
      }
      pickA = false;
    } else if (b !== b) {
      pickA = true;
    } else if (a === b) {
      pickA = isNeg(a) !== max;
    } else {
      pickA = a < b !== max;
    }
    const i32 = this.i32;
    const s = 2 * (this.fBase + (pickA ? rs1 : rs2));
    const d = 2 * (this.fBase + rd);
    i32[d] = i32[s]!;
    i32[d + 1] = i32[s + 1]!;
  }

  /** FLE (f3=0), FLT (f3=1), FEQ (f3=2).  FEQ is a quiet comparison (NV only
   *  for signalling NaNs); FLT and FLE are signalling (NV for any NaN). */
  private cmp(rd: number, a: number, b: number, rs1: number, rs2: number, isD: boolean, f3: number): void {
    if (a !== a || b !== b) {
      if (f3 !== 2 || (isD ? this.isSNaND(rs1) || this.isSNaND(rs2) : this.isSNaNS(rs1) || this.isSNaNS(rs2))) fl |= NV;
      this.writeX32(rd, 0);
      return;
    }
    this.writeX32(rd, (f3 === 0 ? a <= b : f3 === 1 ? a < b : a === b) ? 1 : 0);
  }

  private classS(rs1: number): number {
    const b = this.bitsS(rs1);
    const neg = b < 0;
    const ex = (b >>> 23) & 0xff;
    const m = b & 0x7fffff;
    if (ex === 0xff) {
      if (m === 0) return neg ? CLASS_NEG_INF : CLASS_POS_INF;
      return (m & 0x400000) !== 0 ? CLASS_QNAN : CLASS_SNAN;
    }
    if (ex === 0) {
      if (m === 0) return neg ? CLASS_NEG_ZERO : CLASS_POS_ZERO;
      return neg ? CLASS_NEG_SUBNORMAL : CLASS_POS_SUBNORMAL;
    }
    return neg ? CLASS_NEG_NORMAL : CLASS_POS_NORMAL;
  }

  private classD(rs1: number): number {
    const i = 2 * (this.fBase + rs1);
    const hi = this.i32[i + 1]!;
    const neg = hi < 0;
    const ex = (hi >>> 20) & 0x7ff;
    const mz = ((hi & 0xfffff) | this.i32[i]!) === 0;
    if (ex === 0x7ff) {
      if (mz) return neg ? CLASS_NEG_INF : CLASS_POS_INF;
      return (hi & 0x80000) !== 0 ? CLASS_QNAN : CLASS_SNAN;
    }
    if (ex === 0) {
      if (mz) return neg ? CLASS_NEG_ZERO : CLASS_POS_ZERO;
      return neg ? CLASS_NEG_SUBNORMAL : CLASS_POS_SUBNORMAL;
    }
    return neg ? CLASS_NEG_NORMAL : CLASS_POS_NORMAL;
  }
}
