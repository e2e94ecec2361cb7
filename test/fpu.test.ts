/**
 * Tests for src/cpu/fpu.ts against reference vectors recorded from a RISC-V
 * F/D implementation (test/fpu/gen-vectors.c run under qemu-user), plus a few
 * hand-written cases for illegal rounding modes and x0.
 *
 * Vector line format (hex): INSN FRM OP1 [OP2 [OP3]] = RESULT FLAGS | ill
 * Register convention of the generator: f1/f2/f3 = OP1/OP2/OP3, x5 = OP1;
 * the rd field is 4 for a result in f4 and 6 for a result in x6.
 * FPU_VECTORS=path overrides the vector file (e.g. a larger generated set).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Fpu, NV, NX, RNE, RDN, DYN } from '../src/cpu/fpu.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const vectorsPath = process.env['FPU_VECTORS'] ?? `${here}../../test/fpu/vectors.txt`;

// A state block with the register files at nonzero offsets, as in a hart.
const X_BASE = 3;
const F_BASE = 40;
const WORDS = 80;

interface Machine {
  fpu: Fpu;
  i32: Int32Array;
}

function machine(): Machine {
  const buf = new ArrayBuffer(WORDS * 8);
  const i32 = new Int32Array(buf);
  const fpu = new Fpu({ f64: new Float64Array(buf), i32, x: new BigInt64Array(buf), fBase: F_BASE, xBase: X_BASE });
  return { fpu, i32 };
}

function setF(m: Machine, r: number, hi: number, lo: number): void {
  m.i32[2 * (F_BASE + r)] = lo;
  m.i32[2 * (F_BASE + r) + 1] = hi;
}
function setX(m: Machine, r: number, hi: number, lo: number): void {
  m.i32[2 * (X_BASE + r)] = lo;
  m.i32[2 * (X_BASE + r) + 1] = hi;
}
function hex64(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}
/** Splits a hex string of up to 16 digits into int32 words. */
function words(h: string): [number, number] {
  const p = h.padStart(16, '0');
  return [parseInt(p.slice(0, 8), 16) | 0, parseInt(p.slice(8), 16) | 0];
}

// ------------------------------------------------------------ disassembly

const RM_NAMES = ['rne', 'rtz', 'rdn', 'rup', 'rmm', 'rm5', 'rm6', 'dyn'];

/** Mnemonic of an F/D instruction, for failure messages. */
function mnemonic(insn: number): string {
  const opcode = insn & 0x7f;
  const f3 = (insn >>> 12) & 7;
  const rs2 = (insn >>> 20) & 31;
  const rm = RM_NAMES[f3] ?? '?';
  if (opcode !== 0x53) {
    const base = ({ 0x43: 'fmadd', 0x47: 'fmsub', 0x4b: 'fnmsub', 0x4f: 'fnmadd' } as Record<number, string>)[opcode] ?? '?';
    return `${base}.${'sdhq'[(insn >>> 25) & 3]} ${rm}`;
  }
  const f7 = insn >>> 25;
  const fmt = f7 & 1 ? 'd' : 's';
  const ints = ['w', 'wu', 'l', 'lu'];
  switch (f7 & ~1) {
    case 0x00: return `fadd.${fmt} ${rm}`;
    case 0x04: return `fsub.${fmt} ${rm}`;
    case 0x08: return `fmul.${fmt} ${rm}`;
    case 0x0c: return `fdiv.${fmt} ${rm}`;
    case 0x2c: return `fsqrt.${fmt} ${rm}`;
    case 0x10: return `${['fsgnj', 'fsgnjn', 'fsgnjx'][f3] ?? 'fsgnj?'}.${fmt}`;
    case 0x14: return `${['fmin', 'fmax'][f3] ?? 'fminmax?'}.${fmt}`;
    case 0x20: return f7 === 0x20 ? `fcvt.s.d ${rm}` : `fcvt.d.s ${rm}`;
    case 0x50: return `${['fle', 'flt', 'feq'][f3] ?? 'fcmp?'}.${fmt}`;
    case 0x60: return `fcvt.${ints[rs2] ?? '?'}.${fmt} ${rm}`;
    case 0x68: return `fcvt.${fmt}.${ints[rs2] ?? '?'} ${rm}`;
    case 0x70: return f3 === 1 ? `fclass.${fmt}` : f7 === 0x70 ? 'fmv.x.w' : 'fmv.x.d';
    case 0x78: return f7 === 0x78 ? 'fmv.w.x' : 'fmv.d.x';
    default: return `op-fp funct7=${f7.toString(16)}`;
  }
}

