/**
 * Debian guests on Disco's networks, end to end: two VMs (two `disco run`
 * processes) on one in-host switch ping each other and move a file with nc;
 * a guest on user networking gets a DHCP lease and fetches a page from a
 * server on the host.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { INIT_READY } from '../src/image/index.js';
import { Guest } from './guest.js';

const BOOT_MS = 300_000;
const ready = new RegExp(INIT_READY);
const append = (extra: string): string[] => ['--append', `console=ttyS0 rdinit=/init ${extra}`];

test('two VMs on one switch ping each other and move a file with nc', { timeout: 2 * BOOT_MS }, async () => {
  process.env['DISCO_RUN_DIR'] = mkdtempSync(join(tmpdir(), 'disco-guest-net-'));
  const a = new Guest(['--name', 'na', '--net', 'switch=lan', ...append('disco.ip=10.0.3.1/24')]);
  const b = new Guest(['--name', 'nb', '--net', 'switch=lan', ...append('disco.ip=10.0.3.2/24')]);
  try {
    await Promise.all([a.waitFor(ready, BOOT_MS), b.waitFor(ready, BOOT_MS)]);
    await a.run('ping -c 2 10.0.3.2', /2 packets received/);
    await b.run('ping -c 2 10.0.3.1', /2 packets received/);
    await a.run('nc -l -p 5000 > /tmp/got & echo =LISTENING$((40+2))', /=LISTENING42/);
    const sent = await b.run('dd if=/dev/urandom of=/tmp/sent bs=1k count=512 2>/dev/null; md5sum /tmp/sent', /([0-9a-f]{32})\s+\/tmp\/sent/);
    await b.run('nc -w 5 10.0.3.1 5000 < /tmp/sent; echo =SENT$((40+2))', /=SENT42/, 120_000);
    await a.run('wait; md5sum /tmp/got', new RegExp(`${sent[1]!}\\s+/tmp/got`), 120_000);
  } finally {
    a.kill();
    b.kill();
  }
});

test('user networking: DHCP lease, then a page from a server on the host through 10.0.2.2', { timeout: 2 * BOOT_MS }, async () => {
  process.env['DISCO_RUN_DIR'] = mkdtempSync(join(tmpdir(), 'disco-guest-user-'));
  const body = `served-by-host-${process.pid}`;
  const server = createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const g = new Guest(['--name', 'nu', '--net', 'user', ...append('disco.ip=dhcp')]);
  try {
    await g.waitFor(ready, BOOT_MS);
    await g.run('ip -4 addr show eth0', /inet 10\.0\.2\.15\/24/);
    await g.run(`wget -q -O - http://10.0.2.2:${port}/; echo`, new RegExp(body), 60_000);
  } finally {
    g.kill();
    server.close();
  }
  assert.ok(true);
});
