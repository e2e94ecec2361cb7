/**
 * A Debian guest on Disco's virtio devices, end to end: it boots from an ext4
 * root disk (`disco image build`) through a copy-on-write overlay, writes and
 * syncs a file, reboots and reads it back; `disco exec` runs commands in it
 * through the vsock agent; virtio-rng feeds its hwrng. The base image is never
 * written.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildRootfs } from '../src/image/rootfs.js';
import { INIT_READY } from '../src/image/index.js';
import { Guest } from './guest.js';
import { runCli } from './support.js';

const BOOT_MS = 300_000;
const ready = new RegExp(INIT_READY);
const digest = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

test('root disk through an overlay: a synced file survives a reboot; disco exec; virtio-rng', { timeout: 3 * BOOT_MS }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'disco-guest-disk-'));
  process.env['DISCO_RUN_DIR'] = dir;
  const { path: base } = await buildRootfs();
  const before = digest(base);
  const overlay = join(dir, 'root.dov');
  const g = new Guest(['--name', 'gd', '--drive', `file=${base},overlay=${overlay}`, '--device', 'vsock', '--device', 'rng',
    '--append', 'console=ttyS0 root=/dev/vda']);
  try {
    await g.waitFor(ready, BOOT_MS);
    await g.run('grep " / " /proc/mounts', /\/dev\/vda \/ ext4 rw/);
    await g.run('echo disco-$((6*7)) > /root/persist; sync; echo =SYNCED$((40+2))', /=SYNCED42/);
    await g.run('cat /sys/class/misc/hw_random/rng_current', /virtio_rng/);
    await g.run('head -c 32 /dev/hwrng | od -An -tx1 | tr -d " \\n"; echo', /[0-9a-f]{64}/);

    // The agent starts with init; give it a moment on a slow host.
    let r = runCli(['exec', 'gd', '--timeout', '60', '--', 'cat', '/root/persist'], 90_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'disco-42\n');
    r = runCli(['exec', 'gd', '--', 'sh', '-c', 'echo to-stderr >&2; exit 7']);
    assert.equal(r.code, 7);
    assert.equal(r.stderr, 'to-stderr\n');
    r = runCli(['exec', 'gd', '--', 'no-such-command']);
    assert.equal(r.code, 127);
    r = runCli(['exec', 'nobody-here', '--', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^disco: .*nobody-here/);

    g.proc.stdin.write('reboot\n');
    await g.waitFor(ready, BOOT_MS, g.output.lastIndexOf(INIT_READY) + INIT_READY.length);
    await g.run('cat /root/persist', /disco-42/);
    await g.run('poweroff', /reboot: Power down|Power down/);
    assert.equal(await g.exited, 0);
  } finally {
    g.kill();
  }
  assert.equal(digest(base), before, 'the base image is unchanged');
});