function flagNames(f: number): string {
  if (f < 0) return 'illegal';
  const n = ['NX', 'UF', 'OF', 'DZ', 'NV'].filter((_, i) => (f >> i) & 1);
  return n.length ? n.join('|') : '-';
}

// ------------------------------------------------------------- vectors

test('reference vectors (qemu-user oracle)', () => {
  const text = readFileSync(vectorsPath, 'utf8');
  const m = machine();
  const snapshot = new Int32Array(WORDS * 2);
  const failures: string[] = [];
  let total = 0;
  let bad = 0;
  const perOp = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf(' = ');
    const lhs = line.slice(0, eq).split(' ');
    const rhs = line.slice(eq + 3).split(' ');
    const insn = parseInt(lhs[0]!, 16) | 0;
    const frm = parseInt(lhs[1]!, 16);
    const ops = lhs.slice(2);
    total++;
    // Fill every register with a recognisable pattern, then the operands.
    for (let i = 0; i < WORDS * 2; i++) m.i32[i] = 0x5a5a0000 + i;
    setX(m, 0, 0, 0);
    for (let k = 0; k < 3; k++) {
      const [hi, lo] = words(ops[k] ?? '0');
      setF(m, k + 1, hi, lo);
      if (k === 0) setX(m, 5, hi, lo);
    }
    snapshot.set(m.i32);
    const got = m.fpu.execute(insn, frm);
    const rd = (insn >>> 7) & 31;
    const dst = rd === 6 ? 2 * (X_BASE + 6) : 2 * (F_BASE + 4);
    let expect: string;
    let gotStr: string;
    let ok: boolean;
    if (rhs[0] === 'ill') {
      expect = 'illegal';
      gotStr = got < 0 ? 'illegal' : `${hex64(m.i32[dst + 1]!, m.i32[dst]!)} ${flagNames(got)}`;
      ok = got === -1 && m.i32.every((v, i) => v === snapshot[i]);
      if (got === -1 && !ok) gotStr = 'illegal, but registers modified';
    } else {
      const [ehi, elo] = words(rhs[0]!);
      const eflags = parseInt(rhs[1]!, 16);
      expect = `${hex64(ehi, elo)} ${flagNames(eflags)}`;
      gotStr = got < 0 ? 'illegal' : `${hex64(m.i32[dst + 1]!, m.i32[dst]!)} ${flagNames(got)}`;
      ok = got === eflags && m.i32[dst] === elo && m.i32[dst + 1] === ehi;
      if (ok) {
        // Nothing but the destination may change.
        for (let i = 0; i < WORDS * 2; i++) {
          if (i !== dst && i !== dst + 1 && m.i32[i] !== snapshot[i]) {
            ok = false;
            gotStr += ` (also wrote word ${i})`;
            break;
          }
        }
      }
    }
    if (!ok) {
      bad++;
      const name = mnemonic(insn);
      perOp.set(name, (perOp.get(name) ?? 0) + 1);
      if (failures.length < 40) {
        failures.push(`${name} [${insn.toString(16).padStart(8, '0')}] frm=${frm} ops=${ops.join(' ')}\n    expected ${expect}\n    got      ${gotStr}`);
      }
    }
  }
  if (bad > 0) {
    const summary = [...perOp].map(([k, v]) => `${k}: ${v}`).join(', ');
    assert.fail(`${bad} of ${total} vectors failed (${summary})\n${failures.join('\n')}`);
  }
  assert.ok(total > 1000, `only ${total} vectors read from ${vectorsPath}`);
  console.log(`fpu: ${total} vectors passed`);
});

// ---------------------------------------------------------- hand-written

