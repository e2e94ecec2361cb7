// The virtio-mmio transport (virtio 1.2, 4.2) and split virtqueues (2.7),
// driven the way Linux's virtio_mmio driver drives them, against a fake guest
// RAM that flags every device access outside it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED, F_VERSION_1, INT_CONFIG_CHANGE, INT_USED_BUFFER, MMIO_MAGIC,
  REG_CONFIG, REG_CONFIG_GENERATION, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID, REG_DRIVER_FEATURES,
  REG_DRIVER_FEATURES_SEL, REG_INTERRUPT_ACK, REG_INTERRUPT_STATUS, REG_MAGIC_VALUE, REG_QUEUE_DESC_HIGH, REG_QUEUE_DESC_LOW,
  REG_QUEUE_DEVICE_LOW, REG_QUEUE_DRIVER_LOW, REG_QUEUE_NOTIFY, REG_QUEUE_NUM, REG_QUEUE_NUM_MAX, REG_QUEUE_READY,
  REG_QUEUE_RESET, REG_QUEUE_SEL, REG_SHM_BASE_LOW, REG_SHM_LEN_HIGH, REG_SHM_LEN_LOW, REG_SHM_SEL, REG_STATUS,
  REG_VENDOR_ID, REG_VERSION, STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED,
  STATUS_FEATURES_OK, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
  DISCO_VENDOR_ID, feature,
} from '../src/devices/virtio/constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from '../src/devices/virtio/device.js';
import { pmapGuestMemory } from '../src/devices/virtio/pmap-memory.js';
import type { DescriptorChain } from '../src/devices/virtio/queue.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { MachineMemory } from '../src/memory/machine-memory.js';
import { Pmap } from '../src/memory/pmap.js';
import { ALL_RING_FEATURES, Driver, FakeRam, rng, type DriverQueue, type DriverRam, rawDesc } from './virtio-driver.js';

const BASE = 0x8000_0000;
const MiB = 1024 * 1024;

interface SinkState { readonly version: 1; cfg: number }

/**
 * A test device: two queues (max 256 and 8); on a notification it takes every
 * chain, reads its readable part and fills its writable part with 0xee (at
 * most `cap` bytes), then returns it. Its configuration space is one u32 and
 * four constant bytes.
 */
class SinkDevice implements VirtioDevice<SinkState> {
  readonly name = 'sink';
  readonly deviceId = 4;
  readonly features: bigint;
  readonly queueSizes = [256, 8];
  readonly configSize = 8;
  ctx!: VirtioDeviceContext;
  cfg = 0x12345678;
  got: DescriptorChain[] = [];
  reads: Uint8Array[] = [];
  activations = 0;
  resets = 0;
  cap = 64 * 1024;
  veto = false;

  constructor(features = 0n) { this.features = features; }

  attach(ctx: VirtioDeviceContext): void { this.ctx = ctx; }
  acceptFeatures(): boolean { return !this.veto; }

  readConfig(off: number, size: ConfigAccessSize): number {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, this.cfg, true);
    b.set([0xa1, 0xa2, 0xa3, 0xa4], 4);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + b[off + i]!;
    return v;
  }

  writeConfig(off: number, size: ConfigAccessSize, value: number): void {
    if (off === 0 && size === 4) this.cfg = value >>> 0;
  }

  activate(): void { this.activations++; this.notify(0); }
  reset(): void { this.resets++; }

  notify(i: number): void {
    const q = this.ctx.queue(i);
    if (!q) return;
    let any = false;
    for (let c = q.pop(); c; c = q.pop()) {
      this.got.push(c);
      const data = q.read(c, 0, 4096);
      if (!data) break;
      this.reads.push(data);
      const n = q.write(c, new Uint8Array(Math.min(c.writableBytes, this.cap)).fill(0xee));
      if (n < 0) break;
      q.push(c.head, n);
      any = true;
    }
    if (any) this.ctx.usedBuffers(i);
  }

  /** The host changes the configuration. */
  setConfig(v: number): void { this.cfg = v; this.ctx.configChanged(); }

  save(): SinkState { return { version: 1, cfg: this.cfg }; }
  restore(s: SinkState): void { this.cfg = s.cfg; }
}

interface Rig {
  ram: FakeRam;
  dev: SinkDevice;
  t: VirtioMmioTransport<SinkState>;
  drv: Driver;
  levels: boolean[];
  errors: string[];
}

function rig(ramSize = 1 * MiB, deviceFeatures = 0n): Rig {
  const ram = new FakeRam(BASE, ramSize);
  const dev = new SinkDevice(deviceFeatures);
  const levels: boolean[] = [];
  const errors: string[] = [];
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: dev, mem: ram, irq: (l) => levels.push(l), onError: (e) => errors.push(e) });
  const drv = new Driver(t as VirtioMmioTransport<unknown>, ram);
  return { ram, dev, t, drv, levels, errors };
}

const needsReset = (r: Rig): boolean => (r.drv.status() & STATUS_DEVICE_NEEDS_RESET) !== 0;

// ------------------------------------------------------------------ registers

test('probe registers: magic "virt", version 2, device ID, vendor ID; write-only and reserved registers read 0', () => {
  const { drv } = rig();
  assert.equal(drv.r(REG_MAGIC_VALUE), MMIO_MAGIC);
  assert.equal(drv.r(REG_VERSION), 2);
  assert.equal(drv.r(REG_DEVICE_ID), 4);
  assert.equal(drv.r(REG_VENDOR_ID), DISCO_VENDOR_ID);
  for (const off of [REG_DEVICE_FEATURES_SEL, REG_DRIVER_FEATURES, REG_QUEUE_SEL, REG_QUEUE_NUM, REG_QUEUE_NOTIFY, REG_INTERRUPT_ACK, REG_QUEUE_DESC_LOW, 0x018, 0x0f8, REG_QUEUE_RESET]) {
    assert.equal(drv.r(off), 0, `register 0x${off.toString(16)}`);
  }
  // No shared memory regions: length and base read as -1.
  drv.w(REG_SHM_SEL, 0);
  assert.equal(drv.r(REG_SHM_LEN_LOW), 0xffffffff);
  assert.equal(drv.r(REG_SHM_LEN_HIGH), 0xffffffff);
  assert.equal(drv.r(REG_SHM_BASE_LOW), 0xffffffff);
  // Writes to read-only registers change nothing.
  drv.w(REG_MAGIC_VALUE, 0);
  drv.w(REG_DEVICE_ID, 99);
  assert.equal(drv.r(REG_MAGIC_VALUE), MMIO_MAGIC);
  assert.equal(drv.r(REG_DEVICE_ID), 4);
});

