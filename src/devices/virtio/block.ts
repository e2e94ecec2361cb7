/**
 * virtio-blk (virtio 1.2, section 5.2; device ID 2): a disk over one request
 * queue. A request is a chain: the 16-byte `struct virtio_blk_req` header
 * (type, reserved, sector) and, for writes, discard and write-zeroes, the data
 * in the device-readable part; for reads and GET_ID the data in the
 * device-writable part; and the status byte as the last device-writable byte.
 *
 * Requests run asynchronously on the disk back end (several at once, finished
 * in whatever order the host completes them); the vCPU never waits. A device
 * reset or `close` bumps an epoch: completions of an older epoch are dropped
 * and never touch guest memory again.
 *
 * Linux drives it with the `virtio_blk` module (plus `virtio_mmio`).
 */
import { MachineError } from '../../machine/errors.js';
import type { VirtioDeviceSpec } from '../../machine/virtio-spec.js';
import { openDisk, type DiskBackend } from '../backends/disk.js';
import { DEVICE_ID_BLOCK, feature } from './constants.js';
import { type ConfigAccessSize, type VirtioDevice, type VirtioDeviceContext, readConfigBytes } from './device.js';
import type { DescriptorChain, DescriptorSegment, Virtqueue } from './queue.js';

// Feature bits (5.2.3).
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

// Request types (5.2.6).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_SECURE_ERASE = 14;

// Status values (5.2.6).
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** struct virtio_blk_discard_write_zeroes flags: the device may deallocate (write zeroes only). */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;
/** Bytes of the GET_ID answer (zero padded, not NUL terminated when 20 long). */
export const VIRTIO_BLK_ID_BYTES = 20;
/** Bytes of struct virtio_blk_req's header: le32 type, le32 reserved, le64 sector. */
export const BLK_REQ_HEADER = 16;
/** Bytes of struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags. */
export const BLK_DWZ_SEGMENT = 16;
export const SECTOR = 512;

export const BLK_QUEUE_SIZE = 256;
/** Data segments per request: the queue less the header and the status descriptors. */
export const BLK_SEG_MAX = BLK_QUEUE_SIZE - 2;
export const BLK_MAX_DISCARD_SECTORS = 1 << 22;
export const BLK_MAX_DISCARD_SEG = 32;
export const BLK_MAX_WRITE_ZEROES_SECTORS = 1 << 22;
export const BLK_MAX_WRITE_ZEROES_SEG = 32;

/** Offsets in struct virtio_blk_config (5.2.4). */
export const BLK_CFG = {
  capacity: 0, sizeMax: 8, segMax: 12, geometry: 16, blkSize: 20, topology: 24, writeback: 32, numQueues: 34,
  maxDiscardSectors: 36, maxDiscardSeg: 40, discardSectorAlignment: 44, maxWriteZeroesSectors: 48,
  maxWriteZeroesSeg: 52, writeZeroesMayUnmap: 56, maxSecureEraseSectors: 60, maxSecureEraseSeg: 64,
  secureEraseSectorAlignment: 68,
} as const;
export const BLK_CONFIG_SIZE = 72;

/** Guest data moves through host buffers of at most this many bytes at a time. */
const CHUNK = 1 << 20;

/** A request in flight, as plain data (saved in snapshots and replayed on restore). */
export interface BlockInflight {
  head: number;
  readable: { addr: number; len: number }[];
  writable: { addr: number; len: number }[];
}

export interface VirtioBlockState {
  readonly version: 1;
  /** Requests taken from the queue and not yet answered: restore runs them again (all are idempotent). */
  inflight: BlockInflight[];
}

export interface VirtioBlockOptions {
  /** GET_ID answer: at most 20 bytes of UTF-8. */
  readonly serial?: string;
  /** Host-side diagnostics (I/O errors). */
  readonly log?: (line: string) => void;
}

type Status = typeof VIRTIO_BLK_S_OK | typeof VIRTIO_BLK_S_IOERR | typeof VIRTIO_BLK_S_UNSUPP;

const QUEUE = 0;

function chainOf(head: number, readable: readonly DescriptorSegment[], writable: readonly DescriptorSegment[]): DescriptorChain {
  const sum = (s: readonly DescriptorSegment[]): number => s.reduce((a, b) => a + b.len, 0);
  return { head, readable, writable, readableBytes: sum(readable), writableBytes: sum(writable) };
}

