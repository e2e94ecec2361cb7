/**
 * virtio-net (virtio 1.2, section 5.1; device ID 1): an Ethernet NIC with one
 * queue pair, receiveq (0) and transmitq (1), over a `NetBackend` (switch
 * port, TAP device or user-mode network).
 *
 * Features: VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS (link always up),
 * VIRTIO_NET_F_MTU (1500) and VIRTIO_NET_F_MRG_RXBUF. No checksum or
 * segmentation offloads and no control queue: every frame carries a complete
 * checksum and at most MTU bytes of payload from the guest, and the device
 * passes every frame it receives (the back end filters). Every buffer starts
 * with the 12-byte `struct virtio_net_hdr` (VERSION_1 always has num_buffers).
 *
 * Transmit: each chain is a header and a frame, device-readable. A malformed
 * chain (writable parts, a short or oversized frame, a GSO request) is
 * dropped and returned, as a NIC drops a bad descriptor; only a broken ring
 * (reported by the Virtqueue) makes the device need a reset.
 *
 * Receive: a frame goes into one chain, or with MRG_RXBUF across as many
 * chains as it needs (num_buffers in the first). Chains are taken from the
 * ring and kept (`reserved`) until enough have arrived for the frame at the
 * head of the hold queue; nothing is written before the whole frame fits, so a
 * frame is never split across a notification. While the guest has too few
 * buffers, up to MAX_HELD frames wait; beyond that they are dropped and the
 * back end is told (receive returns false) and later resumed.
 */
import type { NetBackend } from '../backends/net.js';
import { DEVICE_ID_NET, feature } from './constants.js';
import { type ConfigAccessSize, type VirtioDevice, type VirtioDeviceContext, readConfigBytes } from './device.js';
import type { DescriptorChain, DescriptorSegment } from './queue.js';

// Feature bits (5.1.3).
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;

/** Config status bits (5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;

// struct virtio_net_hdr (5.1.6).
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** Bytes of struct virtio_net_hdr with VIRTIO_F_VERSION_1 (num_buffers included). */
export const NET_HDR_SIZE = 12;
const HDR_GSO_TYPE = 1, HDR_NUM_BUFFERS = 10;

/** struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu. */
export const NET_CONFIG_SIZE = 12;
const CFG_STATUS = 6, CFG_MTU = 10;

export const NET_MTU = 1500;
/** The smallest frame: destination, source, EtherType. */
export const MIN_FRAME = 14;
/** The largest frame either way (the back-end interface's limit). */
export const MAX_FRAME = 65535;
/** Frames held for the guest while it has too few receive buffers. */
export const MAX_HELD = 256;
/** Transmit chains handled per turn of the event loop before yielding. */
const TX_BATCH = 256;
const DROP = -2;

export const RXQ = 0, TXQ = 1;

export interface VirtioNetState {
  readonly version: 1;
  /** Receive chains taken from the ring and not yet used (owned by the device). */
  reserved: { head: number; writable: { addr: number; len: number }[] }[];
}

/** 'xx:xx:xx:xx:xx:xx' as 6 bytes; RangeError if it is not one. */
export function parseMac(mac: string): Uint8Array {
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/.exec(mac);
  if (!m) throw new RangeError(`'${mac}' is not a MAC address`);
  return Uint8Array.from(m.slice(1, 7), (h) => parseInt(h, 16));
}

export class VirtioNet implements VirtioDevice<VirtioNetState> {
  readonly deviceId = DEVICE_ID_NET;
  readonly features = feature(VIRTIO_NET_F_MAC) | feature(VIRTIO_NET_F_STATUS) | feature(VIRTIO_NET_F_MTU)
    | feature(VIRTIO_NET_F_MRG_RXBUF);
  readonly queueSizes: readonly number[] = [256, 256];
  readonly configSize = NET_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private readonly config = new Uint8Array(NET_CONFIG_SIZE);
  /** Frames from the back end waiting for receive buffers (not saved: a wire may lose them). */
  private held: Uint8Array[] = [];
  private reserved: DescriptorChain[] = [];
  /** The back end was refused a frame and waits for `resume`. */
  private backendBlocked = false;
  /** Bumped by reset and close: deferred work of an older epoch is dropped. */
  private epoch = 0;
  private txScheduled = false;
  private closed = false;
  /** Counters for diagnostics and tests. */
  readonly stats = { txFrames: 0, txDropped: 0, rxFrames: 0, rxDropped: 0 };

