/**
 * virtio-rng, the entropy device (virtio 1.2, section 5.4; device ID 4): one
 * requestq of device-writable buffers that the device fills with random bytes
 * from the host (node:crypto, asynchronously, so a large request never stalls
 * the vCPUs). No feature bits, no configuration space. Linux drives it with
 * the `virtio_rng` module (/dev/hwrng).
 */
import { randomFill } from 'node:crypto';
import { DEVICE_ID_ENTROPY } from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';
import type { DescriptorChain, DescriptorSegment } from './queue.js';

const REQUESTQ = 0;
/** The most bytes given for one request: a guest asking for gigabytes gets 64 KiB (and may ask again). */
export const RNG_MAX_REQUEST = 64 * 1024;

export interface VirtioRngState {
  readonly version: 1;
  /** Requests taken from the requestq and not yet answered (filled again after a restore). */
  pending: { head: number; writable: { addr: number; len: number }[] }[];
}

export class VirtioRng implements VirtioDevice<VirtioRngState> {
  readonly name = 'rng';
  readonly deviceId = DEVICE_ID_ENTROPY;
  readonly features = 0n;
  readonly queueSizes: readonly number[] = [64];
  readonly configSize = 0;
  private ctx: VirtioDeviceContext | null = null;
  /** Bumped by reset and close: randomness arriving for an older epoch is dropped. */
  private epoch = 0;
  private closed = false;
  private readonly pending = new Map<number, DescriptorChain>();

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  readConfig(_offset: number, _size: ConfigAccessSize): number { return 0; }
  writeConfig(_offset: number, _size: ConfigAccessSize, _value: number): void { /* no configuration space */ }

  activate(): void {
    this.take();
  }

  notify(index: number): void {
    if (index === REQUESTQ) this.take();
  }

  reset(): void {
    this.epoch++;
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.epoch++;
    this.pending.clear();
  }

  /** Requests in flight (for tests and diagnostics). */
  get inFlight(): number {
    return this.pending.size;
  }

  private take(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(REQUESTQ);
    if (!ctx || !q || this.closed) return;
    let used = false;
    // At most one pass over the ring: every chain taken is answered (now or later).
    for (let i = 0; i < q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      if (chain.writableBytes === 0 || this.pending.has(chain.head)) {
        // Nothing to fill (only device-readable parts), or a head already in
        // flight (the driver broke the rules): answered with 0 bytes.
        q.push(chain.head, 0);
        used = true;
        continue;
      }
      this.fill(chain);
    }
    if (used) ctx.usedBuffers(REQUESTQ);
  }

  private fill(chain: DescriptorChain): void {
    const epoch = this.epoch;
    this.pending.set(chain.head, chain);
    const buf = new Uint8Array(Math.min(chain.writableBytes, RNG_MAX_REQUEST));
    randomFill(buf, (err, bytes) => {
      if (epoch !== this.epoch || this.pending.get(chain.head) !== chain) return;
      this.pending.delete(chain.head);
      const ctx = this.ctx;
      const q = ctx?.queue(REQUESTQ);
      if (!ctx || !q) return;
      const n = err ? 0 : q.write(chain, bytes);
      if (n < 0) return; // the queue faulted: the device needs a reset
      if (q.push(chain.head, n)) ctx.usedBuffers(REQUESTQ);
    });
  }

  save(): VirtioRngState {
    return {
      version: 1,
      pending: [...this.pending.values()].map((c) => ({ head: c.head, writable: c.writable.map((s) => ({ addr: s.addr, len: s.len })) })),
    };
  }

  restore(state: VirtioRngState): void {
    if (state.version !== 1 || !Array.isArray(state.pending) || state.pending.length > this.queueSizes[0]!) throw new RangeError('virtio-rng: malformed state');
    const seg = (s: unknown): s is DescriptorSegment => typeof s === 'object' && s !== null
      && Number.isSafeInteger((s as DescriptorSegment).addr) && (s as DescriptorSegment).addr >= 0
      && Number.isSafeInteger((s as DescriptorSegment).len) && (s as DescriptorSegment).len > 0 && (s as DescriptorSegment).len <= 0xffffffff;
    const heads = new Set<number>();
    for (const p of state.pending) {
      const ok = typeof p === 'object' && p !== null && Number.isInteger(p.head) && p.head >= 0 && p.head < this.queueSizes[0]!
        && !heads.has(p.head) && Array.isArray(p.writable) && p.writable.length > 0 && p.writable.length <= 0x8000 && p.writable.every(seg);
      if (!ok) throw new RangeError('virtio-rng: malformed state');
      heads.add(p.head);
    }
    this.epoch++;
    this.pending.clear();
    for (const p of state.pending) {
      const writable = p.writable.map((s) => ({ addr: s.addr, len: s.len }));
      // The chain's addresses are checked again by the queue's write, when the answer is written.
      this.fill({ head: p.head, readable: [], writable, readableBytes: 0, writableBytes: writable.reduce((a, s) => a + s.len, 0) });
    }
  }
}
