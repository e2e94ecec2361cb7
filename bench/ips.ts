/**
 * Interpreter and translator speed: guest instructions per second on fixed
 * bare-metal programs (integer, memory, branchy, floating point), built at
 * bench time with Debian's riscv64 cross compiler, each run with --jit off and
 * --jit on in the same run.
 *
 *   npm run bench            (builds, then runs this)
 */
import { readFileSync } from 'node:fs';
import { createBareMetal } from '../src/machine/baremetal.js';
import { runHart } from '../src/machine/hart-loop.js';
import type { JitMode } from '../src/jit/index.js';
import { buildProgram, PROGRAMS } from './build-programs.js';

interface Row { name: string; what: string; instructions: number; interpreted: number; translated: number }

/** Seconds to run the program to its end on one hart with the translator off or on. */
async function seconds(image: Uint8Array, name: string, jit: JitMode): Promise<{ seconds: number; instructions: number }> {
  const m = createBareMetal(image, { ramBytes: 128 << 20, cpus: 1, clock: 'instructions', jit });
  const hart = m.harts[0]!;
  const t0 = performance.now();
  const o = await runHart(hart, m.bus, { maxInstructions: 5e9 });
  const s = (performance.now() - t0) / 1000;
  if (o.kind !== 'htif' || o.value !== '1') throw new Error(`${name} (--jit ${jit}): did not finish cleanly: ${JSON.stringify(o)}`);
  return { seconds: s, instructions: hart.steps };
}

async function measure(name: string, what: string): Promise<Row> {
  const image = readFileSync(buildProgram(name));
  const off = await seconds(image, name, 'off');
  const on = await seconds(image, name, 'on');
  if (on.instructions !== off.instructions) throw new Error(`${name}: ${off.instructions} instructions interpreted, ${on.instructions} translated`);
  return { name, what, instructions: off.instructions, interpreted: off.seconds, translated: on.seconds };
}

const rows: Row[] = [];
for (const [name, what] of PROGRAMS) rows.push(await measure(name, what));
const pad = (s: string, n: number): string => s.padEnd(n);
const mips = (r: Row, sec: number): string => (r.instructions / sec / 1e6).toFixed(1);
console.log(`${pad('program', 8)} ${pad('workload', 36)} ${'instructions'.padStart(13)} ${'interp MIPS'.padStart(12)} ${'jit MIPS'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const r of rows) {
  console.log(`${pad(r.name, 8)} ${pad(r.what, 36)} ${r.instructions.toLocaleString('en-US').padStart(13)} ${mips(r, r.interpreted).padStart(12)} ${mips(r, r.translated).padStart(9)} ${(r.interpreted / r.translated).toFixed(2).padStart(6)}`);
}
