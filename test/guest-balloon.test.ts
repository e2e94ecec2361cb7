/**
 * The balloon, end to end: a Debian guest touches most of its RAM, the host
 * inflates the balloon through the API (`disco vm balloon`) and the VM's
 * machine frames drop; deflating gives the guest its memory back, and frames
 * are only taken again as the guest touches pages. The same guest has a
 * virtio console: hvc0, and a named port that the host reaches as a socket.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmInfo } from '../src/api/types.js';
import { INIT_READY } from '../src/image/index.js';
import { Guest } from './guest.js';
import { runCli } from './support.js';

const BOOT_MS = 300_000;
const MiB_PAGES = 256;

interface Stats extends VmInfo { balloon?: { amount_mib: number; actual_mib: number } }

function stats(): Stats {
  const r = runCli(['vm', 'stats', 'vb']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Stats;
}

async function until(what: string, ok: (s: Stats) => boolean, ms = 120_000): Promise<Stats> {
  const end = Date.now() + ms;
  for (;;) {
    const s = stats();
    if (ok(s)) return s;
    if (Date.now() > end) assert.fail(`${what}: ${JSON.stringify(s)}`);
    await sleep(500);
  }
}

test('balloon inflate returns machine frames to the pool; deflate gives the memory back', { timeout: 2 * BOOT_MS }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'disco-guest-balloon-'));
  process.env['DISCO_RUN_DIR'] = dir;
  const port = join(dir, 'port.sock');
  const g = new Guest(['--name', 'vb', '--memory', '256', '--device', 'balloon,free-page-reporting=off,stats=1',
    '--device', `console,port=org.disco.test:${port}`, '--append', 'console=ttyS0 rdinit=/init']);
  try {
    await g.waitFor(new RegExp(INIT_READY), BOOT_MS);
    await g.settle();
    // The console device: hvc0 exists, the named port carries bytes to the host's socket.
    await g.run('ls /sys/class/tty/ | grep hvc', /^hvc0\r?$/m, 30_000);
    await g.run('cat /sys/class/virtio-ports/*/name', /^org\.disco\.test\r?$/m);
    const sock = connect(port);
    let got = '';
    sock.on('data', (d: Buffer) => { got += d.toString(); });
    await new Promise((r) => sock.once('connect', r));
    await g.run('for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = org.disco.test ] && echo port-$((6*7)) > /dev/${p##*/}; done; echo written-$((6*7))', /written-42/);
    for (let i = 0; i < 100 && !got.includes('port-42'); i++) await sleep(100);
    assert.equal(got, 'port-42\n');
    sock.destroy();

    // Touch 160 MiB and free it again: the guest's free pages are now backed.
    await g.run('dd if=/dev/zero of=/dev/null bs=140M count=1; echo =FILLED$((40+2))', /=FILLED42/, 120_000);
    const afterFill = stats();
    const full = afterFill.memory.frames_mapped;
    // The translator's cost is reported beside the guest's instructions.
    const tr = afterFill.cpu.translator;
    assert.ok(tr !== null && tr['regions_compiled']! > 100 && tr['wasm_bytes']! > 0 && tr['compile_ms']! > 0, JSON.stringify(afterFill.cpu));
    assert.ok(tr['instructions_interpreted']! > 0 && tr['instructions_interpreted']! < afterFill.cpu.instructions, JSON.stringify(afterFill.cpu));
    assert.ok(full > 130 * MiB_PAGES, `frames after filling: ${full}`);

    assert.equal(runCli(['vm', 'balloon', 'vb', '128']).code, 0);
    const inflated = await until('balloon reaches 128 MiB', (s) => s.balloon?.actual_mib === 128);
    assert.ok(full - inflated.memory.frames_mapped >= 100 * MiB_PAGES,
      `inflating 128 MiB freed only ${(full - inflated.memory.frames_mapped) / MiB_PAGES} MiB of frames`);
    await g.run('grep MemTotal /proc/meminfo', /MemTotal:\s+\d+ kB/);

    assert.equal(runCli(['vm', 'balloon', 'vb', '0']).code, 0);
    await until('balloon deflates', (s) => s.balloon?.actual_mib === 0);
    await g.run('dd if=/dev/zero of=/dev/null bs=130M count=1; echo =REFILLED$((40+2))', /=REFILLED42/, 120_000);
    const again = stats().memory.frames_mapped;
    assert.ok(again - inflated.memory.frames_mapped >= 100 * MiB_PAGES, `frames after deflate and refill: ${again}`);

    const bad = runCli(['vm', 'balloon', 'vb', '9999']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^disco: 'amount_mib' must be a whole number from 0 to 256\n$/);
  } finally {
    g.kill();
  }
});