test('registers take only aligned 32-bit accesses: other sizes read 0 and writes are dropped, without a fault', () => {
  const { t, drv } = rig();
  for (const size of [1, 2, 8] as const) {
    assert.equal(t.read(REG_MAGIC_VALUE, size), 0n, `size ${size}`);
    assert.equal(t.write(REG_STATUS, size, BigInt(STATUS_ACKNOWLEDGE)), true);
    assert.equal(drv.status(), 0, `status written with size ${size}`);
  }
  assert.equal(t.read(REG_MAGIC_VALUE + 1, 4), 0n);
  t.write(REG_STATUS + 2, 4, 1n);
  assert.equal(drv.status(), 0);
  t.write(REG_STATUS, 4, BigInt(STATUS_ACKNOWLEDGE));
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE);
});

// ------------------------------------------------------------------ features

test('device features: the device\'s bits plus VERSION_1, INDIRECT_DESC and EVENT_IDX, 32 at a time', () => {
  const { drv } = rig(1 * MiB, feature(0) | feature(5));
  assert.equal(drv.deviceFeatures(), feature(0) | feature(5) | feature(F_VERSION_1) | feature(F_INDIRECT_DESC) | feature(F_EVENT_IDX));
  drv.w(REG_DEVICE_FEATURES_SEL, 0);
  assert.equal(drv.r(REG_DEVICE_FEATURES), (1 << 0 | 1 << 5 | 1 << 28 | 1 << 29) >>> 0);
  drv.w(REG_DEVICE_FEATURES_SEL, 1);
  assert.equal(drv.r(REG_DEVICE_FEATURES), 1);
  drv.w(REG_DEVICE_FEATURES_SEL, 2);
  assert.equal(drv.r(REG_DEVICE_FEATURES), 0);
});

test('FEATURES_OK is refused without VERSION_1, with a feature not offered, with bits beyond 63, or on the device\'s veto', () => {
  const cases: [string, (r: Rig) => void][] = [
    ['no VERSION_1', (r) => r.drv.writeFeatures(feature(F_EVENT_IDX))],
    ['nothing', (r) => r.drv.writeFeatures(0n)],
    ['bit 0 not offered', (r) => r.drv.writeFeatures(feature(F_VERSION_1) | feature(0))],
    ['RING_PACKED not offered', (r) => r.drv.writeFeatures(feature(F_VERSION_1) | feature(F_RING_PACKED))],
    ['bit 63', (r) => r.drv.writeFeatures(feature(F_VERSION_1) | feature(63))],
    ['bit 64 (selector 2)', (r) => { r.drv.writeFeatures(feature(F_VERSION_1)); r.drv.w(REG_DRIVER_FEATURES_SEL, 2); r.drv.w(REG_DRIVER_FEATURES, 1); }],
    ['device veto', (r) => { r.dev.veto = true; r.drv.writeFeatures(feature(F_VERSION_1)); }],
  ];
  for (const [what, write] of cases) {
    const r = rig();
    r.drv.addStatus(STATUS_ACKNOWLEDGE);
    r.drv.addStatus(STATUS_DRIVER);
    write(r);
    r.drv.addStatus(STATUS_FEATURES_OK);
    assert.equal(r.drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, what);
    // DRIVER_OK cannot follow, also not written together with FEATURES_OK.
    r.drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    assert.equal(r.drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, what);
    assert.equal(r.dev.activations, 0, what);
  }
  // A valid subset is accepted: VERSION_1 alone, or every offered bit.
  for (const f of [feature(F_VERSION_1), ALL_RING_FEATURES]) {
    const r = rig();
    assert.equal(r.drv.negotiate(f), true);
    assert.equal(r.t.driverFeatures(), f);
  }
});

test('driver features are frozen once FEATURES_OK is set', () => {
  const r = rig();
  assert.equal(r.drv.negotiate(feature(F_VERSION_1)), true);
  r.drv.writeFeatures(ALL_RING_FEATURES | feature(0));
  assert.equal(r.t.driverFeatures(), feature(F_VERSION_1));
});

// ------------------------------------------------------------------ status

test('status: bits only in the initialization order, never cleared by the driver; DEVICE_NEEDS_RESET and reserved bits are not the driver\'s', () => {
  // DRIVER straight after a reset implies ACKNOWLEDGE (U-Boot does that).
  const u = rig();
  u.drv.w(REG_STATUS, STATUS_DRIVER);
  assert.equal(u.drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, 'DRIVER after reset');
  const r = rig();
  const { drv } = r;
  drv.w(REG_STATUS, STATUS_DRIVER | STATUS_FEATURES_OK);
  assert.equal(drv.status(), 0, 'DRIVER and FEATURES_OK at once, without ACKNOWLEDGE');
  drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_FEATURES_OK);
  assert.equal(drv.status(), 0, 'FEATURES_OK before DRIVER');
  drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DEVICE_NEEDS_RESET | 0x20 | 0x10 | 0x100);
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE, 'NEEDS_RESET, SUSPEND, reserved bits');
  drv.addStatus(STATUS_DRIVER);
  drv.w(REG_STATUS, STATUS_DRIVER);
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, 'clearing ACKNOWLEDGE is ignored');
  drv.writeFeatures(feature(F_VERSION_1));
  drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, 'DRIVER_OK before FEATURES_OK');
  drv.addStatus(STATUS_FEATURES_OK);
  drv.setupQueue(0, 4);
  drv.addStatus(STATUS_DRIVER_OK);
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.equal(r.dev.activations, 1);
  drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  assert.equal(drv.status() & STATUS_DRIVER_OK, STATUS_DRIVER_OK, 'clearing DRIVER_OK is ignored');
  assert.equal(r.dev.activations, 1);
  // FAILED written alone (clearing the rest) is still taken; the other bits stay.
  drv.w(REG_STATUS, STATUS_FAILED);
  assert.equal(drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED);
  assert.equal(r.t.live(), false);
});

test('FAILED stops the device: no more buffers are taken until a reset', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined]);
  const buf = r.drv.arena.alloc(64);
  q0!.add([{ addr: buf, len: 64, write: true }]);
  q0!.kick();
  assert.equal(q0!.reap().length, 1);
  r.drv.addStatus(STATUS_FAILED);
  assert.ok(r.drv.status() & STATUS_FAILED);
  q0!.add([{ addr: buf, len: 64, write: true }]);
  q0!.kick();
  assert.equal(q0!.reap().length, 0);
  assert.equal(r.dev.got.length, 1);
  // A failed device can be reset and initialized again.
  const [p0] = r.drv.init([8, undefined]);
  p0!.add([{ addr: buf, len: 64, write: true }]);
  p0!.kick();
  assert.deepEqual(p0!.reap(), [{ id: 0, len: 64 }]);
});

