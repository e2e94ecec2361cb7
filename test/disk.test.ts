// Disk back ends: raw image files, copy-on-write overlays, lock files, and
// what survives a crash after a flush.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { openDisk } from '../src/devices/backends/disk.js';
import { ImageLock } from '../src/devices/backends/disk-lock.js';
import {
  CLUSTER_UNALLOCATED, CLUSTER_ZERO, OVERLAY_HEADER_SIZE, OverlayDisk, decodeHeader,
} from '../src/devices/backends/disk-overlay.js';
import { RawDisk } from '../src/devices/backends/disk-raw.js';
import { MachineError } from '../src/machine/errors.js';
import { prng, root } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'disco-disk-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = (name: string): string => join(dir, `${n++}-${name}`);

const CS = 64 * 1024;

function bytes(len: number, seed: number): Uint8Array {
  const r = prng(seed);
  return Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
}

/** A base image of `size` bytes of pseudo-random data. */
function base(size: number, seed = 1): string {
  const p = path('base.img');
  writeFileSync(p, bytes(size, seed));
  return p;
}

const md5 = (p: string): string => createHash('md5').update(readFileSync(p)).digest('hex');

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('raw: reads and writes the file; size must be a multiple of 512', async () => {
  const p = base(8192);
  const d = RawDisk.open(p, { readonly: false });
  assert.equal(d.size, 8192);
  assert.equal(d.readonly, false);
  await d.write(1024, bytes(512, 9));
  assert.deepEqual(await d.read(1024, 512), bytes(512, 9));
  await d.writeZeroes(2048, 1536, false);
  assert.deepEqual(await d.read(2048, 1536), new Uint8Array(1536));
  await d.flush();
  await d.close();
  const f = readFileSync(p);
  assert.deepEqual(new Uint8Array(f.subarray(1024, 1536)), bytes(512, 9));
  assert.deepEqual(new Uint8Array(f.subarray(0, 1024)), bytes(8192, 1).subarray(0, 1024));

  const odd = path('odd.img');
  writeFileSync(odd, new Uint8Array(1000));
  assert.throws(() => RawDisk.open(odd, { readonly: true }), (e: unknown) => e instanceof MachineError && /not a multiple of 512/.test(e.message));
  assert.ok(!existsSync(`${odd}.lock`));
  assert.throws(() => RawDisk.open(odd, { readonly: false }), MachineError);
  assert.ok(!existsSync(`${odd}.lock`), 'a failed open leaves no lock behind');
  assert.throws(() => RawDisk.open(path('missing.img'), { readonly: true }), (e: unknown) => e instanceof MachineError && /ENOENT/.test(e.message));
});

test('raw: a read-only drive opens O_RDONLY, takes no lock and refuses writes', async () => {
  const p = base(4096);
  const { chmodSync } = await import('node:fs');
  chmodSync(p, 0o444);
  const a = openDisk({ path: p, readonly: true, overlay: null });
  const b = openDisk({ path: p, readonly: true, overlay: null });
  assert.ok(a.readonly);
  assert.ok(!existsSync(`${p}.lock`));
  await assert.rejects(a.write(0, new Uint8Array(512)));
  await assert.rejects(a.discard(0, 512));
  await assert.rejects(a.writeZeroes(0, 512, true));
  assert.deepEqual(await b.read(0, 4096), bytes(4096, 1));
  await a.close();
  await b.close();
  assert.equal(md5(p), createHash('md5').update(bytes(4096, 1)).digest('hex'));
});

test('lock: a writable image is not opened twice; the lock goes with close; a dead owner\'s lock is taken over', async () => {
  const p = base(4096);
  const a = RawDisk.open(p, { readonly: false });
  assert.equal(readFileSync(`${p}.lock`, 'utf8').trim(), String(process.pid));
  assert.throws(() => RawDisk.open(p, { readonly: false }), (e: unknown) => e instanceof MachineError && e.message === `${p} is in use by process ${process.pid}`);
  // Nor read while it is being written, nor used as an overlay's base.
  assert.throws(() => RawDisk.open(p, { readonly: true }), (e: unknown) => e instanceof MachineError && e.message === `disk image ${p} is being written by process ${process.pid}`);
  assert.throws(() => OverlayDisk.open(path('o.ovl'), p, { readonly: false }), /base image .* is being written by process/);
  await a.close();
  const r = RawDisk.open(p, { readonly: true });
  await r.close();
  assert.ok(!existsSync(`${p}.lock`));
  const b = RawDisk.open(p, { readonly: false });
  await b.close();

  // A lock left by a process that is gone.
  const dead = deadPid();
  writeFileSync(`${p}.lock`, `${dead}\n`);
  const c = RawDisk.open(p, { readonly: false });
  assert.equal(readFileSync(`${p}.lock`, 'utf8').trim(), String(process.pid));
  await c.close();
  // A garbled lock file is stale too.
  writeFileSync(`${p}.lock`, 'garbage');
  const d = RawDisk.open(p, { readonly: false });
  await d.close();
  // The lock of a live process (pid 1 here stands for another VM's process).
  writeFileSync(`${p}.lock`, '1\n');
  assert.throws(() => RawDisk.open(p, { readonly: false }), /is in use by process 1$/);
  rmSync(`${p}.lock`);
  // ImageLock.release leaves a lock that is no longer its own.
  const l = ImageLock.acquire(p);
  writeFileSync(`${p}.lock`, '1\n');
  l.release();
  assert.ok(existsSync(`${p}.lock`));
  rmSync(`${p}.lock`);
});

