import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ApiServerError, startApiServer } from '../src/api/server.js';
import type { ApiHost, ApiVm, BalloonControl, BalloonInfo, VmAction, VmInfo } from '../src/api/types.js';

class FakeVm implements ApiVm {
  target = 0;
  actions: VmAction[] = [];
  constructor(readonly id: string, private readonly hasBalloon: boolean) {}
  info(): VmInfo {
    return {
      id: this.id, state: 'running', machine_config: { vcpu_count: 1, mem_size_mib: 256 },
      memory: { mem_size_mib: 256, pages_touched: 10, frames_mapped: 9, pool_frames_free: 100, pool_frames_in_use: 20 },
      cpu: { instructions: 5, exits: {}, translator: null }, devices: [],
    };
  }
  balloon(): BalloonControl | null {
    if (!this.hasBalloon) return null;
    const info = (): BalloonInfo => ({ amount_mib: this.target, actual_mib: 0, deflate_on_oom: true, free_page_reporting: true, stats_polling_interval_s: 1 });
    return { info, setTargetMib: (m) => { this.target = m; }, statistics: () => null };
  }
  action(a: VmAction): void { this.actions.push(a); }
}

function call(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, body: t ? JSON.parse(t) : null });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('API: resources, and bad requests get a 4xx with a message and change nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'disco-api-'));
  const sock = join(dir, 'h.sock');
  const a = new FakeVm('a', true), b = new FakeVm('b', false);
  const host: ApiHost = { vms: () => [a, b], vm: (id) => [a, b].find((v) => v.id === id) };
  const server = await startApiServer(sock, host);
  try {
    await assert.rejects(startApiServer(sock, host), ApiServerError, 'a second server on a live socket');
    assert.deepEqual((await call(sock, 'GET', '/vms')).body, [{ id: 'a', state: 'running' }, { id: 'b', state: 'running' }]);
    assert.equal(((await call(sock, 'GET', '/vms/a')).body as VmInfo).memory.frames_mapped, 9);
    assert.equal((await call(sock, 'PATCH', '/vms/a/balloon', '{"amount_mib": 64}')).status, 204);
    assert.equal(a.target, 64);
    assert.equal(((await call(sock, 'GET', '/vms/a/balloon')).body as BalloonInfo).amount_mib, 64);
    assert.equal((await call(sock, 'PUT', '/vms/b/actions', '{"action_type":"Shutdown"}')).status, 204);
    assert.deepEqual(b.actions, ['Shutdown']);
    const bad: [string, string, string | undefined, number, RegExp][] = [
      ['GET', '/nothing', undefined, 404, /no resource/],
      ['GET', '/vms/zz', undefined, 404, /no VM named 'zz'/],
      ['DELETE', '/vms/a', undefined, 405, /not allowed/],
      ['PATCH', '/vms/a/balloon', '', 400, /empty/],
      ['PATCH', '/vms/a/balloon', '{"amount_mib": 64', 400, /not JSON/],
      ['PATCH', '/vms/a/balloon', '[1]', 400, /JSON object/],
      ['PATCH', '/vms/a/balloon', '{"amount_mib": -1}', 400, /whole number from 0 to 256/],
      ['PATCH', '/vms/a/balloon', '{"amount_mib": 257}', 400, /whole number/],
      ['PATCH', '/vms/a/balloon', '{"amount_mib": 1.5}', 400, /whole number/],
      ['PATCH', '/vms/a/balloon', '{"amount_mib": 1, "x": 2}', 400, /unknown field 'x'/],
      ['PATCH', '/vms/b/balloon', '{"amount_mib": 1}', 400, /no balloon device/],
      ['GET', '/vms/a/balloon/statistics', undefined, 400, /not reported/],
      ['PUT', '/vms/a/actions', '{"action_type":"Explode"}', 400, /must be one of/],
      ['PUT', '/vms/a/actions', 'x'.repeat(70_000), 413, /larger than/],
    ];
    for (const [m, p, body, status, msg] of bad) {
      const r = await call(sock, m, p, body);
      assert.equal(r.status, status, `${m} ${p}`);
      assert.match((r.body as { fault_message: string }).fault_message, msg, `${m} ${p}`);
    }
    assert.equal(a.target, 64, 'no bad request changed the balloon');
    assert.deepEqual(a.actions, [], 'no bad request acted');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
