/**
 * What an SMP VM's device thread and its vCPU threads (one per hart) share,
 * in one SharedArrayBuffer:
 *
 * - per hart, a mailbox for MMIO exits (only the device thread has the
 *   device models): the vCPU thread posts the access and waits; the device
 *   thread completes it and posts the reply, as a KVM vCPU thread returns
 *   from KVM_RUN to its VMM for an MMIO exit;
 * - per hart, the SBI HSM state and a pending hart_start's arguments;
 * - per hart, counters (instructions, exits by kind, steal time, the translator's);
 * - the VM's doorbell, which the device thread waits on, and a stop word.
 *
 * Everything else the threads share already lives in machine memory: the
 * harts' state blocks (interrupt lines, remote requests), the pmap and the clock.
 */
import type { ExitKind } from '../cpu/exit.js';
import { JIT_STAT_KEYS, type JitStats } from '../jit/engine.js';
import { waitAsync } from '../host/atomics.js';
import { HSM_START_PENDING, HSM_STARTED, HSM_STOPPED } from './sbi.js';

/** Exit kinds in counter order. */
export const EXIT_KINDS: readonly ExitKind[] = ['budget', 'wfi', 'ecall', 'mmio', 'readonly', 'nomem', 'htif', 'trap', 'halt'];
const EXIT_INDEX = new Map<ExitKind, number>(EXIT_KINDS.map((k, i) => [k, i]));

// i32 header
const W_BELL = 0;
const W_STOP = 1;
const HEADER_WORDS = 4;
// i32 per hart
const W_HSM = 0;
const W_MBOX = 1; // MBOX_*
const W_WRITE = 2;
const W_SIZE = 3;
const W_OK = 4;
const W_START = 5; // 1: hart_start's arguments are in place
const HART_WORDS = 8;
// i64 per hart
const Q_VALUE = 0;
const Q_START_ADDR = 1;
const Q_START_OPAQUE = 2;
const HART_Q = 4;
// f64 per hart
const F_GPA = 0;
const F_STEPS = 1;
const F_STEAL_NS = 2;
const F_EXITS = 3;
const F_JIT = 16; // JIT_STAT_KEYS
const HART_F = 32;

const MBOX_EMPTY = 0;
const MBOX_REQUEST = 1;
const MBOX_REPLY = 2;

/** Longest blocking wait before a vCPU thread looks at the stop word again (ms). */
const STOP_POLL_MS = 50;

export interface VcpuChannelShared {
  readonly buffer: SharedArrayBuffer;
  readonly harts: number;
}

/** An MMIO access a hart exited for, as the device thread sees it. */
export interface MmioRequest {
  readonly write: boolean;
  readonly gpa: number;
  readonly size: 1 | 2 | 4 | 8;
  readonly value: bigint;
}

export class VcpuChannel {
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly f64: Float64Array;
  private readonly q0: number;
  private readonly f0: number;

  private constructor(readonly shared: VcpuChannelShared) {
    const n = shared.harts;
    const i32Bytes = (HEADER_WORDS + n * HART_WORDS) * 4;
    this.q0 = Math.ceil(i32Bytes / 8);
    this.f0 = this.q0 + n * HART_Q;
    this.i32 = new Int32Array(shared.buffer);
    this.i64 = new BigInt64Array(shared.buffer);
    this.f64 = new Float64Array(shared.buffer);
  }

  static create(harts: number): VcpuChannel {
    const words64 = Math.ceil(((HEADER_WORDS + harts * HART_WORDS) * 4) / 8) + harts * (HART_Q + HART_F);
    const c = new VcpuChannel({ buffer: new SharedArrayBuffer(words64 * 8), harts });
    for (let h = 0; h < harts; h++) c.i32[c.w(h, W_HSM)] = HSM_STOPPED;
    return c;
  }

  static attach(shared: VcpuChannelShared): VcpuChannel {
    return new VcpuChannel(shared);
  }

  get harts(): number { return this.shared.harts; }

  private w(h: number, k: number): number { return HEADER_WORDS + h * HART_WORDS + k; }
  private q(h: number, k: number): number { return this.q0 + h * HART_Q + k; }
  private f(h: number, k: number): number { return this.f0 + h * HART_F + k; }

  // ---- doorbell and stop

  /** The doorbell's count: pass it to waitBell after looking for work. */
  bell(): number { return Atomics.load(this.i32, W_BELL); }

  ring(): void {
    Atomics.add(this.i32, W_BELL, 1);
    Atomics.notify(this.i32, W_BELL);
  }

  /** Waits (without blocking the thread's event loop) for a ring after `seen`, at most `ms`. */
  async waitBell(seen: number, ms: number): Promise<void> {
    await waitAsync(this.i32, W_BELL, seen, ms);
  }

  stop(): void {
    Atomics.store(this.i32, W_STOP, 1);
    for (let h = 0; h < this.harts; h++) Atomics.notify(this.i32, this.w(h, W_MBOX));
  }

  stopped(): boolean { return Atomics.load(this.i32, W_STOP) !== 0; }

  // ---- SBI HSM (section 9): any thread reads; the hart itself or a starter writes

  hsm(h: number): number { return Atomics.load(this.i32, this.w(h, W_HSM)); }

  setHsm(h: number, state: number): void { Atomics.store(this.i32, this.w(h, W_HSM), state); }

