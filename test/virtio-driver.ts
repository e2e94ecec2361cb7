/**
 * Test support for the virtio tests: a fake guest RAM that flags any access
 * outside itself, and a driver that does what Linux's virtio_mmio and
 * virtio_ring do (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue
 * setup, DRIVER_OK, posting buffers, reaping used ones).
 */
import {
  F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, MMIO_MAGIC, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID,
  REG_DRIVER_FEATURES, REG_DRIVER_FEATURES_SEL, REG_INTERRUPT_ACK, REG_INTERRUPT_STATUS, REG_MAGIC_VALUE, REG_QUEUE_DESC_HIGH,
  REG_QUEUE_DESC_LOW, REG_QUEUE_DEVICE_HIGH, REG_QUEUE_DEVICE_LOW, REG_QUEUE_DRIVER_HIGH, REG_QUEUE_DRIVER_LOW,
  REG_QUEUE_NOTIFY, REG_QUEUE_NUM, REG_QUEUE_NUM_MAX, REG_QUEUE_READY, REG_QUEUE_SEL, REG_STATUS, REG_VERSION,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE, feature,
} from '../src/devices/virtio/constants.js';
import type { GuestMemory } from '../src/devices/virtio/memory.js';
import { prng } from './support.js';
import type { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';

const PAGE = 4096;

/** The driver's own view of guest RAM (no checks: the driver is trusted by the test). */
export interface DriverRam {
  readonly base: number;
  readonly size: number;
  get(gpa: number, length: number): Uint8Array;
  set(gpa: number, data: Uint8Array): void;
}

export interface Access { readonly op: 'read' | 'write'; readonly gpa: number; readonly len: number }

/**
 * Guest RAM [base, base + size), backed sparsely by 4 KiB pages (so a nominal
 * RAM of gigabytes costs nothing). Device accesses that leave it are recorded
 * in `violations` (and refused); the test fails on any.
 */
export class FakeRam implements GuestMemory, DriverRam {
  readonly violations: string[] = [];
  /** When set, every device access is appended. */
  log: Access[] | null = null;
  private pages = new Map<number, Uint8Array>();

  constructor(readonly base: number, readonly size: number) {}

  private inside(gpa: number, len: number): boolean {
    return Number.isSafeInteger(gpa) && Number.isSafeInteger(len) && len > 0 && gpa >= this.base && gpa + len <= this.base + this.size;
  }

  isRam(gpa: number, length: number): boolean {
    return this.inside(gpa, length);
  }

  read(gpa: number, length: number): Uint8Array | null {
    if (!this.inside(gpa, length)) {
      this.violations.push(`read 0x${gpa.toString(16)}+${length}`);
      return null;
    }
    this.log?.push({ op: 'read', gpa, len: length });
    return this.get(gpa, length);
  }

  write(gpa: number, data: Uint8Array): boolean {
    if (!this.inside(gpa, data.length)) {
      this.violations.push(`write 0x${gpa.toString(16)}+${data.length}`);
      return false;
    }
    this.log?.push({ op: 'write', gpa, len: data.length });
    this.set(gpa, data);
    return true;
  }

  // The driver's (and the test's) own access, not checked or logged.
  get(gpa: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length;) {
      const a = gpa + i - this.base;
      const p = Math.floor(a / PAGE), o = a % PAGE;
      const n = Math.min(length - i, PAGE - o);
      const page = this.pages.get(p);
      if (page) out.set(page.subarray(o, o + n), i);
      i += n;
    }
    return out;
  }

  set(gpa: number, data: Uint8Array): void {
    for (let i = 0; i < data.length;) {
      const a = gpa + i - this.base;
      const p = Math.floor(a / PAGE), o = a % PAGE;
      const n = Math.min(data.length - i, PAGE - o);
      let page = this.pages.get(p);
      if (!page) { page = new Uint8Array(PAGE); this.pages.set(p, page); }
      page.set(data.subarray(i, i + n), o);
      i += n;
    }
  }

  u16(gpa: number): number { const b = this.get(gpa, 2); return b[0]! | (b[1]! << 8); }
  u32(gpa: number): number { return new DataView(this.get(gpa, 4).buffer).getUint32(0, true); }
  setU16(gpa: number, v: number): void { this.set(gpa, Uint8Array.of(v & 0xff, (v >> 8) & 0xff)); }
  setU32(gpa: number, v: number): void { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v >>> 0, true); this.set(gpa, b); }

  /** A copy of every page, for `changedSince`. */
  snapshot(): Map<number, Uint8Array> {
    const m = new Map<number, Uint8Array>();
    for (const [p, b] of this.pages) m.set(p, b.slice());
    return m;
  }

  /** Guest addresses of the bytes that differ from a snapshot. */
  changedSince(snap: Map<number, Uint8Array>): number[] {
    const out: number[] = [];
    for (const [p, b] of this.pages) {
      const old = snap.get(p);
      for (let i = 0; i < PAGE; i++) if (b[i] !== (old ? old[i] : 0)) out.push(this.base + p * PAGE + i);
    }
    return out;
  }
}

