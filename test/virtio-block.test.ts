// virtio-blk (virtio 1.2, 5.2) through the MMIO transport, driven the way
// Linux's virtio_blk does: a header, data, and a status byte per request.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskBackend } from '../src/devices/backends/disk.js';
import {
  BLK_CFG, BLK_MAX_DISCARD_SEG, BLK_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, VirtioBlock, type VirtioBlockState,
} from '../src/devices/virtio/block.js';
import {
  REG_CONFIG, REG_DEVICE_ID, REG_QUEUE_NUM_MAX, REG_QUEUE_SEL, REG_STATUS, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER_OK,
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, feature,
} from '../src/devices/virtio/constants.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { prng } from './support.js';
import { ALL_RING_FEATURES, Driver, FakeRam, type Buf, type DriverQueue } from './virtio-driver.js';

const BASE = 0x8000_0000;
const BLK_FEATURES = feature(VIRTIO_BLK_F_SEG_MAX) | feature(VIRTIO_BLK_F_BLK_SIZE) | feature(VIRTIO_BLK_F_FLUSH)
  | feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES) | feature(VIRTIO_BLK_F_RO);

/** A disk in memory whose operations can be held until the test lets them finish. */
class MemDisk implements DiskBackend {
  readonly data: Uint8Array;
  readonly discardAlignment = 4096;
  readonly ops: string[] = [];
  hold = false;
  private held: (() => void)[] = [];
  flushes = 0;
  closed = false;

  constructor(sectors: number, readonly readonly = false) {
    this.data = new Uint8Array(sectors * 512);
  }

  get size(): number { return this.data.length; }

  private async gate(): Promise<void> {
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
  }

  /** Lets the held operation `i` (in arrival order) go on. */
  release(i: number): void {
    const r = this.held[i];
    assert.ok(r, `no held operation ${i}`);
    this.held[i] = () => undefined;
    r();
  }

  get heldCount(): number { return this.held.length; }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.ops.push(`read ${offset} ${length}`);
    await this.gate();
    return this.data.slice(offset, offset + length);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.ops.push(`write ${offset} ${data.length}`);
    assert.ok(!this.readonly, 'write to a read-only disk');
    await this.gate();
    this.data.set(data, offset);
  }

  async flush(): Promise<void> {
    this.ops.push('flush');
    await this.gate();
    this.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.ops.push(`discard ${offset} ${length}`);
    await this.gate();
  }

  async writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    this.ops.push(`zeroes ${offset} ${length} ${mayUnmap}`);
    await this.gate();
    this.data.fill(0, offset, offset + length);
  }

  async close(): Promise<void> { this.closed = true; }
}

interface Rig {
  ram: FakeRam;
  disk: MemDisk;
  blk: VirtioBlock;
  t: VirtioMmioTransport<VirtioBlockState>;
  drv: Driver;
  q: DriverQueue;
}

function rig(opts: { sectors?: number; readonly?: boolean; serial?: string; want?: bigint; disk?: MemDisk } = {}): Rig {
  const ram = new FakeRam(BASE, 8 << 20);
  const disk = opts.disk ?? new MemDisk(opts.sectors ?? 2048, opts.readonly ?? false);
  const blk = new VirtioBlock('block', disk, { serial: opts.serial ?? 'disco-serial-0' });
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: blk, mem: ram, irq: () => undefined });
  const drv = new Driver(t as VirtioMmioTransport<unknown>, ram);
  const [q] = drv.init([undefined], opts.want ?? (ALL_RING_FEATURES | BLK_FEATURES));
  return { ram, disk, blk, t, drv, q: q! };
}

/** Lets pending promise jobs and I/O callbacks run. */
const settle = async (rounds = 5): Promise<void> => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
};

function header(type: number, sector: number | bigint): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return b;
}

function segment(sector: number, num: number, flags: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, num, true);
  v.setUint32(12, flags, true);
  return b;
}

interface Req { head: number; status: number; data: number; dataLen: number }

/**
 * Posts one request: the header (readable), `out` bytes (readable), `inLen`
 * writable data bytes, then the status byte. Kicks unless told not to.
 */
