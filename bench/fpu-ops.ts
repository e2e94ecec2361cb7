/**
 * Throughput of Fpu.execute for a few common instructions, in RNE and RTZ.
 *   npx tsc -p . && node dist/bench/fpu-ops.js
 * Operands are pseudo-random values of moderate magnitude (the fast path);
 * each measurement cycles through 8 register pairs so results vary.
 */
import { Fpu, RNE, RTZ } from '../src/cpu/fpu.js';

const buf = new ArrayBuffer(64 * 8);
const f64 = new Float64Array(buf);
const i32 = new Int32Array(buf);
const fpu = new Fpu({ f64, i32, x: new BigInt64Array(buf), fBase: 32, xBase: 0 });

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) | 0;
  return (seed >>> 8) / 16777216;
}
function loadOperands(single: boolean): void {
  for (let r = 1; r <= 24; r++) {
    const v = (rand() * 2 - 1) * 2 ** Math.floor(rand() * 40 - 20);
    if (single) {
      f64[32 + r] = 0; // overwritten below
      const f = new Float32Array([v]);
      i32[2 * (32 + r)] = new Int32Array(f.buffer)[0]!;
      i32[2 * (32 + r) + 1] = -1; // NaN-boxed
    } else {
      f64[32 + r] = v;
    }
  }
}

interface Op {
  name: string;
  single: boolean;
  /** Instruction word for rd=31, given rs1, rs2, rs3 and rm. */
  enc: (rs1: number, rs2: number, rs3: number, rm: number) => number;
}
const rType = (f7: number) => (rs1: number, rs2: number, _rs3: number, rm: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (31 << 7) | 0x53) | 0;
const ops: Op[] = [
  { name: 'fadd.d', single: false, enc: rType(0x01) },
  { name: 'fmul.d', single: false, enc: rType(0x09) },
  { name: 'fdiv.d', single: false, enc: rType(0x0d) },
  {
    name: 'fmadd.d',
    single: false,
    enc: (rs1, rs2, rs3, rm) => ((rs3 << 27) | (1 << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (31 << 7) | 0x43) | 0,
  },
  { name: 'fadd.s', single: true, enc: rType(0x00) },
];

function measure(op: Op, rm: number): number {
  loadOperands(op.single);
  const insns = new Int32Array(8);
  for (let k = 0; k < 8; k++) insns[k] = op.enc(1 + k, 9 + k, 17 + k, rm);
  const run = (n: number): void => {
    for (let i = 0; i < n; i++) fpu.execute(insns[i & 7]!, RNE);
  };
  run(200_000); // warm up (JIT)
  let n = 500_000;
  for (;;) {
    const t0 = process.hrtime.bigint();
    run(n);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (dt > 0.3) return n / dt;
    n *= 2;
  }
}

const fmt = (v: number): string => `${(v / 1e6).toFixed(1)} M`.padStart(10);
console.log('op        ' + 'RNE ops/s'.padStart(10) + 'RTZ ops/s'.padStart(12));
for (const op of ops) {
  const rne = measure(op, RNE);
  const rtz = measure(op, RTZ);
  console.log(op.name.padEnd(10) + fmt(rne) + '  ' + fmt(rtz));
}
