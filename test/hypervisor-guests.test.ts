/**
 * Four Debian guests in one `disco serve` host: they boot together, each runs
 * its own workload over its attached console; then one panics and one spins,
 * and the other three carry on.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { HostProcess, sleep } from './host-support.js';
import { cli } from './support.js';

/** A console attached over the API (Upgrade: tcp). */
class AttachedConsole {
  output = '';
  private socket!: Socket;
  private constructor(private readonly id: string) {}

  static open(socketPath: string, id: string): Promise<AttachedConsole> {
    const c = new AttachedConsole(id);
    return new Promise((resolve, reject) => {
      const req = request({ socketPath, path: `/vms/${id}/console`, headers: { connection: 'Upgrade', upgrade: 'tcp' } });
      req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
        c.socket = socket;
        c.output += head.toString('utf8');
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => { c.output += d; });
        resolve(c);
      });
      req.on('response', (res) => reject(new Error(`${id}: no upgrade (${res.statusCode ?? 0})`)));
      req.on('error', reject);
      req.end();
    });
  }

  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return m;
      if (Date.now() > end) throw new Error(`${this.id}: timed out waiting for ${re}; output:\n${this.output.slice(-2000)}`);
      await sleep(100);
    }
  }

  async run(line: string, expect: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
    const from = this.output.length;
    this.socket.write(`${line}\n`);
    return this.waitFor(expect, timeoutMs, from);
  }

  /** The shell answers (its first line may be taken as a reply to the line editor's cursor query). */
  async settle(): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        await this.run('echo settled-$((6*7))', /settled-42/, 5_000);
        return;
      } catch (e) {
        if (i > 20) throw e;
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

const IDS = ['g1', 'g2', 'g3', 'g4'];
let host: HostProcess;
before(async () => {
  host = new HostProcess(['--pool', '1536', '--threads', '2']);
  await host.ready();
});
after(async () => {
  assert.equal(await host.stop(), 0);
});

test('four Debian guests boot together and run their own workloads; one panics, one spins, the others carry on', { timeout: 600_000 }, async () => {
  const t0 = performance.now();
  for (const id of IDS) {
    const c = await host.call('PUT', `/vms/${id}`, { machine_config: { vcpu_count: 1, mem_size_mib: 256 } });
    assert.equal(c.status, 201, c.text);
  }
  // Start all four at once: each answer comes when that guest's first instruction is about to run.
  const started = await Promise.all(IDS.map((id) => host.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' })));
  for (const s of started) assert.equal(s.status, 204, s.text);
  const consoles = await Promise.all(IDS.map((id) => AttachedConsole.open(host.socket, id)));
  await Promise.all(consoles.map((c) => c.waitFor(/disco: init ready/, 300_000)));
  const bootS = (performance.now() - t0) / 1000;
  for (const c of consoles) await c.settle();
  // Each guest hashes its own data: its name, then 2 MiB of zeros.
  const expect = (id: string): string => createHash('sha256').update(Buffer.concat([Buffer.from(`${id}\n`), Buffer.alloc(2 * 1024 * 1024)])).digest('hex');
  const work = (id: string): string => `(echo ${id}; dd if=/dev/zero bs=64k count=32 2>/dev/null) | sha256sum`;
  await Promise.all(consoles.map((c, i) => c.run(work(IDS[i]!), new RegExp(expect(IDS[i]!)), 300_000)));
  // Every guest touched only part of its 256 MiB; the pool accounts for all of them.
  const views = await Promise.all(IDS.map((id) => host.vm(id)));
  for (const v of views) {
    assert.equal(v.state, 'running');
    assert.ok(v.memory.pages_touched > 1000 && v.memory.pages_touched < 65536, `${v.id} touched ${v.memory.pages_touched} pages`);
  }
  // g1 panics, g2 spins in the background; g2 (besides its spinner), g3 and g4 keep working.
  const [c1, c2, c3, c4] = consoles as [AttachedConsole, AttachedConsole, AttachedConsole, AttachedConsole];
  c1.run('echo c > /proc/sysrq-trigger', /Kernel panic|sysrq: Trigger a crash/, 60_000).catch(() => undefined);
  await c2.run('(while :; do :; done) & echo spinner-$((40+2))', /spinner-42/);
  await c1.waitFor(/Kernel panic/, 120_000);
  const again = await Promise.all([c2, c3, c4].map((c, i) => {
    const id = IDS[i + 1]!;
    return c.run(`${work(id)}; echo done-$((1+1))`, /done-2/, 300_000).then(() => c.output.includes(expect(id)));
  }));
  assert.deepEqual(again, [true, true, true]);
  for (const id of IDS) assert.notEqual((await host.vm(id)).state, 'failed');
  assert.equal((await host.call('GET', '/vms')).status, 200);
  for (const c of consoles) c.close();
  for (const id of IDS) {
    await host.call('PUT', `/vms/${id}/actions`, { action_type: 'Kill' });
    await host.waitState(id, ['stopped'], 10_000);
  }
  // The frames come back once each VM's thread has ended.
  let inUse = -1;
  for (let i = 0; i < 100 && inUse !== 0; i++) {
    inUse = ((await host.call('GET', '/host')).body as { memory: { pool_frames_in_use: number } }).memory.pool_frames_in_use;
    if (inUse !== 0) await sleep(100);
  }
  assert.equal(inUse, 0, 'every frame is back in the pool');
  process.stderr.write(`# four guests booted together in ${bootS.toFixed(1)} s\n`);
});

test('a guest reboot boots the VM again; with on_reboot "stop" it stays stopped', { timeout: 600_000 }, async () => {
  const id = 'rb';
  assert.equal((await host.call('PUT', `/vms/${id}`, { machine_config: { vcpu_count: 1, mem_size_mib: 256 } })).status, 201);
  assert.equal((await host.vm(id)).machine_config.on_reboot, 'restart', 'the default, as in QEMU');
  assert.equal((await host.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' })).status, 204);
  const c = await AttachedConsole.open(host.socket, id);
  await c.waitFor(/disco: init ready/, 300_000);
  await c.settle();
  const from = c.output.length;
  c.run('reboot -f', /./).catch(() => undefined);
  // The same console follows the new run.
  await c.waitFor(/disco: init ready/, 300_000, from);
  let v = await host.vm(id);
  assert.equal(v.state, 'running');
  assert.equal(v.reboots, 1);
  assert.equal(v.boots, 2);
  await c.settle();
  await c.run('echo after-$((6*7))', /after-42/);
  // The policy changes at run time; now a reboot stops the VM.
  assert.equal((await host.call('PATCH', `/vms/${id}/machine-config`, { on_reboot: 'stop' })).status, 204);
  assert.equal((await host.call('PATCH', `/vms/${id}/machine-config`, { on_reboot: 'later' })).status, 400);
  c.run('reboot -f', /./).catch(() => undefined);
  await host.waitState(id, ['stopped'], 120_000);
  v = await host.vm(id);
  assert.match(v.reason ?? '', /rebooted/);
  assert.equal(v.reboots, 1);
  c.close();
  assert.equal((await host.call('DELETE', `/vms/${id}`)).status, 204);
});

/** `disco vm exec` as a user runs it against the host: stdout, stderr, exit status. */
function vmExec(args: readonly string[], input: string | null): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, 'vm', 'exec', ...args], { env: { ...process.env, DISCO_RUN_DIR: host.dir }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
    p.stdin.end(input ?? undefined);
  });
}

test('disco vm exec runs commands in a live guest of the host through its agent', { timeout: 600_000 }, async () => {
  const id = 'ex';
  assert.equal((await host.call('PUT', `/vms/${id}`, { machine_config: { vcpu_count: 1, mem_size_mib: 256 }, vsock: { guest_cid: 3 } })).status, 201);
  assert.equal((await host.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' })).status, 204);
  // The agent starts with the guest's init; exec waits for it (--timeout).
  const r = await vmExec(['--timeout', '300', id, '--', 'sh', '-c', 'uname -m; echo to-stderr >&2; exit 3'], null);
  assert.equal(r.status, 3, r.stderr);
  assert.equal(r.stdout, 'riscv64\n');
  assert.equal(r.stderr, 'to-stderr\n');
  const cat = await vmExec([id, '--', 'sha256sum'], 'disco\n');
  assert.equal(cat.status, 0, cat.stderr);
  assert.equal(cat.stdout.split(' ')[0], createHash('sha256').update('disco\n').digest('hex'));
  const none = await vmExec(['nosuch', '--', 'true'], null);
  assert.equal(none.status, 255);
  assert.match(none.stderr, /^disco: no VM named nosuch is running\n$/);
  await host.call('PUT', `/vms/${id}/actions`, { action_type: 'Kill' });
  await host.waitState(id, ['stopped'], 30_000);
  assert.equal((await host.call('DELETE', `/vms/${id}`)).status, 204);
});
