/**
 * Paravirtual I/O: Disco beside qemu-system-riscv64 (TCG) on the same Debian
 * kernel and initramfs, 1 vCPU, in the same run.
 *
 *   - virtio-blk sequential write (dd conv=fsync) and read (caches dropped), 128 MiB, raw image
 *   - TCP between two VMs: 32 MiB through busybox nc (Disco: an in-host switch;
 *     QEMU: two processes joined by -netdev socket)
 *   - balloon: time to inflate 256 MiB of a 512 MiB guest (API / QMP until the
 *     driver reports it)
 *
 *   npm run bench:virtio
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync, closeSync, openSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { BASE_MODULES, defaultInitramfs, fetchImages, INIT_READY, INITRAMFS_CMDLINE } from '../src/image/index.js';
import { Guest } from '../test/guest.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BOOT_MS = 600_000;
const ready = new RegExp(INIT_READY);

const images = await fetchImages();
const dir = join(root, 'build', 'bench');
mkdirSync(dir, { recursive: true });
const initrd = join(dir, 'initrd-virtio.gz');
writeFileSync(initrd, await defaultInitramfs(images, { modules: BASE_MODULES }));
const runDir = mkdtempSync(join(tmpdir(), 'disco-bench-'));
process.env['DISCO_RUN_DIR'] = runDir;
const haveQemu = spawnSync('qemu-system-riscv64', ['--version']).status === 0;

type Sys = 'disco' | 'qemu';

function boot(sys: Sys, name: string, mem: number, append: string, disco: string[], qemu: string[]): Guest {
  if (sys === 'disco') {
    return new Guest(['--name', name, '--memory', String(mem), '--kernel', images.kernel, '--initrd', initrd, '--append', `${INITRAMFS_CMDLINE} ${append}`, ...disco]);
  }
  return new Guest(['-M', 'virt', '-m', String(mem), '-smp', '1', '-nographic', '-bios', images.opensbiFwJumpBin,
    '-kernel', images.kernel, '-initrd', initrd, '-append', `${INITRAMFS_CMDLINE} ${append}`, ...qemu], ['qemu-system-riscv64']);
}

/** Wall seconds of a guest command, by busybox `time` inside the guest. */
async function ddSeconds(g: Guest, cmd: string): Promise<number> {
  const m = await g.run(`time sh -c '${cmd}' 2>&1 | grep real`, /real\s+(\d+)m\s*([0-9.]+)s/, BOOT_MS);
  return Number(m[1]) * 60 + Number(m[2]);
}

async function blk(sys: Sys): Promise<{ write: number; read: number }> {
  const img = join(dir, `disk-${sys}.img`);
  rmSync(img, { force: true });
  closeSync(openSync(img, 'w'));
  truncateSync(img, 256 << 20);
  const g = boot(sys, `bench-blk-${sys}`, 512, '', ['--drive', `file=${img}`],
    ['-drive', `file=${img},if=none,format=raw,id=d`, '-device', 'virtio-blk-device,drive=d']);
  try {
    await g.waitFor(ready, BOOT_MS);
    await g.settle();
    await g.run('while [ ! -b /dev/vda ]; do sleep 1; done; echo disk-$((6*7))', /disk-42/, 60_000);
    const w = await ddSeconds(g, 'dd if=/dev/zero of=/dev/vda bs=1M count=128 conv=fsync 2>/dev/null');
    await g.run('sync; echo 3 > /proc/sys/vm/drop_caches; echo dropped-$((6*7))', /dropped-42/);
    const r = await ddSeconds(g, 'dd if=/dev/vda of=/dev/null bs=1M count=128 2>/dev/null');
    return { write: 128 / w, read: 128 / r };
  } finally {
    g.kill();
    rmSync(img, { force: true });
  }
}

async function tcp(sys: Sys): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const net = (i: number): string[] => (sys === 'disco' ? ['--net', 'switch=bench'] : [
    '-netdev', i === 1 ? `socket,id=n,listen=127.0.0.1:${port}` : `socket,id=n,connect=127.0.0.1:${port}`,
    '-device', `virtio-net-device,netdev=n,mac=52:54:00:00:00:0${i}`]);
  const a = boot(sys, `bench-na-${sys}`, 256, 'disco.ip=10.0.3.1/24', net(1), net(1));
  if (sys === 'qemu') await sleep(1000);
  const b = boot(sys, `bench-nb-${sys}`, 256, 'disco.ip=10.0.3.2/24', net(2), net(2));
  try {
    await Promise.all([a.waitFor(ready, BOOT_MS), b.waitFor(ready, BOOT_MS)]);
    await Promise.all([a.settle(), b.settle()]);
    await b.run('ping -c 1 10.0.3.1', /1 packets received/, 60_000);
    await a.run('nc -l -p 5001 > /dev/null & echo listening-$((6*7))', /listening-42/);
    const s = await ddSeconds(b, 'dd if=/dev/zero bs=64k count=512 2>/dev/null | nc -w 1 10.0.3.1 5001');
    return 32 / s;
  } finally {
    a.kill();
    b.kill();
  }
}

