/**
 * Split virtqueues (virtio 1.2, section 2.7), device side.
 *
 * A queue lives in guest memory the driver owns: a descriptor table (16 bytes
 * per entry), an available ring the driver writes (flags, idx, ring[size],
 * used_event) and a used ring the device writes (flags, idx, ring[size] of
 * {id, len}, avail_event). All of it is hostile input. Every access is
 * bounds-checked through `CheckedMemory`; a malformed chain (a loop, a chain
 * longer than its table, a next index out of range, nested or malformed
 * indirect tables, buffers outside RAM, more than 2^32 bytes in total, an
 * available index that moved by more than the queue size) makes the queue
 * report a fault to its owner, which sets DEVICE_NEEDS_RESET (2.1.2). Nothing
 * here throws on guest data.
 *
 * Memory order: the guest is another CPU. The device reads the available idx,
 * then the ring entries it covers, then the descriptors; it writes a used
 * element before the used idx that publishes it. `GuestMemory` makes the
 * 2-byte index accesses atomic.
 */
import {
  AVAIL_ALIGN, DESC_ALIGN, DESC_SIZE, MAX_QUEUE_SIZE, USED_ALIGN, USED_ELEM_SIZE,
  VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
} from './constants.js';
import { address64, type CheckedMemory } from './memory.js';

/** One guest buffer of a chain: guest-physical address and length, checked to lie in RAM. */
export interface DescriptorSegment {
  readonly addr: number;
  readonly len: number;
}

/** A descriptor chain taken from the available ring. */
export interface DescriptorChain {
  /** The head descriptor index: the id to give back in `push`. */
  readonly head: number;
  /** Device-readable buffers, in order (zero-length descriptors are left out). */
  readonly readable: readonly DescriptorSegment[];
  /** Device-writable buffers, in order, after all readable ones. */
  readonly writable: readonly DescriptorSegment[];
  readonly readableBytes: number;
  readonly writableBytes: number;
}

/** What a queue needs from the transport that holds it. */
export interface QueueOwner {
  readonly mem: CheckedMemory;
  /** The device may use its queues: DRIVER_OK is set, FAILED and DEVICE_NEEDS_RESET are not. */
  live(): boolean;
  /** The driver broke the virtqueue rules: the device needs a reset. Never throws. */
  fault(reason: string): void;
}

export interface VirtqueueState {
  readonly version: 1;
  /** Queue size the driver chose (QueueNum); the maximum until it writes one. */
  size: number;
  ready: boolean;
  descLo: number; descHi: number;
  driverLo: number; driverHi: number;
  deviceLo: number; deviceHi: number;
  /** Free-running (mod 2^16) index of the next available ring entry to take. */
  lastAvail: number;
  /** Free-running (mod 2^16) used idx: where the next used element goes. */
  usedIdx: number;
  /** The used idx when the driver was last considered for a notification. */
  signalled: number;
  /** VIRTIO_F_EVENT_IDX / VIRTIO_F_INDIRECT_DESC were negotiated (set at FEATURES_OK). */
  eventIdx: boolean;
  indirect: boolean;
}

/** The most a chain may carry (2.7.5: drivers MUST NOT add chains longer than 2^32 bytes). */
const MAX_CHAIN_BYTES = 2 ** 32;

const isPowerOf2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

export class Virtqueue {
  private s: VirtqueueState;
  /** The last available idx read from the ring (derived, re-read when exhausted). */
  private shadowAvail = 0;

