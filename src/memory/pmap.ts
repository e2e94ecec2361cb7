/**
 * The per-VM physical map: guest frame → machine frame + permissions
 * (Disco's pmap, brief section 3). RAM and ROM regions of a VM's guest-physical
 * address space are described here; everything else is MMIO or a hole and makes
 * the hart exit to its caller.
 *
 * Entries live in a SharedArrayBuffer so harts on worker threads share them.
 * Machine frames are given to a VM only when its guest first touches a page.
 */
import { MachineMemory, PAGE_SHIFT, PAGE_SIZE } from './machine-memory.js';

/** Entry bits. An entry is (machineFrame << PM_FRAME_SHIFT) | flags; 0 means "not present". */
export const PM_PRESENT = 1;
/** Stores may go straight to the frame; clear for read-only / copy-on-write pages. */
export const PM_WRITE = 2;
/** The page holds translated code: stores take the slow path so translations are invalidated. */
export const PM_CODE = 4;
/** Stores to this page are watched (e.g. the HTIF tohost word). */
export const PM_WATCH = 8;
export const PM_FRAME_SHIFT = 4;

export type RegionKind = 'ram' | 'rom';

export interface PmapRegion {
  readonly name: string;
  readonly kind: RegionKind;
  /** Guest-physical base address, page aligned. */
  readonly base: number;
  readonly pages: number;
  /** Index of the region's first page in the entry array. */
  readonly first: number;
}

export interface PmapShared {
  readonly regions: readonly PmapRegion[];
  readonly entries: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  /** Ring of machine pages whose translated code was written (CODE_LOG_ENTRIES words). */
  readonly codeLog: SharedArrayBuffer;
  /** Ring of pmap indices of pages newly marked as holding translated code (CODE_LOG_ENTRIES words). */
  readonly markLog: SharedArrayBuffer;
  readonly limitFrames: number;
  /** Quiescence words of the harts that run over this pmap, and frames waiting for them (see `discard`). */
  readonly quiesce: SharedArrayBuffer;
}

export const CODE_LOG_ENTRIES = 1024;
/** Hart slots in the quiescence words (one per hart of a VM; VirtMachine allows 8). */
export const PMAP_HART_SLOTS = 8;
const Q_LOCK = 0;
const Q_PENDING = 1; // frames waiting in the deferred free list
const Q_HARTS = 2; // PMAP_HART_SLOTS words: 0 = outside run(), else 1 + the generation seen on entry
const Q_LIST = Q_HARTS + PMAP_HART_SLOTS; // pairs (frame, generation of its discard)
const Q_CAPACITY = 4096;

const CTL_MAPPED = 0; // frames this VM holds
const CTL_GENERATION = 1; // bumped when a mapping is removed or weakened: harts flush their TLBs
const CTL_TOUCHED = 2; // guest pages ever touched
const CTL_CODE_GEN = 3; // entries ever appended to the code log
const CTL_MARK_GEN = 4; // entries ever appended to the mark log
const CTL_WORDS = 5;

export interface RegionSpec {
  readonly name: string;
  readonly kind: RegionKind;
  readonly base: number;
  readonly size: number;
}

/**
 * Translators of this VM's harts hear about pages holding translated code:
 * 'mark' when a page starts to (stores through soft TLBs must stop),
 * 'write' when something writes it or its frame goes away (drop the translations).
 * Listeners run on the thread that calls. Harts on other threads learn of
 * marks from the mark log at their slice boundaries, and of writes from the
 * code log (Hart.followPmap, Jit.readCodeLog).
 */
export type CodeEvent = 'mark' | 'write';
export type CodeListener = (event: CodeEvent, frameAddr: number) => void;

export class Pmap {
  readonly regions: readonly PmapRegion[];
  private readonly codeListeners: CodeListener[] = [];
  readonly entries: Int32Array;
  readonly limitFrames: number;
  private readonly ctl: Int32Array;
  private readonly codeLog: Int32Array;
  private readonly markLog: Int32Array;
  private readonly q: Int32Array;
  private readonly shared: PmapShared;

  private constructor(readonly mem: MachineMemory, shared: PmapShared) {
    this.shared = shared;
    this.regions = shared.regions;
    this.entries = new Int32Array(shared.entries);
    this.ctl = new Int32Array(shared.control);
    this.codeLog = new Int32Array(shared.codeLog);
    this.markLog = new Int32Array(shared.markLog);
    this.limitFrames = shared.limitFrames;
    this.q = new Int32Array(shared.quiesce);
  }

