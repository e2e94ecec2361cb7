/** Shared helpers of the test suite: paths, building RISC-V programs, running the CLI. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests compile to dist/test/). */
export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const buildDir = join(root, 'build', 'test');
export const cli = join(root, 'dist', 'src', 'cli', 'main.js');

/**
 * Node and the flags `disco` runs with (its #! line), so that tests and
 * benchmarks start Disco as the installed command does: [node, ...flags].
 */
export const discoNode: readonly string[] = (() => {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${cli}: unexpected first line ${JSON.stringify(first)}`);
  return [process.execPath, ...m[1]!.split(' ').filter(Boolean)];
})();

/** `disco ARGS` as spawn's command and arguments, started as discoNode. */
export function discoSpawn(args: readonly string[]): [string, string[]] {
  return [discoNode[0]!, [...discoNode.slice(1), cli, ...args]];
}

/** Assembles a bare-metal program (with test/asm/link.ld) and returns the ELF's path. */
export function buildAsm(name: string, source: string, extraFlags: readonly string[] = []): string {
  mkdirSync(buildDir, { recursive: true });
  const s = join(buildDir, `${name}.S`);
  const elf = join(buildDir, `${name}.elf`);
  writeFileSync(s, source);
  execFileSync('riscv64-linux-gnu-gcc', ['-march=rv64gc', '-mabi=lp64d', '-nostdlib', '-nostartfiles', '-static',
    '-T', join(root, 'test', 'asm', 'link.ld'), ...extraFlags, s, '-o', elf]);
  return elf;
}

/** The HTIF words every program needs, in the section the linker script places. */
export const TOHOST = `
  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost: .dword 0
  .align 6
  .globl fromhost
fromhost: .dword 0
`;

/** A program whose body runs at _start and then passes (tohost = 1). */
export function program(body: string): string {
  return `  .option nopic
  .section .text.init
  .globl _start
_start:
${body}
  li t0, 1
  la t1, tohost
  sd t0, 0(t1)
1: j 1b
${TOHOST}`;
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

export function runCli(args: readonly string[], timeoutMs = 60_000): CliResult {
  const r = spawnSync(...discoSpawn(args), { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** mulberry32: a small seeded PRNG, so fuzz cases are the same every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