test('reset (status 0) clears status, features, queues and interrupts, lowers the line and resets the device', () => {
  const r = rig();
  const [q0] = r.drv.init([8, 4]);
  q0!.add([{ addr: r.drv.arena.alloc(16), len: 16, write: true }]);
  q0!.kick();
  assert.equal(r.t.interruptStatus, INT_USED_BUFFER);
  assert.equal(r.t.irqLevel, true);
  const resets = r.dev.resets;
  r.drv.w(REG_STATUS, 0);
  assert.equal(r.drv.status(), 0);
  assert.equal(r.t.interruptStatus, 0);
  assert.equal(r.t.irqLevel, false);
  assert.deepEqual(r.levels, [true, false]);
  assert.equal(r.t.driverFeatures(), 0n);
  assert.equal(r.dev.resets, resets + 1);
  for (const i of [0, 1]) {
    r.drv.w(REG_QUEUE_SEL, i);
    assert.equal(r.drv.r(REG_QUEUE_READY), 0, `queue ${i} ready after reset`);
  }
  // Notifications after a reset are ignored.
  q0!.add([{ addr: r.drv.arena.alloc(16), len: 16, write: true }]);
  q0!.kick();
  assert.equal(r.dev.got.length, 1);
});

// ------------------------------------------------------------------ queues

test('QueueNumMax per queue, 0 for queues the device does not have', () => {
  const { drv } = rig();
  for (const [sel, max] of [[0, 256], [1, 8], [2, 0], [0xffff, 0], [0xffffffff, 0]] as const) {
    drv.w(REG_QUEUE_SEL, sel);
    assert.equal(drv.r(REG_QUEUE_NUM_MAX), max, `queue ${sel}`);
    drv.w(REG_QUEUE_READY, 1);
    if (max === 0) assert.equal(drv.r(REG_QUEUE_READY), 0);
  }
});

test('a queue size that is 0, not a power of 2 or above QueueNumMax makes QueueReady fail with DEVICE_NEEDS_RESET', () => {
  for (const size of [0, 3, 6, 100, 512, 0x10000, 0xffffffff]) {
    const r = rig();
    assert.equal(r.drv.negotiate(), true);
    r.drv.w(REG_QUEUE_SEL, 0);
    r.drv.w(REG_QUEUE_NUM, size);
    const desc = r.drv.arena.alloc(16 * 4096);
    r.drv.w(REG_QUEUE_DESC_LOW, desc);
    r.drv.w(REG_QUEUE_DRIVER_LOW, r.drv.arena.alloc(8192));
    r.drv.w(REG_QUEUE_DEVICE_LOW, r.drv.arena.alloc(40000));
    r.drv.w(REG_QUEUE_READY, 1);
    assert.equal(r.drv.r(REG_QUEUE_READY), 0, `size ${size}`);
    assert.ok(needsReset(r), `size ${size}`);
    // Reported once the driver sets DRIVER_OK.
    assert.equal(r.t.interruptStatus, 0);
    r.drv.addStatus(STATUS_DRIVER_OK);
    assert.equal(r.t.interruptStatus, INT_CONFIG_CHANGE, `size ${size}`);
    assert.equal(r.dev.activations, 0);
  }
  for (const size of [1, 2, 128, 256]) {
    const r = rig();
    r.drv.init([size, undefined]);
    assert.ok(!needsReset(r), `size ${size}`);
    assert.equal(r.drv.r(REG_QUEUE_READY), 1);
  }
});

test('queue areas that are misaligned or not entirely in RAM are refused', () => {
  const END = BASE + 1 * MiB;
  const cases: [string, number, number, number][] = [
    ['descriptor table misaligned', BASE + 8, BASE + 0x1000, BASE + 0x2000],
    ['available ring misaligned', BASE, BASE + 0x1001, BASE + 0x2000],
    ['used ring misaligned', BASE, BASE + 0x1000, BASE + 0x2002],
    ['descriptor table below RAM', BASE - 0x1000, BASE + 0x1000, BASE + 0x2000],
    ['descriptor table crossing the end', END - 16 * 4, BASE + 0x1000, BASE + 0x2000],
    ['available ring crossing the end', BASE, END - 6, BASE + 0x2000],
    ['used ring crossing the end', BASE, BASE + 0x1000, END - 8],
    ['used ring at 0', BASE, BASE + 0x1000, 0],
  ];
  for (const [what, desc, avail, used] of cases) {
    const r = rig();
    r.drv.negotiate();
    r.drv.w(REG_QUEUE_SEL, 0);
    r.drv.w(REG_QUEUE_NUM, 8);
    r.drv.w(REG_QUEUE_DESC_LOW, desc);
    r.drv.w(REG_QUEUE_DRIVER_LOW, avail);
    r.drv.w(REG_QUEUE_DEVICE_LOW, used);
    r.drv.w(REG_QUEUE_READY, 1);
    assert.equal(r.drv.r(REG_QUEUE_READY), 0, what);
    assert.ok(needsReset(r), what);
    assert.deepEqual(r.ram.violations, [], what);
  }
  // A descriptor table above 2^53 (high word) is not RAM either.
  const r = rig();
  r.drv.negotiate();
  r.drv.w(REG_QUEUE_SEL, 0);
  r.drv.w(REG_QUEUE_NUM, 8);
  r.drv.w(REG_QUEUE_DESC_LOW, BASE);
  r.drv.w(REG_QUEUE_DESC_HIGH, 0xffffffff);
  r.drv.w(REG_QUEUE_DRIVER_LOW, BASE + 0x1000);
  r.drv.w(REG_QUEUE_DEVICE_LOW, BASE + 0x2000);
  r.drv.w(REG_QUEUE_READY, 1);
  assert.equal(r.drv.r(REG_QUEUE_READY), 0);
  assert.deepEqual(r.ram.violations, []);
});

test('queue setup is ignored while the queue is ready and after DRIVER_OK', () => {
  const r = rig();
  r.drv.negotiate();
  const q0 = r.drv.setupQueue(0, 8);
  // Ready: size and addresses are frozen.
  r.drv.w(REG_QUEUE_SEL, 0);
  r.drv.w(REG_QUEUE_NUM, 4);
  r.drv.w(REG_QUEUE_DESC_LOW, BASE + 0x8000);
  r.drv.addStatus(STATUS_DRIVER_OK);
  // After DRIVER_OK queue 1 cannot be brought up.
  r.drv.w(REG_QUEUE_SEL, 1);
  r.drv.w(REG_QUEUE_NUM, 4);
  r.drv.w(REG_QUEUE_DESC_LOW, BASE + 0x9000);
  r.drv.w(REG_QUEUE_DRIVER_LOW, BASE + 0xa000);
  r.drv.w(REG_QUEUE_DEVICE_LOW, BASE + 0xb000);
  r.drv.w(REG_QUEUE_READY, 1);
  assert.equal(r.drv.r(REG_QUEUE_READY), 0);
  assert.ok(!needsReset(r));
  const s = r.t.save();
  assert.equal(s.queues[0]!.size, 8);
  assert.equal(s.queues[0]!.descLo, q0.desc);
  // Queue 0 still works with its original layout.
  q0.add([{ addr: r.drv.arena.alloc(32), len: 32, write: true }]);
  q0.kick();
  assert.deepEqual(q0.reap(), [{ id: 0, len: 32 }]);
});

