// The translator against the interpreter: random programs run on both must end
// in the same architectural state; code written after translation (by the
// guest, by DMA, by the hypervisor) must run as written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { PRIV_M, PRIV_S, PRIV_U } from '../src/cpu/csr-numbers.js';
import type { Exit } from '../src/cpu/exit.js';
import { Hart, jumpWatchIndex } from '../src/cpu/hart.js';
import { Jit } from '../src/jit/index.js';
import { MachineMemory } from '../src/memory/machine-memory.js';
import { PM_CODE, Pmap } from '../src/memory/pmap.js';
import { prng } from './support.js';
import { b, csrrs, csrrw, csrrwi, ECALL, i, jal, lui, MRET, r, s, words } from '../src/cpu/encode.js';

const DRAM = 0x8000_0000;
const CODE = DRAM;
const HANDLER = DRAM + 0x8000;
const DATA = DRAM + 0x10000;
const DATA_BYTES = 0x2000;
/** An address no region maps: loads and stores there exit as MMIO. */
const HOLE = 0x1000_0000;

const MEPC = 0x341, MTVEC = 0x305, MINSTRET = 0xb02, MSTATUS = 0x300, FCSR = 0x003;
const SSTATUS = 0x100, SSCRATCH = 0x140, SEPC = 0x141, SCAUSE = 0x142, STVAL = 0x143;

/** Registers the generator may write: x2 is the data pointer, x30/x31 belong to the handler and loop. */
const FREE = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29];

/**
 * A random program: straight-line arithmetic, memory, forward branches and traps, looped `rounds` times.
 * `pure`: arithmetic and forward branches only (a loop the translator keeps in locals).
 */