  constructor(readonly name: string, readonly mac: Uint8Array, private readonly backend: NetBackend) {
    if (mac.length !== 6 || (mac[0]! & 1)) throw new RangeError('virtio-net: the MAC must be 6 bytes of a unicast address');
    this.config.set(mac, 0);
    this.config[CFG_STATUS] = VIRTIO_NET_S_LINK_UP;
    this.config[CFG_MTU] = NET_MTU & 0xff;
    this.config[CFG_MTU + 1] = NET_MTU >> 8;
    backend.attach((frame) => this.receive(frame));
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  private mergeable(): boolean {
    return ((this.ctx?.features() ?? 0n) & feature(VIRTIO_NET_F_MRG_RXBUF)) !== 0n;
  }

  // ---------------------------------------------------------------- configuration space (5.1.4)

  readConfig(offset: number, size: ConfigAccessSize): number {
    return readConfigBytes(this.config, offset, size);
  }

  writeConfig(): void {
    // Read-only without VIRTIO_NET_F_CTRL_MAC_ADDR (and legacy MAC writes are not offered).
  }

  // ---------------------------------------------------------------- queues

  activate(): void {
    this.deliver();
    this.transmit();
  }

  notify(index: number): void {
    if (index === RXQ) this.deliver();
    else if (index === TXQ) this.transmit();
  }

  reset(): void {
    this.epoch++;
    this.held = [];
    this.reserved = [];
    this.txScheduled = false;
    this.wakeBackend();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.epoch++;
    this.held = [];
    this.reserved = [];
    await this.backend.close();
  }

  // ---------------------------------------------------------------- transmit

  /** Sends what the guest queued on the transmitq, a batch per turn of the event loop. */
  private transmit(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(TXQ);
    if (!ctx || !q || this.closed) return;
    let used = false;
    let n = 0;
    for (; n < TX_BATCH; n++) {
      const chain = q.pop();
      if (!chain) break;
      // The size is checked before reading: overlapping descriptors can make a chain of gigabytes.
      const sane = chain.writableBytes === 0 && chain.readableBytes >= NET_HDR_SIZE + MIN_FRAME && chain.readableBytes <= NET_HDR_SIZE + MAX_FRAME;
      const frame = sane ? this.txFrame(chain, q.read(chain)) : null;
      if (!q.push(chain.head, 0)) break;
      used = true;
      if (frame) {
        this.stats.txFrames++;
        this.backend.send(frame);
      } else {
        this.stats.txDropped++;
      }
      // The back end may have delivered to this very device and it may have been reset.
      if (!ctx.live() || this.closed) break;
    }
    if (used) ctx.usedBuffers(TXQ);
    if (n === TX_BATCH && !this.txScheduled) {
      // More may wait: continue after other work (timers, other devices) had a turn.
      this.txScheduled = true;
      const epoch = this.epoch;
      setImmediate(() => {
        if (epoch !== this.epoch || !this.txScheduled) return;
        this.txScheduled = false;
        if (this.ctx?.live()) this.transmit();
      });
    }
  }

  /** The frame of a transmit chain (header stripped), or null if the chain is malformed. */
  private txFrame(chain: DescriptorChain, bytes: Uint8Array | null): Uint8Array | null {
    if (!bytes || chain.writableBytes > 0) return null;
    const len = bytes.length - NET_HDR_SIZE;
    if (len < MIN_FRAME || len > MAX_FRAME) return null;
    // Without VIRTIO_NET_F_CSUM / HOST_TSO* the driver must not ask for either (5.1.6.2.1).
    if (bytes[0]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) return null;
    if (bytes[HDR_GSO_TYPE] !== VIRTIO_NET_HDR_GSO_NONE) return null;
    return bytes.subarray(NET_HDR_SIZE);
  }

  // ---------------------------------------------------------------- receive

  /** A frame from the back end. False if it was dropped (the back end may wait for `resume`). */
  private receive(frame: Uint8Array): boolean {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) { this.stats.rxDropped++; return false; }
    // No driver: a NIC without a driver has nowhere to put frames.
    if (!this.ctx?.live()) { this.stats.rxDropped++; return false; }
    if (this.held.length >= MAX_HELD) {
      this.stats.rxDropped++;
      this.backendBlocked = true;
      return false;
    }
    this.held.push(frame.slice());
    this.deliver();
    return true;
  }

  /** Frames waiting for receive buffers. */
  get heldFrames(): number {
    return this.held.length;
  }

