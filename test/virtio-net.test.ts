// virtio-net (virtio 1.2, 5.1) driven as Linux's virtio_net does: transmit
// chains of header + frame, receive into (mergeable) buffers, the hold queue
// while the guest has no buffers, malformed chains, snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { F_VERSION_1, REG_CONFIG, REG_DEVICE_ID, STATUS_DEVICE_NEEDS_RESET, feature } from '../src/devices/virtio/constants.js';
import {
  MAX_HELD, NET_HDR_SIZE, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VirtioNet,
  parseMac, type VirtioNetState,
} from '../src/devices/virtio/net.js';
import type { NetBackend } from '../src/devices/backends/net.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { ALL_RING_FEATURES, Driver, FakeRam, rng, type DriverQueue } from './virtio-driver.js';

const BASE = 0x8000_0000;
const MAC = '52:54:00:12:34:56';
const NET_FEATURES = feature(VIRTIO_NET_F_MAC) | feature(VIRTIO_NET_F_STATUS) | feature(VIRTIO_NET_F_MTU) | feature(VIRTIO_NET_F_MRG_RXBUF);
const ALL = ALL_RING_FEATURES | NET_FEATURES;

class FakeBackend implements NetBackend {
  sent: Uint8Array[] = [];
  receive: ((f: Uint8Array) => boolean) | null = null;
  resumes = 0;
  closed = false;
  send(frame: Uint8Array): void { this.sent.push(frame.slice()); }
  attach(receive: (f: Uint8Array) => boolean): void { this.receive = receive; }
  resume(): void { this.resumes++; }
  async close(): Promise<void> { this.closed = true; }
  inject(f: Uint8Array): boolean { return this.receive!(f); }
}

interface Rig { ram: FakeRam; be: FakeBackend; dev: VirtioNet; t: VirtioMmioTransport<VirtioNetState>; drv: Driver; errors: string[] }

function rig(ramSize = 1 << 20): Rig {
  const ram = new FakeRam(BASE, ramSize);
  const be = new FakeBackend();
  const dev = new VirtioNet('net0', parseMac(MAC), be);
  const errors: string[] = [];
  const t = new VirtioMmioTransport({ base: 0x1000_1000, device: dev, mem: ram, irq: () => {}, onError: (e) => errors.push(e) });
  return { ram, be, dev, t, drv: new Driver(t as VirtioMmioTransport<unknown>, ram), errors };
}