function randomProgram(seed: number, length: number, rounds: number, pure = false): number[] {
  const rnd = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const reg = (): number => Math.floor(rnd() * 32);
  const out: number[] = [];
  // Prologue: data pointer, trap vector, loop counter, seeded registers.
  out.push(lui((DATA >>> 12) & 0xfffff, 2)); // x2 = DATA (sign-extended: 0xffffffff80010000)
  out.push(i(0, 2, 0, 2, 0x1b)); // addiw keeps it; then clear the high bits with a shift pair
  out.push(i(32, 2, 1, 2, 0x13), i(32, 2, 5, 2, 0x13)); // slli 32, srli 32
  out.push(lui(2, 30), csrrs(MSTATUS, 30, 0)); // mstatus.FS = Initial: F and D on, Dirty at the first write
  out.push(lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(MTVEC, 30, 0));
  out.push(i(rounds, 0, 0, 31, 0x13));
  for (const x of FREE) out.push(lui(Math.floor(rnd() * 0x100000), x), i(Math.floor(rnd() * 4096) - 2048, x, 0, x, 0x13));
  const loopTop = out.length;
  for (let k = 0; k < length; k++) {
    const rd = pick(FREE);
    const c = pure ? (rnd() < 0.9 ? rnd() * 0.5 : 0.8 + rnd() * 0.05) : rnd();
    if (c < 0.3) { // OP / OP-32 incl. M
      const f7 = pick([0, 0, 0x20, 1]);
      const f3 = f7 === 0x20 ? pick([0, 5]) : Math.floor(rnd() * 8);
      const op = rnd() < 0.6 ? 0x33 : 0x3b;
      if (op === 0x3b && f7 === 0 && ![0, 1, 5].includes(f3)) { k--; continue; }
      if (op === 0x3b && f7 === 1 && [1, 2, 3].includes(f3)) { k--; continue; }
      out.push(r(f7, reg(), reg(), f3, rd, op));
    } else if (c < 0.5) { // OP-IMM / OP-IMM-32
      const f3 = Math.floor(rnd() * 8);
      const imm = Math.floor(rnd() * 4096) - 2048;
      if (f3 === 1) out.push(i(Math.floor(rnd() * 64), reg(), 1, rd, 0x13));
      else if (f3 === 5) out.push(i((rnd() < 0.5 ? 0x400 : 0) | Math.floor(rnd() * 64), reg(), 5, rd, 0x13));
      else out.push(i(imm, reg(), f3, rd, 0x13));
      if (rnd() < 0.2) out.push(i(imm, reg(), 0, pick(FREE), 0x1b));
    } else if (c < 0.65) { // loads from the data area, sometimes misaligned
      const f3 = pick([0, 1, 2, 3, 4, 5, 6]);
      out.push(i(Math.floor(rnd() * 2040), 2, f3, rd, 0x03));
    } else if (c < 0.8) { // stores to the data area
      const f3 = Math.floor(rnd() * 4);
      out.push(s(Math.floor(rnd() * 2040), reg(), 2, f3));
    } else if (c < 0.85) { // forward branch over 1..4 instructions
      const skip = 1 + Math.floor(rnd() * 4);
      out.push(b(4 * (skip + 1), reg(), reg(), pick([0, 1, 4, 5, 6, 7])));
      for (let q = 0; q < skip; q++) out.push(i(Math.floor(rnd() * 100), reg(), 0, pick(FREE), 0x13));
    } else if (c < 0.93) { // FP loads, stores and moves, and AMOs: interpreted in place or translated
      const fr = Math.floor(rnd() * 32);
      const off = rnd() < 0.9 ? 8 * Math.floor(rnd() * 255) : Math.floor(rnd() * 2040);
      switch (Math.floor(rnd() * 10)) {
        case 0: out.push(i(off, 2, pick([2, 3]), fr, 0x07)); break; // flw / fld
        case 1: out.push(s(off, fr, 2, pick([2, 3]), 0x27)); break; // fsw / fsd
        case 2: out.push(r(pick([0x78, 0x79]), 0, reg(), 0, fr, 0x53)); break; // fmv.w.x / fmv.d.x
        case 3: out.push(r(pick([0x70, 0x71]), 0, fr, 0, rd, 0x53)); break; // fmv.x.w / fmv.x.d
        case 4: out.push(r(pick([0x00, 0x01, 0x08, 0x09]), fr, Math.floor(rnd() * 32), 7, Math.floor(rnd() * 32), 0x53)); break; // fadd/fmul .s/.d
        case 5: out.push(r(pick([0x50, 0x51]), fr, Math.floor(rnd() * 32), pick([0, 1, 2]), rd, 0x53)); break; // fle/flt/feq
        case 6: out.push(r(0x61, pick([0, 2]), fr, 1, rd, 0x53)); break; // fcvt.w.d / fcvt.l.d, RTZ
        default: { // an AMO on a data word, now and then misaligned
          const t = pick(FREE);
          const f3 = pick([2, 3]);
          out.push(i(8 * Math.floor(rnd() * 255) + (rnd() < 0.1 ? 4 : 0), 2, 0, t, 0x13)); // .D at +4: misaligned, a trap
          const f5 = pick([0, 1, 2, 3, 4, 8, 0xc, 0x10, 0x14, 0x18, 0x1c]);
          out.push(r(f5 << 2, f5 === 2 ? 0 : reg(), t, f3, rd, 0x2f));
        }
      }
    } else if (c < 0.96) { // a load from the hole: MMIO exit, then an access fault to the handler
      out.push(lui(HOLE >>> 12, rd), i(0, rd, 3, pick(FREE), 0x03));
    } else if (rnd() < 0.5) { // CSR read of minstret (interpreted in place) and an illegal instruction (trap)
      out.push(csrrs(MINSTRET, 0, rd));
      if (rnd() < 0.5) out.push(0xffffffff);
    } else { // sstatus and the S-mode trap CSRs: inline or interpreted in place, by operand
      const csr = pick([SSTATUS, SSTATUS, SSCRATCH, SEPC, SCAUSE, STVAL]);
      const f3 = pick([1, 2, 3, 5, 6, 7]);
      let src = reg();
      if (f3 >= 5) src = pick([0, 2, 2, Math.floor(rnd() * 32)]); // uimm: SIE alone mostly
      else if (csr === SSTATUS && rnd() < 0.7) { src = pick(FREE); out.push(i(pick([0, 2, 2, 0x22]), 0, 0, src, 0x13)); }
      out.push(i(csr, src, f3, rd, 0x73));
    }
  }
  // Loop back: addi x31,x31,-1; bne x31,x0,top
  out.push(i(-1, 31, 0, 31, 0x13));
  out.push(b(4 * (loopTop - out.length), 0, 31, 1));
  out.push(ECALL);
  return out;
}

/** The trap handler: skip the faulting instruction (4 bytes) and return. */
const HANDLER_CODE = [csrrs(MEPC, 0, 30), i(4, 30, 0, 30, 0x13), csrrw(MEPC, 30, 0), MRET];

