// Floating point in translated code against the interpreter's FPU: the same
// operations on the same operands (ordinary, tiny, huge, special, and fused
// multiply-adds that nearly cancel or fall near a rounding tie), under every
// way the rounding mode can be given, with fflags clear and with NX already
// set, must give the same results and the same flags.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { PRIV_M } from '../src/cpu/csr-numbers.js';
import { Hart } from '../src/cpu/hart.js';
import { hostFusedMadd } from '../src/jit/fma.js';
import { Jit } from '../src/jit/index.js';
import { MachineMemory } from '../src/memory/machine-memory.js';
import { Pmap } from '../src/memory/pmap.js';
import { prng } from './support.js';
import { csrrs, csrrwi, ECALL, i, jal, lui, r4, s } from '../src/cpu/encode.js';

const DRAM = 0x8000_0000;
const IN = DRAM + 0x100000; // operands: 3 x 8 bytes per case
const OUT = DRAM + 0x180000; // result and fflags: 2 x 8 bytes per case
const CASES = 4000;

const FFLAGS = 0x001, FRM = 0x002, MSTATUS = 0x300;

/** x_rd = a 32-bit address (sign bits cleared). */
function addr(rd: number, a: number): number[] {
  const lo = (a << 20) >> 20;
  return [lui(((a - lo) >>> 12) & 0xfffff, rd), i(lo, rd, 0, rd, 0x1b), i(32, rd, 1, rd, 0x13), i(32, rd, 5, rd, 0x13)];
}