  static create(mem: MachineMemory, specs: readonly RegionSpec[], limitFrames = Number.MAX_SAFE_INTEGER): Pmap {
    const regions: PmapRegion[] = [];
    let first = 0;
    for (const s of specs) {
      if (s.base % PAGE_SIZE !== 0 || s.size % PAGE_SIZE !== 0 || s.size <= 0) {
        throw new RangeError(`region ${s.name}: base and size must be positive multiples of ${PAGE_SIZE}`);
      }
      for (const r of regions) {
        if (s.base < r.base + r.pages * PAGE_SIZE && r.base < s.base + s.size) {
          throw new RangeError(`region ${s.name} overlaps ${r.name}`);
        }
      }
      const pages = s.size / PAGE_SIZE;
      regions.push({ name: s.name, kind: s.kind, base: s.base, pages, first });
      first += pages;
    }
    const shared: PmapShared = {
      regions,
      entries: new SharedArrayBuffer(first * 4),
      control: new SharedArrayBuffer(CTL_WORDS * 4),
      codeLog: new SharedArrayBuffer(CODE_LOG_ENTRIES * 4),
      markLog: new SharedArrayBuffer(CODE_LOG_ENTRIES * 4),
      limitFrames,
      quiesce: new SharedArrayBuffer((Q_LIST + 2 * Q_CAPACITY) * 4),
    };
    return new Pmap(mem, shared);
  }

  static attach(mem: MachineMemory, shared: PmapShared): Pmap {
    return new Pmap(mem, shared);
  }

  share(): PmapShared {
    return this.shared;
  }

  /** Index of the page holding `gpa` in `entries`, or -1 if no region maps it. */
  indexOf(gpa: number): number {
    for (const r of this.regions) {
      const off = gpa - r.base;
      if (off >= 0 && off < r.pages * PAGE_SIZE) return r.first + Math.floor(off / PAGE_SIZE);
    }
    return -1;
  }

  regionOf(gpa: number): PmapRegion | undefined {
    for (const r of this.regions) {
      const off = gpa - r.base;
      if (off >= 0 && off < r.pages * PAGE_SIZE) return r;
    }
    return undefined;
  }

  /**
   * The entry for page `index`, backing it with a fresh zero frame on first touch.
   * Returns 0 when no frame can be had (pool or VM limit exhausted).
   */
  entry(index: number): number {
    const e = this.entries[index]!;
    if (e !== 0) return e;
    return this.fault(index);
  }

  private fault(index: number): number {
    if (Atomics.load(this.ctl, CTL_MAPPED) >= this.limitFrames) return 0;
    const frame = this.mem.allocFrame();
    if (frame < 0) return 0;
    const region = this.regionAtIndex(index);
    const flags = PM_PRESENT | (region?.kind === 'rom' ? 0 : PM_WRITE);
    const e = (frame << PM_FRAME_SHIFT) | flags;
    const prev = Atomics.compareExchange(this.entries, index, 0, e);
    if (prev !== 0) {
      // Another hart backed it first.
      this.mem.freeFrame(frame);
      return prev;
    }
    Atomics.add(this.ctl, CTL_MAPPED, 1);
    Atomics.add(this.ctl, CTL_TOUCHED, 1);
    return e;
  }

  private regionAtIndex(index: number): PmapRegion | undefined {
    for (const r of this.regions) if (index >= r.first && index < r.first + r.pages) return r;
    return undefined;
  }

  /** Machine byte address of guest-physical `gpa` (backing the page if needed), or -1. */
  machineAddress(gpa: number): number {
    const i = this.indexOf(gpa);
    if (i < 0) return -1;
    const e = this.entry(i);
    if (e === 0) return -1;
    return (e >>> PM_FRAME_SHIFT) * PAGE_SIZE + (gpa % PAGE_SIZE);
  }

  /** Sets or clears flag bits on a page (e.g. PM_WATCH); bumps the generation when a permission is removed. */
  setFlags(gpa: number, set: number, clear: number): void {
    const i = this.indexOf(gpa);
    if (i < 0) throw new RangeError(`0x${gpa.toString(16)} is not guest RAM`);
    const e = this.entry(i);
    if (e === 0) throw new RangeError('out of machine memory');
    Atomics.store(this.entries, i, (e | set) & ~clear);
    this.bumpGeneration();
  }