function post(r: Rig, type: number, sector: number | bigint, opts: { out?: Uint8Array; inLen?: number; kick?: boolean; indirect?: boolean } = {}): Req {
  const a = r.drv.arena;
  const h = a.alloc(16);
  r.ram.set(h, header(type, sector));
  const bufs: Buf[] = [{ addr: h, len: 16 }];
  let data = 0, dataLen = 0;
  if (opts.out) {
    data = a.alloc(opts.out.length);
    dataLen = opts.out.length;
    r.ram.set(data, opts.out);
    bufs.push({ addr: data, len: dataLen });
  }
  if (opts.inLen) {
    data = a.alloc(opts.inLen);
    dataLen = opts.inLen;
    bufs.push({ addr: data, len: dataLen, write: true });
  }
  const status = a.alloc(1, 1);
  r.ram.set(status, Uint8Array.of(0xee));
  bufs.push({ addr: status, len: 1, write: true });
  const head = r.q.add(bufs, { indirect: opts.indirect ?? false });
  if (opts.kick ?? true) r.q.kick();
  return { head, status, data, dataLen };
}

const statusOf = (r: Rig, req: Req): number => r.ram.get(req.status, 1)[0]!;

async function complete(r: Rig, req: Req): Promise<{ status: number; len: number }> {
  for (let i = 0; i < 50; i++) {
    await settle(1);
    const used = r.q.reap();
    const u = used.find((e) => e.id === req.head);
    assert.ok(used.length <= 1, 'one request, one used element');
    if (u) return { status: statusOf(r, req), len: u.len };
  }
  assert.fail(`request ${req.head} did not complete`);
}

const pattern = (n: number, seed: number): Uint8Array => {
  const rnd = prng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
};

test('virtio-blk: device ID 2, one queue of 256, features and configuration space at the 5.2.4 offsets', () => {
  const r = rig({ sectors: 0x1_2345 });
  assert.equal(r.drv.r(REG_DEVICE_ID), 2);
  r.drv.w(REG_QUEUE_SEL, 0);
  assert.equal(r.drv.r(REG_QUEUE_NUM_MAX), 256);
  r.drv.w(REG_QUEUE_SEL, 1);
  assert.equal(r.drv.r(REG_QUEUE_NUM_MAX), 0);
  const f = r.drv.deviceFeatures();
  for (const bit of [VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES]) {
    assert.ok(f & feature(bit), `feature ${bit} offered`);
  }
  assert.equal(f & feature(VIRTIO_BLK_F_RO), 0n);
  const cfg = (off: number, size: 1 | 2 | 4 | 8): bigint => r.t.read(REG_CONFIG + off, size) ?? -1n;
  assert.equal(cfg(BLK_CFG.capacity, 8), 0x1_2345n);
  assert.equal(cfg(BLK_CFG.capacity, 4), 0x1_2345n);
  assert.equal(cfg(BLK_CFG.capacity + 4, 4), 0n);
  assert.equal(cfg(BLK_CFG.segMax, 4), BigInt(BLK_SEG_MAX));
  assert.equal(cfg(BLK_CFG.blkSize, 4), 512n);
  assert.equal(cfg(BLK_CFG.numQueues, 2), 1n);
  assert.equal(cfg(BLK_CFG.maxDiscardSectors, 4), BigInt(1 << 22));
  assert.equal(cfg(BLK_CFG.maxDiscardSeg, 4), BigInt(BLK_MAX_DISCARD_SEG));
  assert.equal(cfg(BLK_CFG.discardSectorAlignment, 4), 8n);
  assert.equal(cfg(BLK_CFG.maxWriteZeroesSectors, 4), BigInt(1 << 22));
  assert.equal(cfg(BLK_CFG.maxWriteZeroesSeg, 4), 32n);
  assert.equal(cfg(BLK_CFG.writeZeroesMayUnmap, 1), 1n);
  assert.deepEqual([BLK_CFG.capacity, BLK_CFG.sizeMax, BLK_CFG.segMax, BLK_CFG.geometry, BLK_CFG.blkSize, BLK_CFG.topology,
    BLK_CFG.writeback, BLK_CFG.numQueues, BLK_CFG.maxDiscardSectors, BLK_CFG.maxDiscardSeg, BLK_CFG.discardSectorAlignment,
    BLK_CFG.maxWriteZeroesSectors, BLK_CFG.maxWriteZeroesSeg, BLK_CFG.writeZeroesMayUnmap], [0, 8, 12, 16, 20, 24, 32, 34, 36, 40, 44, 48, 52, 56]);
  // Writes to the configuration space change nothing (no CONFIG_WCE).
  r.t.write(REG_CONFIG + BLK_CFG.writeback, 1, 1n);
  r.t.write(REG_CONFIG + BLK_CFG.capacity, 4, 7n);
  assert.equal(cfg(BLK_CFG.writeback, 1), 0n);
  assert.equal(cfg(BLK_CFG.capacity, 4), 0x1_2345n);
});

