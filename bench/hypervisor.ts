/**
 * The hypervisor's benches, each against a fresh `disco serve`:
 *
 * - boot: N Debian guests (256 MiB, 1 vCPU) started together; seconds until
 *   every one printed "disco: init ready".
 * - density: idle Debian guests of 256 MiB started one after another in a
 *   fixed machine-memory pool, until the pool cannot back another; how many
 *   keep running, and what each costs.
 * - fairness: three spinning guests with weights 1:2:4 on one host thread;
 *   measured shares of the thread against the configured ones.
 *
 *   npm run bench:hypervisor -- [--guests N] [--pool MiB] [--only boot|density|fairness]
 */
import { parseArgs } from 'node:util';
import { buildProbe, HostProcess, sleep } from '../test/host-support.js';

const { values } = parseArgs({
  options: { guests: { type: 'string' }, pool: { type: 'string' }, only: { type: 'string' }, threads: { type: 'string' } },
});
const N = Number(values.guests ?? 4);
const POOL = Number(values.pool ?? 1024);
const only = values.only;
const threadArgs = values.threads ? ['--threads', values.threads] : [];
const INIT = /disco: init ready/;

async function waitReady(host: HostProcess, id: string, timeoutMs: number): Promise<'ready' | 'failed'> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await host.vm(id);
    if (v.state === 'failed' || v.state === 'stopped') return 'failed';
    if (INIT.test(await host.console(id))) return 'ready';
    if (Date.now() > end) throw new Error(`${id} did not boot in ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

async function bootTogether(): Promise<void> {
  const host = new HostProcess(['--pool', String(Math.max(POOL, N * 128 + 128)), ...threadArgs]);
  try {
    await host.ready();
    const ids = Array.from({ length: N }, (_, i) => `b${i}`);
    for (const id of ids) await host.call('PUT', `/vms/${id}`, { machine_config: { vcpu_count: 1, mem_size_mib: 256 } });
    const t0 = performance.now();
    await Promise.all(ids.map((id) => host.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' })));
    const each = await Promise.all(ids.map(async (id) => {
      await waitReady(host, id, 900_000);
      return (performance.now() - t0) / 1000;
    }));
    const views = await Promise.all(ids.map((id) => host.vm(id)));
    console.log(`boot: ${N} guests together: all at init in ${Math.max(...each).toFixed(1)} s (first ${Math.min(...each).toFixed(1)} s); `
      + `steal per guest ${(views.reduce((s, v) => s + v.cpu.steal_ms, 0) / N / 1000).toFixed(1)} s`);
  } finally {
    await host.stop();
  }
}

async function density(): Promise<void> {
  const host = new HostProcess(['--pool', String(POOL), ...threadArgs]);
  try {
    await host.ready();
    let running = 0;
    const t0 = performance.now();
    for (let i = 0; ; i++) {
      const id = `d${i}`;
      await host.call('PUT', `/vms/${id}`, { machine_config: { vcpu_count: 1, mem_size_mib: 256 } });
      const s = await host.call('PUT', `/vms/${id}/actions`, { action_type: 'InstanceStart' });
      if (s.status !== 204) { console.log(`density: guest ${i + 1} refused: ${s.text}`); break; }
      const r = await waitReady(host, id, 600_000);
      if (r === 'failed') { console.log(`density: guest ${i + 1} could not boot: ${(await host.vm(id)).reason ?? ''}`); break; }
      running++;
      const h = (await host.call('GET', '/host')).body as { memory: { pool_frames_free: number } };
      process.stderr.write(`density: ${running} idle guests, ${(h.memory.pool_frames_free * 4 / 1024).toFixed(0)} MiB free\n`);
    }
    await sleep(5000);
    const ids = ((await host.call('GET', '/vms')).body as { id: string; state: string }[]);
    const alive = ids.filter((v) => v.state === 'running').length;
    const views = await Promise.all(ids.filter((v) => v.state === 'running').map((v) => host.vm(v.id)));
    const avgPages = views.reduce((s, v) => s + v.memory.frames_mapped, 0) / Math.max(1, views.length);
    // Idle: CPU per guest over 5 s.
    const r0 = views.map((v) => v.cpu.run_ms);
    await sleep(5000);
    const r1 = await Promise.all(views.map((v) => host.vm(v.id)));
    const idleCpu = r1.reduce((s, v, i) => s + (v.cpu.run_ms - r0[i]!), 0) / Math.max(1, views.length) / 5000;
    console.log(`density: pool ${POOL} MiB holds ${alive} idle Debian guests of 256 MiB (each holds ${(avgPages * 4 / 1024).toFixed(1)} MiB; `
      + `an idle guest uses ${(idleCpu * 100).toFixed(2)} % of a host thread; ${((performance.now() - t0) / 1000).toFixed(0)} s to fill)`);
  } finally {
    await host.stop();
  }
}

async function fairness(): Promise<void> {
  const host = new HostProcess(['--pool', '512', '--threads', '1']);
  const spin = buildProbe('SPIN');
  try {
    await host.ready();
    const weights = [1, 2, 4];
    for (const w of weights) {
      await host.boot(`w${w}`, { machine_config: { vcpu_count: 1, mem_size_mib: 64, shares: w }, boot_source: { kernel_image_path: spin } });
    }
    await sleep(1000);
    const runMs = async (): Promise<number[]> => Promise.all(weights.map(async (w) => (await host.vm(`w${w}`)).cpu.run_ms));
    const a = await runMs();
    await sleep(20_000);
    const b = await runMs();
    const d = b.map((x, i) => x - a[i]!);
    const total = d.reduce((s, x) => s + x, 0);
    const want = weights.map((w) => w / 7);
    const got = d.map((x) => x / total);
    const err = Math.max(...got.map((g, i) => Math.abs(g - want[i]!) / want[i]!));
    console.log(`fairness: weights 1:2:4 on one thread over 20 s: measured ${got.map((g) => (g * 100).toFixed(1)).join(' : ')} % `
      + `against ${want.map((g) => (g * 100).toFixed(1)).join(' : ')} % (largest relative error ${(err * 100).toFixed(1)} %)`);
  } finally {
    await host.stop();
  }
}

if (!only || only === 'fairness') await fairness();
if (!only || only === 'boot') await bootTogether();
if (!only || only === 'density') await density();