test('QueueReady = 0 stops the device using that queue', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined]);
  r.drv.w(REG_QUEUE_SEL, 0);
  r.drv.w(REG_QUEUE_READY, 0);
  assert.equal(r.drv.r(REG_QUEUE_READY), 0);
  q0!.add([{ addr: r.drv.arena.alloc(32), len: 32, write: true }]);
  q0!.kick();
  assert.equal(r.dev.got.length, 0);
  assert.equal(q0!.usedIdx(), 0);
});

test('buffers made available before DRIVER_OK wait until DRIVER_OK; notifications for other queues are ignored', () => {
  const r = rig();
  r.drv.negotiate();
  const q0 = r.drv.setupQueue(0, 8);
  const buf = r.drv.arena.alloc(64);
  q0.add([{ addr: buf, len: 64, write: true }]);
  q0.kick();
  assert.equal(r.dev.got.length, 0, 'not before DRIVER_OK');
  assert.equal(q0.usedIdx(), 0);
  r.drv.addStatus(STATUS_DRIVER_OK);
  assert.equal(r.dev.got.length, 1, 'taken at DRIVER_OK');
  for (const n of [1, 2, 0xffff, 0x10000]) r.drv.w(REG_QUEUE_NOTIFY, n); // queue 1 was never set up
  assert.equal(r.dev.got.length, 1);
});

// ------------------------------------------------------------------ interrupts

test('used buffers: InterruptStatus bit 0 and the line stay up until InterruptACK clears them', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined]);
  const buf = r.drv.arena.alloc(4096);
  r.ram.set(buf, Uint8Array.of(1, 2, 3, 4));
  q0!.add([{ addr: buf, len: 4 }, { addr: buf + 100, len: 10, write: true }]);
  q0!.kick();
  assert.equal(r.drv.r(REG_INTERRUPT_STATUS), INT_USED_BUFFER);
  assert.deepEqual(r.levels, [true]);
  assert.deepEqual(q0!.reap(), [{ id: 0, len: 10 }]);
  assert.deepEqual([...r.dev.reads[0]!], [1, 2, 3, 4]);
  assert.deepEqual([...r.ram.get(buf + 100, 11)], [...new Array<number>(10).fill(0xee), 0]);
  // Acknowledging another bit changes nothing; the right one lowers the line.
  r.drv.w(REG_INTERRUPT_ACK, INT_CONFIG_CHANGE);
  assert.equal(r.drv.r(REG_INTERRUPT_STATUS), INT_USED_BUFFER);
  assert.equal(r.drv.ack(), INT_USED_BUFFER);
  assert.equal(r.drv.r(REG_INTERRUPT_STATUS), 0);
  assert.deepEqual(r.levels, [true, false]);
  // A second batch raises it again (with EVENT_IDX, once used_event asks for position 1).
  q0!.setUsedEvent(1);
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.kick();
  assert.deepEqual(r.levels, [true, false, true]);
});

test('without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT suppresses used buffer interrupts', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined], feature(F_VERSION_1));
  q0!.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  const buf = r.drv.arena.alloc(64);
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.kick();
  assert.equal(q0!.reap().length, 1);
  assert.equal(r.t.interruptStatus, 0);
  q0!.setAvailFlags(0);
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.kick();
  assert.equal(r.t.interruptStatus, INT_USED_BUFFER);
  assert.equal(q0!.availEvent(), 0, 'avail_event is not written without EVENT_IDX');
});

test('with EVENT_IDX, used_event decides the interrupt and the flags are ignored; avail_event follows the device', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined], ALL_RING_FEATURES);
  const buf = r.drv.arena.alloc(64);
  q0!.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT); // ignored with EVENT_IDX
  q0!.setUsedEvent(0); // interrupt when the used element at position 0 is written
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.kick();
  assert.equal(r.drv.ack(), INT_USED_BUFFER);
  assert.equal(q0!.availEvent(), 1, 'the device asks to hear about entry 1');
  q0!.reap();
  // used_event 3: positions 1 and 2 pass silently, 3 interrupts.
  q0!.setUsedEvent(3);
  for (let k = 1; k <= 3; k++) {
    q0!.add([{ addr: buf, len: 8, write: true }]);
    q0!.kick();
    q0!.reap();
    assert.equal(r.drv.ack(), k === 3 ? INT_USED_BUFFER : 0, `used element ${k}`);
  }
  // A batch that crosses used_event interrupts once.
  q0!.setUsedEvent(5);
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.add([{ addr: buf + 8, len: 8, write: true }]);
  q0!.add([{ addr: buf + 16, len: 8, write: true }]);
  q0!.kick();
  assert.equal(q0!.reap().length, 3);
  assert.equal(r.drv.ack(), INT_USED_BUFFER);
  assert.equal(q0!.availEvent(), 7);
  // used_event wraps mod 2^16 (a driver that wants no interrupt for a long time).
  q0!.setUsedEvent(0xffff);
  q0!.add([{ addr: buf, len: 8, write: true }]);
  q0!.kick();
  assert.equal(r.drv.ack(), 0);
});

// ------------------------------------------------------------------ configuration space

test('config space: 1-, 2-, 4- and 8-byte little-endian access at 0x100; out of range or misaligned reads 0', () => {
  const r = rig();
  const { t } = r;
  assert.equal(t.read(REG_CONFIG, 4), 0x12345678n);
  assert.equal(t.read(REG_CONFIG + 1, 1), 0x56n);
  assert.equal(t.read(REG_CONFIG + 2, 2), 0x1234n);
  assert.equal(t.read(REG_CONFIG, 8), 0xa4a3a2a1_12345678n);
  assert.equal(t.read(REG_CONFIG + 4, 1), 0xa1n);
  assert.equal(t.read(REG_CONFIG + 1, 2), 0n, 'misaligned');
  assert.equal(t.read(REG_CONFIG + 8, 4), 0n, 'beyond the config space');
  assert.equal(t.read(0xffc, 4), 0n);
  t.write(REG_CONFIG, 4, 0xcafef00dn);
  assert.equal(t.read(REG_CONFIG, 4), 0xcafef00dn);
});

test('a configuration change bumps ConfigGeneration and raises InterruptStatus bit 1 once the driver is live', () => {
  const r = rig();
  const g0 = r.drv.r(REG_CONFIG_GENERATION);
  r.dev.setConfig(1);
  const g1 = r.drv.r(REG_CONFIG_GENERATION);
  assert.notEqual(g1, g0);
  assert.equal(r.t.interruptStatus, 0, 'no interrupt before DRIVER_OK');
  r.drv.init([8, undefined]);
  assert.equal(r.drv.r(REG_CONFIG_GENERATION), g1, 'a reset does not change the generation back');
  r.dev.setConfig(2);
  assert.notEqual(r.drv.r(REG_CONFIG_GENERATION), g1);
  assert.equal(r.drv.r(REG_INTERRUPT_STATUS), INT_CONFIG_CHANGE);
  assert.equal(Number(r.t.read(REG_CONFIG, 4)), 2);
  assert.equal(r.drv.ack(), INT_CONFIG_CHANGE);
  assert.equal(r.t.irqLevel, false);
});

