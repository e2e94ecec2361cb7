/**
 * The vCPU scheduler: proportional share (stride scheduling) of a fixed number
 * of run tokens — host threads that may execute guest code at once — among
 * the VMs of a host, with time slices, per-VM weights (shares) and optional
 * caps. Its state lives in one SharedArrayBuffer, so every VM's worker
 * schedules itself at its slice boundaries without a round trip to the main
 * thread:
 *
 * - A VM that wants to run takes a free token, or queues (state WAITING) and
 *   sleeps with Atomics.waitAsync on its grant word (its worker's event loop,
 *   hence its device back ends, keeps running).
 * - At the end of its slice a running VM is charged `used / weight` of virtual
 *   time (its pass). If a queued VM has a smaller pass, the token goes to it and
 *   the VM queues; otherwise it runs another slice.
 * - A VM whose harts all wait in WFI gives its token back (state IDLE) and costs
 *   nothing until an interrupt; it re-enters with its pass raised to the
 *   smallest pass among active VMs, so sleeping earns no credit.
 * - A cap (percent of one host thread) is enforced per period: a VM that used
 *   its share of the period gives its token back and sleeps to the period's end.
 * - A paused VM holds no token and is never granted one.
 *
 * Time a VM waits for a token while runnable is its steal time (SBI STA).
 */

import { waitAsync } from '../host/atomics.js';
import type { GateHooks, RunGate } from '../machine/run-gate.js';

export const MAX_VMS = 64;
export const DEFAULT_SLICE_MS = 10;
export const CAP_PERIOD_MS = 100;
/** Virtual-time units per millisecond at weight 1. */
const STRIDE = 1 << 16;

export const SLOT_STATE = { FREE: 0, IDLE: 1, WAITING: 2, RUNNING: 3, THROTTLED: 4, PAUSED: 5 } as const;
export type SlotStateName = 'free' | 'idle' | 'waiting' | 'running' | 'throttled' | 'paused';
const STATE_NAMES: readonly SlotStateName[] = ['free', 'idle', 'waiting', 'running', 'throttled', 'paused'];

// i32 header
const H_LOCK = 0; // 0 free, else 1 + slot of the holder (MAX_VMS: the host)
const H_TOKENS = 1;
const H_FREE = 2;
const H_SLICE_MS = 3;
const HEADER_WORDS = 8;
// i32 per slot
const S_STATE = 0;
const S_GRANT = 1; // 1 once a token was handed to the slot (its wait word)
const S_WEIGHT = 2;
const S_CAP = 3; // percent of one host thread; 0: none
const S_PAUSED = 4;
const S_WAKE = 5; // bumped to wake a waiting worker (resume, stop)
const SLOT_WORDS = 8;
// f64 per slot
const F_PASS = 0;
const F_RUN_MS = 1; // time holding a token
const F_STEAL_MS = 2; // time runnable without a token
const F_SLICES = 3;
const F_THROTTLED_MS = 4;
const SLOT_F64 = 8;

const I32_WORDS = HEADER_WORDS + MAX_VMS * SLOT_WORDS;
const F64_OFFSET = Math.ceil((I32_WORDS * 4) / 8) * 8;

export interface SchedulerShared {
  readonly buffer: SharedArrayBuffer;
}

/** A monotonic millisecond clock with one origin for every thread. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface SlotStats {
  readonly state: SlotStateName;
  readonly weight: number;
  readonly capPercent: number;
  readonly runMs: number;
  readonly stealMs: number;
  readonly slices: number;
  readonly throttledMs: number;
}

/** The scheduler's shared state, as any thread sees it. */
export class SchedulerState {
  protected readonly i32: Int32Array;
  protected readonly f64: Float64Array;

  constructor(readonly shared: SchedulerShared) {
    this.i32 = new Int32Array(shared.buffer, 0, I32_WORDS);
    this.f64 = new Float64Array(shared.buffer, F64_OFFSET, MAX_VMS * SLOT_F64);
  }

  static create(tokens: number, sliceMs = DEFAULT_SLICE_MS): SchedulerState {
    if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError(`run tokens must be a whole number from 1, got ${tokens}`);
    const buffer = new SharedArrayBuffer(F64_OFFSET + MAX_VMS * SLOT_F64 * 8);
    const s = new SchedulerState({ buffer });
    s.i32[H_TOKENS] = tokens;
    s.i32[H_FREE] = tokens;
    s.i32[H_SLICE_MS] = sliceMs;
    return s;
  }

