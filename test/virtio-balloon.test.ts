// virtio-balloon (virtio 1.2, 5.5) over a real machine memory and pmap, driven
// the way Linux's virtio_balloon does it: PFN arrays on the inflateq and
// deflateq, one statistics buffer held by the device, free page reports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  F_VERSION_1, INT_CONFIG_CHANGE, REG_CONFIG, REG_CONFIG_GENERATION, REG_DEVICE_ID, REG_QUEUE_NUM_MAX, REG_QUEUE_SEL,
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, feature,
} from '../src/devices/virtio/constants.js';
import {
  BALLOON_STAT_SIZE, VIRTIO_BALLOON_F_DEFLATE_ON_OOM, VIRTIO_BALLOON_F_REPORTING, VIRTIO_BALLOON_F_STATS_VQ,
  VirtioBalloon, type BalloonOptions, type VirtioBalloonState,
} from '../src/devices/virtio/balloon.js';
import type { GuestMemory } from '../src/devices/virtio/memory.js';
import { pmapGuestMemory } from '../src/devices/virtio/pmap-memory.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { MachineMemory, PAGE_SIZE } from '../src/memory/machine-memory.js';
import { Pmap } from '../src/memory/pmap.js';
import { ALL_RING_FEATURES, Driver, FakeRam, rng, type DriverQueue, type DriverRam, rawDesc } from './virtio-driver.js';

const BASE = 0x8000_0000;
const RAM = 4 << 20;
const ROM = 0x1000;

interface Rig {
  mem: MachineMemory;
  pmap: Pmap;
  ram: DriverRam;
  dev: VirtioBalloon;
  t: VirtioMmioTransport<VirtioBalloonState>;
  drv: Driver;
}

const OPTS: BalloonOptions = { deflateOnOom: true, freePageReporting: true, statsIntervalS: 0 };

/** The driver's view of guest RAM through the pmap (its own accesses back pages like the guest's would). */
function pmapRam(pmap: Pmap): DriverRam {
  return { base: BASE, size: RAM, get: (gpa, n) => pmap.read(gpa, n), set: (gpa, d) => pmap.write(gpa, d) };
}

function rig(opts: BalloonOptions = OPTS, mem: GuestMemory | null = null): Rig {
  const m = MachineMemory.create(8 << 20);
  const pmap = Pmap.create(m, [{ name: 'rom', kind: 'rom', base: ROM, size: PAGE_SIZE }, { name: 'dram', kind: 'ram', base: BASE, size: RAM }]);
  const dev = new VirtioBalloon(pmap, opts);
  const guest = mem ?? pmapGuestMemory(pmap);
  const t = new VirtioMmioTransport({ base: 0x1000_2000, device: dev, mem: guest, irq: () => {} });
  const ram = mem instanceof FakeRam ? mem : pmapRam(pmap);
  return { mem: m, pmap, ram, dev, t, drv: new Driver(t as VirtioMmioTransport<unknown>, ram) };
}