interface Run { regs: bigint[]; fregs: bigint[]; fcsr: bigint; mstatus: bigint; pc: bigint; minstret: bigint; data: Uint8Array; steps: number; jit: Jit | null }

function setup(program: readonly number[], jit: 'off' | 'eager', ecallExitMask = 1 << PRIV_M): { hart: Hart; pmap: Pmap; jit: Jit | null } {
  const mem = MachineMemory.create(8 << 20);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 1 << 20 }]);
  const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0, ecallExitMask });
  pmap.write(CODE, words(program));
  pmap.write(HANDLER, words(HANDLER_CODE));
  pmap.write(DATA, new Uint8Array(DATA_BYTES).map((_v, k) => (k * 37 + 11) & 0xff));
  hart.reset(BigInt(CODE));
  if (jit === 'off') return { hart, pmap, jit: null };
  // Every entry translated the first time it runs, alone in its module.
  const j = new Jit(hart, { threshold: 0, batch: 1 });
  hart.attachAccelerator(j);
  return { hart, pmap, jit: j };
}

/** Runs until ECALL, serving MMIO exits as "no device" (access fault), in chunks of `chunk`. */
function runToEcall(hart: Hart, chunk: number, limit = 5_000_000): Exit {
  for (;;) {
    if (hart.steps > limit) throw new Error('program did not end');
    const e = hart.run(chunk);
    if (e.kind === 'budget') continue;
    if (e.kind === 'mmio') { hart.accessFault(); continue; }
    return e;
  }
}

function execute(program: readonly number[], jit: 'off' | 'eager', chunk: number): Run {
  const m = setup(program, jit);
  const e = runToEcall(m.hart, chunk);
  assert.equal(e.kind, 'ecall');
  const regs: bigint[] = [];
  for (let k = 0; k < 32; k++) regs.push(m.hart.getX(k));
  const fregs: bigint[] = [];
  for (let k = 0; k < 32; k++) fregs.push(m.hart.getF(k));
  return { regs, fregs, fcsr: m.hart.readCsr(FCSR), mstatus: m.hart.readCsr(MSTATUS), pc: m.hart.pc, minstret: m.hart.readCsr(MINSTRET), data: m.pmap.read(DATA, DATA_BYTES), steps: m.hart.steps, jit: m.jit };
}

test('random programs end in the same state under the interpreter and the translator', () => {
  let translated = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const program = randomProgram(seed, 120, 30);
    const chunk = seed % 3 === 0 ? 777 : 100_000;
    const a = execute(program, 'off', chunk);
    const b = execute(program, 'eager', chunk);
    for (let k = 0; k < 32; k++) assert.equal(b.regs[k], a.regs[k], `seed ${seed}: x${k}`);
    for (let k = 0; k < 32; k++) assert.equal(b.fregs[k], a.fregs[k], `seed ${seed}: f${k}`);
    assert.equal(b.fcsr, a.fcsr, `seed ${seed}: fcsr`);
    assert.equal(b.mstatus, a.mstatus, `seed ${seed}: mstatus`);
    assert.equal(b.pc, a.pc, `seed ${seed}: pc`);
    assert.equal(b.minstret, a.minstret, `seed ${seed}: minstret`);
    assert.equal(b.steps, a.steps, `seed ${seed}: instructions attempted`);
    assert.deepEqual(b.data, a.data, `seed ${seed}: data memory`);
    translated += b.jit!.stats.instructionsTranslated;
    assert.equal(b.jit!.stats.compileErrors, 0);
  }
  assert.ok(translated > 10_000, `the translator ran (${translated} instructions translated)`);
});

test('a loop of arithmetic alone leaves every register in the hart state at each budget exit and jump out', () => {
  for (let seed = 200; seed < 212; seed++) {
    const program = randomProgram(seed, 60, 40, true);
    for (const chunk of [7, 130, 333, 1001, 100_000]) {
      const a = setup(program, 'off');
      const bm = setup(program, 'eager');
      for (let k = 0; k < 400; k++) {
        const ea = a.hart.run(chunk);
        const eb = bm.hart.run(chunk);
        assert.equal(eb.kind, ea.kind, `seed ${seed}, chunk ${chunk}, call ${k}`);
        for (let x = 0; x < 32; x++) assert.equal(bm.hart.getX(x), a.hart.getX(x), `seed ${seed}, chunk ${chunk}, call ${k}: x${x}`);
        assert.equal(bm.hart.pc, a.hart.pc, `seed ${seed}, chunk ${chunk}, call ${k}: pc`);
        if (ea.kind === 'ecall') break;
      }
      assert.equal(bm.jit!.stats.compileErrors, 0);
      // Below CHECK_SPAN (128) a region never starts: the interpreter's budget exits are checked too.
      if (chunk > 128) assert.ok(bm.jit!.stats.instructionsTranslated > 60, `seed ${seed}, chunk ${chunk}: the loop was translated`);
    }
  }
});

