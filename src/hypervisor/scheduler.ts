/**
 * The vCPU scheduler: proportional share (stride scheduling) of a fixed number
 * of run tokens — host threads that may execute guest code at once — among
 * the VMs of a host, with time slices, per-VM weights (shares) and optional
 * caps. Its state lives in one SharedArrayBuffer, so every vCPU thread
 * schedules itself at its slice boundaries without a round trip to the main
 * thread.
 *
 * Two levels, as a VM's cgroup over its vCPU threads under CFS:
 *
 * - A VM (a slot) has the weight, the cap, the pause flag and the virtual time
 *   (its pass). Each token-holding vCPU of the VM charges the VM `used / weight`,
 *   so a VM running on two threads at once spends its share twice as fast.
 * - A vCPU (an entity of the slot: the VM's thread when its harts take turns on
 *   it, else one per hart thread) holds at most one token. Entities queue
 *   ordered by their VM's pass, then by their own (so the vCPUs of one VM take
 *   turns).
 *
 * - An entity that wants to run takes a free token, or queues (WAITING) and
 *   sleeps with Atomics.waitAsync on its grant word (its thread's event loop,
 *   hence the VM's device back ends, keeps running).
 * - At the end of its slice a running entity is charged; if a queued entity has
 *   a smaller key, the token goes to it and this one queues; otherwise it runs
 *   another slice.
 * - An entity whose harts wait in WFI gives its token back (IDLE) and costs
 *   nothing until an interrupt. A VM that had nothing runnable re-enters with its
 *   pass raised to the smallest pass among active VMs, so sleeping earns no credit.
 * - A cap (percent of one host thread, over all the VM's vCPUs) is enforced per
 *   period: a VM that used its share of the period has each vCPU give its token
 *   back at its slice end and sleep to the period's end.
 * - A paused VM holds no token and is never granted one.
 *
 * Time an entity waits for a token while runnable is its steal time (SBI STA).
 */

import { waitAsync } from '../host/atomics.js';
import type { GateHooks, RunGate, RunGateFactory } from '../machine/run-gate.js';

export const MAX_VMS = 64;
/** Entities per VM: one per vCPU (MAX_CPUS of the virt board). */
export const MAX_ENTITIES_PER_VM = 8;
const MAX_ENTITIES = MAX_VMS * MAX_ENTITIES_PER_VM;
export const DEFAULT_SLICE_MS = 10;
export const CAP_PERIOD_MS = 100;
/** Virtual-time units per millisecond at weight 1. */
const STRIDE = 1 << 16;

export const SLOT_STATE = { FREE: 0, IDLE: 1, WAITING: 2, RUNNING: 3, THROTTLED: 4, PAUSED: 5 } as const;
export type SlotStateName = 'free' | 'idle' | 'waiting' | 'running' | 'throttled' | 'paused';
const STATE_NAMES: readonly SlotStateName[] = ['free', 'idle', 'waiting', 'running', 'throttled', 'paused'];
/** A VM's state from its entities': the first of these any entity is in. */
const STATE_PRIORITY = [SLOT_STATE.RUNNING, SLOT_STATE.WAITING, SLOT_STATE.THROTTLED, SLOT_STATE.PAUSED, SLOT_STATE.IDLE];

// i32 header
const H_LOCK = 0; // 0 free, else 1 + entity of the holder (MAX_ENTITIES: the host)
const H_TOKENS = 1;
const H_FREE = 2;
const H_SLICE_MS = 3;
const H_NAP = 7; // a word nobody notifies: the lock's back-off waits on it
const HEADER_WORDS = 8;
// i32 per VM slot
const S_WEIGHT = 0;
const S_CAP = 1; // percent of one host thread; 0: none
const S_PAUSED = 2;
const S_WAKE = 3; // bumped to wake the VM's waiting entities (resume, stop)
const SLOT_WORDS = 4;
// i32 per entity
const E_STATE = 0;
const E_GRANT = 1; // 1 once a token was handed to the entity (its wait word)
const ENTITY_WORDS = 2;
// f64 per VM slot
const F_PASS = 0;
const F_RUN_MS = 1; // time holding a token, summed over its entities
const F_STEAL_MS = 2; // time runnable without a token, summed over its entities
const F_SLICES = 3;
const F_THROTTLED_MS = 4;
const F_PERIOD_START = 5;
const F_PERIOD_USED = 6;
const SLOT_F64 = 8;
// f64 per entity
const EF_PASS = 0;
const ENTITY_F64 = 1;

