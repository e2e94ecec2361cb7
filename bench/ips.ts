/**
 * Interpreter and translator speed: guest instructions per second on fixed
 * bare-metal programs (integer, memory, branchy, floating point), built at
 * bench time with Debian's riscv64 cross compiler, each run with --jit off and
 * --jit on in the same run.
 *
 *   npm run bench            (builds, then runs this)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBareMetal } from '../src/machine/baremetal.js';
import { runHart } from '../src/machine/hart-loop.js';
import type { JitMode } from '../src/jit/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'bench', 'programs');
const out = join(root, 'build', 'bench');
mkdirSync(out, { recursive: true });

const programs = [
  ['int', 'integer arithmetic (xorshift, mul, div)'],
  ['mem', 'loads and stores over 2 MiB'],
  ['branch', 'insertion sort + binary search'],
  ['fp', 'double matmul + float polynomial'],
] as const;

export function buildProgram(name: string): string {
  const elf = join(out, `${name}.elf`);
  execFileSync('riscv64-linux-gnu-gcc', [
    '-O2', '-march=rv64gc', '-mabi=lp64d', '-mcmodel=medany', '-fno-pie', '-no-pie', '-static', '-nostdlib', '-nostartfiles',
    '-ffreestanding', '-fno-builtin', '-T', join(root, 'test', 'asm', 'link.ld'),
    join(src, 'crt.S'), join(src, `${name}.c`), '-o', elf,
  ]);
  return elf;
}

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
for (const [name, what] of programs) rows.push(await measure(name, what));
const pad = (s: string, n: number): string => s.padEnd(n);
const mips = (r: Row, sec: number): string => (r.instructions / sec / 1e6).toFixed(1);
console.log(`${pad('program', 8)} ${pad('workload', 36)} ${'instructions'.padStart(13)} ${'interp MIPS'.padStart(12)} ${'jit MIPS'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const r of rows) {
  console.log(`${pad(r.name, 8)} ${pad(r.what, 36)} ${r.instructions.toLocaleString('en-US').padStart(13)} ${mips(r, r.interpreted).padStart(12)} ${mips(r, r.translated).padStart(9)} ${(r.interpreted / r.translated).toFixed(2).padStart(6)}`);
}