// ------------------------------------------------------------------ descriptor chains

test('chains: direct descriptors, then an indirect table; readable and writable parts are reported in order', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined]);
  const a = r.drv.arena.alloc(4096);
  r.ram.set(a, Uint8Array.from({ length: 48 }, (_, i) => i));
  // Direct: 16 readable + 16 readable + 32 writable.
  q0!.add([{ addr: a, len: 16 }, { addr: a + 16, len: 16 }, { addr: a + 1024, len: 32, write: true }]);
  // Indirect: 8 readable, then 2 writable of 4 and 12.
  q0!.add([{ addr: a + 40, len: 8 }, { addr: a + 2048, len: 4, write: true }, { addr: a + 3000, len: 12, write: true }], { indirect: true });
  // Direct descriptors followed by an indirect one (2.7.5.3.2).
  const table = r.drv.arena.alloc(32);
  q0!.writeDesc(table, 0, a + 4, 4, VIRTQ_DESC_F_NEXT, 1);
  q0!.writeDesc(table, 1, a + 3500, 20, VIRTQ_DESC_F_WRITE, 0);
  q0!.writeDesc(q0!.desc, 6, a, 2, VIRTQ_DESC_F_NEXT, 7);
  q0!.writeDesc(q0!.desc, 7, table, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0); // WRITE on the table is ignored
  q0!.publish(6);
  q0!.kick();
  assert.ok(!needsReset(r), r.t.lastError ?? '');
  assert.deepEqual(r.dev.got.map((c) => [c.head, c.readableBytes, c.writableBytes]), [[0, 32, 32], [3, 8, 16], [6, 6, 20]]);
  assert.deepEqual(r.dev.got[1]!.writable, [{ addr: a + 2048, len: 4 }, { addr: a + 3000, len: 12 }]);
  assert.deepEqual([...r.dev.reads[0]!], Array.from({ length: 32 }, (_, i) => i));
  assert.deepEqual([...r.dev.reads[1]!], [40, 41, 42, 43, 44, 45, 46, 47]);
  assert.deepEqual([...r.dev.reads[2]!], [0, 1, 4, 5, 6, 7]);
  assert.deepEqual(q0!.reap(), [{ id: 0, len: 32 }, { id: 3, len: 16 }, { id: 6, len: 20 }]);
});

/** Sets up queue 0 (size 8) with `features`, lets `build` write descriptors and ring entries, publishes `count` and kicks. */
function malformed(build: (q: DriverQueue, r: Rig) => number | void, opts: { features?: bigint; ramSize?: number } = {}): Rig {
  const r = rig(opts.ramSize);
  const [q0] = r.drv.init([8, undefined], opts.features ?? ALL_RING_FEATURES);
  const heads = build(q0!, r);
  if (typeof heads === 'number') r.ram.setU16(q0!.avail + 2, heads);
  q0!.kick();
  return r;
}