const SLOTS_W = HEADER_WORDS;
const ENTITIES_W = SLOTS_W + MAX_VMS * SLOT_WORDS;
const I32_WORDS = ENTITIES_W + MAX_ENTITIES * ENTITY_WORDS;
const F64_OFFSET = Math.ceil((I32_WORDS * 4) / 8) * 8;
const ENTITIES_F = MAX_VMS * SLOT_F64;
const F64_WORDS = ENTITIES_F + MAX_ENTITIES * ENTITY_F64;

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
    this.f64 = new Float64Array(shared.buffer, F64_OFFSET, F64_WORDS);
  }

  static create(tokens: number, sliceMs = DEFAULT_SLICE_MS): SchedulerState {
    if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError(`run tokens must be a whole number from 1, got ${tokens}`);
    const buffer = new SharedArrayBuffer(F64_OFFSET + F64_WORDS * 8);
    const s = new SchedulerState({ buffer });
    s.i32[H_TOKENS] = tokens;
    s.i32[H_FREE] = tokens;
    s.i32[H_SLICE_MS] = sliceMs;
    return s;
  }

  get tokens(): number { return this.i32[H_TOKENS]!; }
  get freeTokens(): number { return Atomics.load(this.i32, H_FREE); }
  get sliceMs(): number { return this.i32[H_SLICE_MS]!; }

  protected si(slot: number, w: number): number { return SLOTS_W + slot * SLOT_WORDS + w; }
  protected fi(slot: number, w: number): number { return slot * SLOT_F64 + w; }
  protected ei(entity: number, w: number): number { return ENTITIES_W + entity * ENTITY_WORDS + w; }
  protected efi(entity: number, w: number): number { return ENTITIES_F + entity * ENTITY_F64 + w; }

  protected lock(owner: number): void {
    for (let spins = 0; Atomics.compareExchange(this.i32, H_LOCK, 0, owner + 1) !== 0; spins++) {
      // Critical sections are a few hundred instructions; yield the core now and then.
      if (spins > 1000) Atomics.wait(this.i32, H_NAP, 0, 0.05);
    }
  }

  protected unlock(): void {
    Atomics.store(this.i32, H_LOCK, 0);
  }

  /** The VM's state: running if any of its vCPUs holds a token, and so on (STATE_PRIORITY). */
  state(slot: number): number {
    let seen = 0;
    for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) seen |= 1 << Atomics.load(this.i32, this.ei(slot * MAX_ENTITIES_PER_VM + k, E_STATE));
    for (const s of STATE_PRIORITY) if (seen & (1 << s)) return s;
    return SLOT_STATE.FREE;
  }

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

  /** Whether entity a comes before entity b in the queue (its VM's pass, then its own). */
  protected before(a: number, b: number): boolean {
    const pa = this.f64[this.fi((a / MAX_ENTITIES_PER_VM) | 0, F_PASS)]!;
    const pb = this.f64[this.fi((b / MAX_ENTITIES_PER_VM) | 0, F_PASS)]!;
    if (pa !== pb) return pa < pb;
    return this.f64[this.efi(a, EF_PASS)]! < this.f64[this.efi(b, EF_PASS)]!;
  }

  /** The queued entity that runs next (not of a paused VM), or -1. Under the lock. */
  protected nextQueued(except: number): number {
    let best = -1;
    for (let e = 0; e < MAX_ENTITIES; e++) {
      if (e === except || this.i32[this.ei(e, E_STATE)] !== SLOT_STATE.WAITING) continue;
      if (this.i32[this.si((e / MAX_ENTITIES_PER_VM) | 0, S_PAUSED)] !== 0) continue;
      if (best < 0 || this.before(e, best)) best = e;
    }
    return best;
  }

  /** Hands a token given back to the entity that runs next, or frees it. Under the lock. */
  protected passToken(): void {
    const best = this.nextQueued(-1);
    if (best < 0) {
      this.i32[H_FREE] = this.i32[H_FREE]! + 1;
      return;
    }
    this.i32[this.ei(best, E_STATE)] = SLOT_STATE.RUNNING;
    Atomics.store(this.i32, this.ei(best, E_GRANT), 1);
    Atomics.notify(this.i32, this.ei(best, E_GRANT));
  }

  /** Whether any entity of the slot but `except` runs or waits to. Under the lock. */
  protected slotActive(slot: number, except: number): boolean {
    for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) {
      const e = slot * MAX_ENTITIES_PER_VM + k;
      if (e === except) continue;
      const st = this.i32[this.ei(e, E_STATE)];
      if (st === SLOT_STATE.RUNNING || st === SLOT_STATE.WAITING) return true;
    }
    return false;
  }

  /** The smallest pass among VMs that run or wait to, but `except` (the virtual time "now"). Under the lock. */
  protected activePass(except: number): number {
    let min = Infinity;
    for (let s = 0; s < MAX_VMS; s++) {
      if (s === except || !this.slotActive(s, -1)) continue;
      min = Math.min(min, this.f64[this.fi(s, F_PASS)]!);
    }
    return min;
  }

  /** The smallest own pass among the slot's active entities but `except`. Under the lock. */
  protected activeEntityPass(slot: number, except: number): number {
    let min = Infinity;
    for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) {
      const e = slot * MAX_ENTITIES_PER_VM + k;
      if (e === except) continue;
      const st = this.i32[this.ei(e, E_STATE)];
      if (st === SLOT_STATE.RUNNING || st === SLOT_STATE.WAITING) min = Math.min(min, this.f64[this.efi(e, EF_PASS)]!);
    }
    return min;
  }
}