  get tokens(): number { return this.i32[H_TOKENS]!; }
  get freeTokens(): number { return Atomics.load(this.i32, H_FREE); }
  get sliceMs(): number { return this.i32[H_SLICE_MS]!; }

  protected si(slot: number, w: number): number { return HEADER_WORDS + slot * SLOT_WORDS + w; }
  protected fi(slot: number, w: number): number { return slot * SLOT_F64 + w; }

  protected lock(owner: number): void {
    for (let spins = 0; Atomics.compareExchange(this.i32, H_LOCK, 0, owner + 1) !== 0; spins++) {
      // Critical sections are a few dozen instructions; yield the core now and then.
      if (spins > 1000) Atomics.wait(this.i32, HEADER_WORDS - 1, 0, 0.05);
    }
  }

  protected unlock(): void {
    Atomics.store(this.i32, H_LOCK, 0);
  }

  state(slot: number): number { return Atomics.load(this.i32, this.si(slot, S_STATE)); }

  stats(slot: number): SlotStats {
    return {
      state: STATE_NAMES[this.state(slot)] ?? 'free',
      weight: Atomics.load(this.i32, this.si(slot, S_WEIGHT)),
      capPercent: Atomics.load(this.i32, this.si(slot, S_CAP)),
      runMs: this.f64[this.fi(slot, F_RUN_MS)]!,
      stealMs: this.f64[this.fi(slot, F_STEAL_MS)]!,
      slices: this.f64[this.fi(slot, F_SLICES)]!,
      throttledMs: this.f64[this.fi(slot, F_THROTTLED_MS)]!,
    };
  }

  /** Hands the token held by (or released for) `from` to the queued VM with the smallest pass, or frees it. Under the lock. */
  protected passToken(): void {
    let best = -1;
    let bestPass = Infinity;
    for (let s = 0; s < MAX_VMS; s++) {
      if (this.i32[this.si(s, S_STATE)] !== SLOT_STATE.WAITING) continue;
      if (this.i32[this.si(s, S_PAUSED)] !== 0) continue;
      const p = this.f64[this.fi(s, F_PASS)]!;
      if (p < bestPass) { bestPass = p; best = s; }
    }
    if (best < 0) {
      this.i32[H_FREE] = this.i32[H_FREE]! + 1;
      return;
    }
    this.i32[this.si(best, S_STATE)] = SLOT_STATE.RUNNING;
    Atomics.store(this.i32, this.si(best, S_GRANT), 1);
    Atomics.notify(this.i32, this.si(best, S_GRANT));
  }

  /** The smallest pass among VMs that run or wait to (the virtual time "now"). Under the lock. */
  protected activePass(except: number): number {
    let min = Infinity;
    for (let s = 0; s < MAX_VMS; s++) {
      if (s === except) continue;
      const st = this.i32[this.si(s, S_STATE)];
      if (st === SLOT_STATE.RUNNING || st === SLOT_STATE.WAITING) min = Math.min(min, this.f64[this.fi(s, F_PASS)]!);
    }
    return min;
  }
}

/** The host's side: slots for VMs, weights, caps, pause, and clean-up after a VM's worker is gone. */
export class HostScheduler extends SchedulerState {
  private readonly used = new Set<number>();

  static createHost(tokens: number, sliceMs = DEFAULT_SLICE_MS): HostScheduler {
    const s = SchedulerState.create(tokens, sliceMs);
    return new HostScheduler(s.shared);
  }

  /** A slot for a new VM, or -1 when MAX_VMS run. */
  allocate(weight: number, capPercent: number): number {
    for (let s = 0; s < MAX_VMS; s++) {
      if (this.used.has(s)) continue;
      this.used.add(s);
      for (let w = 0; w < SLOT_WORDS; w++) Atomics.store(this.i32, this.si(s, w), 0);
      this.f64.fill(0, this.fi(s, 0), this.fi(s, SLOT_F64));
      this.configure(s, weight, capPercent);
      Atomics.store(this.i32, this.si(s, S_STATE), SLOT_STATE.IDLE);
      return s;
    }
    return -1;
  }

  configure(slot: number, weight: number, capPercent: number): void {
    Atomics.store(this.i32, this.si(slot, S_WEIGHT), weight);
    Atomics.store(this.i32, this.si(slot, S_CAP), capPercent);
  }