test('lock: an overlay is locked, its base is not (many overlays share it)', async () => {
  const b = base(4 * CS);
  const o1 = path('a.ovl'), o2 = path('b.ovl');
  const d1 = OverlayDisk.open(o1, b, { readonly: false });
  const d2 = OverlayDisk.open(o2, b, { readonly: false });
  assert.ok(existsSync(`${o1}.lock`) && existsSync(`${o2}.lock`));
  assert.ok(!existsSync(`${b}.lock`));
  assert.throws(() => OverlayDisk.open(o1, b, { readonly: false }), /is in use by process/);
  assert.throws(() => OverlayDisk.open(o1, b, { readonly: true }), /overlay .* is being written by process/);
  await d1.close();
  await d2.close();
  assert.ok(!existsSync(`${o1}.lock`) && !existsSync(`${o2}.lock`));
});

test('overlay: created if missing; copy-on-write leaves the base byte-identical', async () => {
  const b = base(10 * CS + 4096, 2);
  const before = md5(b);
  const o = path('d.ovl');
  const d = openDisk({ path: b, readonly: false, overlay: o });
  assert.ok(d instanceof OverlayDisk);
  assert.equal(d.size, 10 * CS + 4096);
  const h = decodeHeader(new Uint8Array(readFileSync(o).subarray(0, OVERLAY_HEADER_SIZE)));
  assert.ok(typeof h !== 'string');
  assert.deepEqual([h.clusterSize, h.virtualSize, h.baseSize, h.basePath, h.clusterCount], [CS, 10 * CS + 4096, 10 * CS + 4096, b, 11]);
  const orig = bytes(10 * CS + 4096, 2);
  assert.deepEqual(await d.read(0, d.size), orig);

  // A partial write inside cluster 1: the rest of the cluster still reads the base.
  await d.write(CS + 512, bytes(1024, 3));
  const want = orig.slice();
  want.set(bytes(1024, 3), CS + 512);
  assert.deepEqual(await d.read(0, d.size), want);
  assert.ok(d.entry(1) > CLUSTER_ZERO);
  assert.equal(d.entry(0), CLUSTER_UNALLOCATED);
  // A write across clusters 3..5, and into the last, partial cluster.
  await d.write(3 * CS + 100 * 512, bytes(2 * CS, 4));
  want.set(bytes(2 * CS, 4), 3 * CS + 100 * 512);
  await d.write(10 * CS, bytes(4096, 5));
  want.set(bytes(4096, 5), 10 * CS);
  assert.deepEqual(await d.read(0, d.size), want);
  await d.flush();
  await d.close();
  assert.equal(md5(b), before, 'the base is never written');
  assert.equal(statSync(b).size, 10 * CS + 4096);

  // Reopened (without the flush the close did, too): the same contents.
  const again = OverlayDisk.open(o, b, { readonly: true });
  assert.ok(again.readonly);
  assert.deepEqual(await again.read(0, again.size), want);
  await assert.rejects(again.write(0, new Uint8Array(512)), /read-only/);
  await again.close();
});

test('overlay: two overlays on one base diverge independently', async () => {
  const b = base(4 * CS, 6);
  const x = OverlayDisk.open(path('x.ovl'), b, { readonly: false });
  const y = OverlayDisk.open(path('y.ovl'), b, { readonly: false });
  await x.write(0, bytes(CS, 7));
  await y.write(512, bytes(512, 8));
  const orig = bytes(4 * CS, 6);
  const wx = orig.slice(); wx.set(bytes(CS, 7), 0);
  const wy = orig.slice(); wy.set(bytes(512, 8), 512);
  assert.deepEqual(await x.read(0, 4 * CS), wx);
  assert.deepEqual(await y.read(0, 4 * CS), wy);
  await x.close();
  await y.close();
});