/** The host's side: slots for VMs, weights, caps, pause, and clean-up after a VM's threads are gone. */
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
      this.lock(MAX_ENTITIES);
      for (let w = 0; w < SLOT_WORDS; w++) Atomics.store(this.i32, this.si(s, w), 0);
      this.f64.fill(0, this.fi(s, 0), this.fi(s, SLOT_F64));
      for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) {
        const e = s * MAX_ENTITIES_PER_VM + k;
        Atomics.store(this.i32, this.ei(e, E_GRANT), 0);
        this.f64[this.efi(e, EF_PASS)] = 0;
        Atomics.store(this.i32, this.ei(e, E_STATE), SLOT_STATE.IDLE);
      }
      this.unlock();
      this.configure(s, weight, capPercent);
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
      this.lock(MAX_ENTITIES);
      // Entities that queued while the VM was paused may have been passed over: free tokens go to them now.
      for (let k = 0; k < MAX_ENTITIES_PER_VM && this.i32[H_FREE]! > 0; k++) {
        const e = slot * MAX_ENTITIES_PER_VM + k;
        if (this.i32[this.ei(e, E_STATE)] !== SLOT_STATE.WAITING) continue;
        this.i32[H_FREE] = this.i32[H_FREE]! - 1;
        this.i32[this.ei(e, E_STATE)] = SLOT_STATE.RUNNING;
        Atomics.store(this.i32, this.ei(e, E_GRANT), 1);
        Atomics.notify(this.i32, this.ei(e, E_GRANT));
      }
      this.unlock();
    }
    this.wake(slot);
  }

  /** Wakes the slot's entities if they wait (resume, stop). */
  wake(slot: number): void {
    Atomics.add(this.i32, this.si(slot, S_WAKE), 1);
    Atomics.notify(this.i32, this.si(slot, S_WAKE));
    for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) Atomics.notify(this.i32, this.ei(slot * MAX_ENTITIES_PER_VM + k, E_GRANT));
  }

  /**
   * The VM's threads have ended (or were terminated): tokens its entities held
   * go to the next in line, and the slot is free. A lock one of its threads
   * held when it died is broken.
   */
  release(slot: number): void {
    if (!this.used.has(slot)) return;
    const owner = Atomics.load(this.i32, H_LOCK) - 1;
    if (owner >= slot * MAX_ENTITIES_PER_VM && owner < (slot + 1) * MAX_ENTITIES_PER_VM) Atomics.store(this.i32, H_LOCK, 0);
    this.lock(MAX_ENTITIES);
    for (let k = 0; k < MAX_ENTITIES_PER_VM; k++) {
      const e = slot * MAX_ENTITIES_PER_VM + k;
      const st = this.i32[this.ei(e, E_STATE)];
      this.i32[this.ei(e, E_STATE)] = SLOT_STATE.FREE;
      if (st === SLOT_STATE.RUNNING) this.passToken();
    }
    this.unlock();
    this.used.delete(slot);
  }
}

/** What a vCPU thread needs to build its gate (createRunGate). */
export interface VcpuGateData {
  readonly shared: SchedulerShared;
  readonly slot: number;
  /** Which of the VM's entities (0 .. MAX_ENTITIES_PER_VM - 1): its hart's index. */
  readonly entity: number;
}

