/**
 * The interpreter's warm-up: before a machine's first instruction, a scratch
 * hart runs a short program that takes every path of the interpreter's
 * instruction switch at least once (each RV64GC opcode class and width,
 * misaligned accesses, taken and untaken branches, AMOs, FP, CSRs, traps,
 * a software interrupt taken, a 32-bit fetch across a page end).
 *
 * Why: V8 optimises the interpreter's one large function early in a boot, on
 * the type feedback of the instructions seen so far. The first instruction of
 * a kind not seen yet then finds no feedback and deoptimises the whole
 * function, which runs as baseline code (several times slower) until V8 has
 * recompiled it on its one platform thread, often queued behind translated
 * regions. A Linux boot deoptimised it ~15 times for ~0.9 s in baseline code;
 * with the warm-up ~5 times (docs/benchmarks.md, "Where the rest goes").
 * Feedback belongs to the function, not the hart, so one run per thread serves
 * every hart created after it.
 */
import { Clock } from './clock.js';
import { PRIV_M } from './csr-numbers.js';
import { b, csrrci, csrrs, csrrsi, csrrw, ECALL, i, jal, lui, MRET, r, s, words } from './encode.js';
import { Hart, INTERPRET_NO_FLUSH, INTERPRET_NO_IRQ, INTERPRET_STOP_AT_WATCHED } from './hart.js';
import { MachineMemory } from '../memory/machine-memory.js';
import { Pmap } from '../memory/pmap.js';

const DRAM = 0x8000_0000;
const HANDLER = DRAM + 0x8000;
const DATA = DRAM + 0x10000;
const EBREAK = 0x0010_0073;
const ILLEGAL = 0xffff_ffff;
/** c.addi a0, 1 and c.mv a1, a0 (RVC quadrants 1 and 2): the compressed fetch path. */
const C_PAIR = 0x85aa_0505;
const CSR_MSTATUS = 0x300, CSR_MIE = 0x304, CSR_MTVEC = 0x305, CSR_MSCRATCH = 0x340, CSR_MEPC = 0x341, CSR_MCAUSE = 0x342, CSR_MIP = 0x344, CSR_FCSR = 0x003;
/** mip/mie bit 1 (SSIP/SSIE, privileged spec 3.1.9) and mstatus.MIE (bit 3). */
const SSI = 2, MSTATUS_MIE = 8;
/** A 32-bit instruction here straddles a page end: the fetch's second half comes from the next page. */
const STRADDLE = DRAM + 0x1ffe;
/** Stands for `jal ra, STRADDLE` in the body until the layout gives it its offset. */
const CALL_STRADDLE = -1;
const CSR_MCYCLE = 0xb00, CSR_MINSTRET = 0xb02;

/** How the warm-up ended: the tests compare it with the translator's run of the same program. */
export interface WarmupResult {
  readonly instructions: number;
  readonly regs: readonly bigint[];
}