  /** hart_start from another hart: false if `h` was not stopped (it is started or being started). */
  requestStart(h: number, addr: bigint, opaque: bigint): boolean {
    if (Atomics.compareExchange(this.i32, this.w(h, W_HSM), HSM_STOPPED, HSM_START_PENDING) !== HSM_STOPPED) return false;
    Atomics.store(this.i64, this.q(h, Q_START_ADDR), BigInt.asIntN(64, addr));
    Atomics.store(this.i64, this.q(h, Q_START_OPAQUE), BigInt.asIntN(64, opaque));
    Atomics.store(this.i32, this.w(h, W_START), 1);
    return true;
  }

  /** The start hart `h` was asked for, taken (its arguments complete), or null. */
  takeStart(h: number): { addr: bigint; opaque: bigint } | null {
    if (Atomics.load(this.i32, this.w(h, W_START)) !== 1) return null;
    const start = {
      addr: BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_START_ADDR))),
      opaque: BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_START_OPAQUE))),
    };
    Atomics.store(this.i32, this.w(h, W_START), 0);
    return start;
  }

  started(h: number): void { this.setHsm(h, HSM_STARTED); }

  // ---- MMIO mailbox

  /**
   * A vCPU thread's MMIO access, completed by the device thread. Returns the
   * loaded value (0n for stores), or null if the device thread found no
   * device there (an access fault), or 'stopped' when the VM stops meanwhile.
   */
  mmio(h: number, write: boolean, gpa: number, size: number, value: bigint): bigint | null | 'stopped' {
    const m = this.w(h, W_MBOX);
    this.f64[this.f(h, F_GPA)] = gpa;
    this.i32[this.w(h, W_WRITE)] = write ? 1 : 0;
    this.i32[this.w(h, W_SIZE)] = size;
    Atomics.store(this.i64, this.q(h, Q_VALUE), BigInt.asIntN(64, value));
    Atomics.store(this.i32, m, MBOX_REQUEST);
    this.ring();
    while (Atomics.load(this.i32, m) !== MBOX_REPLY) {
      if (this.stopped()) return 'stopped';
      Atomics.wait(this.i32, m, MBOX_REQUEST, STOP_POLL_MS);
    }
    const ok = Atomics.load(this.i32, this.w(h, W_OK)) !== 0;
    const v = BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_VALUE)));
    Atomics.store(this.i32, m, MBOX_EMPTY);
    return ok ? v : null;
  }

  /** The device thread's side: the access hart `h` waits for, or null. */
  pendingMmio(h: number): MmioRequest | null {
    if (Atomics.load(this.i32, this.w(h, W_MBOX)) !== MBOX_REQUEST) return null;
    const size = this.i32[this.w(h, W_SIZE)]!;
    const gpa = this.f64[this.f(h, F_GPA)]!;
    // Written by the vCPU thread of this VM, which runs guest code: checked as guest input.
    if ((size !== 1 && size !== 2 && size !== 4 && size !== 8) || !Number.isSafeInteger(gpa) || gpa < 0) {
      return { write: true, gpa: -1, size: 1, value: 0n };
    }
    return { write: this.i32[this.w(h, W_WRITE)] !== 0, gpa, size, value: BigInt.asUintN(64, Atomics.load(this.i64, this.q(h, Q_VALUE))) };
  }

  /** Completes hart `h`'s access: `value` for a load, null for an access fault. */
  reply(h: number, value: bigint | null): void {
    Atomics.store(this.i32, this.w(h, W_OK), value === null ? 0 : 1);
    Atomics.store(this.i64, this.q(h, Q_VALUE), BigInt.asIntN(64, value ?? 0n));
    Atomics.store(this.i32, this.w(h, W_MBOX), MBOX_REPLY);
    Atomics.notify(this.i32, this.w(h, W_MBOX));
  }

  // ---- counters (written by the hart's thread, read by the device thread)

  setSteps(h: number, steps: number): void { this.f64[this.f(h, F_STEPS)] = steps; }
  steps(h: number): number { return this.f64[this.f(h, F_STEPS)]!; }
  setStealNs(h: number, ns: number): void { this.f64[this.f(h, F_STEAL_NS)] = ns; }
  stealNs(h: number): number { return this.f64[this.f(h, F_STEAL_NS)]!; }

  setJitStats(h: number, s: JitStats): void {
    const f = this.f(h, F_JIT);
    for (let k = 0; k < JIT_STAT_KEYS.length; k++) this.f64[f + k] = s[JIT_STAT_KEYS[k]!];
  }

  jitStats(h: number): JitStats {
    const f = this.f(h, F_JIT);
    const out = {} as Record<keyof JitStats, number>;
    JIT_STAT_KEYS.forEach((key, k) => { out[key] = this.f64[f + k]!; });
    return out;
  }

  countExit(h: number, kind: ExitKind): void {
    const i = this.f(h, F_EXITS + EXIT_INDEX.get(kind)!);
    this.f64[i] = this.f64[i]! + 1;
  }

  /** Exits of every hart, by kind (kinds never taken left out). */
  exits(): Map<string, number> {
    const out = new Map<string, number>();
    EXIT_KINDS.forEach((k, i) => {
      let n = 0;
      for (let h = 0; h < this.harts; h++) n += this.f64[this.f(h, F_EXITS + i)]!;
      if (n > 0) out.set(k, n);
    });
    return out;
  }
}