test('virtio-blk: write, read back, flush and GET_ID', async () => {
  const r = rig();
  const data = pattern(3 * 512, 1);
  const w = post(r, VIRTIO_BLK_T_OUT, 5, { out: data });
  assert.deepEqual(await complete(r, w), { status: VIRTIO_BLK_S_OK, len: 1 });
  assert.deepEqual(r.disk.data.subarray(5 * 512, 8 * 512), data);
  assert.ok(r.disk.data.subarray(0, 5 * 512).every((b) => b === 0), 'nothing written before the sector');

  const rd = post(r, VIRTIO_BLK_T_IN, 5, { inLen: 3 * 512, indirect: true });
  assert.deepEqual(await complete(r, rd), { status: VIRTIO_BLK_S_OK, len: 3 * 512 + 1 });
  assert.deepEqual(r.ram.get(rd.data, rd.dataLen), data);

  r.disk.hold = true;
  const fl = post(r, VIRTIO_BLK_T_FLUSH, 0);
  await settle();
  assert.equal(r.q.reap().length, 0, 'a flush completes only once the back end has flushed');
  r.disk.release(0);
  assert.deepEqual(await complete(r, fl), { status: VIRTIO_BLK_S_OK, len: 1 });
  assert.equal(r.disk.flushes, 1);
  r.disk.hold = false;

  const id = post(r, VIRTIO_BLK_T_GET_ID, 0, { inLen: 20 });
  assert.deepEqual(await complete(r, id), { status: VIRTIO_BLK_S_OK, len: 21 });
  const want = new Uint8Array(20);
  want.set(new TextEncoder().encode('disco-serial-0'));
  assert.deepEqual(r.ram.get(id.data, 20), want);
  assert.deepEqual(r.ram.violations, []);
});

test('virtio-blk: a request spread over many descriptors (header, data and status split)', async () => {
  const r = rig();
  const data = pattern(4096, 2);
  r.disk.data.set(data, 512 * 100);
  const a = r.drv.arena;
  const h = a.alloc(16);
  r.ram.set(h, header(VIRTIO_BLK_T_IN, 100));
  // Header in two pieces, data in 8 pieces of 512, status alone.
  const bufs: Buf[] = [{ addr: h, len: 10 }, { addr: h + 10, len: 6 }];
  const addrs: number[] = [];
  for (let i = 0; i < 8; i++) { const d = a.alloc(512); addrs.push(d); bufs.push({ addr: d, len: 512, write: true }); }
  const st = a.alloc(1);
  bufs.push({ addr: st, len: 1, write: true });
  const head = r.q.add(bufs);
  r.q.kick();
  const req = { head, status: st, data: 0, dataLen: 0 };
  assert.deepEqual(await complete(r, req), { status: VIRTIO_BLK_S_OK, len: 4097 });
  addrs.forEach((d, i) => assert.deepEqual(r.ram.get(d, 512), data.subarray(512 * i, 512 * i + 512)));
});