  setPaused(slot: number, paused: boolean): void {
    Atomics.store(this.i32, this.si(slot, S_PAUSED), paused ? 1 : 0);
    if (!paused) {
      this.lock(MAX_VMS);
      // A VM that queued while paused may have been passed over: free tokens go to it now.
      if (this.i32[this.si(slot, S_STATE)] === SLOT_STATE.WAITING && this.i32[H_FREE]! > 0) {
        this.i32[H_FREE] = this.i32[H_FREE]! - 1;
        this.i32[this.si(slot, S_STATE)] = SLOT_STATE.RUNNING;
        Atomics.store(this.i32, this.si(slot, S_GRANT), 1);
        Atomics.notify(this.i32, this.si(slot, S_GRANT));
      }
      this.unlock();
    }
    this.wake(slot);
  }

  /** Wakes the slot's worker if it waits (resume, stop). */
  wake(slot: number): void {
    Atomics.add(this.i32, this.si(slot, S_WAKE), 1);
    Atomics.notify(this.i32, this.si(slot, S_WAKE));
    Atomics.notify(this.i32, this.si(slot, S_GRANT));
  }

  /**
   * The VM's worker has ended (or was terminated): a token it held goes to
   * the next VM, and the slot is free. A lock its thread held when it died is
   * broken.
   */
  release(slot: number): void {
    if (!this.used.has(slot)) return;
    if (Atomics.load(this.i32, H_LOCK) === slot + 1) Atomics.store(this.i32, H_LOCK, 0);
    this.lock(MAX_VMS);
    const st = this.i32[this.si(slot, S_STATE)];
    this.i32[this.si(slot, S_STATE)] = SLOT_STATE.FREE;
    if (st === SLOT_STATE.RUNNING) this.passToken();
    this.unlock();
    this.used.delete(slot);
  }
}


/**
 * A VM worker's side of the scheduler: the machine's RunGate. It holds at
 * most one token (a VM's harts take turns on its one worker thread).
 */
export class VcpuGate extends SchedulerState {
  private holding = false;
  private sliceStart = 0;
  private periodStart = 0;
  private periodUsed = 0;
  private closed = false;

  constructor(shared: SchedulerShared, private readonly slot: number, private readonly hooks: GateHooks) {
    super(shared);
  }

  enter(): Promise<void> | null {
    if (this.closed) return null;
    if (this.holding) {
      const now = nowMs();
      const paused = Atomics.load(this.i32, this.si(this.slot, S_PAUSED)) !== 0;
      if (!paused && now - this.sliceStart < this.sliceMs) return null;
      return this.sliceEnd(now);
    }
    return this.acquire();
  }

  idle(): void {
    if (!this.holding) return;
    this.lock(this.slot);
    this.charge(nowMs());
    this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.IDLE;
    this.holding = false;
    this.passToken();
    this.unlock();
  }

  /** The VM is stopping: give the token back and stop waiting. */
  close(): void {
    this.idle();
    this.closed = true;
    Atomics.add(this.i32, this.si(this.slot, S_WAKE), 1);
    Atomics.notify(this.i32, this.si(this.slot, S_WAKE));
    Atomics.notify(this.i32, this.si(this.slot, S_GRANT));
  }

  /** Charges the time since the slice started. Under the lock. */
  private charge(now: number): void {
    const used = Math.max(0, now - this.sliceStart);
    const weight = Math.max(1, this.i32[this.si(this.slot, S_WEIGHT)]!);
    this.f64[this.fi(this.slot, F_PASS)] = this.f64[this.fi(this.slot, F_PASS)]! + (used * STRIDE) / weight;
    this.f64[this.fi(this.slot, F_RUN_MS)] = this.f64[this.fi(this.slot, F_RUN_MS)]! + used;
    this.f64[this.fi(this.slot, F_SLICES)] = this.f64[this.fi(this.slot, F_SLICES)]! + 1;
    if (now - this.periodStart >= CAP_PERIOD_MS) {
      this.periodStart = now;
      this.periodUsed = 0;
    }
    this.periodUsed += used;
    this.sliceStart = now;
  }