test('overlay: discard and write-zeroes on whole clusters mark them zero; partial ones write zeros', async () => {
  const b = base(8 * CS, 9);
  const o = path('z.ovl');
  const d = OverlayDisk.open(o, b, { readonly: false });
  const orig = bytes(8 * CS, 9);
  await d.write(2 * CS, bytes(2 * CS, 10));
  const sizeAfterWrite = statSync(o).size;
  // Whole clusters 0 (base) and 2 (own data), with unmap: both become ZERO.
  await d.writeZeroes(0, CS, true);
  await d.writeZeroes(2 * CS, CS, true);
  assert.equal(d.entry(0), CLUSTER_ZERO);
  assert.equal(d.entry(2), CLUSTER_ZERO);
  // Without unmap, an allocated cluster keeps its data cluster and is zeroed in place.
  const e3 = d.entry(3);
  await d.writeZeroes(3 * CS, CS, false);
  assert.equal(d.entry(3), e3);
  // Partial: a copy-on-write of the base cluster with zeros in it.
  await d.writeZeroes(5 * CS + 512, 1024, true);
  assert.ok(d.entry(5) > CLUSTER_ZERO);
  // Discard: whole allocated clusters give up their data; unallocated ones stay on the base.
  await d.discard(5 * CS, CS);
  await d.discard(6 * CS, CS + 512);
  assert.equal(d.entry(5), CLUSTER_ZERO);
  assert.equal(d.entry(6), CLUSTER_UNALLOCATED);
  const want = orig.slice();
  want.fill(0, 0, CS);
  want.fill(0, 2 * CS, 4 * CS);
  want.fill(0, 5 * CS, 6 * CS);
  assert.deepEqual(await d.read(0, 8 * CS), want);
  await d.flush();
  // Clusters freed by the flush are reused before the file grows.
  const grownBefore = statSync(o).size;
  await d.write(7 * CS, bytes(CS, 11));
  await d.write(1 * CS, bytes(CS, 12));
  assert.equal(statSync(o).size, grownBefore, 'freed clusters are reused');
  assert.ok(grownBefore <= sizeAfterWrite + CS);
  want.set(bytes(CS, 11), 7 * CS);
  want.set(bytes(CS, 12), CS);
  assert.deepEqual(await d.read(0, 8 * CS), want);
  await d.close();
  const re = OverlayDisk.open(o, b, { readonly: true });
  assert.deepEqual(await re.read(0, 8 * CS), want);
  await re.close();
});

test('overlay: refused when the base changed size, is missing, or the overlay is malformed', async () => {
  const b = base(4 * CS, 13);
  const o = path('r.ovl');
  await OverlayDisk.open(o, b, { readonly: false }).close();
  truncateSync(b, 5 * CS);
  assert.throws(() => OverlayDisk.open(o, b, { readonly: false }), (e: unknown) => e instanceof MachineError && /changed size/.test(e.message));
  assert.ok(!existsSync(`${o}.lock`));
  assert.throws(() => OverlayDisk.open(path('n.ovl'), path('nobase.img'), { readonly: false }), /cannot open base image .*ENOENT/);
  assert.throws(() => OverlayDisk.open(path('n.ovl'), b, { readonly: true }), /cannot open overlay .*ENOENT/);
  truncateSync(b, 4 * CS);

  const notOverlay = path('junk.ovl');
  writeFileSync(notOverlay, bytes(8192, 1));
  assert.throws(() => OverlayDisk.open(notOverlay, b, { readonly: false }), /not a Disco overlay/);
  // A table entry pointing into the table, or past the file.
  for (const bad of [4096n, 1n << 40n, 3n]) {
    const c = path('c.ovl');
    await OverlayDisk.open(c, b, { readonly: false }).close();
    const f = new Uint8Array(readFileSync(c));
    new DataView(f.buffer).setBigUint64(OVERLAY_HEADER_SIZE + 8, bad, true);
    writeFileSync(c, f);
    assert.throws(() => OverlayDisk.open(c, b, { readonly: false }), /is corrupt/, `entry ${bad}`);
  }
});

