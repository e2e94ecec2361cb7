/**
 * Boots Debian's riscv64 kernel with Disco's busybox initramfs (the default guest of
 * `disco run`), drives its shell through the console and powers it off.
 * The first run fetches the guest images into the cache (Debian's archive).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fetchImages, INIT_READY } from '../src/image/index.js';
import { Guest } from './guest.js';
import { buildDir } from './support.js';

const BOOT_MS = 240_000;
const readyRe = new RegExp(INIT_READY);

test('the default guest boots to a shell, runs commands and powers off with status 0', { timeout: BOOT_MS + 120_000 }, async () => {
  await fetchImages();
  const g = new Guest([]);
  try {
    await g.waitFor(readyRe, BOOT_MS);
    await g.run('echo disco-$((6*7))', /disco-42/);
    await g.run('uname -m', /riscv64/);
    await g.run('cat /proc/cpuinfo', /isa\s*: rv64imafdc/);
    await g.run('ls /proc/self/', /status/);
    // ping times its packets with clock_gettime, which the vDSO serves with rdtime in U-mode.
    await g.run('ip link set lo up; ping -c 1 127.0.0.1', /1 packets received/);
    g.proc.stdin.write('poweroff\n');
    assert.equal(await g.exited, 0, g.stderr);
    assert.match(g.output, /reboot: Power down/);
  } finally {
    g.kill();
  }
});

test('with --cpus 2 the guest sees two processors; SIGTERM presses the power button and the guest shuts down', { timeout: BOOT_MS + 120_000 }, async () => {
  await fetchImages();
  const g = new Guest(['--cpus', '2']);
  try {
    await g.waitFor(readyRe, BOOT_MS);
    await g.run('nproc', /^2\r?$/m);
    await g.run('grep -c ^processor /proc/cpuinfo', /^2\r?$/m);
    assert.match(g.output, /smp: Brought up 1 node, 2 CPUs/);
    await g.run('cat /proc/bus/input/devices', /Disco Power Button/);
    g.proc.kill('SIGTERM');
    // The guest's own shutdown runs (busybox init's shutdown actions), then it powers off.
    // Init's "The system is going down" can lose its tail: killing the shell closes the
    // tty, and the kernel drops output still queued for the UART (also on hardware).
    await g.waitFor(/Sent SIGTERM to all processes/, 60_000);
    assert.equal(await g.exited, 0, g.stderr);
    assert.match(g.output, /The system is g/);
    assert.match(g.output, /disco: shutting down/);
    assert.match(g.output, /reboot: Power down/);
  } finally {
    g.kill();
  }
});

test('the guest boots through OpenSBI firmware (--bios fw_jump.elf), with mtime following instructions', { timeout: BOOT_MS + 120_000 }, async () => {
  const images = await fetchImages();
  const g = new Guest(['--bios', images.opensbiFwJump, '--clock', 'instructions']);
  try {
    await g.waitFor(/OpenSBI v\d/, 60_000);
    await g.waitFor(/Runtime SBI Version\s*: 2\.0/, 60_000);
    await g.waitFor(readyRe, BOOT_MS);
    await g.run('echo through-$((40+2))', /through-42/);
    g.proc.stdin.write('poweroff\n');
    assert.equal(await g.exited, 0, g.stderr);
  } finally {
    g.kill();
  }
});

test('a missing, malformed or truncated kernel, or an initrd too large, is a one-line error with a non-zero exit', async () => {
  const images = await fetchImages();
  mkdirSync(buildDir, { recursive: true });
  const truncated = join(buildDir, 'Image.truncated');
  writeFileSync(truncated, readFileSync(images.kernel).subarray(0, 4 << 20));
  for (const args of [['--kernel', '/nonexistent/Image'], ['--kernel', '/etc/hostname'], ['--kernel', process.execPath],
    ['--kernel', truncated], ['--kernel', images.kernel, '--initrd', images.kernel, '--memory', '64']]) {
    const g = new Guest(args);
    const code = await g.exited;
    assert.notEqual(code, 0);
    assert.equal(g.stderr.trimEnd().split('\n').length, 1, g.stderr);
    assert.match(g.stderr, /^disco: /);
  }
});