test('virtio-blk: discard and write-zeroes segments reach the back end; flags and limits are checked', async () => {
  const r = rig();
  r.disk.data.fill(0xab);
  const segs = new Uint8Array(32);
  segs.set(segment(8, 16, 0), 0);
  segs.set(segment(64, 8, 0), 16);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: segs }))).status, VIRTIO_BLK_S_OK);
  assert.deepEqual(r.disk.ops.slice(-2), [`discard ${8 * 512} ${16 * 512}`, `discard ${64 * 512} ${8 * 512}`]);

  const wz = post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: segment(10, 3, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) });
  assert.equal((await complete(r, wz)).status, VIRTIO_BLK_S_OK);
  assert.equal(r.disk.ops.at(-1), `zeroes ${10 * 512} ${3 * 512} true`);
  assert.ok(r.disk.data.subarray(10 * 512, 13 * 512).every((b) => b === 0));
  assert.equal(r.disk.data[13 * 512], 0xab);

  const before = r.disk.ops.length;
  // 5.2.6.2: UNMAP on a discard, or an unknown flag, is unsupported.
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: segment(0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) }))).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: segment(0, 1, 2) }))).status, VIRTIO_BLK_S_UNSUPP);
  // Beyond the capacity, too many sectors, too many segments, a partial segment: IOERR.
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: segment(2047, 2, 0) }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: segment(0, (1 << 22) + 1, 0) }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: new Uint8Array(16 * (BLK_MAX_DISCARD_SEG + 1)) }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: new Uint8Array(8) }))).status, VIRTIO_BLK_S_IOERR);
  // A valid segment followed by an invalid one: nothing is done.
  const mixed = new Uint8Array(32);
  mixed.set(segment(0, 1, 0), 0);
  mixed.set(segment(1 << 30, 1, 0), 16);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: mixed }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal(r.disk.ops.length, before, 'refused requests reach no back end');
});

test('virtio-blk: discard and write-zeroes the driver did not negotiate are UNSUPP', async () => {
  const r = rig({ want: ALL_RING_FEATURES | feature(VIRTIO_BLK_F_FLUSH) });
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: segment(0, 1, 0) }))).status, VIRTIO_BLK_S_UNSUPP);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: segment(0, 1, 0) }))).status, VIRTIO_BLK_S_UNSUPP);
  assert.deepEqual(r.disk.ops, []);
});

test('virtio-blk: a read-only disk offers RO, not DISCARD/WRITE_ZEROES, and refuses writes with IOERR', async () => {
  const r = rig({ readonly: true });
  const f = r.drv.deviceFeatures();
  assert.ok(f & feature(VIRTIO_BLK_F_RO));
  assert.equal(f & (feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES)), 0n);
  assert.equal(r.t.read(REG_CONFIG + BLK_CFG.maxDiscardSectors, 4) ?? -1n, 0n);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_OUT, 0, { out: pattern(512, 3) }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_DISCARD, 0, { out: segment(0, 1, 0) }))).status, VIRTIO_BLK_S_IOERR);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: segment(0, 1, 0) }))).status, VIRTIO_BLK_S_IOERR);
  assert.ok(r.disk.data.every((b) => b === 0));
  assert.ok(!r.disk.ops.some((o) => !o.startsWith('read')), 'no write reached the disk');
  // Reads and flushes still work.
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_IN, 0, { inLen: 512 }))).status, VIRTIO_BLK_S_OK);
  assert.equal((await complete(r, post(r, VIRTIO_BLK_T_FLUSH, 0))).status, VIRTIO_BLK_S_OK);
});