/** A bump allocator over the fake RAM (for rings and buffers). */
export class Arena {
  private next: number;
  constructor(readonly ram: DriverRam, start = ram.base) { this.next = start; }
  alloc(len: number, align = 16): number {
    const a = Math.ceil(this.next / align) * align;
    if (a + len > this.ram.base + this.ram.size) throw new RangeError('fake RAM exhausted');
    this.next = a + len;
    return a;
  }
}

export interface Buf { readonly addr: number; readonly len: number; readonly write?: boolean }
export interface UsedElem { readonly id: number; readonly len: number }

/** The driver's side of one split virtqueue. */
export class DriverQueue {
  availIdx = 0;
  lastUsed = 0;
  private free: number[];

  constructor(readonly drv: Driver, readonly index: number, readonly size: number,
    readonly desc: number, readonly avail: number, readonly used: number) {
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  get ram(): DriverRam { return this.drv.ram; }

  /** Writes descriptor `i` of a table at `table`. */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, BigInt(addr), true);
    v.setUint32(8, len >>> 0, true);
    v.setUint16(12, flags, true);
    v.setUint16(14, next, true);
    this.ram.set(table + 16 * i, b);
  }

  /** Places a chain (optionally through one indirect table) and its head in the available ring; publishes it. */
  add(bufs: readonly Buf[], opts: { indirect?: boolean } = {}): number {
    if (opts.indirect) {
      const table = this.drv.arena.alloc(16 * bufs.length, 16);
      bufs.forEach((b, i) => this.writeDesc(table, i, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), i + 1));
      const head = this.take();
      this.writeDesc(this.desc, head, table, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT, 0);
      this.publish(head);
      return head;
    }
    const ids = bufs.map(() => this.take());
    bufs.forEach((b, i) => this.writeDesc(this.desc, ids[i]!, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < bufs.length ? VIRTQ_DESC_F_NEXT : 0), ids[i + 1] ?? 0));
    this.publish(ids[0]!);
    return ids[0]!;
  }

  private take(): number {
    const d = this.free.shift();
    if (d === undefined) throw new RangeError('driver queue is full');
    return d;
  }

  /** Ring entry, then (after it) the idx that exposes it. */
  publish(head: number): void {
    setU16(this.ram, this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    setU16(this.ram, this.avail + 2, this.availIdx);
  }

  kick(): void { this.drv.w(REG_QUEUE_NOTIFY, this.index); }

  /**
   * Notifies only if the device asked for it, as virtqueue_kick_prepare: with
   * EVENT_IDX when avail_event lies in [old, availIdx), else unless the used
   * ring's flags say VIRTQ_USED_F_NO_NOTIFY. Returns whether it notified.
   */
  kickIfNeeded(old: number): boolean {
    const need = this.drv.eventIdx
      ? ((this.availEvent() - old) & 0xffff) < ((this.availIdx - old) & 0xffff)
      : (u16(this.ram, this.used) & 1) === 0;
    if (need) this.kick();
    return need;
  }

  /** New used elements since the last call (descriptors go back to the free list). */
  reap(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = u16(this.ram, this.used + 2);
    while (this.lastUsed !== idx) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      const id = u32(this.ram, e), len = u32(this.ram, e + 4);
      out.push({ id, len });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      this.release(id);
    }
    return out;
  }

  private release(head: number): void {
    let i = head;
    for (let n = 0; n < this.size; n++) {
      this.free.push(i);
      const flags = u16(this.ram, this.desc + 16 * i + 12);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      i = u16(this.ram, this.desc + 16 * i + 14);
    }
  }

  setAvailFlags(flags: number): void { setU16(this.ram, this.avail, flags); }
  setUsedEvent(v: number): void { setU16(this.ram, this.avail + 4 + 2 * this.size, v); }
  availEvent(): number { return u16(this.ram, this.used + 4 + 8 * this.size); }
  usedIdx(): number { return u16(this.ram, this.used + 2); }
}

export const ALL_RING_FEATURES = feature(F_VERSION_1) | feature(F_EVENT_IDX) | feature(F_INDIRECT_DESC);

export class Driver {
  readonly arena: Arena;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  eventIdx = false;
  readonly queues: DriverQueue[] = [];

  constructor(readonly t: VirtioMmioTransport<unknown>, readonly ram: DriverRam, arenaStart?: number) {
    this.arena = new Arena(ram, arenaStart);
  }

  r(off: number): number { return Number(this.t.read(off, 4)); }
  w(off: number, v: number): void { this.t.write(off, 4, BigInt(v >>> 0)); }
  status(): number { return this.r(REG_STATUS); }
  addStatus(bits: number): void { this.w(REG_STATUS, this.status() | bits); }