// Encoders for the hand-written cases.
function rType(f7: number, rs2: number, rs1: number, f3: number, rd: number): number {
  return ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x53) | 0;
}

test('reserved rounding modes are illegal and change nothing', () => {
  const m = machine();
  setF(m, 1, 0x3ff00000, 0); // 1.0
  setF(m, 2, 0x40000000, 0); // 2.0
  const before = Int32Array.from(m.i32);
  for (const rm of [5, 6]) {
    assert.equal(m.fpu.execute(rType(0x01, 2, 1, rm, 3), RNE), -1, `fadd.d rm=${rm}`);
    assert.equal(m.fpu.execute(rType(0x21, 0, 1, rm, 3), RNE), -1, `fcvt.d.s rm=${rm}`);
  }
  for (const frm of [5, 6, 7]) {
    assert.equal(m.fpu.execute(rType(0x01, 2, 1, DYN, 3), frm), -1, `fadd.d dyn frm=${frm}`);
    assert.equal(m.fpu.execute(rType(0x69, 0, 1, DYN, 3), frm), -1, `fcvt.d.w dyn frm=${frm}`);
    // fmadd.d f3, f1, f2, f1, dyn
    assert.equal(m.fpu.execute((1 << 27) | (1 << 25) | (2 << 20) | (1 << 15) | (DYN << 12) | (3 << 7) | 0x43, frm), -1);
  }
  assert.deepEqual(m.i32, before);
  // Dynamic mode with a valid frm works: 1 + 2 = 3 exactly.
  assert.equal(m.fpu.execute(rType(0x01, 2, 1, DYN, 3), RDN), 0);
  assert.equal(m.i32[2 * (F_BASE + 3) + 1], 0x40080000);
  // Operations without an rm field ignore frm entirely.
  assert.equal(m.fpu.execute(rType(0x51, 2, 1, 2, 7), 7), 0); // feq.d x7
  assert.equal(m.i32[2 * (X_BASE + 7)], 0);
});

test('x0 is never written, but flags are still raised', () => {
  const m = machine();
  setX(m, 0, 0, 0);
  setF(m, 1, 0x7ff00000, 1); // signalling NaN
  setF(m, 2, 0x3ff00000, 0); // 1.0
  assert.equal(m.fpu.execute(rType(0x51, 2, 1, 2, 0), RNE), NV); // feq.d x0, sNaN, 1.0
  assert.equal(m.fpu.execute(rType(0x51, 2, 2, 2, 0), RNE), 0); // feq.d x0, 1.0, 1.0
  assert.equal(m.fpu.execute(rType(0x61, 0, 1, RNE, 0), RNE), NV); // fcvt.w.d x0, NaN
  assert.equal(m.fpu.execute(rType(0x61, 2, 2, RNE, 0), RNE), 0); // fcvt.l.d x0, 1.0
  assert.equal(m.fpu.execute(rType(0x71, 0, 2, 0, 0), RNE), 0); // fmv.x.d x0
  assert.equal(m.fpu.execute(rType(0x71, 0, 2, 1, 0), RNE), 0); // fclass.d x0
  assert.equal(m.fpu.execute(rType(0x70, 0, 2, 0, 0), RNE), 0); // fmv.x.w x0
  assert.equal(m.i32[2 * X_BASE], 0);
  assert.equal(m.i32[2 * X_BASE + 1], 0);
  // f0 is an ordinary register: fadd.d f0, f2, f2 writes 2.0.
  assert.equal(m.fpu.execute(rType(0x01, 2, 2, RNE, 0), RNE), 0);
  assert.equal(m.i32[2 * F_BASE + 1], 0x40000000);
});

test('inexact single result is NaN-boxed and flagged', () => {
  const m = machine();
  setF(m, 1, -1, 0x3f800000); // 1.0f
  setF(m, 2, -1, 0x40400000); // 3.0f
  assert.equal(m.fpu.execute(rType(0x0c, 2, 1, RNE, 3), RNE), NX); // fdiv.s
  assert.equal(m.i32[2 * (F_BASE + 3) + 1], -1);
  assert.equal(m.i32[2 * (F_BASE + 3)], 0x3eaaaaab);
});