test('virtio-blk: malformed requests end in IOERR or UNSUPP, and touch no disk', async () => {
  const r = rig({ sectors: 64 });
  const cases: [string, () => Req, number][] = [
    ['read past the end', () => post(r, VIRTIO_BLK_T_IN, 63, { inLen: 1024 }), VIRTIO_BLK_S_IOERR],
    ['read at a huge sector', () => post(r, VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ff00n, { inLen: 512 }), VIRTIO_BLK_S_IOERR],
    ['read at sector 2^53', () => post(r, VIRTIO_BLK_T_IN, 2n ** 53n, { inLen: 512 }), VIRTIO_BLK_S_IOERR],
    ['write past the end', () => post(r, VIRTIO_BLK_T_OUT, 64, { out: new Uint8Array(512) }), VIRTIO_BLK_S_IOERR],
    ['read of 100 bytes', () => post(r, VIRTIO_BLK_T_IN, 0, { inLen: 100 }), VIRTIO_BLK_S_IOERR],
    ['write of 513 bytes', () => post(r, VIRTIO_BLK_T_OUT, 0, { out: new Uint8Array(513) }), VIRTIO_BLK_S_IOERR],
    ['read with readable data', () => post(r, VIRTIO_BLK_T_IN, 0, { out: new Uint8Array(512) }), VIRTIO_BLK_S_IOERR],
    ['write with writable data', () => post(r, VIRTIO_BLK_T_OUT, 0, { inLen: 512 }), VIRTIO_BLK_S_IOERR],
    ['unknown type 3', () => post(r, 3, 0), VIRTIO_BLK_S_UNSUPP],
    ['GET_LIFETIME (not offered)', () => post(r, 10, 0, { inLen: 16 }), VIRTIO_BLK_S_UNSUPP],
    ['SECURE_ERASE (not offered)', () => post(r, 14, 0, { out: segment(0, 1, 0) }), VIRTIO_BLK_S_UNSUPP],
    ['type 0xffffffff', () => post(r, 0xffff_ffff, 0), VIRTIO_BLK_S_UNSUPP],
  ];
  for (const [what, make, want] of cases) {
    const got = await complete(r, make());
    assert.equal(got.status, want, what);
    assert.equal(got.len, 1, `${what}: only the status byte is written`);
  }
  // A header shorter than 16 bytes, with room for the status: IOERR.
  const h = r.drv.arena.alloc(8), st = r.drv.arena.alloc(1);
  const head = r.q.add([{ addr: h, len: 8 }, { addr: st, len: 1, write: true }]);
  r.q.kick();
  assert.equal((await complete(r, { head, status: st, data: 0, dataLen: 0 })).status, VIRTIO_BLK_S_IOERR);
  assert.deepEqual(r.disk.ops, []);
  assert.equal(r.t.status & STATUS_DEVICE_NEEDS_RESET, 0);
  // A request with no device-writable byte cannot be answered: the device needs a reset.
  const h2 = r.drv.arena.alloc(16);
  r.ram.set(h2, header(VIRTIO_BLK_T_IN, 0));
  r.q.add([{ addr: h2, len: 16 }]);
  r.q.kick();
  await settle();
  assert.ok(r.t.status & STATUS_DEVICE_NEEDS_RESET);
  assert.deepEqual(r.ram.violations, []);
});

test('virtio-blk: requests complete in the order the back end finishes them, several at once', async () => {
  const r = rig();
  r.disk.data.set(pattern(512, 4), 0);
  r.disk.data.set(pattern(512, 5), 512);
  r.disk.hold = true;
  const a = post(r, VIRTIO_BLK_T_IN, 0, { inLen: 512, kick: false });
  const b = post(r, VIRTIO_BLK_T_IN, 1, { inLen: 512, kick: false });
  const c = post(r, VIRTIO_BLK_T_FLUSH, 0);
  await settle();
  assert.equal(r.disk.heldCount, 3, 'all three requests are at the back end at once');
  assert.equal(r.blk.inflightCount, 3);
  r.disk.release(1);
  await settle();
  assert.deepEqual(r.q.reap().map((u) => u.id), [b.head]);
  r.disk.release(2);
  r.disk.release(0);
  await settle();
  assert.deepEqual(r.q.reap().map((u) => u.id), [c.head, a.head]);
  assert.deepEqual(r.ram.get(a.data, 512), pattern(512, 4));
  assert.deepEqual(r.ram.get(b.data, 512), pattern(512, 5));
  assert.equal(r.blk.inflightCount, 0);
});