test('a budget smaller than a block is honoured exactly', () => {
  const program = randomProgram(99, 200, 5);
  for (const chunk of [1, 7, 63, 64, 65, 2049]) {
    const a = setup(program, 'off');
    const bm = setup(program, 'eager');
    for (let k = 0; k < 40; k++) {
      const ea = a.hart.run(chunk);
      const eb = bm.hart.run(chunk);
      assert.equal(eb.kind, ea.kind, `chunk ${chunk}, call ${k}`);
      if (ea.kind === 'mmio') { a.hart.accessFault(); bm.hart.accessFault(); }
      assert.equal(bm.hart.steps, a.hart.steps, `chunk ${chunk}, call ${k}: steps`);
      assert.equal(bm.hart.pc, a.hart.pc, `chunk ${chunk}, call ${k}: pc`);
      if (ea.kind === 'ecall') break;
    }
  }
});

test('translated FP loads mark mstatus.FS dirty, and trap while the FPU is off', () => {
  const prologue = [
    lui((DATA >>> 12) & 0xfffff, 2), i(32, 2, 1, 2, 0x13), i(32, 2, 5, 2, 0x13), // x2 = DATA
    lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(MTVEC, 30, 0),
  ];
  const fld = i(8, 2, 3, 1, 0x07); // fld f1, 8(x2)
  const fsw = s(16, 1, 2, 2, 0x27); // fsw f1, 16(x2)
  for (const fs of [0, 1]) {
    // An integer load and store first fill the soft TLB: the FP accesses then take the inline path.
    const warm = [i(0, 2, 3, 7, 0x03), s(24, 0, 2, 3)];
    const prog = [...prologue, lui(fs * 2, 5), csrrs(MSTATUS, 5, 0), ...warm, fld, fsw, csrrs(0x342, 0, 6), ECALL]; // x6 = mcause
    const runs = (['off', 'eager'] as const).map((mode) => {
      const m = setup(prog, mode);
      assert.equal(runToEcall(m.hart, 100_000).kind, 'ecall');
      return { mstatus: m.hart.readCsr(MSTATUS), f1: m.hart.getF(1), mcause: m.hart.getX(6), data: m.pmap.read(DATA, 32), jit: m.jit };
    });
    const [a, t] = runs as [typeof runs[0], typeof runs[0]];
    assert.equal(t.mstatus, a.mstatus, `FS ${fs}: mstatus`);
    assert.equal((a.mstatus >> 13n) & 3n, fs ? 3n : 0n, `FS ${fs}: FS after the load`);
    assert.equal(t.f1, a.f1, `FS ${fs}: f1`);
    assert.equal(t.mcause, a.mcause, `FS ${fs}: mcause`);
    assert.equal(a.mcause, fs ? 0n : 2n, `FS ${fs}: illegal instruction only with the FPU off`);
    assert.deepEqual(t.data, a.data, `FS ${fs}: memory`);
    assert.ok(t.jit!.stats.instructionsTranslated > 0);
  }
});