  /**
   * Gives the machine frame behind guest-physical page `gpa` back to the
   * machine memory (the balloon and free page reporting): the entry becomes
   * "not present", so the next touch backs the page with a fresh zero frame.
   * Only RAM pages are discarded; ROM and watched pages keep their frames.
   * Returns whether a frame was freed.
   *
   * The generation bump makes every hart flush its soft TLB at its next slice
   * boundary, which `Hart.run` also checks before its first instruction. A
   * hart on another thread may still be inside `run()` with a translation to
   * the frame, so the frame goes back to the pool only once every hart is
   * either outside `run()` or entered it after the bump (`enterRun` /
   * `leaveRun` record that); until then it waits on a deferred free list
   * that `reclaim()` empties.
   */
  discard(gpa: number): boolean {
    const r = this.regionOf(gpa);
    if (r === undefined || r.kind !== 'ram') return false;
    const i = this.indexOf(gpa);
    for (;;) {
      const e = Atomics.load(this.entries, i);
      if (e === 0 || (e & PM_WATCH)) return false;
      if (e & PM_CODE) {
        this.codeWritten(i);
        continue;
      }
      // Exchange only if nobody changed the entry meanwhile (a hart backing or re-flagging it).
      if (Atomics.compareExchange(this.entries, i, e, 0) !== e) continue;
      this.bumpGeneration();
      this.retire(e >>> PM_FRAME_SHIFT);
      Atomics.sub(this.ctl, CTL_MAPPED, 1);
      return true;
    }
  }

  onCode(listener: CodeListener): () => void {
    this.codeListeners.push(listener);
    return () => {
      const i = this.codeListeners.indexOf(listener);
      if (i >= 0) this.codeListeners.splice(i, 1);
    };
  }

  /** Page `index` now holds translated code: later writes must call codeWritten(). */
  markCode(index: number): void {
    for (;;) {
      const e = Atomics.load(this.entries, index);
      if (e === 0 || (e & PM_CODE)) return;
      if (Atomics.compareExchange(this.entries, index, e, e | PM_CODE) === e) {
        const frameAddr = (e >>> PM_FRAME_SHIFT) * PAGE_SIZE;
        this.appendLog(this.markLog, CTL_MARK_GEN, index);
        for (const l of this.codeListeners) l('mark', frameAddr);
        return;
      }
    }
  }

  /** Something is about to write page `index`: if it holds translated code, the translators drop it. */
  codeWritten(index: number): void {
    for (;;) {
      const e = Atomics.load(this.entries, index);
      if ((e & PM_CODE) === 0) return;
      if (Atomics.compareExchange(this.entries, index, e, e & ~PM_CODE) === e) {
        const frameAddr = (e >>> PM_FRAME_SHIFT) * PAGE_SIZE;
        // Translators on other threads read the log at their slice boundaries.
        this.appendLog(this.codeLog, CTL_CODE_GEN, frameAddr | 0);
        for (const l of this.codeListeners) l('write', frameAddr);
        return;
      }
    }
  }