test('virtio-blk: a reset while I/O is in flight drops its completions; the driver starts again', async () => {
  const r = rig();
  r.disk.hold = true;
  const rd = post(r, VIRTIO_BLK_T_IN, 0, { inLen: 512 });
  const wr = post(r, VIRTIO_BLK_T_OUT, 4, { out: pattern(512, 6) });
  await settle();
  assert.equal(r.disk.heldCount, 2);
  r.drv.w(REG_STATUS, 0);
  r.ram.log = [];
  r.disk.release(0);
  r.disk.release(1);
  await settle();
  assert.deepEqual(r.ram.log, [], 'no guest memory is touched after the reset');
  assert.equal(statusOf(r, rd), 0xee);
  assert.equal(statusOf(r, wr), 0xee);
  r.ram.log = null;
  // A fresh start works as before.
  r.disk.hold = false;
  const [q] = r.drv.init([undefined], ALL_RING_FEATURES | BLK_FEATURES);
  r.q = q!;
  const again = post(r, VIRTIO_BLK_T_IN, 4, { inLen: 512 });
  assert.equal((await complete(r, again)).status, VIRTIO_BLK_S_OK);
  assert.deepEqual(r.ram.get(again.data, 512), pattern(512, 6), 'the write that had reached the back end is on the disk');
});

test('virtio-blk: close waits for the back end and drops completions', async () => {
  const r = rig();
  r.disk.hold = true;
  const rd = post(r, VIRTIO_BLK_T_IN, 0, { inLen: 512 });
  await settle();
  let closed = false;
  const p = r.blk.close().then(() => { closed = true; });
  await settle();
  assert.equal(closed, false, 'close waits for the operation in flight');
  assert.equal(r.disk.closed, false);
  r.disk.release(0);
  await p;
  assert.ok(r.disk.closed);
  assert.equal(statusOf(r, rd), 0xee);
  assert.equal(r.q.usedIdx(), 0);
});

test('virtio-blk: save while requests are in flight; restore runs them again', async () => {
  const r = rig();
  r.disk.data.set(pattern(512, 7), 512 * 3);
  r.disk.hold = true;
  const rd = post(r, VIRTIO_BLK_T_IN, 3, { inLen: 512 });
  const wr = post(r, VIRTIO_BLK_T_OUT, 9, { out: pattern(1024, 8) });
  await settle();
  const state = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;
  assert.equal(state.device.inflight.length, 2);

  // A new device over the same RAM and disk, as after a snapshot restore.
  const disk = new MemDisk(2048);
  disk.data.set(r.disk.data);
  const blk = new VirtioBlock('block', disk);
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: blk, mem: r.ram, irq: () => undefined });
  t.restore(state);
  assert.equal(t.status & STATUS_DRIVER_OK, STATUS_DRIVER_OK);
  await settle();
  const used = r.q.reap().map((u) => u.id).sort();
  assert.deepEqual(used, [rd.head, wr.head].sort());
  assert.equal(statusOf(r, rd), VIRTIO_BLK_S_OK);
  assert.equal(statusOf(r, wr), VIRTIO_BLK_S_OK);
  assert.deepEqual(r.ram.get(rd.data, 512), pattern(512, 7));
  assert.deepEqual(disk.data.subarray(9 * 512, 11 * 512), pattern(1024, 8));

  for (const bad of [
    { version: 2, inflight: [] },
    { version: 1, inflight: 'x' },
    { version: 1, inflight: [{ head: 256, readable: [], writable: [] }] },
    { version: 1, inflight: [{ head: 1, readable: [{ addr: -1, len: 1 }], writable: [] }] },
    { version: 1, inflight: [{ head: 1, readable: [], writable: [] }, { head: 1, readable: [], writable: [] }] },
  ]) {
    assert.throws(() => blk.restore(bad as unknown as VirtioBlockState), RangeError);
  }
});