test('an FP instruction after a CSR write in the same block sees the new rounding mode and FS', () => {
  // One basic block: 5/3 rounded to nearest (up), then with frm = RTZ (the last bit differs),
  // then with the FPU off (illegal instruction). The translator keeps what it knows of
  // FS and fcsr between FP instructions; a CSR access interpreted in place must reset it.
  const prog = [
    lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(MTVEC, 30, 0),
    lui(2, 5), csrrs(MSTATUS, 5, 0), // FS = Initial
    csrrwi(0x001, 1), // fflags = NX: the inline paths apply
    i(5, 0, 0, 5, 0x13), i(3, 0, 0, 6, 0x13),
    r(0x69, 0, 5, 7, 1, 0x53), r(0x69, 0, 6, 7, 2, 0x53), // fcvt.d.w f1, x5; f2, x6
    r(0x0d, 2, 1, 7, 3, 0x53), // fdiv.d f3 = f1 / f2 (dynamic rounding: RNE)
    csrrwi(0x002, 1), // frm = RTZ
    r(0x0d, 2, 1, 7, 4, 0x53), // fdiv.d f4: rounded toward zero
    lui(6, 7), i(MSTATUS, 7, 3, 0, 0x73), // csrrc mstatus, FS: the FPU off
    r(0x0d, 2, 1, 7, 5, 0x53), // fdiv.d f5: illegal
    csrrs(0x342, 0, 8), // x8 = mcause
    ECALL,
  ];
  const a = execute(prog, 'off', 100_000);
  const t = execute(prog, 'eager', 100_000);
  assert.notEqual(a.fregs[3], a.fregs[4], 'RNE and RTZ give different quotients');
  assert.equal(a.regs[8], 2n, 'the FPU off makes fdiv.d illegal');
  for (let k = 0; k < 32; k++) assert.equal(t.regs[k], a.regs[k], `x${k}`);
  for (let k = 0; k < 32; k++) assert.equal(t.fregs[k], a.fregs[k], `f${k}`);
  assert.equal(t.fcsr, a.fcsr);
  assert.equal(t.mstatus, a.mstatus);
  assert.equal(t.minstret, a.minstret);
  assert.ok(t.jit!.stats.instructionsTranslated > 0);
});

test('S-mode CSR accesses run inline in S-mode as interpreted, and are illegal from U-mode', () => {
  const csr = (c: number, f3: number, rs1: number, rd: number): number => i(c, rs1, f3, rd, 0x73);
  const body = [
    lui(0x1, 7), i(0x235, 7, 0, 7, 0x13), // x7 = 0x1235 (odd)
    csr(SSCRATCH, 1, 7, 8), csr(SSCRATCH, 2, 0, 9), // x8 = old sscratch, x9 = 0x1235
    csr(SEPC, 1, 7, 0), csr(SEPC, 2, 0, 10), // x10 = 0x1234: sepc[0] is zero
    csr(SCAUSE, 6, 5, 11), csr(SCAUSE, 7, 1, 12), csr(SCAUSE, 2, 0, 13), // scause |= 5, &= ~1
    csr(STVAL, 1, 7, 0), csr(STVAL, 3, 7, 14), csr(STVAL, 2, 0, 15),
    csr(SSTATUS, 6, 2, 16), csr(SSTATUS, 7, 2, 17), csr(SSTATUS, 2, 0, 18), // SIE on (no interrupt pending), off
    i(2, 0, 0, 19, 0x13), csr(SSTATUS, 2, 19, 20), csr(SSTATUS, 3, 19, 21), csr(SSTATUS, 2, 0, 22),
    lui(0x40, 23), i(2, 23, 0, 23, 0x13), csr(SSTATUS, 3, 23, 24), csr(SSTATUS, 2, 0, 25), // SUM and SIE: interpreted
    ECALL,
  ];
  for (const priv of [PRIV_S, PRIV_U]) {
    const prologue = [
      lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(MTVEC, 30, 0),
      i(-1, 0, 0, 5, 0x13), csrrw(0x3b0, 5, 0), i(0x1f, 0, 0, 5, 0x13), csrrw(0x3a0, 5, 0), // PMP: all of memory RWX for S and U
      lui(2, 5), i(-0x800, 5, 0, 5, 0x13), // x5 = 0x1800, mstatus.MPP
      i(MSTATUS, 5, 3, 0, 0x73), // csrrc mstatus, x5: MPP = U
      i(priv << 10, 0, 0, 5, 0x13), i(1, 5, 1, 5, 0x13), i(MSTATUS, 5, 2, 0, 0x73), // csrrs mstatus: MPP = priv
      ...[8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 24, 25].map((x) => i(77, 0, 0, x, 0x13)),
    ];
    const at = CODE + 4 * (prologue.length + 6);
    prologue.push(lui((at >>> 12) & 0xfffff, 6), i(at & 0xfff, 6, 0, 6, 0x13), i(32, 6, 1, 6, 0x13), i(32, 6, 5, 6, 0x13), csrrw(MEPC, 6, 0), MRET);
    const prog = [...prologue, ...body];
    const runs = (['off', 'eager'] as const).map((mode) => {
      const m = setup(prog, mode, (1 << PRIV_M) | (1 << PRIV_S) | (1 << PRIV_U));
      const e = runToEcall(m.hart, 100_000);
      assert.deepEqual(e, { kind: 'ecall', priv });
      const regs: bigint[] = [];
      for (let k = 0; k < 32; k++) regs.push(m.hart.getX(k));
      return { regs, mstatus: m.hart.readCsr(MSTATUS), jit: m.jit };
    });
    const [a, t] = runs as [typeof runs[0], typeof runs[0]];
    for (let k = 0; k < 32; k++) assert.equal(t.regs[k], a.regs[k], `priv ${priv}: x${k}`);
    assert.equal(t.mstatus, a.mstatus, `priv ${priv}: mstatus`);
    if (priv === PRIV_S) {
      assert.deepEqual([a.regs[9], a.regs[10], a.regs[13], a.regs[15]], [0x1235n, 0x1234n, 4n, 0n]);
      assert.equal(a.regs[17]! & 2n, 2n, 'csrrci returns SIE as set by csrrsi');
      assert.equal(a.regs[18]! & 2n, 0n, 'and clears it');
    } else {
      for (const x of [8, 9, 10, 13, 16, 18, 25]) assert.equal(a.regs[x], 77n, `U-mode: x${x} untouched (illegal instruction)`);
    }
    assert.ok(t.jit!.stats.instructionsTranslated > 0);
  }
});

