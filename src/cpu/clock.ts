/**
 * The machine's time base (mtime), 10 MHz as on QEMU's virt. Shared by all harts
 * and devices of a VM through a SharedArrayBuffer.
 *
 * - 'host': mtime follows the host's monotonic clock.
 * - 'instructions': mtime follows retired instructions, so a run is reproducible.
 */
export const MTIME_HZ = 10_000_000;
/** In 'instructions' mode: retired instructions per mtime tick (a nominal 100 MIPS). */
export const INSTRUCTIONS_PER_TICK = 10;

export type ClockMode = 'host' | 'instructions';

export interface ClockShared {
  readonly mode: ClockMode;
  /** f64[0]: host epoch (ms) at mtime origin; f64[1]: mtime offset in ticks; f64[2]: retired instructions. */
  readonly buffer: SharedArrayBuffer;
}

export class Clock {
  private readonly f64: Float64Array;
  private readonly originMs: number;

  private constructor(readonly shared: ClockShared) {
    this.f64 = new Float64Array(shared.buffer);
    // performance.now() has a per-thread origin: rebase on the shared epoch.
    this.originMs = this.f64[0]! - performance.timeOrigin;
  }

  static create(mode: ClockMode): Clock {
    const buffer = new SharedArrayBuffer(32);
    const f = new Float64Array(buffer);
    f[0] = performance.timeOrigin + performance.now();
    return new Clock({ mode, buffer });
  }

  static attach(shared: ClockShared): Clock {
    return new Clock(shared);
  }

  /** Current mtime in ticks (an integer-valued double; exact below 2^53). */
  now(): number {
    if (this.shared.mode === 'host') {
      return Math.floor((performance.now() - this.originMs) * (MTIME_HZ / 1000)) + this.f64[1]!;
    }
    return Math.floor(this.f64[2]! / INSTRUCTIONS_PER_TICK) + this.f64[1]!;
  }

  /** A guest write of mtime. */
  set(ticks: number): void {
    this.f64[1] = this.f64[1]! + (ticks - this.now());
  }

  /** Harts report retired instructions (drives 'instructions' mode). */
  retire(n: number): void {
    if (this.shared.mode === 'instructions') this.f64[2] = this.f64[2]! + n;
  }

  /** Host milliseconds until mtime reaches `ticks` (0 if it already has; Infinity if it never will by itself). */
  msUntil(ticks: number): number {
    const d = ticks - this.now();
    if (d <= 0) return 0;
    if (this.shared.mode === 'instructions') return Infinity;
    return d / (MTIME_HZ / 1000);
  }
}
