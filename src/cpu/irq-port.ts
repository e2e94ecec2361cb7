/**
 * The interrupt inputs of one hart, reachable from any thread through the
 * hart's state block: device-driven mip lines, the machine-timer comparator
 * and the wake-up word a hart sleeping in WFI waits on.
 */
import type { InterruptPort } from '../devices/device.js';
import type { MachineMemory } from '../memory/machine-memory.js';
import { SLOT } from './layout.js';

export class HartIrqPort implements InterruptPort {
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly w: number;
  private readonly q: number;

  constructor(mem: MachineMemory, blockOffset: number) {
    this.i32 = new Int32Array(mem.buffer, 0, mem.buffer.byteLength >>> 2);
    this.i64 = new BigInt64Array(mem.buffer, 0, mem.buffer.byteLength >>> 3);
    this.w = blockOffset >>> 2;
    this.q = blockOffset >>> 3;
  }

  setIrqLine(bit: number, level: boolean): void {
    const i = this.w + 2 * SLOT.IRQ_LINES;
    if (level) Atomics.or(this.i32, i, bit);
    else Atomics.and(this.i32, i, ~bit);
    this.wake();
  }

  irqLines(): number {
    return Atomics.load(this.i32, this.w + 2 * SLOT.IRQ_LINES);
  }

  setTimerCompare(v: bigint): void {
    Atomics.store(this.i64, this.q + SLOT.MTIMECMP, BigInt.asIntN(64, v));
    this.wake();
  }

  timerCompare(): bigint {
    return BigInt.asUintN(64, Atomics.load(this.i64, this.q + SLOT.MTIMECMP));
  }

  /** Wakes the hart's thread if it sleeps in WFI. */
  wake(): void {
    const i = this.w + 2 * SLOT.WAKE;
    Atomics.add(this.i32, i, 1);
    Atomics.notify(this.i32, i);
  }

  /** Sleeps while the wake word still holds `seen`, at most `ms` milliseconds. */
  sleep(seen: number, ms: number): void {
    Atomics.wait(this.i32, this.w + 2 * SLOT.WAKE, seen, ms);
  }

  wakeCount(): number {
    return Atomics.load(this.i32, this.w + 2 * SLOT.WAKE);
  }

  /**
   * Asks the hart for REQ_* work (a remote fence) and returns once it is done:
   * the hart served it at a slice boundary, or it is outside run(), where its
   * next run() serves it before any instruction. A hart asking (from an SBI
   * call) is itself outside run(), so two harts never wait on each other.
   */
  request(bits: number): void {
    const w = this.w;
    Atomics.or(this.i32, w + 2 * SLOT.REQ_BITS, bits);
    const seq = Atomics.add(this.i32, w + 2 * SLOT.REQ_SEQ, 1) + 1;
    for (;;) {
      const ack = Atomics.load(this.i32, w + 2 * SLOT.REQ_ACK);
      if (((ack - seq) | 0) >= 0 || Atomics.load(this.i32, w + 2 * SLOT.IN_RUN) === 0) return;
      Atomics.wait(this.i32, w + 2 * SLOT.REQ_ACK, ack, 1);
    }
  }
}
