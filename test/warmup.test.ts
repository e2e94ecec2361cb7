// The interpreter's warm-up program: it must run to its end, the same through
// the translator as through the interpreter, and warmInterpreter runs it once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Exit } from '../src/cpu/exit.js';
import type { Hart } from '../src/cpu/hart.js';
import { warmInterpreter, warmupMachine, WARMUP_ROUNDS } from '../src/cpu/warmup.js';
import { Jit } from '../src/jit/index.js';

const MINSTRET = 0xb02, FCSR = 0x003, MIP = 0x344;

/** Runs to the program's end (its last ECALL), counting the ECALL exits on the way (one per round and the last). */
function toEnd(hart: Hart, end: bigint, chunk: number): number {
  let ecalls = 0;
  for (let k = 0; k < 100_000 && hart.pc !== end; k++) {
    const e: Exit = hart.run(chunk);
    if (e.kind === 'mmio') hart.accessFault();
    else if (e.kind === 'ecall') ecalls++;
    else assert.ok(e.kind === 'budget', `exit ${e.kind}`);
  }
  assert.equal(hart.pc, end, 'warm-up program did not end');
  return ecalls;
}

function state(hart: Hart): { regs: bigint[]; steps: number; minstret: bigint; fcsr: bigint; pc: bigint } {
  const regs: bigint[] = [];
  for (let x = 0; x < 32; x++) regs.push(hart.getX(x));
  return { regs, steps: hart.steps, minstret: hart.readCsr(MINSTRET), fcsr: hart.readCsr(FCSR), pc: hart.pc };
}

test('the warm-up program ends at its ECALL, having trapped, and the translator ends it in the same state', () => {
  const plain = warmupMachine(3);
  assert.equal(toEnd(plain.hart, plain.end, 1000), 3 + 1);
  const a = state(plain.hart);
  // Misaligned AMOs, EBREAK, ECALL and an illegal word trap and do not retire.
  assert.ok(a.minstret < BigInt(a.steps), `minstret ${a.minstret}, steps ${a.steps}`);
  assert.notEqual(a.fcsr & 0x1fn, 0n, 'floating point raised no flag');
  // The program sets mip.SSIP once a round; only the interrupt's handler clears it.
  assert.equal(plain.hart.readCsr(MIP) & 2n, 0n, 'the software interrupt was not taken');

  const jitted = warmupMachine(3);
  jitted.hart.attachAccelerator(new Jit(jitted.hart, { threshold: 0, batch: 1 }));
  assert.equal(toEnd(jitted.hart, jitted.end, 1000), 3 + 1);
  assert.deepEqual(state(jitted.hart), a);
});

test('warmInterpreter runs the program to its end once per thread', () => {
  const first = warmInterpreter();
  assert.ok(first);
  const ref = warmupMachine(WARMUP_ROUNDS);
  toEnd(ref.hart, ref.end, 97);
  assert.equal(first.instructions, ref.hart.steps);
  assert.deepEqual(first.regs, state(ref.hart).regs);
  assert.equal(warmInterpreter(), null);
});
