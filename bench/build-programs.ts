/**
 * The bare-metal benchmark programs (bench/programs/*.c, started by crt.S and
 * ended through HTIF), built at bench time with Debian's riscv64 cross
 * compiler. REPEAT scales each program's main loop.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'bench', 'programs');
export const benchDir = join(root, 'build', 'bench');

export const PROGRAMS = [
  ['int', 'integer arithmetic (xorshift, mul, div)'],
  ['mem', 'loads and stores over 2 MiB'],
  ['branch', 'insertion sort + binary search'],
  ['fp', 'double matmul + float polynomial'],
] as const;

export function buildProgram(name: string, repeat = 1): string {
  mkdirSync(benchDir, { recursive: true });
  const elf = join(benchDir, repeat === 1 ? `${name}.elf` : `${name}-x${repeat}.elf`);
  execFileSync('riscv64-linux-gnu-gcc', [
    '-O2', '-march=rv64gc', '-mabi=lp64d', '-mcmodel=medany', '-fno-pie', '-no-pie', '-static', '-nostdlib', '-nostartfiles',
    '-ffreestanding', '-fno-builtin', `-DREPEAT=${repeat}`, '-T', join(root, 'test', 'asm', 'link.ld'),
    join(src, 'crt.S'), join(src, `${name}.c`), '-o', elf,
  ]);
  return elf;
}