  private async sliceEnd(now: number): Promise<void> {
    this.lock(this.slot);
    this.charge(now);
    const paused = this.i32[this.si(this.slot, S_PAUSED)] !== 0;
    const cap = this.i32[this.si(this.slot, S_CAP)]!;
    const throttle = cap > 0 && this.periodUsed >= (CAP_PERIOD_MS * cap) / 100;
    if (paused || throttle) {
      this.i32[this.si(this.slot, S_STATE)] = paused ? SLOT_STATE.PAUSED : SLOT_STATE.THROTTLED;
      this.holding = false;
      this.passToken();
      this.unlock();
      if (!paused) {
        const until = this.periodStart + CAP_PERIOD_MS;
        const t0 = nowMs();
        await this.sleepUntil(until);
        this.f64[this.fi(this.slot, F_THROTTLED_MS)] = this.f64[this.fi(this.slot, F_THROTTLED_MS)]! + (nowMs() - t0);
        this.periodStart = nowMs();
        this.periodUsed = 0;
      }
      return this.acquire();
    }
    // Another VM queued with less virtual time: it gets the token, this VM queues.
    let other = false;
    const mine = this.f64[this.fi(this.slot, F_PASS)]!;
    for (let s = 0; s < MAX_VMS && !other; s++) {
      if (s === this.slot || this.i32[this.si(s, S_STATE)] !== SLOT_STATE.WAITING || this.i32[this.si(s, S_PAUSED)] !== 0) continue;
      if (this.f64[this.fi(s, F_PASS)]! < mine) other = true;
    }
    if (!other) {
      this.unlock();
      return;
    }
    this.holding = false;
    this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.WAITING;
    Atomics.store(this.i32, this.si(this.slot, S_GRANT), 0);
    this.passToken();
    this.unlock();
    await this.waitGrant(nowMs());
  }

  private async acquire(): Promise<void> {
    // A paused VM waits for its resume first.
    while (!this.closed && Atomics.load(this.i32, this.si(this.slot, S_PAUSED)) !== 0) {
      this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.PAUSED;
      const v = Atomics.load(this.i32, this.si(this.slot, S_WAKE));
      if (Atomics.load(this.i32, this.si(this.slot, S_PAUSED)) === 0) break;
      await waitAsync(this.i32, this.si(this.slot, S_WAKE), v, 1000);
    }
    if (this.closed) return;
    const start = nowMs();
    this.lock(this.slot);
    // Sleeping earns no credit: re-enter at the virtual time of the active VMs.
    const active = this.activePass(this.slot);
    if (active !== Infinity) this.f64[this.fi(this.slot, F_PASS)] = Math.max(this.f64[this.fi(this.slot, F_PASS)]!, active);
    if (this.i32[H_FREE]! > 0) {
      this.i32[H_FREE] = this.i32[H_FREE]! - 1;
      this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.RUNNING;
      this.unlock();
      this.took(nowMs());
      return;
    }
    this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.WAITING;
    Atomics.store(this.i32, this.si(this.slot, S_GRANT), 0);
    this.unlock();
    await this.waitGrant(start);
  }

  private async waitGrant(start: number): Promise<void> {
    const g = this.si(this.slot, S_GRANT);
    while (!this.closed && Atomics.load(this.i32, g) === 0) {
      await waitAsync(this.i32, g, 0, 1000);
    }
    if (this.closed) {
      // Stopping while queued: leave the queue, or pass on a token granted meanwhile.
      this.lock(this.slot);
      if (Atomics.load(this.i32, g) === 1) this.passToken();
      this.i32[this.si(this.slot, S_STATE)] = SLOT_STATE.IDLE;
      this.unlock();
      return;
    }
    Atomics.store(this.i32, g, 0);
    this.took(start);
  }

  private took(waitStart: number): void {
    const now = nowMs();
    this.holding = true;
    this.sliceStart = now;
    if (this.periodStart === 0) this.periodStart = now;
    const waited = now - waitStart;
    if (waited > 0) {
      this.f64[this.fi(this.slot, F_STEAL_MS)] = this.f64[this.fi(this.slot, F_STEAL_MS)]! + waited;
      this.hooks.steal(waited);
    }
  }

  private async sleepUntil(t: number): Promise<void> {
    const w = this.si(this.slot, S_WAKE);
    for (;;) {
      const left = t - nowMs();
      if (left <= 0 || this.closed) return;
      const v = Atomics.load(this.i32, w);
      await waitAsync(this.i32, w, v, left);
    }
  }
}