/** A small deterministic generator: the program is the same in every process. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 4294967296;
  };
}

/** The warm-up program (32-bit words), looped `rounds` times, ending in ECALL. */
export function warmupProgram(rounds: number): number[] {
  const rnd = lcg(0x5eed);
  const int = (n: number): number => Math.floor(rnd() * n);
  // x2: data pointer, x29: AMO address, x30/x31: handler and loop counter.
  const reg = (): number => 3 + int(26);
  const freg = (): number => int(32);
  const slot = (): number => 8 * int(200);
  const out: number[] = [];
  out.push(lui((DATA >>> 12) & 0xfffff, 2), i(32, 2, 1, 2, 0x13), i(32, 2, 5, 2, 0x13)); // x2 = DATA, zero-extended
  out.push(lui(6, 30), csrrs(CSR_MSTATUS, 30, 0)); // mstatus.FS on
  out.push(lui((HANDLER >>> 12) & 0xfffff, 30), i(32, 30, 1, 30, 0x13), i(32, 30, 5, 30, 0x13), csrrw(CSR_MTVEC, 30, 0));
  out.push(i(rounds, 0, 0, 31, 0x13));
  out.push(csrrsi(CSR_MIE, SSI), csrrsi(CSR_MSTATUS, MSTATUS_MIE)); // a software interrupt, when pending, is taken
  // Values of every size: feedback for the arithmetic is then general from the start.
  for (let x = 3; x < 29; x++) out.push(lui(int(0x100000), x), i(int(4096) - 2048, x, 0, x, 0x13));
  const top = out.length;
  const body: number[][] = [];
  for (const op of [0x33, 0x3b]) for (const f7 of [0, 0x20, 1]) for (let f3 = 0; f3 < 8; f3++) body.push([r(f7, reg(), reg(), f3, reg(), op)]);
  for (let f3 = 0; f3 < 8; f3++) {
    if (f3 === 1) body.push([i(int(64), reg(), 1, reg(), 0x13)]);
    else if (f3 === 5) body.push([i(int(64), reg(), 5, reg(), 0x13)], [i(0x400 | int(64), reg(), 5, reg(), 0x13)]);
    else body.push([i(int(4096) - 2048, reg(), f3, reg(), 0x13)]);
  }
  body.push([i(5, reg(), 0, reg(), 0x1b)], [i(7, reg(), 1, reg(), 0x1b)], [i(9, reg(), 5, reg(), 0x1b)], [i(0x400 | 9, reg(), 5, reg(), 0x1b)]);
  for (let f3 = 0; f3 < 7; f3++) body.push([i(slot(), 2, f3, reg(), 0x03)], [i(slot() + 3, 2, f3, reg(), 0x03)]);
  for (let f3 = 0; f3 < 4; f3++) body.push([s(slot(), reg(), 2, f3)], [s(slot() + 3, reg(), 2, f3)]);
  // A branch skips the instruction after it when taken.
  for (const f3 of [0, 1, 4, 5, 6, 7]) body.push([b(8, reg(), reg(), f3), i(1, reg(), 0, reg(), 0x13)]);
  for (const f3 of [2, 3]) {
    for (const f5 of [0, 1, 4, 8, 0xc, 0x10, 0x14, 0x18, 0x1c]) body.push([i(slot(), 2, 0, 29, 0x13), r(f5 << 2, reg(), 29, f3, reg(), 0x2f)]);
    body.push([i(slot(), 2, 0, 29, 0x13), r(2 << 2, 0, 29, f3, reg(), 0x2f), r(3 << 2, reg(), 29, f3, reg(), 0x2f)]); // LR, SC
    body.push([i(slot() + 4, 2, 0, 29, 0x13), r(0, reg(), 29, f3, reg(), 0x2f)]); // misaligned: a trap (for .D)
  }
  for (let k = 0; k < 8; k++) body.push([i(slot(), 2, 2 + (k & 1), freg(), 0x07)], [s(slot(), freg(), 2, 2 + (k & 1), 0x27)]);
  for (const f7 of [0, 1, 4, 5, 8, 9, 0xc, 0xd, 0x10, 0x11, 0x14, 0x15, 0x2c, 0x2d]) body.push([r(f7, f7 >= 0x2c ? 0 : freg(), freg(), f7 >= 0x10 && f7 < 0x2c ? int(3) : 7, freg(), 0x53)]);
  for (const f7 of [0x50, 0x51]) for (let f3 = 0; f3 < 3; f3++) body.push([r(f7, freg(), freg(), f3, reg(), 0x53)]);
  for (const f7 of [0x60, 0x61]) for (let rs2 = 0; rs2 < 4; rs2++) body.push([r(f7, rs2, freg(), 7, reg(), 0x53)]);
  for (const f7 of [0x68, 0x69]) for (let rs2 = 0; rs2 < 4; rs2++) body.push([r(f7, rs2, reg(), 7, freg(), 0x53)]);
  for (const f7 of [0x70, 0x71]) body.push([r(f7, 0, freg(), 0, reg(), 0x53)], [r(f7, 0, freg(), 1, reg(), 0x53)]);
  for (const f7 of [0x78, 0x79]) body.push([r(f7, 0, reg(), 0, freg(), 0x53)]);
  body.push([r(0x20, 1, freg(), 7, freg(), 0x53)], [r(0x21, 0, freg(), 7, freg(), 0x53)]);
  for (const op of [0x43, 0x47, 0x4b, 0x4f]) for (const f2 of [0, 1]) body.push([r((freg() << 2) | f2, freg(), freg(), 7, freg(), op)]);
  body.push([csrrs(CSR_MINSTRET, 0, reg())], [csrrs(CSR_MCYCLE, 0, reg())], [csrrw(CSR_MSCRATCH, reg(), reg())], [csrrs(CSR_FCSR, 0, reg())]);
  body.push([i(CSR_MSCRATCH, 3, 6, reg(), 0x73)], [i(CSR_MSCRATCH, 3, 7, reg(), 0x73)], [i(CSR_MSCRATCH, reg(), 3, reg(), 0x73)]);
  body.push([ECALL], [EBREAK], [ILLEGAL], [0x0000_000f], [0x0000_100f], [lui(0x12345, reg())], [0x17 | (reg() << 7)], [C_PAIR]);
  body.push([csrrsi(CSR_MIP, SSI)], [CALL_STRADDLE]); // an interrupt taken; a fetch across a page end
  // Shuffled, groups kept together: the order of the switch's cases is not the order seen.
  for (let k = body.length - 1; k > 0; k--) {
    const j = int(k + 1);
    [body[k], body[j]] = [body[j]!, body[k]!];
  }
  for (const g of body) for (const w of g) out.push(w === CALL_STRADDLE ? jal(STRADDLE - (DRAM + 4 * out.length), 1) : w);
  out.push(i(-1, 31, 0, 31, 0x13), b(4 * (top - out.length), 0, 31, 1));
  // The handler's scratch register, as the last trap left it (an interrupt's or an exception's), zeroed.
  out.push(i(0, 0, 0, 30, 0x13), ECALL);
  if (DRAM + 4 * out.length > STRADDLE) throw new Error('warm-up program overlaps its page-crossing code');
  return out;
}

