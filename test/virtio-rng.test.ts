// virtio-rng (virtio 1.2, 5.4) driven the way Linux's virtio_rng does it:
// one device-writable buffer at a time on the requestq, filled asynchronously.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  F_INDIRECT_DESC, F_VERSION_1, INT_USED_BUFFER, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID,
  REG_QUEUE_NUM_MAX, REG_QUEUE_SEL, STATUS_DEVICE_NEEDS_RESET, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, feature,
} from '../src/devices/virtio/constants.js';
import { RNG_MAX_REQUEST, VirtioRng, type VirtioRngState } from '../src/devices/virtio/rng.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { ALL_RING_FEATURES, Driver, FakeRam, rng, type DriverQueue, type UsedElem, rawDesc } from './virtio-driver.js';

const BASE = 0x8000_0000;
const MiB = 1 << 20;

interface Rig { ram: FakeRam; dev: VirtioRng; t: VirtioMmioTransport<VirtioRngState>; drv: Driver }

function rig(ramSize = 4 * MiB): Rig {
  const ram = new FakeRam(BASE, ramSize);
  const dev = new VirtioRng();
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: dev, mem: ram, irq: () => {} });
  return { ram, dev, t, drv: new Driver(t as VirtioMmioTransport<unknown>, ram) };
}

/** Lets the host's asynchronous randomness arrive. */
async function settle(r: Rig): Promise<void> {
  for (let i = 0; i < 2000 && r.dev.inFlight > 0; i++) await new Promise((res) => setTimeout(res, 1));
  assert.equal(r.dev.inFlight, 0, 'requests still in flight');
}

async function reapAll(r: Rig, q: DriverQueue): Promise<UsedElem[]> {
  await settle(r);
  return q.reap();
}

test('identity: device ID 4, one requestq, no device features', () => {
  const r = rig();
  assert.equal(r.drv.r(REG_DEVICE_ID), 4);
  r.drv.w(REG_DEVICE_FEATURES_SEL, 0);
  assert.equal(r.drv.r(REG_DEVICE_FEATURES) & 0xffffff, 0);
  r.drv.w(REG_QUEUE_SEL, 0);
  assert.ok(r.drv.r(REG_QUEUE_NUM_MAX) > 0);
  r.drv.w(REG_QUEUE_SEL, 1);
  assert.equal(r.drv.r(REG_QUEUE_NUM_MAX), 0);
});

test('fills device-writable buffers with random bytes and reports their length', async () => {
  const r = rig();
  const [q] = r.drv.init([undefined]);
  const sizes = [1, 32, 64, 4096, 10000];
  const bufs = new Map<number, [number, number]>();
  for (const n of sizes) {
    const a = r.drv.arena.alloc(n, 8);
    bufs.set(q!.add([{ addr: a, len: n, write: true }]), [a, n]);
  }
  q!.kick();
  const used = await reapAll(r, q!);
  assert.equal(used.length, sizes.length);
  assert.ok(r.drv.ack() & INT_USED_BUFFER);
  for (const u of used) {
    const [a, n] = bufs.get(u.id)!;
    assert.equal(u.len, n);
    if (n >= 32) {
      const b = r.ram.get(a, n);
      assert.ok(b.some((x) => x !== 0), 'not all zero');
      // Crude but sure: random bytes take many distinct values.
      assert.ok(new Set(b).size > Math.min(n, 256) / 4, `distinct values in ${n} bytes`);
    }
  }
  // Two fills differ.
  const x = r.drv.arena.alloc(64, 8);
  const h = q!.add([{ addr: x, len: 64, write: true }]);
  q!.kick();
  assert.deepEqual(await reapAll(r, q!), [{ id: h, len: 64 }]);
  assert.notDeepEqual([...r.ram.get(x, 64)], [...r.ram.get(bufs.get(used.find((u) => u.len === 64)!.id)![0], 64)]);
  assert.deepEqual(r.ram.violations, []);
});

test('a request is filled with at most 64 KiB; scattered and indirect buffers are filled in order', async () => {
  const r = rig();
  const [q] = r.drv.init([undefined]);
  const big = r.drv.arena.alloc(MiB, 8);
  const h1 = q!.add([{ addr: big, len: MiB, write: true }]);
  q!.kick();
  assert.deepEqual(await reapAll(r, q!), [{ id: h1, len: RNG_MAX_REQUEST }]);
  assert.ok(r.ram.get(big + RNG_MAX_REQUEST - 64, 64).some((b) => b !== 0));
  assert.ok(r.ram.get(big + RNG_MAX_REQUEST, 4096).every((b) => b === 0), 'nothing beyond 64 KiB');
  const a = r.drv.arena.alloc(100, 8), b = r.drv.arena.alloc(100, 8);
  const h2 = q!.add([{ addr: a, len: 100, write: true }, { addr: b, len: 100, write: true }], { indirect: true });
  q!.kick();
  assert.deepEqual(await reapAll(r, q!), [{ id: h2, len: 200 }]);
  assert.ok(r.ram.get(b + 50, 50).some((x) => x !== 0));
});

test('readable parts are left alone: a chain with only readable buffers is answered with length 0', async () => {
  const r = rig();
  const [q] = r.drv.init([undefined]);
  const a = r.drv.arena.alloc(64, 8), w = r.drv.arena.alloc(16, 8);
  r.ram.set(a, new Uint8Array(64).fill(0x5a));
  const h1 = q!.add([{ addr: a, len: 64 }]);
  const h2 = q!.add([{ addr: a, len: 64 }, { addr: w, len: 16, write: true }]);
  q!.kick();
  const used = await reapAll(r, q!);
  assert.deepEqual(used.sort((x, y) => x.id - y.id), [{ id: h1, len: 0 }, { id: h2, len: 16 }]);
  assert.ok(r.ram.get(a, 64).every((x) => x === 0x5a));
});