/** A frame: destination, source, EtherType 0x88b5 (local experimental), then `n - 14` patterned bytes. */
function frame(n: number, seed = 1, dst = 'ff:ff:ff:ff:ff:ff', src = '52:54:00:aa:bb:cc'): Uint8Array {
  const f = new Uint8Array(n);
  f.set(parseMac(dst), 0);
  f.set(parseMac(src), 6);
  f[12] = 0x88; f[13] = 0xb5;
  for (let i = 14; i < n; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

function hdr(flags = 0, gso = 0): Uint8Array {
  const h = new Uint8Array(NET_HDR_SIZE);
  h[0] = flags; h[1] = gso;
  return h;
}

/** Places `data` in guest RAM; returns its address. */
function put(r: Rig, data: Uint8Array): number {
  const a = r.drv.arena.alloc(Math.max(1, data.length), 16);
  r.ram.set(a, data);
  return a;
}

function bringUp(r: Rig, want = ALL): { rx: DriverQueue; tx: DriverQueue } {
  const [rx, tx] = r.drv.init([undefined, undefined], want);
  return { rx: rx!, tx: tx! };
}

/** Posts `n` receive buffers of `len` bytes; returns head → address. */
function postRx(r: Rig, q: DriverQueue, n: number, len: number, bufs = new Map<number, number>()): Map<number, number> {
  for (let i = 0; i < n; i++) {
    const a = r.drv.arena.alloc(len, 16);
    bufs.set(q.add([{ addr: a, len, write: true }]), a);
  }
  q.kick();
  return bufs;
}

/** Reassembles received packets from used receive buffers: [num_buffers, frame]. */
function received(r: Rig, q: DriverQueue, bufs: Map<number, number>): [number, Uint8Array][] {
  const used = q.reap();
  const out: [number, Uint8Array][] = [];
  for (let i = 0; i < used.length;) {
    const first = used[i]!;
    const a = bufs.get(first.id)!;
    assert.ok(first.len >= NET_HDR_SIZE, 'first buffer holds the header');
    const h = r.ram.get(a, NET_HDR_SIZE);
    assert.equal(h[0], 0, 'flags');
    assert.equal(h[1], 0, 'gso_type NONE');
    const n = h[10]! | (h[11]! << 8);
    const parts: Uint8Array[] = [r.ram.get(a + NET_HDR_SIZE, first.len - NET_HDR_SIZE)];
    for (let k = 1; k < n; k++) {
      const u = used[i + k]!;
      parts.push(r.ram.get(bufs.get(u.id)!, u.len));
    }
    out.push([n, Buffer.concat(parts)]);
    i += n;
  }
  return out;
}

test('identity and configuration: device ID 1, MAC, link up, MTU 1500; MAC/STATUS/MTU/MRG_RXBUF offered, no offloads', () => {
  const r = rig();
  assert.equal(r.drv.r(REG_DEVICE_ID), 1);
  const f = r.drv.deviceFeatures();
  assert.equal(f & NET_FEATURES, NET_FEATURES);
  assert.equal(f & 0x3fffn & ~(feature(VIRTIO_NET_F_MAC) | feature(VIRTIO_NET_F_MTU)), 0n, 'no checksum or TSO bits');
  const cfg = Array.from({ length: 12 }, (_, i) => Number(r.t.read(REG_CONFIG + i, 1)));
  assert.deepEqual(cfg.slice(0, 6), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  assert.equal(Number(r.t.read(REG_CONFIG + 6, 2)), 1, 'VIRTIO_NET_S_LINK_UP');
  assert.equal(Number(r.t.read(REG_CONFIG + 10, 2)), 1500);
  r.t.write(REG_CONFIG, 1, 0xffn);
  assert.equal(Number(r.t.read(REG_CONFIG, 1)), 0x52, 'the MAC is read-only');
  assert.throws(() => new VirtioNet('x', parseMac('01:00:5e:00:00:01'), new FakeBackend()), RangeError);
});

test('transmit: header and frame in separate, single and indirect descriptors; the header is stripped, buffers come back with length 0', () => {
  const r = rig();
  const { tx } = bringUp(r);
  const f1 = frame(60, 1), f2 = frame(1514, 2), f3 = frame(100, 3);
  tx.add([{ addr: put(r, hdr()), len: NET_HDR_SIZE }, { addr: put(r, f1), len: f1.length }]);
  const both = Buffer.concat([hdr(), f2]);
  tx.add([{ addr: put(r, both), len: both.length }]);
  tx.add([{ addr: put(r, hdr()), len: NET_HDR_SIZE }, { addr: put(r, f3.subarray(0, 50)), len: 50 }, { addr: put(r, f3.subarray(50)), len: 50 }], { indirect: true });
  tx.kick();
  assert.deepEqual(r.be.sent.map((f) => Buffer.from(f)), [f1, f2, f3].map((f) => Buffer.from(f)));
  assert.deepEqual(tx.reap().map((u) => u.len), [0, 0, 0]);
  assert.equal(r.drv.ack() & 1, 1, 'used buffer interrupt');
  assert.deepEqual(r.ram.violations, []);
});

test('transmit: malformed chains are dropped and returned, without a reset', () => {
  const r = rig();
  const { tx } = bringUp(r);
  r.ram.log = [];
  const good = frame(60);
  const cases: { name: string; bufs: { addr: number; len: number; write?: boolean }[] }[] = [
    { name: 'only a header', bufs: [{ addr: put(r, hdr()), len: NET_HDR_SIZE }] },
    { name: 'frame of 13 bytes', bufs: [{ addr: put(r, Buffer.concat([hdr(), frame(14).subarray(0, 13)])), len: NET_HDR_SIZE + 13 }] },
    { name: 'shorter than a header', bufs: [{ addr: put(r, new Uint8Array(5)), len: 5 }] },
    { name: 'a writable part', bufs: [{ addr: put(r, Buffer.concat([hdr(), good])), len: NET_HDR_SIZE + 60 }, { addr: r.drv.arena.alloc(64), len: 64, write: true }] },
    { name: 'NEEDS_CSUM without VIRTIO_NET_F_CSUM', bufs: [{ addr: put(r, Buffer.concat([hdr(1), good])), len: NET_HDR_SIZE + 60 }] },
    { name: 'GSO without TSO', bufs: [{ addr: put(r, Buffer.concat([hdr(0, 1), good])), len: NET_HDR_SIZE + 60 }] },
    { name: 'above 65535 bytes', bufs: [{ addr: r.drv.arena.alloc(NET_HDR_SIZE + 65536), len: NET_HDR_SIZE + 65536 }] },
    { name: 'only writable', bufs: [{ addr: r.drv.arena.alloc(100), len: 100, write: true }] },
    // 200 descriptors over the same 60000 bytes: 12 MB of chain, never read.
    { name: 'overlapping descriptors', bufs: ((a: number) => Array.from({ length: 200 }, () => ({ addr: a, len: 60000 })))(r.drv.arena.alloc(60000)) },
  ];
  for (const c of cases) tx.add(c.bufs);
  tx.add([{ addr: put(r, Buffer.concat([hdr(), good])), len: NET_HDR_SIZE + 60 }]);
  tx.kick();
  assert.equal(r.be.sent.length, 1, 'only the good frame goes out');
  assert.deepEqual(Buffer.from(r.be.sent[0]!), Buffer.from(good));
  assert.equal(tx.reap().length, cases.length + 1, 'every chain is returned');
  assert.equal(r.dev.stats.txDropped, cases.length);
  assert.equal(r.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.deepEqual(r.errors, []);
  const readBytes = r.ram.log.filter((x) => x.op === 'read').reduce((n, x) => n + x.len, 0);
  assert.ok(readBytes < 300_000, `the device read ${readBytes} bytes, not the oversized chains`);
});

test('a frame of exactly 65535 bytes is sent; a frame of 14 bytes is sent', () => {
  const r = rig(4 << 20);
  const { tx } = bringUp(r);
  const big = frame(65535), small = frame(14);
  tx.add([{ addr: put(r, hdr()), len: NET_HDR_SIZE }, { addr: put(r, big), len: big.length }]);
  tx.add([{ addr: put(r, Buffer.concat([hdr(), small])), len: NET_HDR_SIZE + 14 }]);
  tx.kick();
  assert.deepEqual(r.be.sent.map((f) => f.length), [65535, 14]);
});

test('receive with MRG_RXBUF: a frame spans as many buffers as it needs, num_buffers in the first header', () => {
  const r = rig();
  const { rx } = bringUp(r);
  const bufs = postRx(r, rx, 4, 1000);
  const f = frame(2500, 9);
  assert.equal(r.be.inject(f), true);
  const used = rx.reap();
  assert.deepEqual(used.map((u) => u.len), [1000, 1000, 512]);
  // Reassemble by hand (reap consumed them): header in the first buffer.
  const a0 = bufs.get(used[0]!.id)!;
  const h = r.ram.get(a0, NET_HDR_SIZE);
  assert.equal(h[10]! | (h[11]! << 8), 3);
  const data = Buffer.concat([r.ram.get(a0 + NET_HDR_SIZE, 988), r.ram.get(bufs.get(used[1]!.id)!, 1000), r.ram.get(bufs.get(used[2]!.id)!, 512)]);
  assert.deepEqual(data, Buffer.from(f));
  assert.equal(r.drv.ack() & 1, 1);
  // A small frame fits the one buffer left.
  r.be.inject(frame(60, 4));
  const got = received(r, rx, bufs);
  assert.deepEqual(got.map(([n, d]) => [n, d.length]), [[1, 60]]);
  assert.deepEqual(r.ram.violations, []);
});

test('receive with MRG_RXBUF: a frame larger than the whole ring of buffers is dropped; the buffers serve the next frame', () => {
  const r = rig();
  const [rx] = r.drv.init([4, undefined], ALL);
  const bufs = postRx(r, rx!, 4, 100);
  assert.equal(r.be.inject(frame(1000)), true);
  assert.equal(r.dev.heldFrames, 0, 'dropped, not held forever');
  assert.equal(r.dev.stats.rxDropped, 1);
  r.be.inject(frame(150, 3));
  const got = received(r, rx!, bufs);
  assert.deepEqual(got.map(([n, d]) => [n, Buffer.from(d)]), [[2, Buffer.from(frame(150, 3))]]);
});

test('receive without MRG_RXBUF: one chain per frame (header + frame, num_buffers 1); a chain too small loses the frame, not the chain', () => {
  const r = rig();
  const { rx } = bringUp(r, ALL & ~feature(VIRTIO_NET_F_MRG_RXBUF));
  // Linux without mergeable buffers: a header descriptor then a data descriptor.
  const bufs = new Map<number, number>();
  const h = r.drv.arena.alloc(NET_HDR_SIZE), d = r.drv.arena.alloc(1514);
  // The header and the data are contiguous here, so reading them as one works.
  assert.equal(d, h + 16);
  const head = rx.add([{ addr: h, len: NET_HDR_SIZE, write: true }, { addr: d, len: 1514, write: true }]);
  bufs.set(head, h);
  rx.kick();
  r.be.inject(frame(3000)); // too big for the chain: dropped
  r.be.inject(frame(100, 5));
  const used = rx.reap();
  assert.equal(used.length, 1);
  assert.equal(used[0]!.len, NET_HDR_SIZE + 100);
  const hb = r.ram.get(h, NET_HDR_SIZE);
  assert.equal(hb[10]! | (hb[11]! << 8), 1, 'num_buffers is 1 without MRG_RXBUF');
  assert.deepEqual(Buffer.from(r.ram.get(d, 100)), Buffer.from(frame(100, 5)));
  assert.equal(r.dev.stats.rxDropped, 1);
});

test('frames wait while the guest has no buffers and are delivered, in order, once it adds some', () => {
  const r = rig();
  const { rx } = bringUp(r);
  for (let i = 0; i < 5; i++) assert.equal(r.be.inject(frame(60 + i, i)), true);
  assert.equal(r.dev.heldFrames, 5);
  assert.equal(rx.reap().length, 0);
  const bufs = postRx(r, rx, 3, 1526);
  assert.equal(r.dev.heldFrames, 2);
  postRx(r, rx, 3, 1526, bufs);
  assert.equal(r.dev.heldFrames, 0);
  const got = received(r, rx, bufs);
  assert.deepEqual(got.map(([, d]) => Buffer.from(d)), [0, 1, 2, 3, 4].map((i) => Buffer.from(frame(60 + i, i))));
});

test('the hold queue is bounded: beyond 256 frames receive returns false; the back end is resumed when room returns', () => {
  const r = rig(4 << 20);
  const { rx } = bringUp(r);
  let refused = 0;
  for (let i = 0; i < MAX_HELD + 20; i++) if (!r.be.inject(frame(60, i))) refused++;
  assert.equal(refused, 20);
  assert.equal(r.dev.heldFrames, MAX_HELD);
  assert.equal(r.be.resumes, 0);
  const bufs = postRx(r, rx, 256, 1526);
  assert.equal(r.dev.heldFrames, 0);
  assert.equal(r.be.resumes, 1);
  const got = received(r, rx, bufs);
  assert.equal(got.length, MAX_HELD);
  assert.deepEqual(Buffer.from(got[255]![1]), Buffer.from(frame(60, 255)), 'the first 256 are kept, later ones dropped');
});

test('before the driver is ready frames are dropped; a reset forgets held frames and reserved buffers', () => {
  const r = rig();
  assert.equal(r.be.inject(frame(60)), false);
  const { rx } = bringUp(r);
  postRx(r, rx, 1, 500); // reserved but too small for the frame below
  r.be.inject(frame(1000));
  assert.equal(r.dev.heldFrames, 1);
  assert.equal(r.dev.save().reserved.length, 1);
  r.drv.w(0x070, 0); // reset
  assert.equal(r.dev.heldFrames, 0);
  assert.equal(r.dev.save().reserved.length, 0);
});

test('save/restore: buffers the device took (reserved) survive; a restored device completes the waiting frame', () => {
  const r = rig();
  const { rx } = bringUp(r);
  const bufs = postRx(r, rx, 1, 600);
  const f = frame(1000, 7);
  r.be.inject(f);
  assert.equal(r.dev.heldFrames, 1);
  const state = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;
  assert.equal(state.device.reserved.length, 1);

  const r2 = rig();
  // Same RAM contents: copy the pages the first rig wrote.
  r2.ram.set(BASE, r.ram.get(BASE, 1 << 20));
  r2.t.restore(state);
  assert.equal(r2.dev.save().reserved.length, 1);
  // The held frame itself was not saved (lost, as on a wire); a new one uses the reserved buffer first.
  assert.equal(r2.be.inject(frame(1000, 8)), true);
  assert.equal(r2.dev.heldFrames, 1, 'one 600-byte buffer is not enough');
  // The first rig's driver bookkeeping posts another buffer; its RAM is then mirrored to the restored machine.
  const a = r.drv.arena.alloc(600, 16);
  const head = rx.add([{ addr: a, len: 600, write: true }]);
  bufs.set(head, a);
  // rx wrote into r.ram; mirror the ring and descriptor writes into r2.ram.
  r2.ram.set(BASE, r.ram.get(BASE, 1 << 20));
  r2.t.write(0x050, 4, 0n);
  assert.equal(r2.dev.heldFrames, 0);
  // The used ring, in the restored machine's RAM.
  const usedIdx = r2.ram.u16(rx.used + 2);
  assert.equal(usedIdx, 2);
  const e0 = rx.used + 4, e1 = rx.used + 12;
  assert.equal(r2.ram.u32(e0), [...bufs.keys()][0]);
  assert.deepEqual([r2.ram.u32(e0 + 4), r2.ram.u32(e1 + 4)], [600, 412]);
  const first = bufs.get(r2.ram.u32(e0))!, second = bufs.get(r2.ram.u32(e1))!;
  const h = r2.ram.get(first, NET_HDR_SIZE);
  assert.equal(h[10], 2);
  assert.deepEqual(Buffer.concat([r2.ram.get(first + NET_HDR_SIZE, 588), r2.ram.get(second, 412)]), Buffer.from(frame(1000, 8)));

  assert.throws(() => r2.dev.restore({ version: 2 } as unknown as VirtioNetState), RangeError);
  assert.throws(() => r2.dev.restore({ version: 1, reserved: [{ head: -1, writable: [] }] }), RangeError);
  assert.throws(() => r2.dev.restore({ version: 1, reserved: [{ head: 0, writable: [{ addr: 1.5, len: 3 }] }] }), RangeError);
  assert.throws(() => r2.dev.restore({ version: 1, reserved: 'x' } as unknown as VirtioNetState), RangeError);
  assert.deepEqual(r2.ram.violations, []);
});

test('close() closes the back end; later frames are dropped', async () => {
  const r = rig();
  bringUp(r);
  await r.dev.close();
  assert.equal(r.be.closed, true);
  assert.equal(r.be.inject(frame(60)), false);
});

test('fuzz: random descriptor tables on both queues and random frames never throw and never leave RAM (seeds 1..40)', () => {
  const RAM = 256 * 1024;
  let delivered = 0, sent = 0, resets = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const R = rng(seed);
    const int = (n: number): number => Math.floor(R() * n);
    const r = rig(RAM);
    const want = (R() < 0.5 ? ALL : ALL & ~feature(VIRTIO_NET_F_MRG_RXBUF)) & (R() < 0.3 ? ~feature(29) : ~0n);
    const size = 1 << (1 + int(6));
    let [rx, tx] = r.drv.init([size, size], want);
    const bufArea = r.drv.arena.alloc(64 * 1024, 16);
    const randAddr = (): number => {
      const x = R();
      if (x < 0.85) return bufArea + int(64 * 1024);
      return [BASE - 8, BASE + RAM - 4, BASE + RAM, 0, 2 ** 40, BASE + int(RAM)][int(6)]!;
    };
    const randLen = (): number => {
      const x = R();
      if (x < 0.1) return 0;
      if (x < 0.8) return 1 + int(2000);
      return [NET_HDR_SIZE, 13, 65536 + 12, 0xffffffff, 0x80000000][int(5)]!;
    };
    for (let step = 0; step < 300; step++) {
      if ((r.drv.status() & STATUS_DEVICE_NEEDS_RESET) && R() < 0.2) {
        resets++;
        // Re-initialize, as a driver does after DEVICE_NEEDS_RESET.
        try { [rx, tx] = r.drv.init([size, size], want); } catch { break; /* the arena is exhausted: end this seed */ }
        continue;
      }
      const x = R();
      const q = R() < 0.5 ? rx! : tx!;
      const isTx = q === tx;
      if (x < 0.3) {
        // A well-formed chain of random shape: header and frame for the transmitq, writable buffers for the receiveq.
        const f = R() < 0.9 ? frame(14 + int(1500), step) : frame(14, step).subarray(0, int(14));
        const n = 1 + int(3);
        try {
          if (isTx) {
            const data = Buffer.concat([hdr(R() < 0.05 ? 1 : 0), f]);
            const a = bufArea + int(64 * 1024 - data.length);
            r.ram.set(a, data);
            const cut = Math.min(data.length, int(data.length + 1));
            q.add(n === 1 ? [{ addr: a, len: data.length }] : [{ addr: a, len: cut }, { addr: a + cut, len: data.length - cut }], { indirect: R() < 0.3 });
          } else {
            q.add(Array.from({ length: n }, () => { const len = 1 + int(2000); return { addr: bufArea + int(64 * 1024 - len), len, write: true }; }), { indirect: R() < 0.3 });
          }
        } catch { /* the driver's side of the queue is full */ }
        if (R() < 0.9) q.kick();
        if (R() < 0.5) q.reap();
      } else if (x < 0.4) {
        // A random chain of direct descriptors written by hand (possibly looping, out of range, mixed directions).
        const n = 1 + int(4);
        const head = int(q.size);
        let i = head;
        for (let k = 0; k < n; k++) {
          const next = R() < 0.9 ? int(q.size) : int(0x10000);
          const flags = (k + 1 < n ? 1 : 0) | (R() < 0.5 ? 2 : 0) | (R() < 0.05 ? 4 : 0);
          q.writeDesc(q.desc, i, randAddr(), randLen(), flags, next);
          i = next % q.size;
        }
        q.publish(head);
        if (R() < 0.05) q.availIdx = (q.availIdx + int(0x10000)) & 0xffff;
        if (R() < 0.8) q.kick();
      } else if (x < 0.85) {
        if (r.be.receive!(frame(14 + int(3000), step))) delivered++;
      } else if (x < 0.9) {
        r.ram.set(bufArea + int(60000), Uint8Array.from({ length: 32 }, () => int(256)));
      } else if (x < 0.95) {
        r.drv.ack();
      } else {
        const s = r.t.save();
        r.t.restore(JSON.parse(JSON.stringify(s)) as typeof s);
      }
    }
    sent += r.be.sent.length;
    assert.deepEqual(r.ram.violations, [], `seed ${seed}`);
    for (const f of r.be.sent) assert.ok(f.length >= 14 && f.length <= 65535);
  }
  assert.ok(delivered > 1000 && sent > 500, `the fuzz exercised both directions (${delivered} delivered, ${sent} sent, ${resets} resets)`);
});

test('MRG_RXBUF and VERSION_1 are accepted together; the device works without EVENT_IDX and INDIRECT_DESC too', () => {
  const r = rig();
  const { rx, tx } = bringUp(r, feature(F_VERSION_1) | NET_FEATURES);
  const bufs = postRx(r, rx, 2, 1526);
  tx.add([{ addr: put(r, Buffer.concat([hdr(), frame(60)])), len: 72 }]);
  tx.kick();
  assert.equal(r.be.sent.length, 1);
  r.be.inject(frame(70));
  assert.deepEqual(received(r, rx, bufs).map(([n, d]) => [n, d.length]), [[1, 70]]);
});
