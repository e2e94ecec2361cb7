/**
 * virtio-balloon, the traditional memory balloon (virtio 1.2, section 5.5;
 * device ID 5). The host sets a target (num_pages, in 4 KiB pages); the guest
 * inflates towards it by handing pages over on the inflateq (arrays of le32
 * page frame numbers) and takes them back on the deflateq. Each inflated page
 * goes back to the host's machine memory through `Pmap.discard`; a deflated
 * page needs nothing: the guest's next touch maps a fresh zero frame.
 *
 * Also: memory statistics on the statsq (VIRTIO_BALLOON_F_STATS_VQ, 5.5.6.3:
 * the device holds the driver's one buffer and returns it to ask for fresh
 * numbers), and free page reporting (VIRTIO_BALLOON_F_REPORTING, 5.5.6.7):
 * the guest lends runs of free pages, which the host discards as well.
 *
 * Queue numbering: a queue that does not exist for the negotiated features
 * takes no index (Linux's virtio-mmio driver numbers only the queues it sets
 * up), so reporting_vq is queue 3 with the statsq and queue 2 without it;
 * free_page_vq (F_FREE_PAGE_HINT) is never offered.
 */
import type { Pmap } from '../../memory/pmap.js';
import { DEVICE_ID_BALLOON, feature } from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';
import type { DescriptorChain, Virtqueue } from './queue.js';

// Feature bits (5.5.3).
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
export const VIRTIO_BALLOON_F_REPORTING = 5;

/** The balloon's page: PFNs are guest-physical addresses >> 12 whatever the guest's own page size (5.5.6). */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
const BALLOON_PAGE = 1 << VIRTIO_BALLOON_PFN_SHIFT;

/** struct virtio_balloon_config: le32 num_pages, le32 actual (the hint command id and poison value are not offered). */
export const BALLOON_CONFIG_SIZE = 8;
const CFG_NUM_PAGES = 0, CFG_ACTUAL = 4;

/** struct virtio_balloon_stat { le16 tag; le64 val; } packed. */
export const BALLOON_STAT_SIZE = 10;

/**
 * Statistic tags (5.5.6.3; Linux uapi virtio_balloon.h adds 10-15), by the
 * names Disco reports them under. Memory amounts are bytes; the others counts.
 */
export const BALLOON_STAT_NAMES = [
  'swapIn', // VIRTIO_BALLOON_S_SWAP_IN 0
  'swapOut', // VIRTIO_BALLOON_S_SWAP_OUT 1
  'majorFaults', // VIRTIO_BALLOON_S_MAJFLT 2
  'minorFaults', // VIRTIO_BALLOON_S_MINFLT 3
  'freeMemory', // VIRTIO_BALLOON_S_MEMFREE 4
  'totalMemory', // VIRTIO_BALLOON_S_MEMTOT 5
  'availableMemory', // VIRTIO_BALLOON_S_AVAIL 6
  'diskCaches', // VIRTIO_BALLOON_S_CACHES 7
  'hugetlbAllocations', // VIRTIO_BALLOON_S_HTLB_PGALLOC 8
  'hugetlbFailures', // VIRTIO_BALLOON_S_HTLB_PGFAIL 9
  'oomKills', // VIRTIO_BALLOON_S_OOM_KILL 10
  'allocStalls', // VIRTIO_BALLOON_S_ALLOC_STALL 11
  'asyncScans', // VIRTIO_BALLOON_S_ASYNC_SCAN 12
  'directScans', // VIRTIO_BALLOON_S_DIRECT_SCAN 13
  'asyncReclaims', // VIRTIO_BALLOON_S_ASYNC_RECLAIM 14
  'directReclaims', // VIRTIO_BALLOON_S_DIRECT_RECLAIM 15
] as const;

export type BalloonStatName = (typeof BALLOON_STAT_NAMES)[number];

/** The statistics the guest last reported: only the tags it sent (values above 2^53 lose precision). */
export type BalloonStats = { [K in BalloonStatName]?: number };

export interface BalloonOptions {
  readonly deflateOnOom: boolean;
  readonly freePageReporting: boolean;
  /** Seconds between statistics requests; 0: only when `requestStats` is called. */
  readonly statsIntervalS: number;
}

export interface VirtioBalloonState {
  readonly version: 1;
  /** num_pages, the host's target. */
  target: number;
  /** actual, as the driver last wrote it. */
  actual: number;
  /** The statsq buffer the device holds (its head), or null. */
  statsHead: number | null;
  stats: BalloonStats | null;
}

/** The most PFNs looked at in one inflate buffer (Linux sends 256 at a time). */
const MAX_PFNS_PER_BUFFER = 1 << 16;
/** The most statistics read from one buffer (Linux sends 10 to 16). */
const MAX_STATS = 64;