test('an entry whose jump-watch slot another translation holds is translated while it loops in its batch, not after it', () => {
  // A and B share a jump-watch slot (flipping pc bits 2, 14 and 26 leaves the hash alone)
  // and not a tagged hot-table entry; A is translated first, then B loops.
  const A = DRAM + 0x1000;
  const B = (A ^ (1 << 2) ^ (1 << 14) ^ (1 << 26)) >>> 0;
  assert.equal(jumpWatchIndex(A | 0, 0xffff), jumpWatchIndex(B | 0, 0xffff));
  assert.notEqual((A >>> 1) & 0xffff, (B >>> 1) & 0xffff);
  const prologue = [i(1000, 0, 0, 6, 0x13), lui(5, 8), jal(A - (CODE + 8), 0)]; // x6 = 1000, x8 = 20480; j A
  const atA = [
    i(1, 5, 0, 5, 0x13), b(-4, 6, 5, 4), // x5 counts to 1000 (blt x5, x6)
    lui((B >>> 12) & 0xfffff, 9), i(32, 9, 1, 9, 0x13), i(32, 9, 5, 9, 0x13), i(B & 0xfff, 9, 0, 9, 0x13),
    i(0, 9, 0, 0, 0x67), // jr x9
  ];
  const atB = [i(1, 7, 0, 7, 0x13), b(-4, 8, 7, 1), ECALL]; // x7 counts to 20480 (bne x7, x8)
  const runs = (['off', 'on'] as const).map((mode) => {
    const mem = MachineMemory.create(128 << 20);
    const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 72 << 20 }]);
    const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0, ecallExitMask: 1 << PRIV_M });
    pmap.write(CODE, words(prologue));
    pmap.write(A, words(atA));
    pmap.write(B, words(atB));
    hart.reset(BigInt(CODE));
    // Batches large enough that neither entry's batch fills: only running while queued translates it.
    const jit = mode === 'on' ? new Jit(hart, { threshold: 50, batch: 64 }) : null;
    if (jit) hart.attachAccelerator(jit);
    assert.equal(runToEcall(hart, 100_000).kind, 'ecall');
    return { x5: hart.getX(5), x7: hart.getX(7), steps: hart.steps, jit };
  });
  const [a, t] = runs as [typeof runs[0], typeof runs[0]];
  assert.deepEqual([t.x5, t.x7, t.steps], [a.x5, a.x7, a.steps]);
  assert.deepEqual([a.x5, a.x7], [1000n, 20480n]);
  // B's loop is 41 k instructions; waiting for the batch (128 slice boundaries) would interpret all of it.
  assert.ok(t.jit!.stats.interpreted < 5_000, `interpreted ${t.jit!.stats.interpreted}`);
});