test('virtio-blk: fuzz with random and malformed chains', async () => {
  const seen = new Map<number, number>();
  let resets = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = prng(seed);
    const int = (n: number): number => Math.floor(rnd() * n);
    // Half the runs are mostly well-formed (their requests get answered), half hostile.
    const hostile = seed > 20 ? 1 : 0.05;
    const rare = (p: number): boolean => rnd() < p * hostile;
    const r = rig({ sectors: 256 });
    const ram = r.ram;
    // Random addresses: mostly inside RAM, sometimes around and beyond its edges.
    const addr = (len: number): number => {
      switch (rare(0.2) ? int(2) : 2) {
        case 0: return int(2) ? BASE - int(64) : BASE + ram.size - int(64);
        case 1: return int(2) ? 2 ** 40 : 0;
        default: return r.drv.arena.alloc(Math.max(1, Math.min(len, 8192)), 1);
      }
    };
    const types = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 2, 10, 14, int(2 ** 32)];
    const posted: Req[] = [];
    try {
      for (let n = 0; n < 30 && !(r.t.status & STATUS_DEVICE_NEEDS_RESET); n++) {
        const bufs: Buf[] = [];
        const hdrLen = int(5) === 0 ? int(20) : 16;
        const h = r.drv.arena.alloc(Math.max(hdrLen, 1), 1);
        const sector = int(6) === 0 ? BigInt(int(2 ** 32)) * 2n ** 32n + BigInt(int(2 ** 32)) : BigInt(int(260));
        ram.set(h, header(types[int(types.length)]!, sector).subarray(0, Math.max(hdrLen, 1)));
        if (hdrLen > 0) bufs.push({ addr: h, len: hdrLen });
        const extra = int(3);
        for (let i = 0; i < extra; i++) {
          const len = rare(0.15) ? int(2 ** 32) : [16, 32, 512, 512, 1024, 7][int(6)]!;
          const a = addr(len);
          if (a >= BASE && a + 16 <= BASE + ram.size && len >= 16) ram.set(a, segment(int(300), int(64), int(3)));
          bufs.push({ addr: a, len, write: i >= extra / 2 ? int(4) !== 0 : int(4) === 0 });
        }
        const st = r.drv.arena.alloc(1, 1);
        ram.set(st, Uint8Array.of(0xee));
        if (!rare(0.12)) bufs.push({ addr: st, len: 1, write: true });
        if (bufs.length === 0) continue;
        // Sometimes break the chain rules: a readable after a writable, a bad next, an indirect flag.
        if (rare(0.15)) {
          const head = r.q.add(bufs);
          const flags = [VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT][int(3)]!;
          r.q.writeDesc(r.q.desc, head, BASE + int(ram.size), int(64), flags, int(1024));
        } else {
          posted.push({ head: r.q.add(bufs, { indirect: int(3) === 0 }), status: st, data: 0, dataLen: 0 });
        }
        r.q.kick();
        if (int(3) === 0) await settle(2);
        // Keep the driver's free list going.
        r.q.reap();
      }
      await settle(10);
      r.q.reap();
    } catch (e) {
      assert.fail(`seed ${seed}: ${(e as Error).stack}`);
    }
    assert.deepEqual(ram.violations, [], `seed ${seed}: accesses outside RAM`);
    const needsReset = (r.t.status & STATUS_DEVICE_NEEDS_RESET) !== 0;
    if (needsReset) resets++;
    for (const p of posted) seen.set(statusOf(r, p), (seen.get(statusOf(r, p)) ?? 0) + 1);
    if (!needsReset) {
      for (const p of posted) {
        const s = statusOf(r, p);
        assert.ok(s === VIRTIO_BLK_S_OK || s === VIRTIO_BLK_S_IOERR || s === VIRTIO_BLK_S_UNSUPP || s === 0xee, `seed ${seed}: status ${s}`);
      }
      assert.equal(r.blk.inflightCount, 0, `seed ${seed}: every request was answered`);
    }
  }
  // The fuzz reaches every outcome: each status, and some runs end in NEEDS_RESET and some do not.
  for (const st of [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP]) assert.ok((seen.get(st) ?? 0) > 3, `status ${st} seen ${seen.get(st) ?? 0} times`);
  assert.ok(resets > 0 && resets < 40, `${resets} runs needed a reset`);
});

