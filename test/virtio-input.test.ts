// virtio-input (virtio 1.2, 5.8) as Disco's power button, driven the way
// Linux's virtio_input driver does: read the configuration, fill the eventq
// with 8-byte device-writable buffers, reap events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  F_VERSION_1, INT_USED_BUFFER, REG_CONFIG, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID,
  REG_QUEUE_NUM_MAX, REG_QUEUE_SEL, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER_OK, feature,
} from '../src/devices/virtio/constants.js';
import {
  BUS_VIRTUAL, EV_KEY, EV_SYN, KEY_POWER, SYN_REPORT, VIRTIO_INPUT_CFG_ABS_INFO, VIRTIO_INPUT_CFG_EV_BITS,
  VIRTIO_INPUT_CFG_ID_DEVIDS, VIRTIO_INPUT_CFG_ID_NAME, VIRTIO_INPUT_CFG_ID_SERIAL, VIRTIO_INPUT_CFG_PROP_BITS,
  VIRTIO_INPUT_CFG_UNSET, VirtioPowerButton, type VirtioInputState,
} from '../src/devices/virtio/input.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { ALL_RING_FEATURES, Driver, FakeRam, type DriverQueue } from './virtio-driver.js';

const BASE = 0x8000_0000;

interface Rig {
  ram: FakeRam;
  button: VirtioPowerButton;
  t: VirtioMmioTransport<VirtioInputState>;
  drv: Driver;
  levels: boolean[];
}

function rig(): Rig {
  const ram = new FakeRam(BASE, 1 << 20);
  const button = new VirtioPowerButton();
  const levels: boolean[] = [];
  const t = new VirtioMmioTransport({ base: 0x1000_8000, device: button, mem: ram, irq: (l) => levels.push(l) });
  return { ram, button, t, drv: new Driver(t as VirtioMmioTransport<unknown>, ram), levels };
}

/** virtinput_cfg_select: select, subsel, then size (byte accesses, as Linux). */
function cfgSelect(r: Rig, select: number, subsel: number): number {
  r.t.write(REG_CONFIG + 0, 1, BigInt(select));
  r.t.write(REG_CONFIG + 1, 1, BigInt(subsel));
  return Number(r.t.read(REG_CONFIG + 2, 1));
}

function cfgBytes(r: Rig, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Number(r.t.read(REG_CONFIG + 8 + i, 1)));
}

type Ev = [type: number, code: number, value: number];

/** The events in the used buffers since the last call. */
function events(r: Rig, q: DriverQueue, bufs: Map<number, number>): Ev[] {
  return q.reap().map((u) => {
    assert.equal(u.len, 8, 'used length of an event');
    const a = bufs.get(u.id);
    assert.ok(a !== undefined, `unknown buffer ${u.id}`);
    const v = new DataView(r.ram.get(a, 8).buffer);
    return [v.getUint16(0, true), v.getUint16(2, true), v.getInt32(4, true)];
  });
}

/** Initializes like Linux (features, both queues, DRIVER_OK) and posts `n` event buffers; returns the eventq and head → address. */
function bringUp(r: Rig, n: number, want = ALL_RING_FEATURES, sizes: (number | undefined)[] = [undefined, undefined]): { q: DriverQueue; bufs: Map<number, number> } {
  const [q] = r.drv.init(sizes, want);
  const bufs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const a = r.drv.arena.alloc(8, 8);
    bufs.set(q!.add([{ addr: a, len: 8, write: true }]), a);
  }
  q!.kick();
  return { q: q!, bufs };
}

/** Reposts the buffers the driver got back, as virtinput_recv_events does. */
function repost(q: DriverQueue, bufs: Map<number, number>, used: number): void {
  const addrs = [...bufs.values()].slice(0, used);
  bufs.clear();
  for (const a of addrs) bufs.set(q.add([{ addr: a, len: 8, write: true }]), a);
  q.kick();
}

const PRESS: Ev[] = [[EV_KEY, KEY_POWER, 1], [EV_SYN, SYN_REPORT, 0], [EV_KEY, KEY_POWER, 0], [EV_SYN, SYN_REPORT, 0]];

test('identity: device ID 18, two queues, only VERSION_1-level features', () => {
  const r = rig();
  assert.equal(r.drv.r(REG_DEVICE_ID), 18);
  r.drv.w(REG_DEVICE_FEATURES_SEL, 0);
  assert.equal(r.drv.r(REG_DEVICE_FEATURES) & 0xffffff, 0, 'no device-type features (5.8.3)');
  for (const [q, max] of [[0, 64], [1, 64], [2, 0]] as const) {
    r.drv.w(REG_QUEUE_SEL, q);
    assert.equal(r.drv.r(REG_QUEUE_NUM_MAX), max);
  }
  assert.equal(r.drv.negotiate(feature(F_VERSION_1)), true);
});