export class VirtioBlock implements VirtioDevice<VirtioBlockState> {
  readonly deviceId = DEVICE_ID_BLOCK;
  readonly features: bigint;
  readonly queueSizes: readonly number[] = [BLK_QUEUE_SIZE];
  readonly configSize = BLK_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private readonly config = new Uint8Array(BLK_CONFIG_SIZE);
  private readonly id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  private readonly log: (line: string) => void;
  private readonly capacity: number;
  /** Bumped by reset and close: completions of an older epoch are dropped. */
  private epoch = 0;
  private closed = false;
  /** Requests in flight in the current epoch (by head). */
  private inflight = new Map<number, DescriptorChain>();
  /** Every back-end operation still running, of any epoch (close waits for them). */
  private readonly running = new Set<Promise<void>>();
  /** Requests restored from a snapshot, to run once the device is live. */
  private replay: DescriptorChain[] = [];
  /** The queue was left with chains in it because too many requests were in flight. */
  private stalled = false;

  constructor(readonly name: string, readonly disk: DiskBackend, opts: VirtioBlockOptions = {}) {
    const serial = new TextEncoder().encode(opts.serial ?? '');
    if (serial.length > VIRTIO_BLK_ID_BYTES) throw new MachineError(`drive serial "${opts.serial ?? ''}" is longer than ${VIRTIO_BLK_ID_BYTES} bytes`);
    if (disk.size <= 0 || disk.size % SECTOR) throw new RangeError(`virtio-blk: disk size ${disk.size} is not a positive multiple of ${SECTOR}`);
    this.id.set(serial);
    this.log = opts.log ?? (() => undefined);
    this.capacity = disk.size / SECTOR;
    let f = feature(VIRTIO_BLK_F_SEG_MAX) | feature(VIRTIO_BLK_F_BLK_SIZE) | feature(VIRTIO_BLK_F_FLUSH);
    // A read-only disk offers RO and neither DISCARD nor WRITE_ZEROES (both write).
    if (disk.readonly) f |= feature(VIRTIO_BLK_F_RO);
    else f |= feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES);
    this.features = f;
    const v = new DataView(this.config.buffer);
    v.setUint32(BLK_CFG.capacity, this.capacity % 2 ** 32, true);
    v.setUint32(BLK_CFG.capacity + 4, Math.floor(this.capacity / 2 ** 32), true);
    v.setUint32(BLK_CFG.segMax, BLK_SEG_MAX, true);
    v.setUint32(BLK_CFG.blkSize, SECTOR, true);
    v.setUint16(BLK_CFG.numQueues, 1, true);
    if (!disk.readonly) {
      v.setUint32(BLK_CFG.maxDiscardSectors, BLK_MAX_DISCARD_SECTORS, true);
      v.setUint32(BLK_CFG.maxDiscardSeg, BLK_MAX_DISCARD_SEG, true);
      v.setUint32(BLK_CFG.discardSectorAlignment, Math.max(1, Math.floor(disk.discardAlignment / SECTOR)), true);
      v.setUint32(BLK_CFG.maxWriteZeroesSectors, BLK_MAX_WRITE_ZEROES_SECTORS, true);
      v.setUint32(BLK_CFG.maxWriteZeroesSeg, BLK_MAX_WRITE_ZEROES_SEG, true);
      this.config[BLK_CFG.writeZeroesMayUnmap] = 1;
    }
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  // ---------------------------------------------------------------- configuration space (5.2.4)

  readConfig(offset: number, size: ConfigAccessSize): number {
    return readConfigBytes(this.config, offset, size);
  }

  writeConfig(): void {
    // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
  }

  // ---------------------------------------------------------------- lifecycle

  activate(): void {
    this.runReplay();
    this.process();
  }

  notify(index: number): void {
    if (index !== QUEUE) return;
    this.runReplay();
    this.process();
  }

  reset(): void {
    this.epoch++;
    this.inflight.clear();
    this.replay = [];
    this.stalled = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.epoch++;
    this.inflight.clear();
    // Let the back end finish what it started before its files go away.
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    await this.disk.close();
  }

  /** Requests started and not yet answered (tests, diagnostics). */
  get inflightCount(): number {
    return this.inflight.size;
  }

  // ---------------------------------------------------------------- requests

  /** Takes the chains the driver made available, at most a queue's worth in flight. */
  private process(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(QUEUE);
    if (!ctx || !q || this.closed) return;
    this.stalled = false;
    for (;;) {
      if (this.inflight.size >= q.size) { this.stalled = true; return; }
      const chain = q.pop();
      if (!chain) return;
      this.start(q, chain);
      if (!ctx.live()) return;
    }
  }

  private runReplay(): void {
    const q = this.ctx?.queue(QUEUE);
    if (!q || this.replay.length === 0) return;
    const chains = this.replay;
    this.replay = [];
    for (const c of chains) if (c.head < q.size && !this.inflight.has(c.head)) this.start(q, c);
  }