test('entries hot in one batch share their code: a region stops where an earlier one of the batch is entered', () => {
  // j A.  A: x5++; j B.  B: x6++; x31--; bnez x31, A; ecall. A (one jump ahead) and B get hot
  // in the same iteration; A's region holds A, B and the ECALL (6 instructions), and B's must
  // stop at A: B and the ECALL (4), not all 6 again.
  const program = [
    i(200, 0, 0, 31, 0x13), jal(4, 0), // x31 = 200; j A
    i(1, 5, 0, 5, 0x13), jal(4, 0), // A
    i(1, 6, 0, 6, 0x13), i(-1, 31, 0, 31, 0x13), b(-16, 31, 0, 1), // B: bne x31, x0, A
    ECALL,
  ];
  const runs = (['off', 'on'] as const).map((mode) => {
    const m = setup(program, 'off');
    const jit = mode === 'on' ? new Jit(m.hart, { threshold: 5, batch: 64 }) : null;
    if (jit) m.hart.attachAccelerator(jit);
    assert.equal(runToEcall(m.hart, 100_000).kind, 'ecall');
    return { x5: m.hart.getX(5), x6: m.hart.getX(6), steps: m.hart.steps, jit };
  });
  const [a, t] = runs as [typeof runs[0], typeof runs[0]];
  assert.deepEqual([t.x5, t.x6, t.steps], [a.x5, a.x6, a.steps]);
  assert.deepEqual([a.x5, a.x6], [200n, 200n]);
  const st = t.jit!.stats;
  assert.equal(st.modules, 1, `one batch: ${JSON.stringify(st)}`);
  assert.equal(st.regions, 2, JSON.stringify(st));
  assert.equal(st.instructionsTranslated, 6 + 4);
});

/** x5 = 1 at `target`; the program writes "x5 = 2" over it and runs it again. */
test('a store over translated code is seen by the next execution (self-modifying code)', () => {
  const addi = (imm: number): number => i(imm, 0, 0, 5, 0x13);
  const target = 12; // word index of the patched instruction
  const prog = [
    i(2, 0, 0, 6, 0x13), // x6 = 2 (rounds)
    i(0, 0, 0, 7, 0x13), // x7 = 0 (sum)
    lui((CODE >>> 12) & 0xfffff, 8), i(32, 8, 1, 8, 0x13), i(32, 8, 5, 8, 0x13), // x8 = CODE
    lui(0, 9), i(addi(7) & 0xfff, 9, 0, 9, 0x13), // low part of the new instruction word
    0, 0, 0, 0, 0,
  ];
  // Build x9 = addi(7) exactly: lui upper, addi lower.
  const w = addi(7);
  const lo = (w << 20) >> 20;
  prog[5] = lui(((w - lo) >>> 12) & 0xfffff, 9);
  prog[6] = i(lo, 9, 0, 9, 0x1b);
  prog[7] = i(0, 0, 0, 0, 0x13); // nop
  prog[8] = i(0, 0, 0, 0, 0x13);
  prog[9] = i(0, 0, 0, 0, 0x13);
  prog[10] = i(0, 0, 0, 0, 0x13);
  prog[11] = i(0, 0, 0, 0, 0x13);
  prog[target] = addi(1); // loop: x5 = 1 (then 7 after the patch)
  prog.push(r(0, 5, 7, 0, 7, 0x33)); // x7 += x5
  prog.push(s(4 * target, 9, 8, 2)); // patch the instruction
  prog.push(0x0000100f); // fence.i
  prog.push(i(-1, 6, 0, 6, 0x13));
  prog.push(b(4 * (target - prog.length), 0, 6, 1)); // bne x6, x0, loop
  prog.push(ECALL);
  for (const mode of ['off', 'eager'] as const) {
    const m = setup(prog, mode);
    assert.equal(runToEcall(m.hart, 100_000).kind, 'ecall');
    assert.equal(m.hart.getX(7), 8n, `${mode}: 1 on the first round, 7 on the second`);
    if (m.jit) assert.ok(m.jit.stats.invalidated > 0, 'the store dropped the translation');
  }
});

test('DMA or a loader writing a translated page drops its translations', () => {
  const prog = [i(1, 0, 0, 5, 0x13), ECALL];
  const m = setup(prog, 'eager');
  assert.equal(runToEcall(m.hart, 1000).kind, 'ecall');
  assert.equal(m.hart.getX(5), 1n);
  const idx = m.pmap.indexOf(CODE);
  assert.ok((m.pmap.entries[idx]! & PM_CODE) !== 0, 'the page is marked as holding translated code');
  m.pmap.write(CODE, words([i(42, 0, 0, 5, 0x13), ECALL]));
  assert.equal(m.pmap.entries[idx]! & PM_CODE, 0, 'the write cleared the mark');
  m.hart.pc = BigInt(CODE);
  assert.equal(runToEcall(m.hart, 1000).kind, 'ecall');
  assert.equal(m.hart.getX(5), 42n, 'the new code ran');
  // The frame going away (balloon) also drops them.
  m.hart.pc = BigInt(CODE);
  assert.equal(runToEcall(m.hart, 1000).kind, 'ecall');
  const before = m.jit!.stats.invalidated;
  assert.ok(m.pmap.discard(CODE));
  assert.ok(m.jit!.stats.invalidated > before);
});