  /** Moves held frames into receive buffers, as long as buffers last. */
  private deliver(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(RXQ);
    if (!ctx || !q || this.closed) return;
    const mergeable = this.mergeable();
    let used = false;
    // Bounded: the guest may keep adding buffers from another hart while we look.
    for (let rounds = 0; this.held.length > 0 && rounds < 2 * q.size + 2; rounds++) {
      const frame = this.held[0]!;
      const need = NET_HDR_SIZE + frame.length;
      const take = this.reserve(need, mergeable);
      if (take === DROP) {
        this.held.shift();
        this.stats.rxDropped++;
        continue;
      }
      if (take < 0) break; // the ring failed (fault reported)
      if (take === 0) {
        // Ask for the next buffer; if one arrived meanwhile, look again.
        if (q.armNotification()) continue;
        break;
      }
      const chains = this.reserved.splice(0, take);
      const hdr = new Uint8Array(NET_HDR_SIZE);
      hdr[HDR_NUM_BUFFERS] = take & 0xff;
      hdr[HDR_NUM_BUFFERS + 1] = take >> 8;
      const data = new Uint8Array(need);
      data.set(hdr, 0);
      data.set(frame, NET_HDR_SIZE);
      let off = 0, ok = true;
      for (const chain of chains) {
        if (chain.head >= q.size) { ctx.needsReset(`receive chain ${chain.head} from a snapshot is beyond the queue size`); return; }
        const n = Math.min(chain.writableBytes, need - off);
        const w = q.write(chain, data.subarray(off, off + n));
        if (w < 0 || !q.push(chain.head, w)) { ok = false; break; }
        off += w;
        used = true;
      }
      if (!ok) break;
      this.held.shift();
      this.stats.rxFrames++;
    }
    if (used) ctx.usedBuffers(RXQ);
    if (this.held.length < MAX_HELD / 2) this.wakeBackend();
  }

  /**
   * Takes chains from the receiveq until the reserved ones can hold `need`
   * bytes: returns how many reserved chains the frame uses, 0 if there are not
   * enough buffers yet, -1 if the ring failed, DROP if the frame can never
   * fit. Unusable chains (no writable space, or too small for the header) are
   * returned empty as they come.
   */
  private reserve(need: number, mergeable: boolean): number {
    const q = this.ctx?.queue(RXQ);
    if (!q) return -1;
    for (;;) {
      if (mergeable) {
        let sum = 0;
        for (let i = 0; i < this.reserved.length; i++) {
          sum += this.reserved[i]!.writableBytes;
          if (sum >= need) return i + 1;
        }
        // Every chain the ring can hold is here and still too small: the frame can never fit.
        if (this.reserved.length >= q.size) return DROP;
      } else {
        const first = this.reserved[0];
        if (first) {
          if (first.writableBytes >= need) return 1;
          // A buffer too small for this frame (5.1.6.3.1 asks for room for any
          // frame): the frame is lost, the buffer waits for the next one.
          return DROP;
        }
      }
      const chain = q.pop();
      if (!chain) return this.ctx?.live() && this.ctx.queue(RXQ) ? 0 : -1;
      if (chain.writableBytes < NET_HDR_SIZE || chain.readableBytes > 0) {
        // 5.1.6.3.1: every receive buffer holds at least a header and is device-writable.
        if (!q.push(chain.head, 0)) return -1;
        this.ctx?.usedBuffers(RXQ);
        continue;
      }
      this.reserved.push(chain);
    }
  }

  private wakeBackend(): void {
    if (!this.backendBlocked || this.closed) return;
    this.backendBlocked = false;
    this.backend.resume?.();
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioNetState {
    return { version: 1, reserved: this.reserved.map((c) => ({ head: c.head, writable: c.writable.map((s) => ({ addr: s.addr, len: s.len })) })) };
  }

  restore(state: VirtioNetState): void {
    if (state === null || typeof state !== 'object' || state.version !== 1) throw new RangeError('virtio-net: state version');
    const int = (n: unknown, max: number): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;
    if (!Array.isArray(state.reserved) || state.reserved.length > 32768) throw new RangeError('virtio-net: malformed state');
    const reserved: DescriptorChain[] = [];
    for (const c of state.reserved) {
      if (c === null || typeof c !== 'object' || !int(c.head, 32767) || !Array.isArray(c.writable) || c.writable.length > 32768) {
        throw new RangeError('virtio-net: malformed state');
      }
      const writable: DescriptorSegment[] = [];
      let bytes = 0;
      for (const s of c.writable) {
        if (s === null || typeof s !== 'object' || !int(s.addr, Number.MAX_SAFE_INTEGER) || !int(s.len, 0xffffffff)) throw new RangeError('virtio-net: malformed state');
        writable.push({ addr: s.addr, len: s.len });
        bytes += s.len;
      }
      // The addresses are checked again by every write (CheckedMemory).
      reserved.push({ head: c.head, readable: [], writable, readableBytes: 0, writableBytes: bytes });
    }
    this.epoch++;
    this.held = [];
    this.reserved = reserved;
    this.txScheduled = false;
  }
}