/**
 * One entity's side of the scheduler: the machine's RunGate for the VM's
 * thread (its harts taking turns) or for one hart's thread. It holds at most one token.
 */
export class VcpuGate extends SchedulerState {
  private holding = false;
  private sliceStart = 0;
  private closed = false;
  private readonly entity: number;

  constructor(shared: SchedulerShared, private readonly slot: number, private readonly hooks: GateHooks, entity = 0) {
    super(shared);
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_VMS) throw new RangeError(`scheduler slot ${slot} out of range`);
    if (!Number.isInteger(entity) || entity < 0 || entity >= MAX_ENTITIES_PER_VM) throw new RangeError(`scheduler entity ${entity} out of range`);
    this.entity = slot * MAX_ENTITIES_PER_VM + entity;
  }

  private setState(s: number): void {
    this.i32[this.ei(this.entity, E_STATE)] = s;
  }

  enter(): Promise<void> | null {
    if (this.closed) return null;
    if (this.holding) {
      const now = nowMs();
      const paused = Atomics.load(this.i32, this.si(this.slot, S_PAUSED)) !== 0;
      if (!paused && now - this.sliceStart < this.sliceMs && !this.overBudget(now)) return null;
      return this.sliceEnd(now);
    }
    return this.acquire();
  }

  idle(): void {
    if (!this.holding) return;
    this.lock(this.entity);
    this.charge(nowMs());
    this.setState(SLOT_STATE.IDLE);
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
    Atomics.notify(this.i32, this.ei(this.entity, E_GRANT));
  }

  /** Charges the time since the slice started to the VM and to this entity. Under the lock. */
  private charge(now: number): void {
    const s = this.slot;
    const used = Math.max(0, now - this.sliceStart);
    const weight = Math.max(1, this.i32[this.si(s, S_WEIGHT)]!);
    this.f64[this.fi(s, F_PASS)] = this.f64[this.fi(s, F_PASS)]! + (used * STRIDE) / weight;
    this.f64[this.efi(this.entity, EF_PASS)] = this.f64[this.efi(this.entity, EF_PASS)]! + used * STRIDE;
    this.f64[this.fi(s, F_RUN_MS)] = this.f64[this.fi(s, F_RUN_MS)]! + used;
    this.f64[this.fi(s, F_SLICES)] = this.f64[this.fi(s, F_SLICES)]! + 1;
    this.newPeriodIfDue(now);
    this.f64[this.fi(s, F_PERIOD_USED)] = this.f64[this.fi(s, F_PERIOD_USED)]! + used;
    this.sliceStart = now;
  }

  /** The VM's run time allowed per cap period, or Infinity without a cap. */
  private budget(): number {
    const cap = Atomics.load(this.i32, this.si(this.slot, S_CAP));
    return cap > 0 ? (CAP_PERIOD_MS * cap) / 100 : Infinity;
  }

  /** This slice would take the VM past its cap: end it now rather than at the slice's length. */
  private overBudget(now: number): boolean {
    const b = this.budget();
    return b !== Infinity && this.f64[this.fi(this.slot, F_PERIOD_USED)]! + (now - this.sliceStart) >= b;
  }

  /**
   * The VM's cap period: a new one once the last is over. What the VM ran
   * beyond its budget (vCPUs on other threads end their slices a little
   * late) is carried into the next periods, so over time a cap holds exactly.
   * Under the lock.
   */
  private newPeriodIfDue(now: number): void {
    const s = this.slot;
    const start = this.f64[this.fi(s, F_PERIOD_START)]!;
    if (now - start < CAP_PERIOD_MS) return;
    const periods = Math.floor((now - start) / CAP_PERIOD_MS);
    const b = this.budget();
    const left = b === Infinity ? 0 : Math.max(0, this.f64[this.fi(s, F_PERIOD_USED)]! - periods * b);
    this.f64[this.fi(s, F_PERIOD_START)] = start + periods * CAP_PERIOD_MS;
    this.f64[this.fi(s, F_PERIOD_USED)] = left;
  }

  private async sliceEnd(now: number): Promise<void> {
    const s = this.slot;
    this.lock(this.entity);
    this.charge(now);
    const paused = this.i32[this.si(s, S_PAUSED)] !== 0;
    const throttle = this.f64[this.fi(s, F_PERIOD_USED)]! >= this.budget();
    if (paused || throttle) {
      this.setState(paused ? SLOT_STATE.PAUSED : SLOT_STATE.THROTTLED);
      this.holding = false;
      this.passToken();
      this.unlock();
      if (!paused) {
        // Sleep period by period until the VM's debt is paid (or the cap lifted).
        const t0 = nowMs();
        for (;;) {
          this.lock(this.entity);
          this.newPeriodIfDue(nowMs());
          const owed = this.f64[this.fi(s, F_PERIOD_USED)]! >= this.budget();
          const until = this.f64[this.fi(s, F_PERIOD_START)]! + CAP_PERIOD_MS;
          this.unlock();
          if (!owed || this.closed) break;
          await this.sleepUntil(until);
        }
        this.lock(this.entity);
        this.f64[this.fi(s, F_THROTTLED_MS)] = this.f64[this.fi(s, F_THROTTLED_MS)]! + (nowMs() - t0);
        this.unlock();
      }
      return this.acquire();
    }
    // An entity queued ahead of this one: it gets the token, this one queues.
    const next = this.nextQueued(this.entity);
    if (next < 0 || !this.before(next, this.entity)) {
      this.unlock();
      return;
    }
    this.holding = false;
    this.setState(SLOT_STATE.WAITING);
    Atomics.store(this.i32, this.ei(this.entity, E_GRANT), 0);
    this.passToken();
    this.unlock();
    await this.waitGrant(nowMs());
  }

  private async acquire(): Promise<void> {
    const s = this.slot;
    // A paused VM waits for its resume first.
    while (!this.closed && Atomics.load(this.i32, this.si(s, S_PAUSED)) !== 0) {
      this.setState(SLOT_STATE.PAUSED);
      const v = Atomics.load(this.i32, this.si(s, S_WAKE));
      if (Atomics.load(this.i32, this.si(s, S_PAUSED)) === 0) break;
      await waitAsync(this.i32, this.si(s, S_WAKE), v, 1000);
    }
    if (this.closed) return;
    const start = nowMs();
    this.lock(this.entity);
    // Sleeping earns no credit: a VM re-enters at the virtual time of the active VMs,
    // a vCPU at that of its VM's active vCPUs.
    if (!this.slotActive(s, this.entity)) {
      const active = this.activePass(s);
      if (active !== Infinity) this.f64[this.fi(s, F_PASS)] = Math.max(this.f64[this.fi(s, F_PASS)]!, active);
    }
    const siblings = this.activeEntityPass(s, this.entity);
    if (siblings !== Infinity) this.f64[this.efi(this.entity, EF_PASS)] = Math.max(this.f64[this.efi(this.entity, EF_PASS)]!, siblings);
    if (this.i32[H_FREE]! > 0) {
      this.i32[H_FREE] = this.i32[H_FREE]! - 1;
      this.setState(SLOT_STATE.RUNNING);
      this.unlock();
      this.took(start);
      return;
    }
    this.setState(SLOT_STATE.WAITING);
    Atomics.store(this.i32, this.ei(this.entity, E_GRANT), 0);
    this.unlock();
    await this.waitGrant(start);
  }

  private async waitGrant(start: number): Promise<void> {
    const g = this.ei(this.entity, E_GRANT);
    while (!this.closed && Atomics.load(this.i32, g) === 0) {
      await waitAsync(this.i32, g, 0, 1000);
    }
    if (this.closed) {
      // Stopping while queued: leave the queue, or pass on a token granted meanwhile.
      this.lock(this.entity);
      if (Atomics.load(this.i32, g) === 1) this.passToken();
      this.setState(SLOT_STATE.IDLE);
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
    const waited = now - waitStart;
    if (waited > 0) {
      this.lock(this.entity);
      this.f64[this.fi(this.slot, F_STEAL_MS)] = this.f64[this.fi(this.slot, F_STEAL_MS)]! + waited;
      this.unlock();
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

/** Builds a vCPU thread's gate (machine/run-gate.ts, RunGateSpec): `data` is a VcpuGateData. */
export const createRunGate: RunGateFactory = (data, hooks): RunGate => {
  const d = data as Partial<VcpuGateData> | null;
  if (!d || !(d.shared?.buffer instanceof SharedArrayBuffer) || typeof d.slot !== 'number' || typeof d.entity !== 'number') {
    throw new TypeError('a vCPU gate needs the scheduler, a slot and an entity');
  }
  return new VcpuGate(d.shared, d.slot, hooks, d.entity);
};