test('configuration: name, serial, IDs, no properties, EV_KEY with KEY_POWER only, EV_SYN; size 0 for anything else', () => {
  const r = rig();
  const text = (n: number): string => String.fromCharCode(...cfgBytes(r, n));
  let n = cfgSelect(r, VIRTIO_INPUT_CFG_ID_NAME, 0);
  assert.equal(text(n), 'Disco Power Button');
  n = cfgSelect(r, VIRTIO_INPUT_CFG_ID_SERIAL, 0);
  assert.ok(n > 0);
  assert.equal(text(n), 'disco-power-0');
  assert.equal(cfgSelect(r, VIRTIO_INPUT_CFG_ID_DEVIDS, 0), 8);
  assert.equal(Number(r.t.read(REG_CONFIG + 8, 2)), BUS_VIRTUAL);
  assert.equal(Number(r.t.read(REG_CONFIG + 10, 2)), 0x4453);
  assert.equal(Number(r.t.read(REG_CONFIG + 12, 2)), 1);
  assert.equal(Number(r.t.read(REG_CONFIG + 14, 2)), 1);
  assert.equal(cfgSelect(r, VIRTIO_INPUT_CFG_PROP_BITS, 0), 0);
  // EV_KEY: a bitmap with exactly bit 116 (byte 14, bit 4).
  n = cfgSelect(r, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
  assert.equal(n, 15);
  const bits = cfgBytes(r, 128);
  assert.deepEqual(bits.map((b, i) => (b ? [i, b] : null)).filter((x) => x), [[14, 0x10]]);
  assert.equal(n * 8 > KEY_POWER && (bits[KEY_POWER >> 3]! >> (KEY_POWER & 7)) & 1, 1);
  n = cfgSelect(r, VIRTIO_INPUT_CFG_EV_BITS, EV_SYN);
  assert.equal(n, 1);
  assert.deepEqual(cfgBytes(r, 2), [1, 0]);
  for (const [sel, sub] of [[VIRTIO_INPUT_CFG_EV_BITS, 2], [VIRTIO_INPUT_CFG_EV_BITS, 3], [VIRTIO_INPUT_CFG_EV_BITS, 0x11], [VIRTIO_INPUT_CFG_EV_BITS, 0x14],
    [VIRTIO_INPUT_CFG_ABS_INFO, 0], [VIRTIO_INPUT_CFG_ABS_INFO, 1], [VIRTIO_INPUT_CFG_UNSET, 0], [VIRTIO_INPUT_CFG_ID_NAME, 1],
    [VIRTIO_INPUT_CFG_ID_DEVIDS, 1], [VIRTIO_INPUT_CFG_PROP_BITS, 1], [0x13, 0], [0xff, 0xff]] as const) {
    assert.equal(cfgSelect(r, sel, sub), 0, `select 0x${sel.toString(16)} subsel ${sub}`);
    assert.deepEqual(cfgBytes(r, 4), [0, 0, 0, 0]);
  }
  // select and subsel read back; a 16-bit write sets both; other fields are not writable.
  r.t.write(REG_CONFIG, 2, BigInt(VIRTIO_INPUT_CFG_EV_BITS | (EV_KEY << 8)));
  assert.equal(Number(r.t.read(REG_CONFIG, 2)), VIRTIO_INPUT_CFG_EV_BITS | (EV_KEY << 8));
  assert.equal(Number(r.t.read(REG_CONFIG + 2, 1)), 15);
  r.t.write(REG_CONFIG + 2, 1, 99n);
  r.t.write(REG_CONFIG + 8, 4, 0xffffffffn);
  assert.equal(Number(r.t.read(REG_CONFIG + 2, 1)), 15);
  assert.equal(Number(r.t.read(REG_CONFIG + 8, 4)), 0);
  assert.equal(r.t.read(REG_CONFIG + 136, 1), 0n, 'beyond struct virtio_input_config');
});

test('press() delivers KEY_POWER 1, SYN_REPORT, KEY_POWER 0, SYN_REPORT in four eventq buffers and raises the interrupt', () => {
  for (const want of [ALL_RING_FEATURES, feature(F_VERSION_1)]) {
    const r = rig();
    const { q, bufs } = bringUp(r, 8, want);
    assert.equal(r.t.interruptStatus, 0);
    assert.equal(r.button.press(), true);
    assert.equal(r.drv.ack(), INT_USED_BUFFER);
    assert.deepEqual(r.levels, [true, false]);
    const got = events(r, q, bufs);
    assert.deepEqual(got, PRESS);
    // Byte for byte: struct virtio_input_event {le16 type; le16 code; le32 value}.
    const first = bufs.get(0)!;
    assert.deepEqual([...r.ram.get(first, 8)], [1, 0, 116, 0, 1, 0, 0, 0]);
    assert.equal(r.button.pendingEvents, 0);
    // Exactly four: the other buffers are untouched.
    assert.equal(q.usedIdx(), 4);
    // A second press uses the next four buffers.
    r.button.press();
    assert.deepEqual(events(r, q, bufs), PRESS);
    assert.deepEqual(r.ram.violations, []);
  }
});

test('events wait for buffers: a press before the driver is delivered once the driver fills the eventq', () => {
  const r = rig();
  assert.equal(r.button.press(), true);
  assert.equal(r.button.pendingEvents, 4);
  // Driver up, buffers posted after DRIVER_OK (Linux fills the eventq after virtio_device_ready).
  const { q, bufs } = bringUp(r, 8);
  assert.deepEqual(events(r, q, bufs), PRESS);
  assert.equal(r.button.pendingEvents, 0);
  assert.ok(r.t.interruptStatus & INT_USED_BUFFER);
});

test('buffers posted before DRIVER_OK are used only after it', () => {
  const r = rig();
  r.button.press();
  r.drv.negotiate();
  const q = r.drv.setupQueue(0);
  r.drv.setupQueue(1);
  const bufs = new Map<number, number>();
  for (let i = 0; i < 4; i++) { const a = r.drv.arena.alloc(8, 8); bufs.set(q.add([{ addr: a, len: 8, write: true }]), a); }
  q.kick();
  assert.equal(q.usedIdx(), 0, 'not before DRIVER_OK');
  r.drv.addStatus(STATUS_DRIVER_OK);
  assert.deepEqual(events(r, q, bufs), PRESS);
});

test('an update is never split: with one buffer nothing is delivered, with two the key-down update', () => {
  const r = rig();
  const { q, bufs } = bringUp(r, 1);
  r.button.press();
  assert.equal(q.usedIdx(), 0);
  assert.equal(r.button.pendingEvents, 4);
  const a = r.drv.arena.alloc(8, 8);
  bufs.set(q.add([{ addr: a, len: 8, write: true }]), a);
  q.kick();
  assert.deepEqual(events(r, q, bufs), PRESS.slice(0, 2));
  assert.equal(r.button.pendingEvents, 2);
  repost(q, bufs, 2);
  assert.deepEqual(events(r, q, bufs), PRESS.slice(2));
  assert.equal(r.button.pendingEvents, 0);
});

test('an eventq of one entry still delivers, one event at a time', () => {
  const r = rig();
  const { q, bufs } = bringUp(r, 1, ALL_RING_FEATURES, [1, 1]);
  r.button.press();
  const got: Ev[] = [];
  for (let k = 0; k < 4; k++) {
    got.push(...events(r, q, bufs));
    repost(q, bufs, 1);
  }
  assert.deepEqual(got, PRESS);
});

test('buffers too small for an event are given back with length 0; the event goes into the next buffer', () => {
  const r = rig();
  const [q] = r.drv.init([undefined, undefined]);
  const small = r.drv.arena.alloc(4);
  const ro = r.drv.arena.alloc(8);
  const good = r.drv.arena.alloc(64);
  q!.add([{ addr: small, len: 4, write: true }]);
  q!.add([{ addr: ro, len: 8 }]); // device-readable only
  for (let i = 0; i < 4; i++) q!.add([{ addr: good + 16 * i, len: 16, write: true }]);
  q!.kick();
  r.button.press();
  assert.deepEqual(q!.reap(), [{ id: 0, len: 0 }, { id: 1, len: 0 }, { id: 2, len: 8 }, { id: 3, len: 8 }, { id: 4, len: 8 }, { id: 5, len: 8 }]);
  assert.deepEqual([...r.ram.get(small, 4)], [0, 0, 0, 0]);
  assert.deepEqual([...r.ram.get(good, 8)], [1, 0, 116, 0, 1, 0, 0, 0]);
  assert.ok(!(r.drv.status() & STATUS_DEVICE_NEEDS_RESET));
});

test('statusq buffers (LED updates) are taken and returned with length 0', () => {
  const r = rig();
  const [, sq] = r.drv.init([undefined, undefined]);
  const a = r.drv.arena.alloc(16);
  r.ram.set(a, Uint8Array.of(0x11, 0, 0, 0, 1, 0, 0, 0)); // EV_LED LED_NUML 1
  sq!.add([{ addr: a, len: 8 }]);
  sq!.add([{ addr: a + 8, len: 8 }]);
  const before = r.ram.snapshot();
  sq!.kick();
  assert.deepEqual(sq!.reap(), [{ id: 0, len: 0 }, { id: 1, len: 0 }]);
  assert.equal(r.drv.ack(), INT_USED_BUFFER);
  const changed = r.ram.changedSince(before);
  assert.ok(changed.every((x) => x >= sq!.used && x < sq!.used + 6 + 8 * sq!.size), 'only the used ring was written');
});

test('a device reset keeps waiting events for the next driver; select/subsel are forgotten', () => {
  const r = rig();
  bringUp(r, 0);
  r.button.press();
  cfgSelect(r, VIRTIO_INPUT_CFG_ID_NAME, 0);
  r.drv.w(0x70, 0); // reset, as the driver's remove does
  assert.equal(Number(r.t.read(REG_CONFIG, 1)), 0);
  assert.equal(r.button.pendingEvents, 4);
  const again = bringUp(r, 4);
  assert.deepEqual(events(r, again.q, again.bufs), PRESS);
});

test('waiting events are bounded: press() refuses once 256 events wait', () => {
  const r = rig();
  let accepted = 0;
  for (let i = 0; i < 100; i++) if (r.button.press()) accepted++;
  assert.equal(accepted, 64);
  assert.equal(r.button.pendingEvents, 256);
});

test('save/restore keeps waiting events and the configuration selection', () => {
  const r = rig();
  const { q, bufs } = bringUp(r, 2);
  r.button.press(); // two events delivered, two wait
  assert.equal(r.button.pendingEvents, 2);
  cfgSelect(r, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
  const saved = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;
  assert.deepEqual(saved.device.pending, [[EV_KEY, KEY_POWER, 0], [EV_SYN, SYN_REPORT, 0]]);

  const button = new VirtioPowerButton();
  const t2 = new VirtioMmioTransport({ base: 0x1000_8000, device: button, mem: r.ram, irq: () => {} });
  t2.restore(saved);
  assert.equal(button.pendingEvents, 2);
  assert.equal(Number(t2.read(REG_CONFIG + 2, 1)), 15);
  // The guest reaps the first update and reposts its buffers: the restored device delivers the rest.
  assert.deepEqual(events(r, q, bufs), PRESS.slice(0, 2));
  const addrs = [...bufs.values()];
  bufs.clear();
  for (const a of addrs) bufs.set(q.add([{ addr: a, len: 8, write: true }]), a);
  t2.write(0x50, 4, 0n);
  assert.deepEqual(events(r, q, bufs), PRESS.slice(2));
  assert.throws(() => button.restore({ ...saved.device, pending: [[1, 2, 2 ** 40]] }), RangeError);
  assert.throws(() => button.restore({ ...saved.device, select: 256 }), RangeError);
});

test('a hostile eventq (buffer outside RAM) puts the device in DEVICE_NEEDS_RESET; events stay queued', () => {
  const r = rig();
  const [q] = r.drv.init([undefined, undefined]);
  q!.add([{ addr: BASE + (1 << 20) - 4, len: 8, write: true }]);
  q!.add([{ addr: BASE + 0x8000, len: 8, write: true }]);
  q!.kick();
  r.button.press();
  assert.ok(r.drv.status() & STATUS_DEVICE_NEEDS_RESET);
  assert.equal(q!.usedIdx(), 0);
  assert.equal(r.button.pendingEvents, 4);
  assert.deepEqual(r.ram.violations, []);
  const again = bringUp(r, 4);
  assert.deepEqual(events(r, again.q, again.bufs), PRESS);
});

test('a device waiting for buffers asks for them: the driver\'s suppressed kicks still bring them (EVENT_IDX and flags)', () => {
  for (const want of [ALL_RING_FEATURES, feature(F_VERSION_1)]) {
    const r = rig();
    const { q, bufs } = bringUp(r, 1, want);
    r.button.press(); // needs two buffers for the first update
    assert.equal(q.usedIdx(), 0);
    const a = r.drv.arena.alloc(8, 8);
    const old = q.availIdx;
    bufs.set(q.add([{ addr: a, len: 8, write: true }]), a);
    assert.equal(q.kickIfNeeded(old), true, 'the device asked to hear of the next buffer');
    assert.deepEqual(events(r, q, bufs), PRESS.slice(0, 2));
    // Two buffers back, one at a time, each kick only if asked for.
    for (let k = 0; k < 2; k++) {
      const b = r.drv.arena.alloc(8, 8);
      const o = q.availIdx;
      bufs.set(q.add([{ addr: b, len: 8, write: true }]), b);
      q.kickIfNeeded(o);
    }
    assert.deepEqual(events(r, q, bufs), PRESS.slice(2));
  }
});
