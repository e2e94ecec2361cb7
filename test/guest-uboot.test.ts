/**
 * A guest other than Linux: Debian's U-Boot for QEMU's riscv64 virt board
 * (M-mode, its own device tree parser and virtio drivers) finds its disk in
 * virtio slot 0, reads it, and gets a DHCP lease over virtio-net on user
 * networking.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { fetchUboot } from '../src/image/firmware.js';
import { Guest } from './guest.js';

test('U-Boot reads the virtio disk in slot 0 and gets a DHCP lease over virtio-net', { timeout: 300_000 }, async () => {
  const uboot = await fetchUboot();
  const dir = mkdtempSync(join(tmpdir(), 'disco-uboot-'));
  process.env['DISCO_RUN_DIR'] = dir;
  const disk = join(dir, 'disk.img');
  const data = randomBytes(1 << 20);
  writeFileSync(disk, data);
  const want = (crc32(data.subarray(0, 4096)) >>> 0).toString(16).padStart(8, '0');
  const g = new Guest(['--name', 'ub', '--bios', uboot, '--drive', `file=${disk}`, '--net', 'user']);
  try {
    await g.waitFor(/Hit any key to stop autoboot/, 120_000);
    g.proc.stdin.write('\n');
    await g.waitFor(/=> $/m, 60_000);
    await g.run('virtio scan; virtio info', /VirtIO Block Device[\s\S]*Capacity: 1\.0 MB = 0\.0 GB \(2048 x 512\)/);
    await g.run('virtio read 0x84000000 0 8', /8 blocks read: OK/);
    const m = await g.run('crc32 0x84000000 0x1000', /==> ([0-9a-f]{8})/);
    assert.equal(m[1], want, 'the first 4 KiB as U-Boot read them');
    await g.run('setenv autoload no; dhcp', /DHCP client bound to address 10\.0\.2\.15/, 60_000);
    await g.run('poweroff', /poweroff/);
    assert.equal(await g.exited, 0);
  } finally {
    g.kill();
  }
});