const INFLATEQ = 0, DEFLATEQ = 1;

export class VirtioBalloon implements VirtioDevice<VirtioBalloonState> {
  readonly name = 'balloon';
  readonly deviceId = DEVICE_ID_BALLOON;
  readonly features: bigint;
  readonly queueSizes: readonly number[];
  readonly configSize = BALLOON_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private s: VirtioBalloonState = { version: 1, target: 0, actual: 0, statsHead: null, stats: null };
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private discarded = 0;

  constructor(private readonly pmap: Pmap, private readonly opts: BalloonOptions) {
    if (!Number.isFinite(opts.statsIntervalS) || opts.statsIntervalS < 0) throw new RangeError(`balloon statistics interval ${opts.statsIntervalS}`);
    this.features = feature(VIRTIO_BALLOON_F_STATS_VQ)
      | (opts.deflateOnOom ? feature(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0n)
      | (opts.freePageReporting ? feature(VIRTIO_BALLOON_F_REPORTING) : 0n);
    this.queueSizes = opts.freePageReporting ? [128, 128, 2, 32] : [128, 128, 2];
    if (opts.statsIntervalS > 0) {
      this.timer = setInterval(() => { this.requestStats(); }, opts.statsIntervalS * 1000);
      // The VM's lifetime is decided elsewhere; the timer must not keep the process alive.
      this.timer.unref();
    }
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  // ---------------------------------------------------------------- host side

  /** Asks the guest to hold `pages` 4 KiB pages in its balloon (a configuration change interrupt). */
  setTarget(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0 || pages > 0xffffffff) throw new RangeError(`balloon target ${pages} is not 0..2^32-1 pages`);
    if (pages === this.s.target) return;
    this.s.target = pages;
    this.ctx?.configChanged();
  }

  /** The host's target in 4 KiB pages. */
  target(): number {
    return this.s.target;
  }

  /** The pages the guest says its balloon holds. */
  actual(): number {
    return this.s.actual;
  }

  /** The statistics the guest last reported, or null before any. */
  stats(): BalloonStats | null {
    return this.s.stats ? { ...this.s.stats } : null;
  }

  /** Machine frames freed by inflation and free page reporting since the device was made. */
  framesDiscarded(): number {
    return this.discarded;
  }

  /**
   * Asks the guest for fresh statistics by returning the buffer it left on the
   * statsq (5.5.6.3); the answer arrives as a new buffer. False if the device
   * holds none (no driver, or an answer is still on its way).
   */
  requestStats(): boolean {
    const ctx = this.ctx;
    const q = this.statsQueue();
    if (!ctx || !q || this.s.statsHead === null || this.closed) return false;
    const head = this.s.statsHead;
    this.s.statsHead = null;
    if (!q.push(head, 0)) return false;
    ctx.usedBuffers(this.statsIndex());
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  // ---------------------------------------------------------------- configuration space (5.5.4)

  private configByte(off: number): number {
    if (off >= CFG_NUM_PAGES && off < CFG_NUM_PAGES + 4) return (this.s.target >>> (8 * (off - CFG_NUM_PAGES))) & 0xff;
    if (off >= CFG_ACTUAL && off < CFG_ACTUAL + 4) return (this.s.actual >>> (8 * (off - CFG_ACTUAL))) & 0xff;
    return 0;
  }

  readConfig(offset: number, size: ConfigAccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.configByte(offset + i);
    return v;
  }

  writeConfig(offset: number, size: ConfigAccessSize, value: number): void {
    // Only `actual` is the driver's to write (5.5.4); num_pages is the device's.
    let actual = this.s.actual;
    for (let i = 0; i < size; i++) {
      const off = offset + i;
      if (off < CFG_ACTUAL || off >= CFG_ACTUAL + 4) continue;
      const sh = 8 * (off - CFG_ACTUAL);
      actual = ((actual & ~(0xff << sh)) | (((value >>> (8 * i)) & 0xff) << sh)) >>> 0;
    }
    this.s.actual = actual;
  }

  // ---------------------------------------------------------------- queues

  private negotiated(bit: number): boolean {
    return ((this.ctx?.features() ?? 0n) & feature(bit)) !== 0n;
  }

  private statsIndex(): number {
    return this.negotiated(VIRTIO_BALLOON_F_STATS_VQ) ? 2 : -1;
  }

  private reportingIndex(): number {
    if (!this.opts.freePageReporting || !this.negotiated(VIRTIO_BALLOON_F_REPORTING)) return -1;
    return this.negotiated(VIRTIO_BALLOON_F_STATS_VQ) ? 3 : 2;
  }

  private statsQueue(): Virtqueue | null {
    const i = this.statsIndex();
    return i < 0 ? null : this.ctx?.queue(i) ?? null;
  }

  activate(): void {
    for (let i = 0; i < this.queueSizes.length; i++) this.notify(i);
  }

  notify(index: number): void {
    if (this.closed) return;
    if (index === INFLATEQ) this.drain(INFLATEQ, (q, c) => this.inflate(q, c));
    else if (index === DEFLATEQ) this.drain(DEFLATEQ, () => true);
    else if (index === this.statsIndex()) this.takeStats(index);
    else if (index === this.reportingIndex()) this.drain(index, (_q, c) => this.report(c));
  }

  reset(): void {
    // The driver's buffer went away with its queue; the host's target and the last statistics stay.
    this.s.statsHead = null;
    this.s.actual = 0;
  }

  /** Takes every chain on queue `index`, handles it, and returns it with length 0. */
  private drain(index: number, handle: (q: Virtqueue, chain: DescriptorChain) => boolean): void {
    const ctx = this.ctx;
    const q = ctx?.queue(index);
    if (!ctx || !q) return;
    let used = false;
    for (let i = 0; i < q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      if (!handle(q, chain)) break;
      if (!q.push(chain.head, 0)) break;
      used = true;
    }
    if (used) ctx.usedBuffers(index);
  }

  /** An inflate buffer: le32 PFNs of pages the guest gives up. */
  private inflate(q: Virtqueue, chain: DescriptorChain): boolean {
    const n = Math.min(Math.floor(chain.readableBytes / 4), MAX_PFNS_PER_BUFFER);
    const b = q.read(chain, 0, 4 * n);
    if (!b) return false;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < n; i++) this.discardPage(v.getUint32(4 * i, true) * BALLOON_PAGE);
    return true;
  }

  /** A free page report: each buffer is a run of free guest memory; its whole balloon pages are discarded. */
  private report(chain: DescriptorChain): boolean {
    for (const seg of [...chain.readable, ...chain.writable]) {
      const first = Math.ceil(seg.addr / BALLOON_PAGE) * BALLOON_PAGE;
      const end = Math.floor((seg.addr + seg.len) / BALLOON_PAGE) * BALLOON_PAGE;
      for (let gpa = first; gpa < end; gpa += BALLOON_PAGE) this.discardPage(gpa);
    }
    return true;
  }

  /** PFNs outside guest RAM (the ROM, MMIO, holes) are ignored: the guest is not trusted. */
  private discardPage(gpa: number): void {
    if (this.pmap.discard(gpa)) this.discarded++;
  }

  /** The driver's statistics buffer: parse it and hold it until the next request. */
  private takeStats(index: number): void {
    const ctx = this.ctx;
    const q = ctx?.queue(index);
    if (!ctx || !q) return;
    let used = false;
    for (let i = 0; i < q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      const n = Math.min(Math.floor(chain.readableBytes / BALLOON_STAT_SIZE), MAX_STATS);
      const b = q.read(chain, 0, n * BALLOON_STAT_SIZE);
      if (!b) return;
      if (n > 0) {
        const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const stats: BalloonStats = {};
        for (let k = 0; k < n; k++) {
          const name = BALLOON_STAT_NAMES[v.getUint16(k * BALLOON_STAT_SIZE, true)];
          // Unknown tags are skipped (5.5.6.3.1: the device MUST ignore them).
          if (name !== undefined) stats[name] = Number(v.getBigUint64(k * BALLOON_STAT_SIZE + 2, true));
        }
        this.s.stats = stats;
      }
      // One buffer is held; a second one (the driver should not send it) returns the older.
      if (this.s.statsHead !== null && this.s.statsHead !== chain.head) {
        if (!q.push(this.s.statsHead, 0)) return;
        used = true;
      }
      this.s.statsHead = chain.head;
    }
    if (used) ctx.usedBuffers(index);
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioBalloonState {
    return { ...this.s, stats: this.s.stats ? { ...this.s.stats } : null };
  }

  restore(state: VirtioBalloonState): void {
    const u32 = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
    const statsOk = (s: unknown): s is BalloonStats => typeof s === 'object' && s !== null && !Array.isArray(s)
      && Object.entries(s).every(([k, v]) => (BALLOON_STAT_NAMES as readonly string[]).includes(k) && typeof v === 'number' && Number.isFinite(v) && v >= 0);
    const maxStats = this.queueSizes[2]!;
    const ok = typeof state === 'object' && state !== null && state.version === 1 && u32(state.target) && u32(state.actual)
      && (state.statsHead === null || (Number.isInteger(state.statsHead) && state.statsHead >= 0 && state.statsHead < maxStats))
      && (state.stats === null || statsOk(state.stats));
    if (!ok) throw new RangeError('virtio-balloon: malformed state');
    this.s = { version: 1, target: state.target, actual: state.actual, statsHead: state.statsHead, stats: state.stats ? { ...state.stats } : null };
  }
}