test('malformed chains set DEVICE_NEEDS_RESET with a configuration change interrupt, use nothing and touch no memory outside RAM', () => {
  const END = BASE + 1 * MiB;
  const buf = BASE + 0x80000;
  const cases: [string, (q: DriverQueue, r: Rig) => number | void, { features?: bigint; ramSize?: number }?][] = [
    ['self-reference', (q) => { q.writeDesc(q.desc, 0, buf, 8, VIRTQ_DESC_F_NEXT, 0); q.publish(0); }],
    ['two-descriptor loop', (q) => { q.writeDesc(q.desc, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1); q.writeDesc(q.desc, 1, buf, 8, VIRTQ_DESC_F_NEXT, 0); q.publish(0); }],
    ['chain longer than the queue (loop through all 8)', (q) => { for (let i = 0; i < 8; i++) q.writeDesc(q.desc, i, buf, 8, VIRTQ_DESC_F_NEXT, (i + 1) % 8); q.publish(3); }],
    ['next beyond the queue size', (q) => { q.writeDesc(q.desc, 0, buf, 8, VIRTQ_DESC_F_NEXT, 8); q.publish(0); }],
    ['next 0xffff', (q) => { q.writeDesc(q.desc, 0, buf, 8, VIRTQ_DESC_F_NEXT, 0xffff); q.publish(0); }],
    ['head beyond the queue size', (q) => { q.publish(8); }],
    ['head 0xffff', (q) => { q.publish(0xffff); }],
    ['avail idx ahead by more than the queue size', (q) => { q.writeDesc(q.desc, 0, buf, 8, 0, 0); return 9; }],
    ['avail idx 0x8000', () => 0x8000],
    ['avail idx moved backwards (0xffff)', () => 0xffff],
    ['buffer below RAM', (q) => { q.writeDesc(q.desc, 0, BASE - 8, 8, 0, 0); q.publish(0); }],
    ['buffer crossing the end of RAM', (q) => { q.writeDesc(q.desc, 0, END - 4, 8, VIRTQ_DESC_F_WRITE, 0); q.publish(0); }],
    ['buffer just past RAM', (q) => { q.writeDesc(q.desc, 0, END, 1, VIRTQ_DESC_F_WRITE, 0); q.publish(0); }],
    ['buffer at address 0', (q) => { q.writeDesc(q.desc, 0, 0, 16, 0, 0); q.publish(0); }],
    ['buffer at 2^53', (q) => { q.writeDesc(q.desc, 0, 2 ** 53, 16, 0, 0); q.publish(0); }],
    ['buffer at 2^64 - 16', (q, r) => { rawDesc(r.ram, q.desc, 0, 0xffff_ffff_ffff_fff0n, 16, VIRTQ_DESC_F_WRITE, 0); q.publish(0); }],
    ['length 0xffffffff', (q) => { q.writeDesc(q.desc, 0, buf, 0xffffffff, VIRTQ_DESC_F_WRITE, 0); q.publish(0); }],
    ['readable after writable', (q) => { q.writeDesc(q.desc, 0, buf, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1); q.writeDesc(q.desc, 1, buf, 8, 0, 0); q.publish(0); }],
    ['indirect without VIRTIO_F_INDIRECT_DESC', (q, r) => { const t = r.drv.arena.alloc(16); q.writeDesc(t, 0, buf, 8, 0, 0); q.writeDesc(q.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }, { features: feature(F_VERSION_1) }],
    ['indirect and NEXT', (q, r) => { const t = r.drv.arena.alloc(16); q.writeDesc(t, 0, buf, 8, 0, 0); q.writeDesc(q.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1); q.writeDesc(q.desc, 1, buf, 8, 0, 0); q.publish(0); }],
    ['indirect table length 0', (q, r) => { const t = r.drv.arena.alloc(16); q.writeDesc(q.desc, 0, t, 0, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
    ['indirect table length 24', (q, r) => { const t = r.drv.arena.alloc(32); q.writeDesc(t, 0, buf, 8, 0, 0); q.writeDesc(q.desc, 0, t, 24, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
    ['indirect table of 32769 entries', (q, r) => { const t = r.drv.arena.alloc(16 * 32769); q.writeDesc(t, 0, buf, 8, 0, 0); q.writeDesc(q.desc, 0, t, 16 * 32769, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
    ['indirect table outside RAM', (q) => { q.writeDesc(q.desc, 0, END - 16, 32, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
    ['indirect table at 2^63', (q, r) => { rawDesc(r.ram, q.desc, 0, 1n << 63n, 16, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
    ['nested indirect', (q, r) => {
      const inner = r.drv.arena.alloc(16); q.writeDesc(inner, 0, buf, 8, 0, 0);
      const outer = r.drv.arena.alloc(16); q.writeDesc(outer, 0, inner, 16, VIRTQ_DESC_F_INDIRECT, 0);
      q.writeDesc(q.desc, 0, outer, 16, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0);
    }],
    ['loop inside an indirect table', (q, r) => {
      const t = r.drv.arena.alloc(48);
      q.writeDesc(t, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1); q.writeDesc(t, 1, buf, 8, VIRTQ_DESC_F_NEXT, 2); q.writeDesc(t, 2, buf, 8, VIRTQ_DESC_F_NEXT, 0);
      q.writeDesc(q.desc, 0, t, 48, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0);
    }],
    ['indirect next beyond its table', (q, r) => {
      const t = r.drv.arena.alloc(32);
      q.writeDesc(t, 0, buf, 8, VIRTQ_DESC_F_NEXT, 2); q.writeDesc(t, 1, buf, 8, 0, 0);
      q.writeDesc(q.desc, 0, t, 32, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0);
    }],
    ['indirect buffer outside RAM', (q, r) => {
      const t = r.drv.arena.alloc(16); q.writeDesc(t, 0, END + 4096, 8, VIRTQ_DESC_F_WRITE, 0);
      q.writeDesc(q.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0);
    }],
    // A nominal 8 GiB RAM, so that every buffer is in RAM and only the total is wrong.
    ['more than 2^32 bytes in total', (q) => {
      q.writeDesc(q.desc, 0, BASE + 0x1000_0000, 0xffffffff, VIRTQ_DESC_F_NEXT, 1);
      q.writeDesc(q.desc, 1, BASE + 0x1000_0000, 2, VIRTQ_DESC_F_WRITE, 0);
      q.publish(0);
    }, { ramSize: 8 * 1024 * MiB }],
  ];
  for (const [what, build, opts] of cases) {
    const r = malformed(build, opts);
    assert.ok(needsReset(r), `${what}: DEVICE_NEEDS_RESET`);
    assert.equal(r.t.interruptStatus & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE, `${what}: configuration change interrupt`);
    assert.equal(r.t.irqLevel, true, what);
    assert.equal(r.dev.got.length, 0, `${what}: no chain reached the device`);
    assert.equal(r.ram.u16(r.drv.queues[0]!.used + 2), 0, `${what}: nothing used`);
    assert.deepEqual(r.ram.violations, [], what);
    assert.ok(r.errors.length >= 1 && r.t.lastError !== null, `${what}: reason reported`);
    // The device stays stopped until a reset; then it works again.
    r.drv.queues[0]!.kick();
    assert.equal(r.dev.got.length, 0, what);
    const [q0] = r.drv.init([8, undefined]);
    assert.ok(!needsReset(r), what);
    q0!.add([{ addr: buf, len: 8, write: true }]);
    q0!.kick();
    assert.deepEqual(q0!.reap(), [{ id: 0, len: 8 }], `${what}: works after a reset`);
  }
  // The 8 GiB RAM accepts exactly 2^32 bytes in total.
  const ok = malformed((q) => {
    q.writeDesc(q.desc, 0, BASE + 0x1000_0000, 0xffffffff, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    q.writeDesc(q.desc, 1, BASE + 0x1000_0000, 1, VIRTQ_DESC_F_WRITE, 0);
    q.publish(0);
  }, { ramSize: 8 * 1024 * MiB });
  assert.ok(!needsReset(ok), ok.t.lastError ?? '');
  assert.equal(ok.dev.got[0]!.writableBytes, 2 ** 32);
});

test('zero-length descriptors are accepted wherever they point and contribute no buffer', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined]);
  const a = r.drv.arena.alloc(64);
  q0!.writeDesc(q0!.desc, 0, 0, 0, VIRTQ_DESC_F_NEXT, 1);
  q0!.writeDesc(q0!.desc, 1, a, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
  q0!.writeDesc(q0!.desc, 2, BASE - 4096, 0, VIRTQ_DESC_F_WRITE, 0);
  q0!.publish(0);
  q0!.kick();
  assert.ok(!needsReset(r), r.t.lastError ?? '');
  assert.deepEqual(r.dev.got[0]!.readable, []);
  assert.deepEqual(r.dev.got[0]!.writable, [{ addr: a, len: 16 }]);
  assert.deepEqual(r.ram.violations, []);
});

test('memory order: the device reads the available idx, then the ring entry, then the descriptors; it writes the used element before the used idx', () => {
  const r = rig();
  const [q0] = r.drv.init([8, undefined], feature(F_VERSION_1));
  const a = r.drv.arena.alloc(64);
  q0!.add([{ addr: a, len: 8 }, { addr: a + 8, len: 8, write: true }]);
  r.ram.log = [];
  q0!.kick();
  const log = r.ram.log;
  r.ram.log = null;
  const at = (op: 'read' | 'write', gpa: number, len: number): number => log.findIndex((e) => e.op === op && e.gpa === gpa && e.len === len);
  const idx = at('read', q0!.avail + 2, 2), ring = at('read', q0!.avail + 4, 2);
  const d0 = at('read', q0!.desc, 16), d1 = at('read', q0!.desc + 16, 16);
  const elem = at('write', q0!.used + 4, 8), usedIdx = at('write', q0!.used + 2, 2);
  for (const [name, i] of Object.entries({ idx, ring, d0, d1, elem, usedIdx })) assert.ok(i >= 0, `${name} missing from ${JSON.stringify(log)}`);
  assert.ok(idx < ring && ring < d0 && d0 < d1, 'idx, ring entry, descriptors');
  assert.ok(d1 < elem && elem < usedIdx, 'used element, then used idx');
});

// ------------------------------------------------------------------ snapshots

test('save/restore: a restored transport continues where the saved one stopped', () => {
  const r = rig();
  const [q0] = r.drv.init([8, 4]);
  const a = r.drv.arena.alloc(256);
  q0!.add([{ addr: a, len: 8, write: true }]);
  q0!.kick();
  q0!.reap();
  q0!.add([{ addr: a + 8, len: 8, write: true }]); // available, not yet notified
  r.dev.cfg = 77;
  const saved = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;

  const dev2 = new SinkDevice();
  const levels: boolean[] = [];
  const t2 = new VirtioMmioTransport({ base: 0x1000_1000, device: dev2, mem: r.ram, irq: (l) => levels.push(l) });
  t2.restore(saved);
  assert.deepEqual(levels, [true], 'the line is driven to the saved level');
  assert.equal(t2.status, r.t.status);
  assert.equal(t2.driverFeatures(), ALL_RING_FEATURES);
  assert.equal(dev2.cfg, 77);
  t2.write(REG_QUEUE_NOTIFY, 4, 0n);
  assert.equal(dev2.got.length, 1);
  assert.equal(dev2.got[0]!.head, 1);
  assert.deepEqual(q0!.reap(), [{ id: 1, len: 8 }]);
  assert.deepEqual(JSON.parse(JSON.stringify(t2.save())).queues[1], saved.queues[1]);

  assert.throws(() => t2.restore({ ...saved, version: 2 as 1 }), RangeError);
  assert.throws(() => t2.restore({ ...saved, queues: saved.queues.slice(0, 1) }), RangeError);
  assert.throws(() => t2.restore({ ...saved, status: 0x1ff }), RangeError);
  assert.throws(() => t2.restore({ ...saved, queues: [{ ...saved.queues[0]!, ready: true, size: 3 }, saved.queues[1]!] }), RangeError);
});

// ------------------------------------------------------------------ fuzz

/** Reference model of the chain rules, written independently of queue.ts. */
function modelChain(ram: FakeRam, desc: number, size: number, head: number, indirectOk: boolean): { ok: false } | { ok: true; writable: [number, number][]; writableBytes: number } {
  const END = BigInt(ram.base + ram.size);
  const inRam = (addr: bigint, len: number): boolean => addr >= BigInt(ram.base) && addr + BigInt(len) <= END;
  const read = (table: number, i: number) => {
    const v = new DataView(ram.get(table + 16 * i, 16).buffer);
    return { addr: v.getBigUint64(0, true), len: v.getUint32(8, true), flags: v.getUint16(12, true), next: v.getUint16(14, true) };
  };
  const list: { addr: bigint; len: number; flags: number }[] = [];
  let i = head;
  for (let steps = 1; ; steps++) {
    if (steps > size) return { ok: false };
    const d = read(desc, i);
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
      if (!indirectOk || (d.flags & VIRTQ_DESC_F_NEXT) || d.len === 0 || d.len % 16 !== 0 || d.len / 16 > 32768 || !inRam(d.addr, d.len)) return { ok: false };
      const m = d.len / 16;
      const table = Number(d.addr);
      let j = 0;
      for (let k = 1; ; k++) {
        if (k > m) return { ok: false };
        const e = read(table, j);
        if (e.flags & VIRTQ_DESC_F_INDIRECT) return { ok: false };
        list.push(e);
        if (!(e.flags & VIRTQ_DESC_F_NEXT)) break;
        if (e.next >= m) return { ok: false };
        j = e.next;
      }
      break;
    }
    list.push(d);
    if (!(d.flags & VIRTQ_DESC_F_NEXT)) break;
    if (d.next >= size) return { ok: false };
    i = d.next;
  }
  let total = 0, sawWrite = false;
  const writable: [number, number][] = [];
  for (const d of list) {
    const w = (d.flags & VIRTQ_DESC_F_WRITE) !== 0;
    if (!w && sawWrite) return { ok: false };
    sawWrite ||= w;
    if (d.len === 0) continue;
    if (!inRam(d.addr, d.len)) return { ok: false };
    total += d.len;
    if (w) writable.push([Number(d.addr), d.len]);
  }
  if (total > 2 ** 32) return { ok: false };
  return { ok: true, writable, writableBytes: writable.reduce((s, [, l]) => s + l, 0) };
}

test('fuzz: random and malformed descriptor chains never throw, never leave RAM, and end consistent (seed 0xd15c0)', () => {
  const R = rng(0xd15c0);
  const int = (n: number): number => Math.floor(R() * n);
  const RAM = 1 * MiB, LOW = 0x10000; // rings and tables below BASE + LOW, buffers above
  const END = BASE + RAM;
  let good = 0, bad = 0, jumps = 0, used = 0;
  const ITER = 4000;
  for (let iter = 0; iter < ITER; iter++) {
    const r = rig(RAM);
    r.dev.cap = 4096;
    const features = feature(F_VERSION_1) | (R() < 0.7 ? feature(F_INDIRECT_DESC) : 0n) | (R() < 0.5 ? feature(F_EVENT_IDX) : 0n);
    const size = 1 << int(9);
    const [q0] = r.drv.init([size, undefined], features);
    const q = q0!;
    const indirectOk = (features & feature(F_INDIRECT_DESC)) !== 0n;

    const randLen = (): number => {
      const x = R();
      if (x < 0.1) return 0;
      if (x < 0.85) return 1 + int(256);
      if (x < 0.95) return int(8192);
      return [0xffffffff, 0x80000000, RAM, RAM - LOW, 0x1_0000_0000 - 16][int(5)]!;
    };
    const randAddr = (len: number): bigint => {
      if (R() < 0.85) return BigInt(BASE + LOW + int(Math.max(1, RAM - LOW - len)));
      return [BigInt(BASE - 16), BigInt(BASE - 1 - int(4096)), BigInt(END - int(Math.max(1, len))), BigInt(END), BigInt(END + int(1 << 20)),
        0n, BigInt(2 ** 53 - 8), 1n << 53n, (1n << 64n) - 1n, BigInt.asUintN(64, BigInt(int(2 ** 32)) << 32n | BigInt(int(2 ** 32)))][int(10)]!;
    };
    // Indirect tables live in the low area, after the rings.
    const tables: [number, number][] = [];
    for (let k = 0; k < 3; k++) {
      const m = 1 + int(8);
      const at = r.drv.arena.alloc(16 * m, 16);
      if (at + 16 * m > BASE + LOW) break;
      tables.push([at, m]);
    }
    const randDesc = (table: number, i: number, limit: number, nestedP: number): void => {
      let flags = (R() < 0.45 ? VIRTQ_DESC_F_NEXT : 0) | (R() < 0.4 ? VIRTQ_DESC_F_WRITE : 0);
      let addr: bigint, len: number;
      if (R() < nestedP && tables.length > 0) {
        flags |= VIRTQ_DESC_F_INDIRECT;
        if (R() < 0.8) flags &= ~VIRTQ_DESC_F_NEXT;
        const [at, m] = tables[int(tables.length)]!;
        addr = R() < 0.85 ? BigInt(at) : randAddr(16 * m);
        len = R() < 0.8 ? 16 * m : [0, 8, 17, 16 * (m + 1), 16 * 40000][int(5)]!;
      } else {
        len = randLen();
        addr = randAddr(len);
      }
      const next = R() < 0.85 ? int(limit) : int(0x10000);
      rawDesc(r.ram, table, i, addr, len, flags, next);
    };
    for (let i = 0; i < size; i++) randDesc(q.desc, i, size, 0.1);
    for (const [at, m] of tables) for (let i = 0; i < m; i++) randDesc(at, i, m, 0.05);

    let n: number;
    if (R() < 0.06) { n = size + 1 + int(0x10000 - size - 1); jumps++; } else n = 1 + int(Math.min(size, 4));
    for (let k = 0; k < Math.min(n, size); k++) r.ram.setU16(q.avail + 4 + 2 * k, R() < 0.9 ? int(size) : int(0x10000));
    r.ram.setU16(q.avail + 2, n);

    // What the model expects.
    const expect: { head: number; writable: [number, number][]; len: number }[] = [];
    let expectBad = n > size;
    if (!expectBad) {
      for (let k = 0; k < n; k++) {
        const head = r.ram.u16(q.avail + 4 + 2 * k);
        const m = head < size ? modelChain(r.ram, q.desc, size, head, indirectOk) : { ok: false as const };
        if (!m.ok) { expectBad = true; break; }
        expect.push({ head, writable: m.writable, len: Math.min(m.writableBytes, r.dev.cap) });
      }
    }

    const before = r.ram.snapshot();
    assert.doesNotThrow(() => q.kick(), `iteration ${iter}`);
    const ctx = `iteration ${iter} (size ${size}, features 0x${features.toString(16)}, n ${n}): ${r.t.lastError ?? 'no error'}`;
    assert.deepEqual(r.ram.violations, [], ctx);
    assert.equal(needsReset(r), expectBad, ctx);
    assert.deepEqual(q.reap(), expect.map((e) => ({ id: e.head, len: e.len })), ctx);
    if (expectBad) {
      bad++;
      assert.equal(r.t.interruptStatus & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE, ctx);
    } else {
      good++;
      assert.equal(r.t.interruptStatus, INT_USED_BUFFER, ctx);
    }
    used += expect.length;
    // The device wrote only into the writable buffers of the chains it used and into the used ring.
    const allowed: [number, number][] = [[q.used, 6 + 8 * size]];
    for (const e of expect) {
      let left = e.len;
      for (const [a, l] of e.writable) { const k = Math.min(l, left); allowed.push([a, k]); left -= k; }
    }
    for (const a of r.ram.changedSince(before)) {
      assert.ok(allowed.some(([s, l]) => a >= s && a < s + l), `${ctx}: wrote 0x${a.toString(16)}`);
    }
    // Stopped after a fault; a reset brings it back.
    if (expectBad && iter % 8 === 0) {
      q.kick();
      assert.equal(r.dev.got.length, expect.length, ctx);
      const [p] = r.drv.init([size, undefined], features);
      p!.add([{ addr: BASE + LOW, len: 8, write: true }]);
      p!.kick();
      assert.deepEqual(p!.reap(), [{ id: 0, len: 8 }], ctx);
    }
  }
  // The generator must exercise both outcomes in earnest.
  assert.ok(good > ITER / 5 && bad > ITER / 5 && jumps > 50 && used > ITER / 4, `good ${good}, bad ${bad}, jumps ${jumps}, used ${used}`);
});

// ------------------------------------------------------------------ the pmap adapter

test('pmapGuestMemory: RAM regions only, whole ranges, across pages; 2-byte accesses are atomic loads and stores', () => {
  const mem = MachineMemory.create(2 * MiB);
  const pmap = Pmap.create(mem, [
    { name: 'rom', kind: 'rom', base: 0x1000, size: 0x1000 },
    { name: 'dram', kind: 'ram', base: BASE, size: 256 * 1024 },
  ]);
  const g = pmapGuestMemory(pmap);
  const END = BASE + 256 * 1024;
  assert.equal(g.isRam(BASE, 1), true);
  assert.equal(g.isRam(END - 16, 16), true);
  assert.equal(g.isRam(END - 16, 17), false);
  assert.equal(g.isRam(END, 1), false);
  assert.equal(g.isRam(BASE - 1, 2), false);
  assert.equal(g.isRam(0x1000, 4), false, 'ROM is not for devices');
  assert.equal(g.isRam(BASE, 0), false);
  assert.equal(g.isRam(-1, 4), false);
  assert.equal(g.isRam(2 ** 60, 4), false);
  assert.equal(g.read(0x1000, 4), null);
  assert.equal(g.write(0x1000, Uint8Array.of(1)), false);
  assert.equal(g.read(END - 2, 4), null);
  assert.equal(g.write(END - 2, Uint8Array.of(1, 2, 3, 4)), false);
  // Across a page boundary.
  const data = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(g.write(BASE + 4096 - 50, data), true);
  assert.deepEqual(g.read(BASE + 4096 - 50, 100), data);
  assert.deepEqual(pmap.read(BASE + 4096 - 50, 100), data);
  // Two-byte path.
  assert.equal(g.write(BASE + 0x2002, Uint8Array.of(0x34, 0x12)), true);
  assert.deepEqual(g.read(BASE + 0x2002, 2), Uint8Array.of(0x34, 0x12));
  assert.deepEqual(pmap.read(BASE + 0x2001, 4), Uint8Array.of(0, 0x34, 0x12, 0));
  // A driver round trip through the pmap.
  const dev = new SinkDevice();
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: dev, mem: g, irq: () => {} });
  const ram: DriverRam = {
    base: BASE, size: 256 * 1024,
    get: (gpa, len) => pmap.read(gpa, len),
    set: (gpa, bytes) => pmap.write(gpa, bytes),
  };
  const drv = new Driver(t as VirtioMmioTransport<unknown>, ram, BASE + 0x10000);
  const [q0] = drv.init([16, undefined]);
  const buf = BASE + 0x20000 - 8; // the buffer crosses a page
  pmap.write(buf, Uint8Array.of(9, 8, 7, 6));
  q0!.add([{ addr: buf, len: 4 }, { addr: buf + 4, len: 12, write: true }], { indirect: true });
  q0!.kick();
  assert.deepEqual(q0!.reap(), [{ id: 0, len: 12 }]);
  assert.deepEqual([...dev.reads[0]!], [9, 8, 7, 6]);
  assert.deepEqual([...pmap.read(buf + 4, 13)], [...new Array<number>(12).fill(0xee), 0]);
  assert.ok(t.interruptStatus & INT_USED_BUFFER);
});
