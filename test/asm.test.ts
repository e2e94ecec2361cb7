// Runs the bare-metal RISC-V assembly tests in test/asm/*.S on Disco.
//
// Each program is built at test time with the Debian cross compiler into
// build/asm/NAME.elf and run as
//   node dist/src/cli/main.js run --bios build/asm/NAME.elf [--cpus N] --max-instructions 50000000
// A program passes when the runner exits with status 0 and prints PASS (a
// store of 1 to `tohost`); a failing program reports "FAIL test N".
//
// A line `# disco: --cpus 2` (any runner arguments) in a .S file adds those
// arguments to its run.  With DISCO_ASM_RUNNER set, its value (a command,
// split on blanks, relative to the repository root) replaces
// `node dist/src/cli/main.js`, e.g. DISCO_ASM_RUNNER=test/asm/qemu-runner.sh
// checks the programs on QEMU.  DISCO_ASM_CFLAGS (split on blanks) adds
// compiler flags: -DQEMU_QUIRKS relaxes the few checks where QEMU 7.2 is
// known to differ from the specification (see the QEMU_QUIRKS blocks in the
// .S files), so the QEMU check is
//   DISCO_ASM_RUNNER=test/asm/qemu-runner.sh DISCO_ASM_CFLAGS=-DQEMU_QUIRKS \
//     node --test dist/test/asm.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_INSTRUCTIONS = 50_000_000;
const RUN_TIMEOUT_MS = 60_000;
const BUILD_TIMEOUT_MS = 60_000;

/** The repository root: the nearest ancestor holding package.json and test/asm. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'asm'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('asm.test: cannot find the repository root');
    dir = up;
  }
}

const root = findRoot();
const asmDir = join(root, 'test', 'asm');
const buildDir = join(root, 'build', 'asm');

interface Result {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Result> {
  return new Promise((done) => {
    execFile(
      cmd,
      args,
      { cwd: root, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { code?: unknown; signal?: string | null }) | null;
        let code: number | null = 0;
        if (e) code = typeof e.code === 'number' ? e.code : null;
        done({
          code,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
          ...(e && code === null ? { error: e } : {}),
        });
      },
    );
  });
}

function report(what: string, r: Result): string {
  return [
    what,
    `exit status: ${r.code}${r.signal ? `, signal ${r.signal}` : ''}${r.error ? ` (${r.error.message})` : ''}`,
    '--- stdout ---',
    r.stdout.trimEnd(),
    '--- stderr ---',
    r.stderr.trimEnd(),
  ].join('\n');
}

/** Runner arguments from lines `# disco: ARGS` in the source. */
function extraArgs(source: string): string[] {
  const args: string[] = [];
  for (const m of source.matchAll(/^\s*#\s*disco:\s*(.*)$/gm)) {
    args.push(...(m[1] ?? '').trim().split(/\s+/).filter((s) => s.length > 0));
  }
  return args;
}

function extraCflags(): string[] {
  const env = process.env['DISCO_ASM_CFLAGS'];
  return env ? env.trim().split(/\s+/).filter((s) => s.length > 0) : [];
}

function runnerCommand(): [string, string[]] {
  const env = process.env['DISCO_ASM_RUNNER'];
  if (env && env.trim().length > 0) {
    const [cmd, ...rest] = env.trim().split(/\s+/);
    return [resolve(root, cmd ?? ''), rest];
  }
  return [process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js')]];
}

const programs = readdirSync(asmDir)
  .filter((f) => f.endsWith('.S'))
  .sort();

mkdirSync(buildDir, { recursive: true });

for (const file of programs) {
  const name = file.slice(0, -2);
  test(`asm: ${name}`, { timeout: RUN_TIMEOUT_MS + BUILD_TIMEOUT_MS }, async () => {
    const src = join(asmDir, file);
    const elf = join(buildDir, `${name}.elf`);
    const build = await run(
      'riscv64-linux-gnu-gcc',
      [
        '-march=rv64gc',
        '-mabi=lp64d',
        '-nostdlib',
        '-nostartfiles',
        '-static',
        '-T',
        join(asmDir, 'link.ld'),
        '-I',
        asmDir,
        ...extraCflags(),
        '-o',
        elf,
        src,
      ],
      BUILD_TIMEOUT_MS,
    );
    assert.equal(build.code, 0, report(`building ${file} failed`, build));

    const [cmd, pre] = runnerCommand();
    const extra = extraArgs(readFileSync(src, 'utf8'));
    const args = [
      ...pre,
      'run',
      '--bios',
      elf,
      ...extra,
      // A program's own limit (harts waiting for each other) replaces the default.
      ...(extra.includes('--max-instructions') ? [] : ['--max-instructions', String(MAX_INSTRUCTIONS)]),
    ];
    const r = await run(cmd, args, RUN_TIMEOUT_MS);
    const what = `${[cmd, ...args].join(' ')}`;
    assert.equal(r.code, 0, report(`${what}: expected exit status 0`, r));
    assert.match(r.stdout, /\bPASS\b/, report(`${what}: expected PASS on stdout`, r));
  });
}