test('a reset drops randomness still in flight; the new driver is served', async () => {
  const r = rig();
  let [q] = r.drv.init([undefined]);
  const a = r.drv.arena.alloc(4096, 8);
  q!.add([{ addr: a, len: 4096, write: true }]);
  q!.kick();
  assert.equal(r.dev.inFlight, 1);
  [q] = r.drv.init([undefined]); // reset and set up again (rings elsewhere)
  assert.equal(r.dev.inFlight, 0);
  const before = r.ram.snapshot();
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(r.ram.changedSince(before), [], 'the dropped answer wrote nothing');
  const h = q!.add([{ addr: a, len: 8, write: true }]);
  q!.kick();
  assert.deepEqual(await reapAll(r, q!), [{ id: h, len: 8 }]);
});

test('save/restore: requests in flight are answered after a restore', async () => {
  const r = rig();
  const [q] = r.drv.init([undefined]);
  const a = r.drv.arena.alloc(256, 8);
  const h = q!.add([{ addr: a, len: 256, write: true }]);
  q!.kick();
  const saved = r.t.save();
  assert.equal(saved.device.pending.length, 1);
  await r.dev.close(); // the old device's answer never comes
  const dev2 = new VirtioRng();
  const t2 = new VirtioMmioTransport({ base: 0x1000_1000, device: dev2, mem: r.ram, irq: () => {} });
  t2.restore(JSON.parse(JSON.stringify(saved)) as typeof saved);
  for (let i = 0; i < 2000 && dev2.inFlight > 0; i++) await new Promise((res) => setTimeout(res, 1));
  assert.deepEqual(q!.reap(), [{ id: h, len: 256 }]);
  assert.ok(r.ram.get(a, 256).some((x) => x !== 0));
  for (const bad of [{ version: 2, pending: [] }, { version: 1, pending: [{ head: 999, writable: [{ addr: 0, len: 1 }] }] },
    { version: 1, pending: [{ head: 0, writable: [] }] }, { version: 1, pending: [{ head: 0, writable: [{ addr: -1, len: 1 }] }] }, { version: 1 }]) {
    assert.throws(() => new VirtioRng().restore(bad as unknown as VirtioRngState), RangeError, JSON.stringify(bad));
  }
});

test('close() drops answers in flight and takes no more requests', async () => {
  const r = rig();
  const [q] = r.drv.init([undefined]);
  const a = r.drv.arena.alloc(64, 8);
  q!.add([{ addr: a, len: 64, write: true }]);
  q!.kick();
  await r.dev.close();
  q!.add([{ addr: a, len: 64, write: true }]);
  q!.kick();
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(q!.reap(), []);
});

test('fuzz: malformed chains never throw and never leave RAM (seed 0x4e6)', async () => {
  const R = rng(0x4e6);
  const int = (n: number): number => Math.floor(R() * n);
  const RAM = MiB, LOW = 0x10000;
  let answered = 0, resets = 0;
  for (let iter = 0; iter < 300; iter++) {
    const r = rig(RAM);
    const features = feature(F_VERSION_1) | (R() < 0.5 ? feature(F_INDIRECT_DESC) : 0n);
    const size = 1 << int(7);
    const [q] = r.drv.init([size], features);
    const table = r.drv.arena.alloc(16 * 4, 16);
    const addr = (len: number): bigint => (R() < 0.8 ? BigInt(BASE + LOW + int(RAM - LOW - Math.min(len, RAM - LOW)))
      : [0n, BigInt(BASE - 8), BigInt(BASE + RAM - 4), (1n << 64n) - 1n, 1n << 53n][int(5)]!);
    const desc = (t: number, i: number, limit: number): void => {
      const len = R() < 0.8 ? int(5000) : [0xffffffff, RAM, 0][int(3)]!;
      let flags = (R() < 0.4 ? VIRTQ_DESC_F_NEXT : 0) | (R() < 0.7 ? VIRTQ_DESC_F_WRITE : 0);
      if (t !== table && R() < 0.1) { flags = VIRTQ_DESC_F_INDIRECT; rawDesc(r.ram, t, i, BigInt(table), 64, flags, 0); return; }
      rawDesc(r.ram, t, i, addr(len), len, flags, R() < 0.9 ? int(limit) : int(0x10000));
    };
    for (let i = 0; i < size; i++) desc(q!.desc, i, size);
    for (let i = 0; i < 4; i++) desc(table, i, 4);
    const n = 1 + int(Math.min(size, 6));
    for (let k = 0; k < n; k++) r.ram.setU16(q!.avail + 4 + 2 * k, int(size));
    r.ram.setU16(q!.avail + 2, n);
    assert.doesNotThrow(() => q!.kick());
    if (R() < 0.2) r.drv.w(0x070, 0); // reset while in flight
    await settle(r);
    assert.deepEqual(r.ram.violations, [], `iteration ${iter}`);
    answered += q!.reap().length;
    if (r.drv.status() & STATUS_DEVICE_NEEDS_RESET) resets++;
  }
  assert.ok(answered > 100 && resets > 20, `answered ${answered}, resets ${resets}`);
});

test('the driver\'s sequence: VERSION_1 and ring features are accepted', () => {
  const r = rig();
  assert.equal(r.drv.negotiate(ALL_RING_FEATURES), true);
});