  deviceFeatures(): bigint {
    this.w(REG_DEVICE_FEATURES_SEL, 1);
    const hi = this.r(REG_DEVICE_FEATURES);
    this.w(REG_DEVICE_FEATURES_SEL, 0);
    return (BigInt(hi) << 32n) | BigInt(this.r(REG_DEVICE_FEATURES));
  }

  writeFeatures(f: bigint): void {
    this.w(REG_DRIVER_FEATURES_SEL, 1);
    this.w(REG_DRIVER_FEATURES, Number((f >> 32n) & 0xffffffffn));
    this.w(REG_DRIVER_FEATURES_SEL, 0);
    this.w(REG_DRIVER_FEATURES, Number(f & 0xffffffffn));
  }

  /** Probe, reset, ACKNOWLEDGE, DRIVER, features (those wanted that are offered), FEATURES_OK. True if FEATURES_OK stuck. */
  negotiate(want: bigint = ALL_RING_FEATURES): boolean {
    if (this.r(REG_MAGIC_VALUE) !== MMIO_MAGIC || this.r(REG_VERSION) !== 2 || this.r(REG_DEVICE_ID) === 0) throw new Error('not a virtio-mmio v2 device');
    this.w(REG_STATUS, 0);
    if (this.status() !== 0) throw new Error('reset did not complete');
    this.queues.length = 0;
    this.addStatus(STATUS_ACKNOWLEDGE);
    this.addStatus(STATUS_DRIVER);
    const f = this.deviceFeatures() & want;
    this.writeFeatures(f);
    this.eventIdx = (f & feature(F_EVENT_IDX)) !== 0n;
    this.addStatus(STATUS_FEATURES_OK);
    return (this.status() & STATUS_FEATURES_OK) !== 0;
  }

  /** Sets up queue `index` with `size` entries (default: the maximum), as Linux's vm_setup_vq. */
  setupQueue(index: number, size?: number): DriverQueue {
    this.w(REG_QUEUE_SEL, index);
    if (this.r(REG_QUEUE_READY) !== 0) throw new Error(`queue ${index} already in use`);
    const max = this.r(REG_QUEUE_NUM_MAX);
    if (max === 0) throw new Error(`queue ${index} is not available`);
    const n = size ?? max;
    const desc = this.arena.alloc(16 * n, 16);
    const avail = this.arena.alloc(6 + 2 * n, 2);
    const used = this.arena.alloc(6 + 8 * n, 4);
    this.w(REG_QUEUE_NUM, n);
    this.w(REG_QUEUE_DESC_LOW, desc); this.w(REG_QUEUE_DESC_HIGH, Math.floor(desc / 2 ** 32));
    this.w(REG_QUEUE_DRIVER_LOW, avail); this.w(REG_QUEUE_DRIVER_HIGH, Math.floor(avail / 2 ** 32));
    this.w(REG_QUEUE_DEVICE_LOW, used); this.w(REG_QUEUE_DEVICE_HIGH, Math.floor(used / 2 ** 32));
    this.w(REG_QUEUE_READY, 1);
    const q = new DriverQueue(this, index, n, desc, avail, used);
    this.queues[index] = q;
    return q;
  }

  /** The whole Linux sequence: negotiate, set up queues, DRIVER_OK. */
  init(queueSizes: readonly (number | undefined)[], want: bigint = ALL_RING_FEATURES): DriverQueue[] {
    if (!this.negotiate(want)) throw new Error('device refused FEATURES_OK');
    const qs = queueSizes.map((n, i) => this.setupQueue(i, n));
    this.addStatus(STATUS_DRIVER_OK);
    return qs;
  }

  /** Reads and acknowledges InterruptStatus, as the interrupt handler does. */
  ack(): number {
    const s = this.r(REG_INTERRUPT_STATUS);
    this.w(REG_INTERRUPT_ACK, s);
    return s;
  }
}

/** A small deterministic PRNG (mulberry32). */
export const rng = prng;

export const u16 = (ram: DriverRam, gpa: number): number => { const b = ram.get(gpa, 2); return b[0]! | (b[1]! << 8); };
export const u32 = (ram: DriverRam, gpa: number): number => new DataView(ram.get(gpa, 4).buffer).getUint32(0, true);
export const setU16 = (ram: DriverRam, gpa: number, v: number): void => ram.set(gpa, Uint8Array.of(v & 0xff, (v >> 8) & 0xff));

/** Writes descriptor `i` of the table at `table` directly, any values at all (for malformed-chain tests). */
export function rawDesc(ram: DriverRam, table: number, i: number, addr: bigint, len: number, flags: number, next: number): void {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, addr), true);
  v.setUint32(8, len >>> 0, true);
  v.setUint16(12, flags, true);
  v.setUint16(14, next, true);
  ram.set(table + 16 * i, b);
}
