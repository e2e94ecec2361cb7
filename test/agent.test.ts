/**
 * The guest agent: its cached cross build, and (booting Debian's kernel) the
 * real agent under Linux's vsock driver answering `disco exec`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AGENT_PORT, buildAgent } from '../src/image/agent.js';
import { defaultInitramfs, fetchImages, ImageError, INIT_READY, INITRAMFS_CMDLINE } from '../src/image/index.js';
import { Guest } from './guest.js';
import { buildDir, cli } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'disco-agent-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const EM_RISCV = 243;
const PT_INTERP = 3;

test('buildAgent: a static riscv64 ELF, cached by the hash of its sources and flags', async () => {
  assert.equal(AGENT_PORT, 1024);
  const cacheDir = join(dir, 'cache');
  const logs: string[] = [];
  const elf = Buffer.from(await buildAgent({ cacheDir, log: (l) => logs.push(l) }));
  assert.deepEqual([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  assert.equal(elf[4], 2, 'ELFCLASS64');
  assert.equal(elf.readUInt16LE(18), EM_RISCV);
  assert.equal(elf.readUInt16LE(16), 2, 'ET_EXEC: static, not PIE');
  const phoff = Number(elf.readBigUInt64LE(32)), phentsize = elf.readUInt16LE(54), phnum = elf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) assert.notEqual(elf.readUInt32LE(phoff + i * phentsize), PT_INTERP, 'no dynamic loader');
  assert.deepEqual(logs, ['building the guest agent']);
  const files = readdirSync(join(cacheDir, 'agent'));
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^disco-agent-[0-9a-f]{16}$/);
  const mtime = statSync(join(cacheDir, 'agent', files[0]!)).mtimeMs;
  const again = await buildAgent({ cacheDir, log: (l) => logs.push(l) });
  assert.deepEqual(Buffer.from(again), elf);
  assert.equal(logs.length, 1, 'the second call is a cache hit');
  assert.equal(statSync(join(cacheDir, 'agent', files[0]!)).mtimeMs, mtime);
});

test('buildAgent: a missing cross compiler is a one-line ImageError', async () => {
  const path = process.env['PATH'];
  process.env['PATH'] = join(dir, 'empty');
  try {
    await assert.rejects(buildAgent({ cacheDir: join(dir, 'cache-nocc') }), (e: unknown) =>
      e instanceof ImageError && /riscv64-linux-gnu-gcc is not installed/.test(e.message) && !e.message.includes('\n'));
  } finally {
    process.env['PATH'] = path;
  }
});

function exec(runDir: string, args: string[], input: string | null): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, 'exec', ...args], { env: { ...process.env, DISCO_RUN_DIR: runDir }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.stdin.end(input ?? '');
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

test('in a Debian guest: the agent serves disco exec over virtio-vsock', { timeout: 400_000 }, async () => {
  const images = await fetchImages();
  const agent = await buildAgent();
  const initrd = await defaultInitramfs(images, {
    modules: ['virtio_mmio', 'vmw_vsock_virtio_transport', 'virtio_input', 'evdev'],
    extraFiles: [{ path: 'sbin/disco-agent', data: agent, mode: 0o755 }],
  });
  mkdirSync(buildDir, { recursive: true });
  const initrdPath = join(buildDir, 'agent-initrd.cpio');
  writeFileSync(initrdPath, initrd);
  const runDir = join(dir, 'run');
  mkdirSync(runDir, { mode: 0o700 });
  process.env['DISCO_RUN_DIR'] = runDir;
  const g = new Guest(['--name', 'agent-t', '--device', 'vsock', '--initrd', initrdPath, '--append', INITRAMFS_CMDLINE]);
  try {
    await g.waitFor(new RegExp(INIT_READY), 240_000);
    await g.run('/sbin/disco-agent & echo started', /started/);
    let r = await exec(runDir, ['agent-t', '--', 'uname', '-m'], null);
    assert.deepEqual(r, { code: 0, out: 'riscv64\n', err: '' });
    r = await exec(runDir, ['agent-t', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], null);
    assert.deepEqual(r, { code: 3, out: 'out\n', err: 'err\n' });
    r = await exec(runDir, ['agent-t', '--', 'sh', '-c', 'kill -KILL $$'], null);
    assert.equal(r.code, 137);
    r = await exec(runDir, ['agent-t', '--', 'no-such-command'], null);
    assert.equal(r.code, 127);
    assert.match(r.err, /no-such-command/);
    // Guest to host beyond the device's receive window (credit updates must flow).
    r = await exec(runDir, ['agent-t', '--', 'sh', '-c', "head -c 1500000 /dev/zero | tr '\\0' a"], null);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'a'.repeat(1_500_000));
    const big = 'x'.repeat(200_000);
    r = await exec(runDir, ['agent-t', '--env', 'GREETING=hi', '--workdir', '/proc', '--', 'sh', '-c', 'echo $GREETING $PATH $(pwd); wc -c'], big);
    assert.deepEqual(r, { code: 0, out: 'hi /sbin:/bin:/usr/sbin:/usr/bin /proc\n200000\n', err: '' });
  } finally {
    g.kill();
    delete process.env['DISCO_RUN_DIR'];
  }
});