  constructor(readonly index: number, readonly maxSize: number, private readonly owner: QueueOwner) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > MAX_QUEUE_SIZE || !isPowerOf2(maxSize)) {
      throw new RangeError(`queue ${index}: maximum size ${maxSize} is not a power of 2 in 1..${MAX_QUEUE_SIZE}`);
    }
    this.s = Virtqueue.initial(maxSize);
  }

  private static initial(maxSize: number): VirtqueueState {
    return {
      version: 1, size: maxSize, ready: false,
      descLo: 0, descHi: 0, driverLo: 0, driverHi: 0, deviceLo: 0, deviceHi: 0,
      lastAvail: 0, usedIdx: 0, signalled: 0, eventIdx: false, indirect: false,
    };
  }

  // ---------------------------------------------------------------- configuration (transport)

  get size(): number { return this.s.size; }
  get ready(): boolean { return this.s.ready; }
  get descAddr(): number { return address64(this.s.descLo, this.s.descHi); }
  get driverAddr(): number { return address64(this.s.driverLo, this.s.driverHi); }
  get deviceAddr(): number { return address64(this.s.deviceLo, this.s.deviceHi); }
  get lastAvail(): number { return this.s.lastAvail; }
  get usedIdx(): number { return this.s.usedIdx; }

  /** QueueNum: any 32-bit value is recorded; `enable` checks it. */
  setSize(v: number): void { this.s.size = v >>> 0; }
  setDesc(half: 0 | 1, v: number): void { if (half) this.s.descHi = v >>> 0; else this.s.descLo = v >>> 0; }
  setDriver(half: 0 | 1, v: number): void { if (half) this.s.driverHi = v >>> 0; else this.s.driverLo = v >>> 0; }
  setDevice(half: 0 | 1, v: number): void { if (half) this.s.deviceHi = v >>> 0; else this.s.deviceLo = v >>> 0; }

  /** The features that change how the rings are read (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC). */
  setFeatures(eventIdx: boolean, indirect: boolean): void {
    this.s.eventIdx = eventIdx;
    this.s.indirect = indirect;
  }

  /**
   * QueueReady = 1: checks the size (a power of 2, at most the maximum) and that
   * the three areas are aligned and lie in RAM. Returns null when the queue is
   * now ready, else why it is not.
   */
  enable(): string | null {
    const { size } = this.s;
    if (!isPowerOf2(size) || size > this.maxSize) return `queue ${this.index}: size ${size} is not a power of 2 in 1..${this.maxSize}`;
    const mem = this.owner.mem;
    const desc = this.descAddr, driver = this.driverAddr, device = this.deviceAddr;
    if (desc < 0 || desc % DESC_ALIGN || !mem.valid(desc, DESC_SIZE * size)) return `queue ${this.index}: descriptor table is misaligned or not in RAM`;
    if (driver < 0 || driver % AVAIL_ALIGN || !mem.valid(driver, 6 + 2 * size)) return `queue ${this.index}: available ring is misaligned or not in RAM`;
    if (device < 0 || device % USED_ALIGN || !mem.valid(device, 6 + USED_ELEM_SIZE * size)) return `queue ${this.index}: used ring is misaligned or not in RAM`;
    this.s.ready = true;
    this.s.lastAvail = 0;
    this.s.usedIdx = 0;
    this.s.signalled = 0;
    this.shadowAvail = 0;
    return null;
  }

  /** QueueReady = 0: the device stops using the queue. */
  disable(): void {
    this.s.ready = false;
  }

  /** Device reset: back to the initial state. */
  reset(): void {
    this.s = Virtqueue.initial(this.maxSize);
    this.shadowAvail = 0;
  }

  // ---------------------------------------------------------------- device side

  private usable(): boolean {
    return this.s.ready && this.owner.live();
  }

  private fault(reason: string): void {
    this.owner.fault(`queue ${this.index}: ${reason}`);
  }

  /**
   * Chains the driver has made available and the device has not taken yet (0
   * when the queue is not usable, or after a fault: an available idx that moved
   * by more than the queue size).
   */
  available(): number {
    if (!this.usable()) return 0;
    const s = this.s;
    const idx = this.owner.mem.u16(this.driverAddr + 2);
    if (idx < 0) { this.fault('available ring is not readable'); return 0; }
    const n = (idx - s.lastAvail) & 0xffff;
    if (n > s.size) { this.fault(`available idx ${idx} is ${n} entries ahead of ${s.lastAvail}, more than the queue size ${s.size}`); return 0; }
    this.shadowAvail = idx;
    return n;
  }

  /**
   * Asks the driver to notify the next buffer it makes available (with
   * VIRTIO_F_EVENT_IDX: avail_event = the available idx; without it the device
   * never sets VIRTQ_USED_F_NO_NOTIFY, so the driver always notifies). For a
   * device that waits for more buffers than the ring holds now. Returns true if
   * buffers arrived meanwhile: look again, or the notification may never come.
   */
  armNotification(): boolean {
    if (!this.usable()) return false;
    const s = this.s;
    const before = (s.lastAvail + this.available()) & 0xffff;
    if (!this.usable()) return false;
    if (s.eventIdx) this.writeAvailEvent(before);
    if (!this.usable()) return false;
    return ((s.lastAvail + this.available()) & 0xffff) !== before;
  }

  /** Takes the next available chain; null if there is none, the queue is not usable, or the chain is malformed (fault reported). */
  pop(): DescriptorChain | null {
    if (!this.usable()) return null;
    const s = this.s;
    if (this.shadowAvail === s.lastAvail && this.available() === 0) {
      if (!s.eventIdx || !this.usable()) return null;
      // Ask to be notified of the next buffer (2.7.10: avail_event), then look
      // again: the driver may have added one before it could see the request.
      this.writeAvailEvent(s.lastAvail);
      if (!this.usable() || this.available() === 0) return null;
    }
    if (!this.usable()) return null;
    const mem = this.owner.mem;
    const slot = s.lastAvail & (s.size - 1);
    const head = mem.u16(this.driverAddr + 4 + 2 * slot);
    if (head < 0) { this.fault('available ring is not readable'); return null; }
    if (head >= s.size) { this.fault(`available ring entry ${slot} names descriptor ${head}, beyond the queue size ${s.size}`); return null; }
    const chain = this.walk(head);
    if (!chain) return null;
    s.lastAvail = (s.lastAvail + 1) & 0xffff;
    if (s.eventIdx) this.writeAvailEvent(s.lastAvail);
    return chain;
  }

  /** avail_event: the driver notifies when it writes the available ring entry at `idx` (2.7.10). */
  private writeAvailEvent(idx: number): void {
    if (!this.owner.mem.setU16(this.deviceAddr + 4 + USED_ELEM_SIZE * this.s.size, idx)) this.fault('used ring is not writable');
  }

  /** Follows a chain from `head`, checking everything; null after a fault. */
  private walk(head: number): DescriptorChain | null {
    const mem = this.owner.mem;
    const s = this.s;
    const readable: DescriptorSegment[] = [];
    const writable: DescriptorSegment[] = [];
    let readableBytes = 0, writableBytes = 0;
    let table = this.descAddr, tableSize = s.size, i = head, seen = 0;
    let inIndirect = false, sawWritable = false;
    for (;;) {
      if (++seen > tableSize) {
        this.fault(`chain from ${head} is longer than its ${inIndirect ? 'indirect table' : 'queue'} (${tableSize} descriptors): a loop?`);
        return null;
      }
      const d = mem.read(table + DESC_SIZE * i, DESC_SIZE);
      if (!d) { this.fault(`descriptor ${i} is not readable`); return null; }
      const addrLo = d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24);
      const addrHi = d[4]! | (d[5]! << 8) | (d[6]! << 16) | (d[7]! << 24);
      const len = (d[8]! | (d[9]! << 8) | (d[10]! << 16) | (d[11]! << 24)) >>> 0;
      const flags = d[12]! | (d[13]! << 8);
      const next = d[14]! | (d[15]! << 8);
      const addr = address64(addrLo, addrHi);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (inIndirect) { this.fault('an indirect table refers to another indirect table'); return null; }
        if (!s.indirect) { this.fault('indirect descriptor without VIRTIO_F_INDIRECT_DESC'); return null; }
        if (flags & VIRTQ_DESC_F_NEXT) { this.fault('descriptor has both INDIRECT and NEXT'); return null; }
        if (len === 0 || len % DESC_SIZE || len / DESC_SIZE > MAX_QUEUE_SIZE) { this.fault(`indirect table length ${len} is not a multiple of 16 in 16..${DESC_SIZE * MAX_QUEUE_SIZE}`); return null; }
        if (addr < 0 || !mem.valid(addr, len)) { this.fault('indirect table is not in RAM'); return null; }
        table = addr;
        tableSize = len / DESC_SIZE;
        i = 0;
        seen = 0;
        inIndirect = true;
        continue;
      }
      const write = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      // 2.7.4.2: device-readable buffers come before device-writable ones.
      if (!write && sawWritable) { this.fault('device-readable descriptor after a device-writable one'); return null; }
      sawWritable ||= write;
      if (len > 0) {
        if (addr < 0 || !mem.valid(addr, len)) { this.fault(`buffer of descriptor ${i} (${len} bytes) is not in RAM`); return null; }
        if (readableBytes + writableBytes + len > MAX_CHAIN_BYTES) { this.fault('chain is longer than 2^32 bytes'); return null; }
        if (write) { writable.push({ addr, len }); writableBytes += len; } else { readable.push({ addr, len }); readableBytes += len; }
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (next >= tableSize) { this.fault(`descriptor ${i} continues to ${next}, beyond its table (${tableSize})`); return null; }
      i = next;
    }
    return { head, readable, writable, readableBytes, writableBytes };
  }

  /**
   * Returns a chain to the driver: used element {head, len} then the used idx.
   * `len` is the number of bytes written to the writable part. False if the
   * queue is not usable or the used ring cannot be written (fault reported).
   */
  push(head: number, len: number): boolean {
    if (!this.usable()) return false;
    const s = this.s;
    if (!Number.isInteger(head) || head < 0 || head >= s.size) throw new RangeError(`queue ${this.index}: push of descriptor ${head} (size ${s.size})`);
    if (!Number.isInteger(len) || len < 0 || len > 0xffffffff) throw new RangeError(`queue ${this.index}: used length ${len}`);
    const mem = this.owner.mem;
    const elem = this.deviceAddr + 4 + USED_ELEM_SIZE * (s.usedIdx & (s.size - 1));
    const e = new Uint8Array(USED_ELEM_SIZE);
    const v = new DataView(e.buffer);
    v.setUint32(0, head, true);
    v.setUint32(4, len, true);
    if (!mem.write(elem, e)) { this.fault('used ring is not writable'); return false; }
    s.usedIdx = (s.usedIdx + 1) & 0xffff;
    if (!mem.setU16(this.deviceAddr + 2, s.usedIdx)) { this.fault('used ring is not writable'); return false; }
    return true;
  }

  /**
   * After one or more `push`es: does the driver want a used buffer notification?
   * (2.7.7, 2.7.10: VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with VIRTIO_F_EVENT_IDX.)
   */
  needsNotification(): boolean {
    if (!this.usable()) return false;
    const s = this.s;
    const old = s.signalled, now = s.usedIdx;
    s.signalled = now;
    if (old === now) return false;
    const mem = this.owner.mem;
    if (s.eventIdx) {
      const event = mem.u16(this.driverAddr + 4 + 2 * s.size);
      if (event < 0) { this.fault('available ring is not readable'); return false; }
      // Notify if one of the elements just written (at used positions old .. now-1) sits at used_event.
      return ((event - old) & 0xffff) < ((now - old) & 0xffff);
    }
    const flags = mem.u16(this.driverAddr);
    if (flags < 0) { this.fault('available ring is not readable'); return false; }
    return (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  // ---------------------------------------------------------------- buffers of a chain

  /**
   * Up to `length` bytes of the chain's readable part from `offset` (fewer if
   * the chain is shorter), or null if guest memory failed (fault reported).
   */
  read(chain: DescriptorChain, offset = 0, length = chain.readableBytes): Uint8Array | null {
    const total = Math.max(0, Math.min(length, chain.readableBytes - offset));
    const out = new Uint8Array(total);
    let skip = offset, done = 0;
    for (const seg of chain.readable) {
      if (done === total) break;
      if (skip >= seg.len) { skip -= seg.len; continue; }
      const n = Math.min(seg.len - skip, total - done);
      const b = this.owner.mem.read(seg.addr + skip, n);
      if (!b) { this.fault('buffer is no longer readable'); return null; }
      out.set(b, done);
      done += n;
      skip = 0;
    }
    return out;
  }

  /**
   * Writes `data` into the chain's writable part from `offset`, as far as it
   * fits. Returns the bytes written, or -1 if guest memory failed (fault reported).
   */
  write(chain: DescriptorChain, data: Uint8Array, offset = 0): number {
    const total = Math.max(0, Math.min(data.length, chain.writableBytes - offset));
    let skip = offset, done = 0;
    for (const seg of chain.writable) {
      if (done === total) break;
      if (skip >= seg.len) { skip -= seg.len; continue; }
      const n = Math.min(seg.len - skip, total - done);
      if (!this.owner.mem.write(seg.addr + skip, data.subarray(done, done + n))) { this.fault('buffer is no longer writable'); return -1; }
      done += n;
      skip = 0;
    }
    return done;
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtqueueState {
    return { ...this.s };
  }

  restore(state: VirtqueueState): void {
    if (state.version !== 1) throw new RangeError(`virtqueue state version ${String(state.version)}`);
    const u32 = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
    const u16 = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
    const ok = u32(state.size) && u32(state.descLo) && u32(state.descHi) && u32(state.driverLo) && u32(state.driverHi)
      && u32(state.deviceLo) && u32(state.deviceHi) && u16(state.lastAvail) && u16(state.usedIdx) && u16(state.signalled)
      && typeof state.ready === 'boolean' && typeof state.eventIdx === 'boolean' && typeof state.indirect === 'boolean'
      && (!state.ready || (isPowerOf2(state.size) && state.size <= this.maxSize));
    if (!ok) throw new RangeError(`queue ${this.index}: malformed state`);
    this.s = { ...state };
    this.shadowAvail = state.lastAvail;
  }
}
