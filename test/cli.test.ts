import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildAsm, buildDir, program, runCli, TOHOST } from './support.js';

/** Errors are exactly one line, prefixed, with no stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, /^disco: /);
  assert.match(lines[0]!, pattern);
}

test('a program that stores 1 to tohost prints PASS and exits 0', () => {
  const elf = buildAsm('cli-pass', program('  nop'));
  const r = runCli(['run', '--bios', elf]);
  assert.equal(r.stdout, 'PASS\n');
  assert.equal(r.code, 0);
});

test('an odd tohost value v other than 1 prints FAIL test v>>1 and exits 1', () => {
  const elf = buildAsm('cli-fail', `  .option nopic
  .section .text.init
  .globl _start
_start:
  li t0, (21 << 1) | 1
  la t1, tohost
  sd t0, 0(t1)
1: j 1b
${TOHOST}`);
  const r = runCli(['run', '--bios', elf]);
  assert.equal(r.stdout, 'FAIL test 21\n');
  assert.equal(r.code, 1);
});

test('--max-instructions stops a runaway guest with exit 2', () => {
  const elf = buildAsm('cli-loop', `  .section .text.init
  .globl _start
_start:
1: j 1b
${TOHOST}`);
  const r = runCli(['run', '--bios', elf, '--max-instructions', '5000']);
  assert.equal(r.code, 2);
  assertOneLineError(r.stderr, /stopped after 5000 instructions/);
});

test('a missing ELF is a one-line error with exit 2', () => {
  const r = runCli(['run', '--bios', join(buildDir, 'no-such-file.elf')]);
  assert.equal(r.code, 2);
  assertOneLineError(r.stderr, /cannot read .*ENOENT/);
});

test('a truncated ELF is a one-line error with exit 2', () => {
  const elf = buildAsm('cli-trunc-src', program('  nop'));
  const bytes = readFileSync(elf);
  for (const cut of [10, 63, 64 + 20, 200]) {
    const p = join(buildDir, `cli-trunc-${cut}.elf`);
    writeFileSync(p, bytes.subarray(0, cut));
    const r = runCli(['run', '--bios', p]);
    assert.equal(r.code, 2, `cut at ${cut}: ${r.stderr}`);
    assertOneLineError(r.stderr, /ELF|truncated/);
  }
});

test('a non-RISC-V ELF and a non-ELF file are refused with exit 2', () => {
  const host = join(buildDir, 'host-binary');
  copyFileSync(process.execPath, host);
  let r = runCli(['run', '--bios', host]);
  assert.equal(r.code, 2);
  assertOneLineError(r.stderr, /not a RISC-V ELF file/);
  const text = join(buildDir, 'not-elf.txt');
  writeFileSync(text, 'hello, this is not an executable\n'.repeat(4));
  r = runCli(['run', '--bios', text]);
  assert.equal(r.code, 2);
  assertOneLineError(r.stderr, /not an ELF file/);
});

test('a segment outside RAM is refused with exit 2', () => {
  const elf = buildAsm('cli-outside', program('  nop'), ['-Wl,--section-start=.text.init=0x1000']);
  const r = runCli(['run', '--bios', elf]);
  assert.equal(r.code, 2);
  assertOneLineError(r.stderr, /outside RAM/);
});

test('bad options are one-line errors with exit 2', () => {
  for (const args of [['run', '--bios', 'x', '--cpus', '9'], ['run', '--bios', 'x', '--cpus', 'two'],
    ['run', '--bios', 'x', '--clock', 'sundial'], ['run', '--frobnicate'], ['frobnicate'], ['run', '--bios', 'none'],
    ['run', '--memory', '1', '--kernel', 'x'], ['image', 'frobnicate']]) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assertOneLineError(r.stderr, /./);
  }
});