function api(sock: string, method: string, path: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, method, path }, (res) => {
      let t = '';
      res.on('data', (c: Buffer) => { t += c.toString(); });
      res.on('end', () => resolve(t ? JSON.parse(t) : null));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A minimal QMP client: one command at a time, answers by order. */
async function qmp(sock: string): Promise<(cmd: string, args?: unknown) => Promise<Record<string, unknown>>> {
  const s = connect(sock);
  let buf = '';
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  s.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const v = JSON.parse(line) as Record<string, unknown>;
      if ('return' in v || 'error' in v) waiting.shift()?.(v);
    }
  });
  await new Promise((r) => s.once('connect', r));
  const call = (cmd: string, args?: unknown): Promise<Record<string, unknown>> => new Promise((r) => {
    waiting.push(r);
    s.write(`${JSON.stringify(args === undefined ? { execute: cmd } : { execute: cmd, arguments: args })}\n`);
  });
  await call('qmp_capabilities');
  return call;
}

async function balloon(sys: Sys): Promise<number> {
  const qsock = join(runDir, 'qmp.sock');
  const g = boot(sys, 'bench-balloon', 512, '', ['--device', 'balloon,free-page-reporting=off'],
    ['-device', 'virtio-balloon-device', '-qmp', `unix:${qsock},server=on,wait=off`]);
  try {
    await g.waitFor(ready, BOOT_MS);
    await g.settle();
    await g.run('while ! grep -q virtio_balloon /proc/modules; do sleep 1; done; echo balloon-$((6*7))', /balloon-42/, 60_000);
    await sleep(2000);
    const t0 = performance.now();
    if (sys === 'disco') {
      const sock = join(runDir, 'bench-balloon.sock');
      await api(sock, 'PATCH', '/vms/bench-balloon/balloon', { amount_mib: 256 });
      while (((await api(sock, 'GET', '/vms/bench-balloon/balloon')) as { actual_mib: number }).actual_mib < 256) await sleep(20);
    } else {
      const call = await qmp(qsock);
      await call('balloon', { value: 256 << 20 });
      for (;;) {
        const r = await call('query-balloon');
        if (((r['return'] as { actual: number }).actual) <= 256 << 20) break;
        await sleep(20);
      }
    }
    return (performance.now() - t0) / 1000;
  } finally {
    g.kill();
  }
}

interface Row { name: string; unit: string; disco: number; qemu: number | null; higherIsBetter: boolean }
const rows: Row[] = [];
const systems: Sys[] = haveQemu ? ['disco', 'qemu'] : ['disco'];
const res: Record<Sys, { blk?: { write: number; read: number }; tcp?: number; balloon?: number }> = { disco: {}, qemu: {} };
for (const sys of systems) {
  res[sys].blk = await blk(sys);
  res[sys].tcp = await tcp(sys);
  res[sys].balloon = await balloon(sys);
}
const q = haveQemu ? res.qemu : null;
rows.push({ name: 'virtio-blk sequential write', unit: 'MB/s', disco: res.disco.blk!.write, qemu: q?.blk?.write ?? null, higherIsBetter: true });
rows.push({ name: 'virtio-blk sequential read', unit: 'MB/s', disco: res.disco.blk!.read, qemu: q?.blk?.read ?? null, higherIsBetter: true });
rows.push({ name: 'TCP between two VMs', unit: 'MB/s', disco: res.disco.tcp!, qemu: q?.tcp ?? null, higherIsBetter: true });
rows.push({ name: 'balloon inflate 256 MiB', unit: 's', disco: res.disco.balloon!, qemu: q?.balloon ?? null, higherIsBetter: false });

console.log(`paravirtual I/O (Debian ${images.kernelVersion}, busybox initramfs, 1 vCPU; QEMU: TCG with OpenSBI)`);
console.log(`${'workload'.padEnd(30)} ${'unit'.padEnd(5)} ${'Disco'.padStart(8)} ${'QEMU'.padStart(8)} ${'Disco/QEMU'.padStart(11)}`);
for (const r of rows) {
  const ratio = r.qemu ? (r.disco / r.qemu).toFixed(2) : 'n/a';
  console.log(`${r.name.padEnd(30)} ${r.unit.padEnd(5)} ${r.disco.toFixed(2).padStart(8)} ${(r.qemu?.toFixed(2) ?? 'n/a').padStart(8)} ${ratio.padStart(11)}`);
}
if (!haveQemu) console.log('qemu-system-riscv64 not installed (Debian package qemu-system-misc): no comparison');
rmSync(runDir, { recursive: true, force: true });
process.exit(0);