/** Runs a child that writes, flushes, writes more, says "flushed" and waits to be killed. */
async function crashChild(script: string): Promise<void> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('flushed')) resolve(); });
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before flushing: ${out}`)));
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const diskModule = pathToFileURL(join(root, 'dist', 'src', 'devices', 'backends', 'disk.js')).href;
const overlayModule = pathToFileURL(join(root, 'dist', 'src', 'devices', 'backends', 'disk-overlay.js')).href;

test('crash: after a flush and a SIGKILL, the overlay holds everything flushed', async () => {
  const b = base(16 * CS, 14);
  const o = path('crash.ovl');
  await crashChild(`
    import { OverlayDisk } from ${JSON.stringify(overlayModule)};
    const d = OverlayDisk.open(${JSON.stringify(o)}, ${JSON.stringify(b)}, { readonly: false, autoFlushMs: 0 });
    const fill = (n, v) => new Uint8Array(n).fill(v);
    await d.write(0, fill(${CS}, 0x11));
    await d.write(${3 * CS + 512}, fill(1024, 0x22));
    await d.writeZeroes(${5 * CS}, ${CS}, true);
    await d.flush();
    // Not flushed: may or may not survive, but must not break the overlay.
    await d.write(${8 * CS}, fill(${2 * CS}, 0x33));
    await d.write(${CS}, fill(512, 0x44));
    process.stdout.write('flushed\\n');
    setInterval(() => {}, 1000);
  `);
  assert.ok(existsSync(`${o}.lock`), 'the killed process left its lock');
  // The stale lock is taken over; everything flushed is there.
  const d = OverlayDisk.open(o, b, { readonly: false });
  const orig = bytes(16 * CS, 14);
  assert.deepEqual(await d.read(0, CS), new Uint8Array(CS).fill(0x11));
  const c3 = orig.slice(3 * CS, 4 * CS);
  c3.fill(0x22, 512, 1536);
  assert.deepEqual(await d.read(3 * CS, CS), c3);
  assert.deepEqual(await d.read(5 * CS, CS), new Uint8Array(CS));
  assert.deepEqual(await d.read(10 * CS, 6 * CS), orig.subarray(10 * CS), 'untouched clusters read the base');
  // The unflushed writes: each cluster is either the old or the new contents, never garbage.
  for (const [c, v] of [[8, 0x33], [9, 0x33]] as const) {
    const got = await d.read(c * CS, CS);
    const old = orig.subarray(c * CS, (c + 1) * CS);
    assert.ok(got.every((x) => x === v) || Buffer.from(got).equals(Buffer.from(old)), `cluster ${c}`);
  }
  await d.close();
});

test('crash: a raw image keeps what was flushed', async () => {
  const p = base(4 * CS, 15);
  await crashChild(`
    import { openDisk } from ${JSON.stringify(diskModule)};
    const d = openDisk({ path: ${JSON.stringify(p)}, readonly: false, overlay: null });
    await d.write(${CS}, new Uint8Array(${CS}).fill(0x55));
    await d.flush();
    process.stdout.write('flushed\\n');
    setInterval(() => {}, 1000);
  `);
  const d = RawDisk.open(p, { readonly: false });
  assert.deepEqual(await d.read(CS, CS), new Uint8Array(CS).fill(0x55));
  await d.close();
});

test('overlay: concurrent writes to one unallocated cluster both land', async () => {
  const b = base(4 * CS, 16);
  const d = OverlayDisk.open(path('cc.ovl'), b, { readonly: false });
  await Promise.all([d.write(0, new Uint8Array(512).fill(1)), d.write(4096, new Uint8Array(512).fill(2)), d.read(0, CS)]);
  const got = await d.read(0, CS);
  assert.ok(got.subarray(0, 512).every((x) => x === 1));
  assert.ok(got.subarray(4096, 4608).every((x) => x === 2));
  assert.deepEqual(got.subarray(512, 4096), bytes(4 * CS, 16).subarray(512, 4096));
  await d.close();
});

test('crash: an overlay flushes by itself a while after a write, so a killed process loses little', async () => {
  const b = base(4 * CS, 17);
  const o = path('auto.ovl');
  await crashChild(`
    import { OverlayDisk } from ${JSON.stringify(overlayModule)};
    const d = OverlayDisk.open(${JSON.stringify(o)}, ${JSON.stringify(b)}, { readonly: false, autoFlushMs: 50 });
    await d.write(${CS + 4096}, new Uint8Array(4096).fill(0x66));
    setTimeout(() => process.stdout.write('flushed\\n'), 500);
    setInterval(() => {}, 1000);
  `);
  const d = OverlayDisk.open(o, b, { readonly: true });
  assert.deepEqual(await d.read(CS + 4096, 4096), new Uint8Array(4096).fill(0x66));
  await d.close();
  // Without the automatic flush, the same write is lost with the process (the guest never flushed).
  const o2 = path('noauto.ovl');
  await crashChild(`
    import { OverlayDisk } from ${JSON.stringify(overlayModule)};
    const d = OverlayDisk.open(${JSON.stringify(o2)}, ${JSON.stringify(b)}, { readonly: false, autoFlushMs: 0 });
    await d.write(${CS + 4096}, new Uint8Array(4096).fill(0x66));
    setTimeout(() => process.stdout.write('flushed\\n'), 500);
    setInterval(() => {}, 1000);
  `);
  const d2 = OverlayDisk.open(o2, b, { readonly: true });
  assert.deepEqual(await d2.read(CS + 4096, 4096), bytes(4 * CS, 17).subarray(CS + 4096, CS + 8192));
  await d2.close();
});
