/**
 * The hypervisor (`disco serve`) with small S-mode guests (test/guests/probe.c):
 * the API's validation, the lifecycle, memory isolation against a hostile
 * guest, proportional CPU shares and caps, fault containment, metrics, events
 * and console attach. Debian guests: test/hypervisor-guests.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { parseVmBody } from '../src/hypervisor/config.js';
import { Hypervisor } from '../src/hypervisor/host.js';
import { buildProbe, HostProcess, sleep, type ProbeMode } from './host-support.js';

const img: Partial<Record<ProbeMode, string>> = {};
const probe = (m: ProbeMode): string => (img[m] ??= buildProbe(m));
const kernel = (m: ProbeMode, mem = 64, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  machine_config: { vcpu_count: 1, mem_size_mib: mem, ...(extra['machine_config'] as object ?? {}) },
  boot_source: { kernel_image_path: probe(m) },
  ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'machine_config')),
});

describe('disco serve', () => {
  let host: HostProcess;
  before(async () => {
    host = new HostProcess(['--pool', '1024', '--threads', '2', '--console-rate', '16']);
    await host.ready();
  });
  after(async () => {
    assert.equal(await host.stop(), 0);
  });

  test('bad API requests get a 4xx with a one-line message and change nothing', async () => {
    assert.equal((await host.call('PUT', '/vms/keep', kernel('IDLE'))).status, 201);
    const before = await host.call('GET', '/vms/keep');
    const cases: [string, string, unknown, number, RegExp, string?][] = [
      ['POST', '/vms', undefined, 400, /empty/],
      ['POST', '/vms', undefined, 400, /not JSON/, '{"id":'],
      ['POST', '/vms', [1, 2], 400, /JSON object/],
      ['POST', '/vms', { id: '../etc' }, 400, /VM id/],
      ['POST', '/vms', { id: 'x', colour: 'red' }, 400, /unknown field 'colour'/],
      ['POST', '/vms', { id: 'x', machine_config: { vcpu_count: 0, mem_size_mib: 64 } }, 400, /'vcpu_count' must be a whole number from 1 to 8/],
      ['POST', '/vms', { id: 'x', machine_config: { vcpu_count: 1, mem_size_mib: 1e9 } }, 400, /'mem_size_mib'/],
      ['POST', '/vms', { id: 'x', machine_config: { vcpu_count: 1, mem_size_mib: 64, shares: 0 } }, 400, /'shares'/],
      ['POST', '/vms', { id: 'x', boot_source: { kernel_image_path: '/nonexistent/Image' } }, 400, /does not exist/],
      ['POST', '/vms', { id: 'x', drives: [{ drive_id: 'd', path_on_host: '/nonexistent.img' }] }, 400, /does not exist/],
      ['POST', '/vms', { id: 'x', network_interfaces: [{ iface_id: 'n', backend: 'carrier-pigeon' }] }, 400, /'backend' must be/],
      ['POST', '/vms', { id: 'x', network_interfaces: [{ iface_id: 'n', backend: 'switch' }] }, 400, /switch_name/],
      ['POST', '/vms', { id: 'x', network_interfaces: Array.from({ length: 8 }, (_, i) => ({ iface_id: `n${i}` })) }, 400, /at most 7 devices/],
      ['POST', '/vms', { id: 'keep' }, 409, /exists/],
      ['PUT', '/vms/keep', {}, 409, /exists/],
      ['PUT', '/vms/keep/actions', { action_type: 'Fly' }, 400, /'action_type' must be one of/],
      ['PUT', '/vms/keep/actions', { action_type: 'Pause' }, 409, /only a running VM pauses/],
      ['PUT', '/vms/keep/actions', { action_type: 'Kill' }, 409, /nothing to kill/],
      ['PUT', '/vms/nope/actions', { action_type: 'InstanceStart' }, 404, /no VM named 'nope'/],
      ['PUT', '/vms/keep/machine-config', { vcpu_count: 9, mem_size_mib: 64 }, 400, /'vcpu_count'/],
      ['PUT', '/vms/keep/drives/d0', { drive_id: 'd1', path_on_host: '/etc/hostname' }, 400, /differs from the path's/],
      ['PUT', '/vms/keep/balloon', { amount_mib: 65 }, 400, /'amount_mib'/],
      ['PATCH', '/vms/keep/balloon', { amount_mib: 1 }, 400, /no balloon/],
      ['PATCH', '/vms/keep/state', { state: 'Frozen' }, 400, /Paused or Resumed/],
      ['DELETE', '/vms/nope', undefined, 404, /no VM named/],
      ['POST', '/vms/keep', {}, 405, /not allowed/],
      ['GET', '/nothing', undefined, 404, /no resource/],
      ['GET', '/vms/keep/nothing', undefined, 404, /no resource/],
    ];
    for (const [method, path, body, status, re, raw] of cases) {
      const r = await host.call(method, path, body, raw);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      const msg = (r.body as { fault_message?: unknown }).fault_message;
      assert.equal(typeof msg, 'string', r.text);
      assert.match(msg as string, re);
      assert.doesNotMatch(msg as string, /\n|\bat .*\.js:\d+/, 'one line, no stack');
    }
    const big = await host.call('POST', '/vms', undefined, JSON.stringify({ id: 'x', pad: 'y'.repeat(70_000) }));
    assert.equal(big.status, 413);
    // Nothing changed: no VM 'x', and 'keep' is as it was.
    const list = (await host.call('GET', '/vms')).body as { id: string }[];
    assert.deepEqual(list.map((v) => v.id), ['keep']);
    assert.deepEqual((await host.call('GET', '/vms/keep')).body, before.body);
    assert.equal((await host.call('DELETE', '/vms/keep')).status, 204);
  });

  test('lifecycle: start, pause, resume, kill, delete; the frames go back to the pool', async () => {
    const base = ((await host.call('GET', '/host')).body as { memory: { pool_frames_in_use: number } }).memory.pool_frames_in_use;
    await host.boot('life', kernel('SPIN'));
    await host.waitConsole('life', /spin: start/, 20_000);
    assert.equal((await host.vm('life')).state, 'running');
    assert.equal((await host.call('PUT', '/vms/life/actions', { action_type: 'Pause' })).status, 204);
    await sleep(300);
    const p1 = (await host.vm('life')).cpu.instructions;
    await sleep(1500);
    const p2 = await host.vm('life');
    assert.equal(p2.state, 'paused');
    assert.equal(p2.cpu.instructions, p1, 'a paused VM runs no instructions');
    assert.equal((await host.call('PATCH', '/vms/life/state', { state: 'Resumed' })).status, 204);
    await sleep(1500);
    assert.ok((await host.vm('life')).cpu.instructions > p1, 'it runs again after resume');
    // Only shares and cap change while it runs.
    assert.equal((await host.call('PATCH', '/vms/life/machine-config', { shares: 3 })).status, 204);
    assert.equal((await host.call('PATCH', '/vms/life/machine-config', { mem_size_mib: 128 })).status, 400);
    assert.equal((await host.call('PUT', '/vms/life/actions', { action_type: 'Kill' })).status, 204);
    const v = await host.waitState('life', ['stopped'], 10_000);
    assert.match(v.reason ?? '', /powered off/);
    assert.equal((await host.call('DELETE', '/vms/life')).status, 204);
    assert.equal((await host.call('GET', '/vms/life')).status, 404);
    const now = ((await host.call('GET', '/host')).body as { memory: { pool_frames_in_use: number } }).memory.pool_frames_in_use;
    assert.equal(now, base, 'every frame of the VM went back to the pool');
  });

  test('a hostile guest that scans physical memory and aims DMA outside its RAM finds nothing of anyone else\'s', async () => {
    // A victim fills its RAM with a marker and is killed: its frames go back to the pool holding the marker.
    await host.boot('victim1', kernel('VICTIM'));
    await host.waitConsole('victim1', /victim: filled/, 60_000);
    await host.call('PUT', '/vms/victim1/actions', { action_type: 'Kill' });
    await host.waitState('victim1', ['stopped'], 10_000);
    await host.call('DELETE', '/vms/victim1');
    // A second victim keeps its marker while the hostile guest runs.
    await host.boot('victim2', kernel('VICTIM'));
    await host.waitConsole('victim2', /victim: intact pass 1\b/, 60_000);
    await host.boot('hostile', kernel('HOSTILE', 128, { entropy: {} }));
    const out = await host.waitConsole('hostile', /hostile: done/, 120_000);
    assert.match(out, /hostile: ram pages 32768 marker hits 0\n/);
    assert.match(out, /hostile: outside reads \d+ faults \d+ marker hits 0\n/);
    assert.match(out, /hostile: dma refused 8 completed 0\n/);
    assert.match(out, /hostile: dma into its RAM used 1\n/);
    // The victim and the host carry on.
    const seen = (await host.console('victim2')).match(/intact pass (\d+)/g)!.length;
    await sleep(2000);
    const later = await host.console('victim2');
    assert.doesNotMatch(later, /CORRUPTED/);
    assert.ok(later.match(/intact pass (\d+)/g)!.length > seen || later.length >= 60_000, 'the victim still runs');
    assert.equal((await host.vm('victim2')).state, 'running');
    assert.match(host.log, /buffer of descriptor 0 \(64 bytes\) is not in RAM/);
    for (const id of ['victim2', 'hostile']) {
      await host.call('PUT', `/vms/${id}/actions`, { action_type: 'Kill' });
      await host.waitState(id, ['stopped'], 10_000);
      assert.equal((await host.call('DELETE', `/vms/${id}`)).status, 204);
    }
  });

  test('a per-VM memory limit stops only the VM that exceeds it, with the reason', async () => {
    await host.boot('small', kernel('VICTIM', 64, { machine_config: { mem_limit_mib: 16 } }));
    await host.boot('bystander', kernel('SPIN'));
    const v = await host.waitState('small', ['failed'], 60_000);
    assert.match(v.reason ?? '', /out of memory backing guest page/);
    assert.ok(v.memory.pages_touched <= 16 * 256 + 16, `touched ${v.memory.pages_touched}`);
    assert.equal((await host.vm('bystander')).state, 'running');
    await host.call('PUT', '/vms/bystander/actions', { action_type: 'Kill' });
    await host.waitState('bystander', ['stopped'], 10_000);
    for (const id of ['small', 'bystander']) assert.equal((await host.call('DELETE', `/vms/${id}`)).status, 204);
  });

  test('a console flood costs the flooding VM its own output, not the host or the others', async () => {
    await host.boot('flood', kernel('FLOOD'));
    await host.boot('calm', kernel('VICTIM'));
    await host.waitConsole('calm', /intact pass 2\b/, 60_000);
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) assert.equal((await host.call('GET', '/vms')).status, 200);
    assert.ok(performance.now() - t0 < 2000, 'the API answers promptly');
    await sleep(1000);
    const f = await host.vm('flood');
    assert.ok(f.console.dropped_bytes > 0, 'output over the rate is dropped');
    assert.ok(f.console.bytes <= 16 * 1024 * 30, `forwarded ${f.console.bytes}`);
    assert.equal((await host.vm('calm')).state, 'running');
    for (const id of ['flood', 'calm']) {
      await host.call('PUT', `/vms/${id}/actions`, { action_type: 'Kill' });
      await host.waitState(id, ['stopped'], 10_000);
      await host.call('DELETE', `/vms/${id}`);
    }
  });

  test('metrics, the OpenAPI document, the events stream and console attach', async () => {
    const events: string[] = [];
    const stream = request({ socketPath: host.socket, path: '/events' }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => events.push(d));
    });
    stream.end();
    await sleep(200);
    await host.boot('obs', kernel('SPIN'));
    await host.waitConsole('obs', /spin: start/, 20_000);
    while ((await host.vm('obs')).cpu.instructions === 0) await sleep(100);
    // The spin loop gets hot: the translator's counters come with the VM's.
    for (let i = 0; i < 100 && ((await host.vm('obs')).cpu.translator?.regions_compiled ?? 0) === 0; i++) await sleep(100);
    const tr = (await host.vm('obs')).cpu.translator;
    assert.ok(tr && tr.regions_compiled > 0 && tr.wasm_bytes > 0, JSON.stringify(tr));
    const m = await host.call('GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /^disco_vm_jit_compiled_total\{vm="obs"\} [1-9]\d*$/m);
    assert.match(m.text, /^disco_vm_jit_compile_seconds_total\{vm="obs"\} [\d.e-]+$/m);
    assert.match(m.text, /^disco_vm_instructions_total\{vm="obs"\} [1-9]\d*$/m);
    assert.match(m.text, /^disco_vm_exits_total\{vm="obs",reason="budget"\} \d+$/m);
    assert.match(m.text, /^disco_vm_slices_total\{vm="obs"\} \d+$/m);
    assert.match(m.text, /^disco_vm_frames_mapped\{vm="obs"\} [1-9]\d*$/m);
    assert.match(m.text, /^disco_pool_frames_free \d+$/m);
    assert.match(m.text, /^disco_vm_state\{vm="obs",state="running"\} 1$/m);
    const o = await host.call('GET', '/openapi.json');
    assert.equal(o.status, 200);
    const doc = o.body as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/vms', '/vms/{id}', '/vms/{id}/actions', '/vms/{id}/machine-config', '/metrics', '/events']) assert.ok(doc.paths[p], p);
    // Console attach over an upgraded connection: the backlog comes first.
    const got = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: host.socket, path: '/vms/obs/console', headers: { connection: 'Upgrade', upgrade: 'tcp' } });
      req.on('upgrade', (_res, socket, head) => {
        let text = head.toString('utf8');
        if (text.includes('spin: start')) { socket.destroy(); resolve(text); return; }
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => { text += d; if (text.includes('spin: start')) { socket.destroy(); resolve(text); } });
      });
      req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode ?? 0}`)));
      req.on('error', reject);
      req.end();
    });
    assert.match(got, /spin: start/);
    // The same over WebSocket (RFC 6455): the accept key, then a binary frame with the backlog.
    const key = randomBytes(16).toString('base64');
    const ws = await new Promise<{ accept: string; frame: Buffer }>((resolve, reject) => {
      const req = request({ socketPath: host.socket, path: '/vms/obs/console', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' } });
      req.on('upgrade', (res, socket, head) => {
        let buf = head;
        const done = (): void => { socket.destroy(); resolve({ accept: String(res.headers['sec-websocket-accept']), frame: buf }); };
        if (buf.includes('spin: start')) { done(); return; }
        socket.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); if (buf.includes('spin: start')) done(); });
      });
      req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode ?? 0}`)));
      req.on('error', reject);
      req.end();
    });
    assert.equal(ws.accept, createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'));
    assert.equal(ws.frame[0], 0x82, 'a final binary frame');
    await host.call('PUT', '/vms/obs/actions', { action_type: 'Kill' });
    await host.waitState('obs', ['stopped'], 10_000);
    await host.call('DELETE', '/vms/obs');
    await sleep(200);
    stream.destroy();
    const lines = events.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { type: string; vm: string; state?: string });
    const mine = lines.filter((e) => e.vm === 'obs').map((e) => (e.type === 'state' ? `state:${e.state ?? ''}` : e.type));
    assert.deepEqual(mine, ['created', 'state:starting', 'state:running', 'exit', 'state:stopped', 'deleted']);
  });
});

describe('the vCPU scheduler', () => {
  let host: HostProcess;
  before(async () => {
    host = new HostProcess(['--pool', '512', '--threads', '1']);
    await host.ready();
  });
  after(async () => {
    assert.equal(await host.stop(), 0);
  });

  test('weights 1:2:4 share one host thread in proportion; an idle VM costs nothing; a cap holds; steal time shows', async () => {
    await host.boot('idle', kernel('IDLE'));
    await host.waitConsole('idle', /idle: start/, 20_000);
    for (const w of [1, 2, 4]) await host.boot(`w${w}`, kernel('SPIN', 64, { machine_config: { shares: w } }));
    for (const w of [1, 2, 4]) await host.waitConsole(`w${w}`, /spin: start/, 20_000);
    await sleep(500);
    const run = async (id: string): Promise<number> => (await host.vm(id)).cpu.run_ms;
    const a = await Promise.all(['w1', 'w2', 'w4', 'idle'].map(run));
    await sleep(4000);
    const b = await Promise.all(['w1', 'w2', 'w4', 'idle'].map(run));
    const d = b.map((x, i) => x - a[i]!);
    const total = d[0]! + d[1]! + d[2]!;
    const share = d.slice(0, 3).map((x) => x / total);
    for (const [i, want] of [1 / 7, 2 / 7, 4 / 7].entries()) {
      assert.ok(Math.abs(share[i]! - want) < 0.05, `shares ${share.map((s) => s.toFixed(3)).join(' ')} against 1:2:4`);
    }
    assert.ok(d[3]! < 20, `the idle VM ran ${d[3]} ms`);
    const w1 = await host.vm('w1');
    assert.ok(w1.cpu.steal_ms > 1000, `a runnable VM that waits for the thread accrues steal time (${w1.cpu.steal_ms} ms)`);
    // A cap of 10 % holds even against weights.
    assert.equal((await host.call('PATCH', '/vms/w4/machine-config', { cap_percent: 10 })).status, 204);
    await sleep(500);
    const c1 = await run('w4');
    await sleep(3000);
    const capped = (await run('w4')) - c1;
    assert.ok(capped < 3000 * 0.16 && capped > 3000 * 0.05, `capped VM ran ${capped} ms of 3000`);
    assert.ok((await host.vm('w4')).cpu.throttled_ms > 0);
  });
});

describe('disco serve with SMP guests on two run tokens', () => {
  let host: HostProcess;
  before(async () => {
    host = new HostProcess(['--pool', '512', '--threads', '2']);
    await host.ready();
  });
  after(async () => {
    assert.equal(await host.stop(), 0);
  });

  test('an SMP VM runs its vCPUs on several host threads; against a one-vCPU VM of equal weight each VM gets half; pause stops every vCPU; a cap covers them all', async () => {
    const run = async (id: string): Promise<number> => (await host.vm(id)).cpu.run_ms;
    const over = async (ids: string[], ms: number): Promise<number[]> => {
      const a = await Promise.all(ids.map(run));
      await sleep(ms);
      const b = await Promise.all(ids.map(run));
      return b.map((x, i) => x - a[i]!);
    };
    await host.boot('smp', kernel('SPIN_SMP', 64, { machine_config: { vcpu_count: 2 } }));
    await host.waitConsole('smp', /spin: start, harts started 1\n/, 20_000);
    await sleep(500);
    const [alone] = await over(['smp'], 3000);
    assert.ok(alone! > 3000 * 1.6, `two spinning vCPUs held tokens ${alone} ms in 3000 ms: not two threads`);

    await host.boot('uni', kernel('SPIN', 64));
    await host.waitConsole('uni', /spin: start/, 20_000);
    await sleep(500);
    const [smp, uni] = await over(['smp', 'uni'], 4000);
    const share = smp! / (smp! + uni!);
    assert.ok(Math.abs(share - 0.5) < 0.08, `equal weights, two vCPUs against one: the SMP VM got ${(share * 100).toFixed(1)} % (${smp} ms against ${uni} ms)`);
    assert.ok(smp! + uni! > 4000 * 1.7, `both tokens in use (${smp! + uni!} ms of 8000)`);

    assert.equal((await host.call('PATCH', '/vms/smp/state', { state: 'Paused' })).status, 204);
    await sleep(300);
    const [pausedSmp, soloUni] = await over(['smp', 'uni'], 2000);
    assert.ok(pausedSmp! < 30, `a paused VM's vCPUs ran ${pausedSmp} ms`);
    assert.ok(soloUni! > 2000 * 0.85, `the other VM carries on (${soloUni} ms of 2000)`);
    assert.equal((await host.call('PATCH', '/vms/smp/state', { state: 'Resumed' })).status, 204);
    assert.equal((await host.call('PUT', '/vms/uni/actions', { action_type: 'Kill' })).status, 204);

    // 50 % of one thread over both vCPUs; a cap above 100 % per vCPU is refused.
    assert.equal((await host.call('PATCH', '/vms/smp/machine-config', { cap_percent: 201 })).status, 400);
    assert.equal((await host.call('PATCH', '/vms/smp/machine-config', { cap_percent: 50 })).status, 204);
    await sleep(500);
    const [capped] = await over(['smp'], 3000);
    assert.ok(capped! > 3000 * 0.35 && capped! < 3000 * 0.65, `capped at 50 %, the SMP VM ran ${capped} ms of 3000`);
    assert.equal((await host.call('PATCH', '/vms/smp/machine-config', { cap_percent: 150 })).status, 204);
    await sleep(500);
    const [capped150] = await over(['smp'], 3000);
    assert.ok(capped150! > 3000 * 1.2 && capped150! < 3000 * 1.7, `capped at 150 %, the SMP VM ran ${capped150} ms of 3000`);
    const v = await host.vm('smp');
    assert.ok(v.cpu.instructions > 0 && v.cpu.throttled_ms > 0);
  });
});

test('an exception in one VM\'s device back end stops only that VM, with the reason', async () => {
  const hv = new Hypervisor({ poolMib: 256, threads: 2, log: () => undefined });
  try {
    const a = hv.create(parseVmBody({ id: 'a', machine_config: { vcpu_count: 1, mem_size_mib: 64 }, boot_source: { kernel_image_path: probe('SPIN') }, balloon: { amount_mib: 0 } }));
    const b = hv.create(parseVmBody({ id: 'b', machine_config: { vcpu_count: 1, mem_size_mib: 64 }, boot_source: { kernel_image_path: probe('SPIN') } }));
    await a.start();
    await b.start();
    await sleep(500);
    // The balloon back end refuses a target no API request can set, by throwing.
    (a as unknown as { worker: Worker }).worker.postMessage({ type: 'balloon', targetMib: -1 });
    for (let i = 0; i < 100 && a.state !== 'failed'; i++) await sleep(50);
    assert.equal(a.state, 'failed');
    assert.match(a.reason ?? '', /balloon target/);
    await a.settled();
    assert.equal(a.memory().framesMapped, 0);
    const n = b.counters.instructions;
    await sleep(1200);
    assert.equal(b.state, 'running');
    assert.ok(b.counters.instructions > n, 'the other VM carries on');
  } finally {
    await hv.close();
  }
});