type Op = { readonly name: string; readonly word: (rm: number) => number; readonly double: boolean; readonly fma: boolean; readonly fromX?: boolean };
const OPS: Op[] = [];
for (const double of [false, true]) {
  const fmt = double ? 1 : 0;
  const sfx = double ? '.d' : '.s';
  for (const [name, f5] of [['fadd', 0], ['fsub', 1], ['fmul', 2], ['fdiv', 3]] as const) {
    OPS.push({ name: name + sfx, word: (rm) => r4(f5, fmt, 2, 1, rm, 4, 0x53), double, fma: false });
  }
  OPS.push({ name: 'fsqrt' + sfx, word: (rm) => r4(0xb, fmt, 0, 1, rm, 4, 0x53), double, fma: false });
  for (const [name, opc] of [['fmadd', 0x43], ['fmsub', 0x47], ['fnmsub', 0x4b], ['fnmadd', 0x4f]] as const) {
    OPS.push({ name: name + sfx, word: (rm) => r4(3, fmt, 2, 1, rm, 4, opc), double, fma: true });
  }
  // FCVT.S/D.W/WU/L/LU from x5 (loaded with the operand's 64 bits)
  for (const [name, type] of [['w', 0], ['wu', 1], ['l', 2], ['lu', 3]] as const) {
    OPS.push({ name: `fcvt${sfx}.${name}`, word: (rm) => r4(0x1a, fmt, type, 5, rm, 4, 0x53), double, fma: false, fromX: true });
  }
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsD = (x: number): bigint => { f64[0] = x; return u64[0]!; };
const bitsS = (x: number): bigint => { f32[0] = x; return 0xffffffff00000000n | BigInt(u32[0]!); };

/** A random operand of the format, NaN-boxed for singles, biased toward the cases that matter. */
function operand(rnd: () => number, double: boolean): bigint {
  const c = rnd();
  const sign = rnd() < 0.5 ? -1 : 1;
  if (c < 0.04) {
    const specials = [0, -0, Infinity, -Infinity, NaN, double ? 2 ** -1074 : 2 ** -149, double ? 2 ** -1022 : 2 ** -126, double ? 1.7976931348623157e308 : 3.4028234663852886e38];
    const v = specials[Math.floor(rnd() * specials.length)]!;
    if (Number.isNaN(v) && rnd() < 0.5) return double ? 0x7ff4000000000000n : 0xffffffff7fa00000n; // signalling
    return double ? bitsD(v) : bitsS(v);
  }
  if (!double && c < 0.06) return BigInt(Math.floor(rnd() * 2 ** 32)); // not NaN-boxed
  // Mostly ordinary exponents, sometimes extreme ones.
  const wide = c < 0.2;
  const e = wide ? Math.floor(rnd() * (double ? 2100 : 290)) - (double ? 1075 : 150) : Math.floor(rnd() * 40) - 20;
  const m = 1 + rnd();
  const v = sign * m * 2 ** e;
  if (double) {
    // Random low bits: the significand's last bits decide ties.
    const b = bitsD(v) ^ BigInt(Math.floor(rnd() * 2 ** 20));
    return (b & 0x7ff0000000000000n) === 0x7ff0000000000000n ? bitsD(v) : b;
  }
  f32[0] = v;
  u32[0] = (u32[0]! ^ Math.floor(rnd() * 256)) >>> 0;
  return 0xffffffff00000000n | BigInt(u32[0]!);
}

const valD = (b: bigint): number => { u64[0] = b; return f64[0]!; };

/** Operands for one case; fused ones often nearly cancel (c close to -(a*b)) or land near a tie. */
function operands(rnd: () => number, op: Op): [bigint, bigint, bigint] {
  if (op.fma && rnd() < 0.3) return nearTie(rnd, op.double);
  const a = operand(rnd, op.double), b = operand(rnd, op.double);
  let c = operand(rnd, op.double);
  if (op.fma && rnd() < 0.5) {
    if (op.double) {
      const p = valD(a) * valD(b);
      if (Number.isFinite(p) && p !== 0) c = bitsD(-p) + BigInt(Math.floor(rnd() * 5) - 2);
    } else {
      const av = new Float32Array(new Uint32Array([Number(a & 0xffffffffn)]).buffer)[0]!;
      const bv = new Float32Array(new Uint32Array([Number(b & 0xffffffffn)]).buffer)[0]!;
      const p = Math.fround(av * bv);
      if (Number.isFinite(p) && p !== 0) {
        f32[0] = -p;
        u32[0] = (u32[0]! + Math.floor(rnd() * 5) - 2) >>> 0;
        c = 0xffffffff00000000n | BigInt(u32[0]!);
      }
    }
  }
  return [a, b, c];
}

/**
 * a*b = 2^e (1 + x^3) or 2^e (1 - x^2) with x = 2^-k: a rounded product is a
 * power of two and the exact one sits just above or below it. c, a huge number
 * with few bits, puts the sum on a tie of the result's format, which only the
 * product's low part decides: a fused multiply-add that rounds twice gets it wrong.
 */
function nearTie(rnd: () => number, double: boolean): [bigint, bigint, bigint] {
  const p = double ? 53 : 24;
  const k = Math.floor(p / 2) - Math.floor(rnd() * 6);
  const x = 2 ** -k;
  const e1 = Math.floor(rnd() * 20) - 10, e2 = Math.floor(rnd() * 20) - 10;
  const sa = rnd() < 0.5 ? -1 : 1, sb = rnd() < 0.5 ? -1 : 1;
  const a = sa * (1 + x) * 2 ** e1;
  const b = sb * (rnd() < 0.5 ? 1 - x + x * x : 1 - x) * 2 ** e2;
  // c = -(sign of the product) 2^(e1+e2+p) (1 + j 2^(1-p)) for a small j: ties at c's scale are at odd multiples of 2^(e1+e2).
  const j = Math.floor(rnd() * 4);
  const c = (rnd() < 0.7 ? 1 : -1) * sa * sb * 2 ** (e1 + e2 + p) * (1 + j * 2 ** (1 - p));
  const enc = double ? bitsD : bitsS;
  return [enc(a), enc(b), enc(c)];
}

interface Case { op: Op; rm: number; frm: number; nx: boolean; a: bigint; b: bigint; c: bigint }

function cases(seed: number): Case[] {
  const rnd = prng(seed);
  const out: Case[] = [];
  for (let k = 0; k < CASES; k++) {
    const op = OPS[Math.floor(rnd() * OPS.length)]!;
    // Static RNE or RTZ, or dynamic with frm RNE or RUP; NX set beforehand three times in four.
    const rm = [0, 7, 7, 1][Math.floor(rnd() * 4)]!;
    const frm = rnd() < 0.8 ? 0 : 3;
    let [a, b, c] = operands(rnd, op);
    // Integers for the conversions: small ones (exact), and the others as they come.
    if (op.fromX && rnd() < 0.5) a = BigInt.asUintN(64, BigInt(Math.floor((rnd() - 0.5) * 2 ** (rnd() < 0.5 ? 20 : 60))));
    out.push({ op, rm, frm, nx: rnd() < 0.75, a, b, c });
  }
  return out;
}

function run(cs: readonly Case[], jit: boolean, fusedMadd = false): { out: BigUint64Array; translated: number } {
  const mem = MachineMemory.create(16 << 20);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 4 << 20 }]);
  const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0, ecallExitMask: 1 << PRIV_M });
  const input = new BigUint64Array(cs.length * 3);
  cs.forEach((k, n) => { input[3 * n] = k.a; input[3 * n + 1] = k.b; input[3 * n + 2] = k.c; });
  pmap.write(IN, new Uint8Array(input.buffer));
  // Code: per case, x10/x11 point at the case's operands and output slot.
  // Two rounds: the first translates (entries are queued and compiled in batches), the second's results count.
  const code: number[] = [lui(6, 5), csrrs(MSTATUS, 5, 0), i(2, 0, 0, 13, 0x13)];
  const top = code.length;
  cs.forEach((k, n) => {
    code.push(...addr(10, IN + 24 * n), ...addr(11, OUT + 16 * n));
    // jal x0, +4: the operation's block starts at a jump target, so it becomes a translated region's entry.
    code.push(csrrwi(FRM, k.frm), csrrwi(FFLAGS, k.nx ? 1 : 0), jal(4, 0));
    // fld f1..f3: the raw 64 bits, so singles keep the boxing the case gave them
    code.push(i(0, 10, 3, 1, 0x07), i(8, 10, 3, 2, 0x07), i(16, 10, 3, 3, 0x07));
    if (k.op.fromX) code.push(i(0, 10, 3, 5, 0x03)); // ld x5: the integer operand
    code.push(k.op.word(k.rm));
    code.push(s(0, 4, 11, 3, 0x27)); // fsd f4
    code.push(csrrs(FFLAGS, 0, 12), s(8, 12, 11, 3, 0x23)); // sd fflags
  });
  code.push(i(-1, 13, 0, 13, 0x13), 0x00068463); // addi x13, -1; beq x13, x0, +8
  const back = 4 * (top - code.length);
  code.push(jal(back, 0)); // jal x0, top
  code.push(ECALL);
  const bytes = new Uint8Array(code.length * 4);
  code.forEach((w, n) => new DataView(bytes.buffer).setUint32(4 * n, w, true));
  pmap.write(DRAM, bytes);
  hart.reset(BigInt(DRAM));
  let j: Jit | null = null;
  if (jit) {
    j = new Jit(hart, { threshold: 0, batch: 16, fusedMadd });
    hart.attachAccelerator(j);
  }
  for (;;) {
    const e = hart.run(1_000_000);
    if (e.kind === 'budget') continue;
    assert.equal(e.kind, 'ecall', `program ended with ${JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    break;
  }
  const out = new BigUint64Array(pmap.read(OUT, cs.length * 16).slice().buffer);
  return { out, translated: j?.stats.instructionsTranslated ?? 0 };
}

// Fused multiply-adds inline two ways: Dekker's exact product, and the host's own FMA where it has one.
for (const fused of hostFusedMadd() ? [false, true] : [false]) test(`FP arithmetic in translated code gives the interpreter FPU results and flags (${fused ? "the host's FMA" : "Dekker's product"} for FMADD.D)`, () => {
  for (const seed of [1, 2, 3]) {
    const cs = cases(seed);
    const a = run(cs, false);
    const t = run(cs, true, fused);
    assert.ok(t.translated > cs.length, 'the cases ran translated');
    cs.forEach((k, n) => {
      const what = `seed ${seed} case ${n}: ${k.op.name} rm ${k.rm} frm ${k.frm} nx ${k.nx} a ${k.a.toString(16)} b ${k.b.toString(16)} c ${k.c.toString(16)}`;
      assert.equal(t.out[2 * n]!.toString(16), a.out[2 * n]!.toString(16), `${what}: result`);
      assert.equal(t.out[2 * n + 1], a.out[2 * n + 1], `${what}: fflags`);
    });
  }
});