  /** Copies bytes into guest-physical memory (loaders, devices' DMA), backing pages as needed. */
  write(gpa: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const addr = gpa + done;
      const ma = this.machineAddress(addr);
      if (ma < 0) throw new RangeError(`guest-physical 0x${addr.toString(16)} is not RAM`);
      this.codeWritten(this.indexOf(addr));
      const n = Math.min(data.length - done, PAGE_SIZE - (addr % PAGE_SIZE));
      this.mem.u8.set(data.subarray(done, done + n), ma);
      done += n;
    }
  }

  /** Copies bytes out of guest-physical memory. */
  read(gpa: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const addr = gpa + done;
      const ma = this.machineAddress(addr);
      if (ma < 0) throw new RangeError(`guest-physical 0x${addr.toString(16)} is not RAM`);
      const n = Math.min(length - done, PAGE_SIZE - (addr % PAGE_SIZE));
      out.set(this.mem.u8.subarray(ma, ma + n), done);
      done += n;
    }
    return out;
  }

  /**
   * Appends to a ring log whose entry count is control word `gen`: the entry
   * is stored before the count that publishes it, and one thread at a time,
   * so two threads appending together neither take one slot nor publish a
   * slot nobody wrote (a lost entry would leave another thread's stale code
   * or write tag in place).
   */
  private appendLog(log: Int32Array, gen: number, value: number): void {
    this.qlock();
    try {
      const g = Atomics.load(this.ctl, gen);
      Atomics.store(log, g % CODE_LOG_ENTRIES, value);
      Atomics.store(this.ctl, gen, g + 1);
    } finally {
      this.qunlock();
    }
  }

  /** Entries ever appended to the mark log (see markLogEntry). */
  markGeneration(): number {
    return Atomics.load(this.ctl, CTL_MARK_GEN);
  }

  /** The pmap index of mark-log entry `n` (valid while markGeneration() - n <= CODE_LOG_ENTRIES). */
  markLogEntry(n: number): number {
    return Atomics.load(this.markLog, n % CODE_LOG_ENTRIES);
  }

  /** Entries ever appended to the code log (see codeLogEntry). */
  codeGeneration(): number {
    return Atomics.load(this.ctl, CTL_CODE_GEN);
  }

  /** The machine page of code-log entry `n` (valid while codeGeneration() - n <= CODE_LOG_ENTRIES). */
  codeLogEntry(n: number): number {
    return Atomics.load(this.codeLog, n % CODE_LOG_ENTRIES) >>> 0;
  }

  generation(): number {
    return Atomics.load(this.ctl, CTL_GENERATION);
  }

  bumpGeneration(): void {
    Atomics.add(this.ctl, CTL_GENERATION, 1);
  }

  framesMapped(): number {
    return Atomics.load(this.ctl, CTL_MAPPED);
  }

  pagesTouched(): number {
    return Atomics.load(this.ctl, CTL_TOUCHED);
  }

  // ---- quiescence: when a discarded frame may go back to the pool

  /** Hart `slot` is about to call `run()`: it will flush its TLB for every generation up to now. */
  enterRun(slot: number): void {
    Atomics.store(this.q, Q_HARTS + slot, this.generation() + 1);
  }

  /** Hart `slot` returned from `run()`: it holds no translation it could use until its next entry. */
  leaveRun(slot: number): void {
    Atomics.store(this.q, Q_HARTS + slot, 0);
    if (Atomics.load(this.q, Q_PENDING) > 0) this.reclaim();
  }

  /** Frames discarded but not yet back in the pool. */
  framesDeferred(): number {
    return Atomics.load(this.q, Q_PENDING);
  }

  /** Frees every deferred frame that no hart can still reach; returns how many. */
  reclaim(): number {
    this.qlock();
    let freed = 0;
    try {
      const safe = this.quiescentGeneration();
      let n = this.q[Q_PENDING]!;
      for (let i = 0; i < n;) {
        const frame = this.q[Q_LIST + 2 * i]!, gen = this.q[Q_LIST + 2 * i + 1]!;
        if (gen <= safe) {
          this.mem.freeFrame(frame);
          freed++;
          n--;
          this.q[Q_LIST + 2 * i] = this.q[Q_LIST + 2 * n]!;
          this.q[Q_LIST + 2 * i + 1] = this.q[Q_LIST + 2 * n + 1]!;
        } else i++;
      }
      Atomics.store(this.q, Q_PENDING, n);
    } finally {
      this.qunlock();
    }
    return freed;
  }

  /**
   * Gives every frame this pmap holds back to the pool (the VM is gone: none
   * of its harts runs any more). Returns the number of frames freed.
   */
  releaseAll(): number {
    for (let s = 0; s < PMAP_HART_SLOTS; s++) Atomics.store(this.q, Q_HARTS + s, 0);
    let freed = this.reclaim();
    for (let i = 0; i < this.entries.length; i++) {
      const e = Atomics.exchange(this.entries, i, 0);
      if (e === 0) continue;
      this.mem.freeFrame(e >>> PM_FRAME_SHIFT);
      Atomics.sub(this.ctl, CTL_MAPPED, 1);
      freed++;
    }
    this.bumpGeneration();
    return freed;
  }

  /** The newest generation every hart has passed (harts outside run() have passed them all). */
  private quiescentGeneration(): number {
    let safe = this.generation();
    for (let s = 0; s < PMAP_HART_SLOTS; s++) {
      const v = Atomics.load(this.q, Q_HARTS + s);
      if (v !== 0) safe = Math.min(safe, v - 1);
    }
    return safe;
  }

  /** A discarded frame: freed now if no hart can reach it, else deferred. */
  private retire(frame: number): void {
    const gen = this.generation();
    if (this.quiescentGeneration() >= gen) {
      this.mem.freeFrame(frame);
      return;
    }
    for (;;) {
      this.qlock();
      const n = this.q[Q_PENDING]!;
      if (n < Q_CAPACITY) {
        this.q[Q_LIST + 2 * n] = frame;
        this.q[Q_LIST + 2 * n + 1] = gen;
        Atomics.store(this.q, Q_PENDING, n + 1);
        this.qunlock();
        return;
      }
      this.qunlock();
      // The list is full: harts leave run() within one budget; wait for them.
      if (this.reclaim() === 0) Atomics.wait(this.q, Q_LOCK, 0, 1);
    }
  }

  /** The pmap's lock across threads: the deferred-free list, and appends to the logs. */
  private qlock(): void {
    while (Atomics.compareExchange(this.q, Q_LOCK, 0, 1) !== 0) Atomics.wait(this.q, Q_LOCK, 1, 1);
  }

  private qunlock(): void {
    Atomics.store(this.q, Q_LOCK, 0);
    Atomics.notify(this.q, Q_LOCK, 1);
  }
}

export { PAGE_SHIFT, PAGE_SIZE };