/** The trap handler: an exception skips the 4-byte instruction that trapped; an interrupt clears mip.SSIP. */
export const WARMUP_HANDLER = [
  csrrs(CSR_MCAUSE, 0, 30), b(20, 0, 30, 4), // blt x30, x0: an interrupt
  csrrs(CSR_MEPC, 0, 30), i(4, 30, 0, 30, 0x13), csrrw(CSR_MEPC, 30, 0), MRET,
  csrrci(CSR_MIP, SSI), MRET,
];
/** At STRADDLE: `addi x5, x5, 1` across the page end, then `ret`. */
const STRADDLE_CODE = [i(1, 5, 0, 5, 0x13), i(0, 1, 0, 0, 0x67)];

/** A scratch machine with the warm-up program loaded, its hart at the first instruction. */
export function warmupMachine(rounds: number, ecallExitMask = 1 << PRIV_M): { hart: Hart; pmap: Pmap; end: bigint } {
  const mem = MachineMemory.create(4 << 20);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 1 << 20 }]);
  // ECALL from M-mode exits the run, as an SBI call does; the traps go to the handler.
  const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0, ecallExitMask });
  const program = warmupProgram(rounds);
  pmap.write(DRAM, words(program));
  pmap.write(HANDLER, words(WARMUP_HANDLER));
  pmap.write(STRADDLE, words(STRADDLE_CODE));
  pmap.write(DATA, new Uint8Array(0x2000).map((_v, k) => (k * 37 + 11) & 0xff));
  hart.reset(BigInt(DRAM));
  // Where the last ECALL leaves the pc.
  return { hart, pmap, end: BigInt(DRAM + 4 * program.length) };
}

/** Rounds of the program: enough for every path, few enough to cost ~50 ms once per thread. */
export const WARMUP_ROUNDS = 12;
let warmed = false;

/**
 * Runs the warm-up once per thread (later calls return null): half through the
 * plain interpreter, half the way a translator drives it (the jump watch on,
 * interrupts and flushes left to the caller).
 */
export function warmInterpreter(rounds = WARMUP_ROUNDS): WarmupResult | null {
  if (warmed) return null;
  warmed = true;
  const { hart, end } = warmupMachine(rounds);
  for (let k = 0; k < 10_000 && hart.pc !== end; k++) {
    const e = k & 1 ? hart.run(97) : hart.interpret(97, INTERPRET_STOP_AT_WATCHED | INTERPRET_NO_IRQ | INTERPRET_NO_FLUSH);
    if (e.kind === 'mmio') hart.accessFault();
  }
  const regs: bigint[] = [];
  for (let x = 0; x < 32; x++) regs.push(hart.getX(x));
  return { instructions: hart.steps, regs };
}