  private start(q: Virtqueue, chain: DescriptorChain): void {
    const ctx = this.ctx!;
    if (chain.writableBytes === 0) {
      // Nowhere to put the status: the request cannot be answered (5.2.6.1 requires the status byte).
      ctx.needsReset(`virtio-blk request ${chain.head} has no device-writable status byte`);
      return;
    }
    if (this.inflight.has(chain.head)) {
      ctx.needsReset(`virtio-blk request ${chain.head} is made available again while in flight`);
      return;
    }
    const status = (s: Status, written = 0): void => this.finish(q, chain, this.epoch, s, written);
    if (chain.readableBytes < BLK_REQ_HEADER) { status(VIRTIO_BLK_S_IOERR); return; }
    const hdr = q.read(chain, 0, BLK_REQ_HEADER);
    if (!hdr) return;
    const hv = new DataView(hdr.buffer);
    const type = hv.getUint32(0, true);
    const secLo = hv.getUint32(8, true), secHi = hv.getUint32(12, true);
    // Sectors beyond 2^53 are beyond any capacity.
    const sector = secHi >= 0x200000 ? Number.POSITIVE_INFINITY : secHi * 2 ** 32 + secLo;
    const dataIn = chain.writableBytes - 1; // device-writable bytes before the status
    const dataOut = chain.readableBytes - BLK_REQ_HEADER;
    const inRange = (first: number, bytes: number): boolean => first <= this.capacity && bytes / SECTOR <= this.capacity - first;
    const negotiated = (bit: number): boolean => (ctx.features() & feature(bit)) !== 0n;

    switch (type) {
      case VIRTIO_BLK_T_IN: {
        if (dataOut !== 0 || dataIn % SECTOR || !inRange(sector, dataIn)) { status(VIRTIO_BLK_S_IOERR); return; }
        this.run(q, chain, async (live) => {
          for (let done = 0; done < dataIn;) {
            const n = Math.min(CHUNK, dataIn - done);
            const data = await this.disk.read(sector * SECTOR + done, n);
            if (!live()) return null;
            if (q.write(chain, data, done) < 0) return null;
            done += n;
          }
          return { status: VIRTIO_BLK_S_OK, written: dataIn };
        });
        return;
      }
      case VIRTIO_BLK_T_OUT: {
        // 5.2.6.2: a read-only device fails writes and writes nothing.
        if (this.disk.readonly || dataIn !== 0 || dataOut % SECTOR || !inRange(sector, dataOut)) { status(VIRTIO_BLK_S_IOERR); return; }
        this.run(q, chain, async (live) => {
          for (let done = 0; done < dataOut;) {
            const n = Math.min(CHUNK, dataOut - done);
            // Guest memory is read only while the request still belongs to this epoch.
            if (!live()) return null;
            const data = q.read(chain, BLK_REQ_HEADER + done, n);
            if (!data) return null;
            await this.disk.write(sector * SECTOR + done, data);
            done += n;
          }
          return { status: VIRTIO_BLK_S_OK, written: 0 };
        });
        return;
      }
      case VIRTIO_BLK_T_FLUSH: {
        this.run(q, chain, async () => {
          await this.disk.flush();
          return { status: VIRTIO_BLK_S_OK, written: 0 };
        });
        return;
      }
      case VIRTIO_BLK_T_GET_ID: {
        if (dataOut !== 0) { status(VIRTIO_BLK_S_IOERR); return; }
        const w = q.write(chain, this.id.subarray(0, Math.min(VIRTIO_BLK_ID_BYTES, dataIn)));
        if (w < 0) return;
        status(VIRTIO_BLK_S_OK, w);
        return;
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES: {
        const discard = type === VIRTIO_BLK_T_DISCARD;
        if (!negotiated(discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
          status(this.disk.readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_UNSUPP);
          return;
        }
        const maxSeg = discard ? BLK_MAX_DISCARD_SEG : BLK_MAX_WRITE_ZEROES_SEG;
        const maxSectors = discard ? BLK_MAX_DISCARD_SECTORS : BLK_MAX_WRITE_ZEROES_SECTORS;
        if (this.disk.readonly || dataIn !== 0 || dataOut === 0 || dataOut % BLK_DWZ_SEGMENT || dataOut / BLK_DWZ_SEGMENT > maxSeg) {
          status(VIRTIO_BLK_S_IOERR);
          return;
        }
        const raw = q.read(chain, BLK_REQ_HEADER, dataOut);
        if (!raw) return;
        const sv = new DataView(raw.buffer);
        const segs: { offset: number; length: number; unmap: boolean }[] = [];
        for (let at = 0; at < dataOut; at += BLK_DWZ_SEGMENT) {
          const lo = sv.getUint32(at, true), hi = sv.getUint32(at + 4, true);
          const first = hi >= 0x200000 ? Number.POSITIVE_INFINITY : hi * 2 ** 32 + lo;
          const num = sv.getUint32(at + 8, true), flags = sv.getUint32(at + 12, true);
          // 5.2.6.2: UNMAP on a discard, or any unknown flag, is unsupported.
          if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) || (discard && flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) { status(VIRTIO_BLK_S_UNSUPP); return; }
          if (num > maxSectors || !inRange(first, num * SECTOR)) { status(VIRTIO_BLK_S_IOERR); return; }
          segs.push({ offset: first * SECTOR, length: num * SECTOR, unmap: (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 });
        }
        this.run(q, chain, async (live) => {
          for (const s of segs) {
            if (!live()) return null;
            if (s.length === 0) continue;
            if (discard) await this.disk.discard(s.offset, s.length);
            else await this.disk.writeZeroes(s.offset, s.length, s.unmap);
          }
          return { status: VIRTIO_BLK_S_OK, written: 0 };
        });
        return;
      }
      default:
        status(VIRTIO_BLK_S_UNSUPP);
    }
  }

  /**
   * Runs a request's back-end work. `work` gets a `live()` check to make after
   * every await; it returns null if it stopped (stale epoch or a guest memory
   * fault already reported), else the status and the data bytes written.
   */
  private run(q: Virtqueue, chain: DescriptorChain, work: (live: () => boolean) => Promise<{ status: Status; written: number } | null>): void {
    const epoch = this.epoch;
    const live = (): boolean => epoch === this.epoch && !this.closed && this.ctx?.queue(QUEUE) === q;
    this.inflight.set(chain.head, chain);
    const p = (async () => {
      let result: { status: Status; written: number } | null;
      try {
        result = await work(live);
      } catch (e) {
        if (live()) this.log(`${this.name}: I/O error: ${(e as Error).message}`);
        result = { status: VIRTIO_BLK_S_IOERR, written: 0 };
      }
      if (epoch !== this.epoch) return;
      this.inflight.delete(chain.head);
      if (result) this.finish(q, chain, epoch, result.status, result.written);
      if (this.stalled) this.process();
    })();
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Writes the status byte (the last writable byte) and returns the chain; dropped if the epoch is over. */
  private finish(q: Virtqueue, chain: DescriptorChain, epoch: number, status: Status, written: number): void {
    const ctx = this.ctx;
    if (!ctx || epoch !== this.epoch || this.closed || ctx.queue(QUEUE) !== q) return;
    if (q.write(chain, Uint8Array.of(status), chain.writableBytes - 1) < 0) return;
    if (q.push(chain.head, Math.min(written, chain.writableBytes - 1) + 1)) ctx.usedBuffers(QUEUE);
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioBlockState {
    const seg = (s: readonly DescriptorSegment[]): { addr: number; len: number }[] => s.map((x) => ({ addr: x.addr, len: x.len }));
    const inflight = [...this.inflight.values(), ...this.replay].map((c) => ({ head: c.head, readable: seg(c.readable), writable: seg(c.writable) }));
    return { version: 1, inflight };
  }

  restore(state: VirtioBlockState): void {
    if (state.version !== 1) throw new RangeError(`virtio-blk state version ${String(state.version)}`);
    const isSegs = (s: unknown): s is { addr: number; len: number }[] => Array.isArray(s) && s.length <= BLK_QUEUE_SIZE * 128
      && s.every((x: unknown) => typeof x === 'object' && x !== null
        && Number.isSafeInteger((x as { addr: unknown }).addr) && (x as { addr: number }).addr >= 0
        && Number.isInteger((x as { len: unknown }).len) && (x as { len: number }).len > 0 && (x as { len: number }).len <= 0xffffffff);
    const ok = Array.isArray(state.inflight) && state.inflight.length <= BLK_QUEUE_SIZE
      && state.inflight.every((r) => typeof r === 'object' && r !== null && Number.isInteger(r.head) && r.head >= 0 && r.head < BLK_QUEUE_SIZE
        && isSegs(r.readable) && isSegs(r.writable))
      && new Set(state.inflight.map((r) => r.head)).size === state.inflight.length;
    if (!ok) throw new RangeError('virtio-blk: malformed state');
    this.reset();
    this.replay = state.inflight.map((r) => chainOf(r.head, r.readable.map((s) => ({ ...s })), r.writable.map((s) => ({ ...s }))));
    // The transport restores its own status after the device: run them once it is live.
    queueMicrotask(() => this.runReplay());
  }
}

/** The device a `--drive` names: opens its back end (MachineError for bad paths or images). */
export function createBlockDevice(spec: Extract<VirtioDeviceSpec, { kind: 'block' }>, log: (line: string) => void): VirtioBlock {
  if (new TextEncoder().encode(spec.serial).length > VIRTIO_BLK_ID_BYTES) throw new MachineError(`drive serial "${spec.serial}" is longer than ${VIRTIO_BLK_ID_BYTES} bytes`);
  const disk = openDisk(spec);
  return new VirtioBlock('block', disk, { serial: spec.serial, log });
}