test('virtio-blk: the machine factory opens --drive specs; bad ones are one-line MachineErrors', async () => {
  const { mkdtempSync, rmSync, writeFileSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createVirtioDevice } = await import('../src/machine/virtio-devices.js');
  const { MachineError } = await import('../src/machine/errors.js');
  const dir = mkdtempSync(join(tmpdir(), 'disco-blk-'));
  try {
    const img = join(dir, 'd.img');
    writeFileSync(img, new Uint8Array(1 << 20));
    const env = { vmName: 'vm', pmap: null as never, consoleOutput: () => undefined, log: () => undefined, starting: () => undefined };
    const dev = createVirtioDevice({ kind: 'block', path: img, readonly: false, overlay: null, serial: 'abc' }, env);
    assert.ok(dev instanceof VirtioBlock);
    assert.equal(dev.deviceId, 2);
    assert.ok(existsSync(`${img}.lock`));
    assert.throws(() => createVirtioDevice({ kind: 'block', path: img, readonly: false, overlay: null, serial: '' }, env), /in use by process/);
    await dev.close?.();
    assert.ok(!existsSync(`${img}.lock`));
    const ovl = createVirtioDevice({ kind: 'block', path: img, readonly: false, overlay: join(dir, 'o.ovl'), serial: '' }, env);
    assert.ok(existsSync(join(dir, 'o.ovl')));
    await ovl.close?.();
    const bad: [Parameters<typeof createVirtioDevice>[0], RegExp][] = [
      [{ kind: 'block', path: join(dir, 'none.img'), readonly: false, overlay: null, serial: '' }, /cannot open disk image .*ENOENT/],
      [{ kind: 'block', path: img, readonly: false, overlay: null, serial: 'x'.repeat(21) }, /longer than 20 bytes/],
      [{ kind: 'block', path: join(dir, 'none.img'), readonly: false, overlay: join(dir, 'p.ovl'), serial: '' }, /cannot open base image/],
    ];
    for (const [spec, re] of bad) {
      assert.throws(() => createVirtioDevice(spec, env), (e: unknown) => e instanceof MachineError && re.test(e.message) && !e.message.includes('\n'));
    }
    assert.ok(!existsSync(`${img}.lock`), 'a refused drive leaves no lock');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio-blk: over a real image file, requests larger than the 1 MiB transfer chunk', async () => {
  const { mkdtempSync, rmSync, writeFileSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { openDisk } = await import('../src/devices/backends/disk.js');
  const dir = mkdtempSync(join(tmpdir(), 'disco-blk-'));
  try {
    const img = join(dir, 'd.img');
    writeFileSync(img, new Uint8Array(8 << 20));
    const disk = openDisk({ path: img, readonly: false, overlay: null });
    const ram = new FakeRam(BASE, 16 << 20);
    const blk = new VirtioBlock('block', disk);
    const t = new VirtioMmioTransport({ base: 0x1000_1000, device: blk, mem: ram, irq: () => undefined });
    const drv = new Driver(t as VirtioMmioTransport<unknown>, ram);
    const [q] = drv.init([undefined], ALL_RING_FEATURES | BLK_FEATURES);
    const r: Rig = { ram, disk: null as never, blk, t, drv, q: q! };
    const big = pattern(3 * (1 << 20) + 512, 21);
    const w = post(r, VIRTIO_BLK_T_OUT, 1000, { out: big });
    assert.equal((await waitFor(r, w)).status, VIRTIO_BLK_S_OK);
    assert.equal((await waitFor(r, post(r, VIRTIO_BLK_T_FLUSH, 0))).status, VIRTIO_BLK_S_OK);
    assert.deepEqual(new Uint8Array(readFileSync(img).subarray(1000 * 512, 1000 * 512 + big.length)), big);
    const rd = post(r, VIRTIO_BLK_T_IN, 1000, { inLen: big.length });
    assert.deepEqual(await waitFor(r, rd), { status: VIRTIO_BLK_S_OK, len: big.length + 1 });
    assert.deepEqual(ram.get(rd.data, big.length), big);
    await blk.close();
    assert.deepEqual(ram.violations, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Like `complete`, for real files: waits on the host's I/O (a few hundred ms at most). */
async function waitFor(r: Rig, req: Req): Promise<{ status: number; len: number }> {
  for (let i = 0; i < 500; i++) {
    await new Promise((res) => setTimeout(res, 5));
    const u = r.q.reap().find((e) => e.id === req.head);
    if (u) return { status: statusOf(r, req), len: u.len };
  }
  assert.fail(`request ${req.head} did not complete`);
}