const LINUX = ALL_RING_FEATURES | feature(VIRTIO_BALLOON_F_STATS_VQ) | feature(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | feature(VIRTIO_BALLOON_F_REPORTING);

function pfnBuffer(r: Rig, pfns: readonly number[]): { addr: number; len: number } {
  const addr = r.drv.arena.alloc(4 * pfns.length, 8);
  const b = new Uint8Array(4 * pfns.length);
  const v = new DataView(b.buffer);
  pfns.forEach((p, i) => v.setUint32(4 * i, p >>> 0, true));
  r.ram.set(addr, b);
  return { addr, len: b.length };
}

function statsBuffer(r: Rig, stats: readonly [number, bigint][]): { addr: number; len: number } {
  const addr = r.drv.arena.alloc(BALLOON_STAT_SIZE * stats.length, 8);
  const b = new Uint8Array(BALLOON_STAT_SIZE * stats.length);
  const v = new DataView(b.buffer);
  stats.forEach(([tag, val], i) => { v.setUint16(i * BALLOON_STAT_SIZE, tag, true); v.setBigUint64(i * BALLOON_STAT_SIZE + 2, val, true); });
  r.ram.set(addr, b);
  return { addr, len: b.length };
}

/** Guest pages for the tests, well above the rings. */
const PAGES = BASE + (1 << 20);
const pfn = (gpa: number): number => gpa / PAGE_SIZE;

function touch(r: Rig, first: number, count: number): void {
  for (let i = 0; i < count; i++) r.pmap.write(first + i * PAGE_SIZE, Uint8Array.of(0xa5, i));
}

test('identity: device ID 5; STATS_VQ always, DEFLATE_ON_OOM and REPORTING as configured; queues follow', () => {
  const r = rig();
  assert.equal(r.drv.r(REG_DEVICE_ID), 5);
  const f = r.drv.deviceFeatures();
  for (const b of [VIRTIO_BALLOON_F_STATS_VQ, VIRTIO_BALLOON_F_DEFLATE_ON_OOM, VIRTIO_BALLOON_F_REPORTING]) assert.ok(f & feature(b), `bit ${b}`);
  for (const b of [0, 3, 4]) assert.equal(f & feature(b), 0n, `bit ${b} not offered`);
  const maxes = [0, 1, 2, 3, 4].map((q) => { r.drv.w(REG_QUEUE_SEL, q); return r.drv.r(REG_QUEUE_NUM_MAX); });
  assert.ok(maxes.slice(0, 4).every((m) => m > 0) && maxes[4] === 0, String(maxes));
  const plain = rig({ deflateOnOom: false, freePageReporting: false, statsIntervalS: 0 });
  const g = plain.drv.deviceFeatures();
  assert.equal(g & feature(VIRTIO_BALLOON_F_DEFLATE_ON_OOM), 0n);
  assert.equal(g & feature(VIRTIO_BALLOON_F_REPORTING), 0n);
  plain.drv.w(REG_QUEUE_SEL, 3);
  assert.equal(plain.drv.r(REG_QUEUE_NUM_MAX), 0);
});

test('configuration: num_pages is the host target (with a configuration change), actual is the driver\'s', () => {
  const r = rig();
  r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  r.drv.ack();
  const gen = r.drv.r(REG_CONFIG_GENERATION);
  r.dev.setTarget(300);
  assert.equal(r.dev.target(), 300);
  assert.equal(r.drv.r(REG_CONFIG + 0), 300);
  assert.equal(r.drv.ack() & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
  assert.notEqual(r.drv.r(REG_CONFIG_GENERATION), gen);
  r.drv.w(REG_CONFIG + 4, 123);
  assert.equal(r.dev.actual(), 123);
  assert.equal(r.drv.r(REG_CONFIG + 4), 123);
  r.t.write(REG_CONFIG + 5, 1, 1n);
  assert.equal(r.dev.actual(), 123 + 256, 'byte writes');
  r.drv.w(REG_CONFIG + 0, 7);
  assert.equal(r.dev.target(), 300, 'num_pages is read-only to the driver');
  assert.throws(() => r.dev.setTarget(-1), RangeError);
  assert.throws(() => r.dev.setTarget(2 ** 32), RangeError);
  assert.throws(() => r.dev.setTarget(1.5), RangeError);
});

test('inflate: the machine frames behind the pages go back to the pool; a touched page comes back zeroed', () => {
  const r = rig();
  const [inf] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  touch(r, PAGES, 16);
  const inUse = r.mem.framesInUse(), mapped = r.pmap.framesMapped();
  const give = Array.from({ length: 8 }, (_, i) => pfn(PAGES) + 2 * i);
  const buf = pfnBuffer(r, give);
  const afterBuf = r.mem.framesInUse();
  const h = inf!.add([buf]);
  inf!.kick();
  assert.deepEqual(inf!.reap(), [{ id: h, len: 0 }]);
  assert.equal(r.mem.framesInUse(), afterBuf - 8);
  assert.equal(r.pmap.framesMapped(), mapped + (afterBuf - inUse) - 8);
  assert.equal(r.dev.framesDiscarded(), 8);
  // Kept pages keep their bytes; given pages read back as zero and take a frame again.
  assert.deepEqual([...r.pmap.read(PAGES + PAGE_SIZE, 2)], [0xa5, 1]);
  const before = r.mem.framesInUse();
  assert.deepEqual([...r.pmap.read(PAGES + 2 * PAGE_SIZE, 2)], [0, 0]);
  assert.equal(r.mem.framesInUse(), before + 1);
});

test('inflate ignores PFNs outside guest RAM and pages never touched', () => {
  const r = rig();
  const [inf] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  r.pmap.write(ROM, Uint8Array.of(0x97));
  touch(r, PAGES, 1);
  const buf = pfnBuffer(r, [0, pfn(ROM), pfn(BASE) - 1, pfn(BASE + RAM), 0xffffffff, 0x10001, pfn(PAGES) + 50]);
  const inUse = r.mem.framesInUse();
  inf!.add([buf]);
  inf!.kick();
  assert.equal(inf!.reap().length, 1);
  assert.equal(r.mem.framesInUse(), inUse);
  assert.deepEqual([...r.pmap.read(ROM, 1)], [0x97]);
  assert.deepEqual([...r.pmap.read(PAGES, 1)], [0xa5]);
  // A buffer that is not a whole number of PFNs: the whole ones count.
  const odd = pfnBuffer(r, [pfn(PAGES)]);
  inf!.add([{ addr: odd.addr, len: 6 }]);
  inf!.kick();
  assert.equal(inf!.reap().length, 1);
  assert.equal(r.mem.framesInUse(), inUse - 1);
});

test('deflate returns its buffers and frees nothing', () => {
  const r = rig();
  const [, def] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  touch(r, PAGES, 4);
  const buf = pfnBuffer(r, [pfn(PAGES), pfn(PAGES) + 1]);
  const inUse = r.mem.framesInUse();
  const h = def!.add([buf]);
  def!.kick();
  assert.deepEqual(def!.reap(), [{ id: h, len: 0 }]);
  assert.equal(r.mem.framesInUse(), inUse);
  assert.deepEqual([...r.pmap.read(PAGES, 1)], [0xa5]);
});

test('statistics: the buffer is parsed and held; a request returns it; the guest\'s answer is parsed again', () => {
  const r = rig();
  const [, , sq] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  assert.equal(r.dev.stats(), null);
  assert.equal(r.dev.requestStats(), false, 'no buffer yet');
  const h = sq!.add([statsBuffer(r, [[0, 1n], [1, 2n], [2, 3n], [3, 4n], [4, 1000n], [5, 4n << 20n], [6, 2000n], [7, 77n], [8, 8n], [9, 9n], [10, 10n], [99, 5n]])]);
  sq!.kick();
  assert.deepEqual(sq!.reap(), [], 'held by the device');
  assert.deepEqual(r.dev.stats(), {
    swapIn: 1, swapOut: 2, majorFaults: 3, minorFaults: 4, freeMemory: 1000, totalMemory: 4 << 20, availableMemory: 2000,
    diskCaches: 77, hugetlbAllocations: 8, hugetlbFailures: 9, oomKills: 10,
  });
  r.drv.ack();
  assert.equal(r.dev.requestStats(), true);
  assert.deepEqual(sq!.reap(), [{ id: h, len: 0 }]);
  assert.equal(r.dev.requestStats(), false, 'the buffer is with the driver now');
  sq!.add([statsBuffer(r, [[4, 5n]])]);
  sq!.kick();
  assert.deepEqual(r.dev.stats(), { freeMemory: 5 });
  assert.equal(r.dev.requestStats(), true);
});

test('statistics are requested every statsIntervalS seconds; close() stops the timer', async () => {
  const r = rig({ ...OPTS, statsIntervalS: 0.02 });
  const [, , sq] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  const buf = statsBuffer(r, [[4, 1n]]);
  sq!.add([buf]);
  sq!.kick();
  let rounds = 0;
  for (let i = 0; i < 200 && rounds < 3; i++) {
    await new Promise((res) => setTimeout(res, 5));
    for (const _u of sq!.reap()) { rounds++; sq!.add([buf]); sq!.kick(); }
  }
  assert.equal(rounds, 3);
  await r.dev.close();
  await new Promise((res) => setTimeout(res, 60));
  assert.deepEqual(sq!.reap(), []);
});

test('free page reporting: the whole pages of each reported range are discarded (queue 3, or 2 without the statsq)', () => {
  for (const withStats of [true, false]) {
    const r = rig();
    const want = withStats ? LINUX : LINUX & ~feature(VIRTIO_BALLOON_F_STATS_VQ);
    const qs = r.drv.init(withStats ? [undefined, undefined, undefined, undefined] : [undefined, undefined, undefined], want);
    const rep = qs[withStats ? 3 : 2]!;
    touch(r, PAGES, 12);
    const inUse = r.mem.framesInUse();
    // 4 whole pages, then a range that covers pages 8 and 9 only in part plus page... none whole but 1.
    const h = rep.add([{ addr: PAGES, len: 4 * PAGE_SIZE, write: true }, { addr: PAGES + 8 * PAGE_SIZE + 1, len: 2 * PAGE_SIZE + 10, write: true }]);
    rep.kick();
    assert.deepEqual(rep.reap(), [{ id: h, len: 0 }], `with stats: ${withStats}`);
    assert.equal(r.mem.framesInUse(), inUse - 5, `with stats: ${withStats}`);
    assert.deepEqual([...r.pmap.read(PAGES + 8 * PAGE_SIZE, 2)], [0xa5, 8], 'a page only partly reported is kept');
    assert.deepEqual([...r.pmap.read(PAGES + 9 * PAGE_SIZE, 2)], [0, 0]);
    assert.deepEqual([...r.pmap.read(PAGES + 10 * PAGE_SIZE, 2)], [0xa5, 10]);
  }
});

test('reset: the held statistics buffer and actual are forgotten, the target and the last statistics stay', () => {
  const r = rig();
  const [, , sq] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  r.dev.setTarget(10);
  r.drv.w(REG_CONFIG + 4, 10);
  sq!.add([statsBuffer(r, [[4, 1n]])]);
  sq!.kick();
  r.drv.w(0x070, 0);
  assert.equal(r.dev.requestStats(), false);
  assert.equal(r.dev.actual(), 0);
  assert.equal(r.dev.target(), 10);
  assert.deepEqual(r.dev.stats(), { freeMemory: 1 });
});

test('save/restore keeps target, actual, the held buffer and statistics; malformed states are refused', () => {
  const r = rig();
  const [, , sq] = r.drv.init([undefined, undefined, undefined, undefined], LINUX);
  r.dev.setTarget(42);
  r.drv.w(REG_CONFIG + 4, 40);
  const h = sq!.add([statsBuffer(r, [[5, 100n]])]);
  sq!.kick();
  const saved = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;
  const dev2 = new VirtioBalloon(r.pmap, OPTS);
  const t2 = new VirtioMmioTransport({ base: 0x1000_2000, device: dev2, mem: pmapGuestMemory(r.pmap), irq: () => {} });
  t2.restore(saved);
  assert.equal(dev2.target(), 42);
  assert.equal(dev2.actual(), 40);
  assert.deepEqual(dev2.stats(), { totalMemory: 100 });
  assert.equal(dev2.requestStats(), true);
  assert.deepEqual(sq!.reap(), [{ id: h, len: 0 }]);
  const good = dev2.save();
  for (const bad of [{ ...good, version: 2 }, { ...good, target: -1 }, { ...good, actual: 2 ** 32 }, { ...good, statsHead: 99 },
    { ...good, stats: { bogus: 1 } }, { ...good, stats: { freeMemory: 'x' } }, null]) {
    assert.throws(() => dev2.restore(bad as unknown as VirtioBalloonState), RangeError, JSON.stringify(bad));
  }
});

test('fuzz: malformed chains and random contents on every queue never throw and never leave RAM (seed 0xba11)', () => {
  const R = rng(0xba11);
  const int = (n: number): number => Math.floor(R() * n);
  const LOW = 0x10000;
  let used = 0, discarded = 0;
  for (let iter = 0; iter < 400; iter++) {
    const fake = new FakeRam(BASE, RAM);
    const r = rig(OPTS, fake);
    // Random bytes as buffer contents: PFNs, statistics.
    const junk = new Uint8Array(256 * 1024);
    for (let i = 0; i < junk.length; i += 4) new DataView(junk.buffer).setUint32(i, R() < 0.5 ? pfn(BASE) + int(RAM / PAGE_SIZE) : int(2 ** 32), true);
    fake.set(BASE + LOW, junk);
    const qs = r.drv.init([undefined, undefined, undefined, undefined], R() < 0.8 ? LINUX : feature(F_VERSION_1) | feature(VIRTIO_BALLOON_F_REPORTING));
    const table = r.drv.arena.alloc(64, 16);
    const addr = (len: number): bigint => (R() < 0.96 ? BigInt(BASE + LOW + int((R() < 0.7 ? junk.length : RAM - LOW) - Math.min(len, RAM - LOW)))
      : [0n, BigInt(ROM), BigInt(BASE - 8), BigInt(BASE + RAM - 4), (1n << 64n) - 1n, 1n << 53n][int(6)]!);
    const desc = (t: number, i: number, limit: number): void => {
      const len = R() < 0.8 ? int(5000) : [0xffffffff, RAM, 0, 2 * PAGE_SIZE][int(4)]!;
      let flags = (R() < 0.25 ? VIRTQ_DESC_F_NEXT : 0) | (R() < 0.25 ? VIRTQ_DESC_F_WRITE : 0);
      if (t !== table && R() < 0.1) { flags = VIRTQ_DESC_F_INDIRECT; rawDesc(fake, t, i, BigInt(table), 64, flags, 0); return; }
      rawDesc(fake, t, i, addr(len), len, flags, R() < 0.9 ? int(limit) : int(0x10000));
    };
    for (let i = 0; i < 4; i++) desc(table, i, 4);
    for (const q of qs.filter((x): x is DriverQueue => x !== undefined)) {
      for (let i = 0; i < q.size; i++) desc(q.desc, i, q.size);
      const n = 1 + int(Math.min(q.size, 6));
      for (let k = 0; k < n; k++) fake.setU16(q.avail + 4 + 2 * k, int(q.size));
      fake.setU16(q.avail + 2, n);
    }
    // Machine frames behind some of the pages the PFNs name.
    for (let i = 0; i < 256; i++) r.pmap.write(BASE + int(RAM / PAGE_SIZE) * PAGE_SIZE, Uint8Array.of(1));
    const frames = r.mem.framesInUse();
    for (const q of [...qs].sort(() => R() - 0.5)) assert.doesNotThrow(() => q!.kick(), `iteration ${iter}`);
    assert.equal(r.mem.framesInUse(), frames - r.dev.framesDiscarded());
    discarded += r.dev.framesDiscarded();
    assert.doesNotThrow(() => r.dev.requestStats());
    assert.deepEqual(fake.violations, [], `iteration ${iter}`);
    for (const q of qs) used += q!.reap().length;
  }
  assert.ok(used > 200 && discarded > 50, `used ${used}, discarded ${discarded}`);
});