test('a store through a write tag cached before another thread marked the page still drops its translations', () => {
  // Hart B stores to a data page in a loop, so its soft TLB holds a write tag for it.
  // Then a translator on another thread (simulated: its listener is not B's) marks the
  // page as holding code. B must not go on storing there unseen: at its next slice
  // boundary the page counts as written and every translation of it is dropped.
  const mem = MachineMemory.create(8 << 20);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 1 << 20 }]);
  const clock = Clock.create('instructions');
  const hartB = new Hart({ mem, pmap, clock, hartId: 1, ecallExitMask: 1 << PRIV_M });
  const other = new Hart({ mem, pmap, clock, hartId: 0, ecallExitMask: 1 << PRIV_M });
  pmap.write(CODE, words([
    lui((DATA >>> 12) & 0xfffff, 2), i(32, 2, 1, 2, 0x13), i(32, 2, 5, 2, 0x13),
    s(0, 0, 2, 3), // loop: sd x0, 0(x2)
    jal(-4, 0),
    jal(0, 0), // the other hart spins here
  ]));
  hartB.reset(BigInt(CODE));
  other.reset(BigInt(CODE + 20));
  assert.equal(hartB.run(50).kind, 'budget');
  const idx = pmap.indexOf(DATA);
  pmap.markCode(idx);
  assert.ok(pmap.entries[idx]! & PM_CODE);
  const before = pmap.codeGeneration();
  // A hart that never cached the page for writing changes nothing.
  assert.equal(other.run(1).kind, 'budget');
  assert.equal(pmap.codeGeneration(), before);
  assert.ok(pmap.entries[idx]! & PM_CODE);
  assert.equal(hartB.run(50).kind, 'budget');
  assert.equal(pmap.codeGeneration(), before + 1, 'the page was logged as written');
  assert.equal(pmap.entries[idx]! & PM_CODE, 0);
});

test('a misaligned access near address 0 never hits a soft-TLB entry that was flushed', () => {
  // Entry 0 of the M context caches CODE's page (0x80000000); SFENCE.VMA flushes it, but
  // the entry keeps its machine address. Loads from 1 (not memory) must fault, not read that frame.
  const SFENCE_VMA = 0x12000073;
  const prog = [
    lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(MTVEC, 30, 0),
    lui((CODE >>> 12) & 0xfffff, 8), i(32, 8, 1, 8, 0x13), i(32, 8, 5, 8, 0x13), // x8 = CODE
    i(0, 8, 2, 9, 0x03), // lw x9, 0(x8): fills the entry
    SFENCE_VMA,
    i(0x55, 0, 0, 6, 0x13), i(0x55, 0, 0, 7, 0x13), i(0x55, 0, 0, 10, 0x13), // x6 = x7 = x10 = 0x55
    i(1, 0, 1, 6, 0x03), i(1, 0, 2, 7, 0x03), i(1, 0, 3, 10, 0x03), // lh x6, 1(x0); lw x7, 1(x0); ld x10, 1(x0)
    s(1, 9, 0, 1), s(1, 9, 0, 2), s(1, 9, 0, 3), // sh, sw, sd x9 to 1(x0)
    ECALL,
  ];
  const causes: bigint[] = [];
  for (const mode of ['off', 'eager'] as const) {
    const m = setup(prog, mode);
    assert.equal(runToEcall(m.hart, 100_000).kind, 'ecall');
    for (const x of [6, 7, 10]) assert.equal(m.hart.getX(x), 0x55n, `${mode}: x${x} was loaded from address 1`);
    assert.deepEqual(m.pmap.read(CODE, 4), words([prog[0]!]), `${mode}: a store to address 1 reached the code page`);
    causes.push(m.hart.readCsr(0x342));
  }
  assert.ok(causes[0] === 6n || causes[0] === 7n, `the last store faulted (mcause ${causes[0]})`);
  assert.equal(causes[1], causes[0], 'the same fault under the translator');
});
