/**
 * Platform-Level Interrupt Controller, SiFive layout as on QEMU virt
 * (RISC-V PLIC specification 1.0.0): source priorities at 4·n, pending bits at
 * 0x1000, per-context enables at 0x2000 + 0x80·c, threshold and claim/complete
 * at 0x200000 + 0x1000·c. Context 2h is hart h's M-mode, 2h + 1 its S-mode;
 * they drive the harts' MEIP and SEIP lines.
 */
import { MIP_MEIP, MIP_SEIP } from '../cpu/csr-numbers.js';
import type { AccessSize, InterruptPort, MmioDevice } from './device.js';

/** Sources 1..95, as QEMU virt (riscv,ndev = 95). */
export const PLIC_SOURCES = 96;
export const PLIC_SIZE = 0x600000;
const WORDS = PLIC_SOURCES / 32;
const PENDING = 0x1000;
const ENABLE = 0x2000;
const ENABLE_STRIDE = 0x80;
const CONTEXT = 0x200000;
const CONTEXT_STRIDE = 0x1000;

export interface PlicState {
  readonly version: 1;
  priority: number[];
  /** Gateway: a request is pending. */
  pending: number[];
  /** Claimed and not completed. */
  inService: number[];
  /** Input level of each source. */
  level: number[];
  enable: number[][];
  threshold: number[];
}

export class Plic implements MmioDevice {
  readonly name = 'plic';
  readonly size = PLIC_SIZE;
  private s: PlicState;

  constructor(readonly base: number, private readonly harts: readonly InterruptPort[]) {
    const contexts = harts.length * 2;
    this.s = {
      version: 1,
      priority: new Array<number>(PLIC_SOURCES).fill(0),
      pending: new Array<number>(WORDS).fill(0),
      inService: new Array<number>(WORDS).fill(0),
      level: new Array<number>(WORDS).fill(0),
      enable: Array.from({ length: contexts }, () => new Array<number>(WORDS).fill(0)),
      threshold: new Array<number>(contexts).fill(0),
    };
  }

  /** A device sets the level of interrupt source `irq` (1..95). */
  setIrq(irq: number, level: boolean): void {
    if (irq <= 0 || irq >= PLIC_SOURCES) return;
    const w = irq >> 5, b = 1 << (irq & 31);
    const s = this.s;
    if (level) {
      s.level[w]! |= b;
      // The gateway forwards a new request only when none is pending or in service.
      if (!(s.inService[w]! & b)) s.pending[w]! |= b;
    } else {
      s.level[w]! &= ~b;
      s.pending[w]! &= ~b;
    }
    this.update();
  }

  read(off: number, size: AccessSize): bigint | null {
    if (size !== 4 || off % 4) return null;
    const s = this.s;
    if (off < PENDING) return BigInt(s.priority[off >> 2] ?? 0);
    if (off < ENABLE) {
      const i = (off - PENDING) >> 2;
      return i < WORDS ? BigInt(s.pending[i]! >>> 0) : 0n;
    }
    if (off < CONTEXT) {
      const c = Math.floor((off - ENABLE) / ENABLE_STRIDE);
      const i = ((off - ENABLE) % ENABLE_STRIDE) >> 2;
      const en = s.enable[c];
      return en && i < WORDS ? BigInt(en[i]! >>> 0) : 0n;
    }
    const c = Math.floor((off - CONTEXT) / CONTEXT_STRIDE);
    if (c >= s.threshold.length) return 0n;
    const reg = (off - CONTEXT) % CONTEXT_STRIDE;
    if (reg === 0) return BigInt(s.threshold[c]!);
    if (reg === 4) return BigInt(this.claim(c));
    return 0n;
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    if (size !== 4 || off % 4) return false;
    const s = this.s;
    const v = Number(value & 0xffffffffn);
    if (off < PENDING) {
      const irq = off >> 2;
      if (irq > 0 && irq < PLIC_SOURCES) s.priority[irq] = v & 7;
    } else if (off < ENABLE) {
      // Pending bits are read-only.
    } else if (off < CONTEXT) {
      const c = Math.floor((off - ENABLE) / ENABLE_STRIDE);
      const i = ((off - ENABLE) % ENABLE_STRIDE) >> 2;
      const en = s.enable[c];
      // Source 0 does not exist: its enable bit is hard-wired to 0.
      if (en && i < WORDS) en[i] = i === 0 ? v & ~1 : v;
    } else {
      const c = Math.floor((off - CONTEXT) / CONTEXT_STRIDE);
      if (c < s.threshold.length) {
        const reg = (off - CONTEXT) % CONTEXT_STRIDE;
        if (reg === 0) s.threshold[c] = v & 7;
        else if (reg === 4) this.complete(c, v);
      }
    }
    this.update();
    return true;
  }

  /**
   * The highest-priority pending, enabled source (ties: the lowest id) with priority above `floor`
   * (0 if none). Notification uses the context's threshold as the floor; a claim does not
   * (PLIC spec 1.0.0, chapter 8: "the claim operation is not affected by the threshold").
   */
  private best(c: number, floor: number): number {
    const s = this.s;
    const en = s.enable[c]!;
    let best = 0, bestPrio = floor;
    for (let w = 0; w < WORDS; w++) {
      let bits = s.pending[w]! & en[w]!;
      while (bits) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const irq = w * 32 + b;
        const p = s.priority[irq]!;
        if (p > bestPrio) { best = irq; bestPrio = p; }
      }
    }
    return best;
  }

  private claim(c: number): number {
    const irq = this.best(c, 0);
    if (irq) {
      const w = irq >> 5, b = 1 << (irq & 31);
      this.s.pending[w]! &= ~b;
      this.s.inService[w]! |= b;
    }
    this.update();
    return irq;
  }

  private complete(c: number, irq: number): void {
    if (irq <= 0 || irq >= PLIC_SOURCES) return;
    const w = irq >> 5, b = 1 << (irq & 31);
    const s = this.s;
    // Completion for a source the context does not enable is ignored (PLIC spec, section 9).
    if (!(s.enable[c]![w]! & b)) return;
    s.inService[w]! &= ~b;
    if (s.level[w]! & b) s.pending[w]! |= b;
  }

  private update(): void {
    for (let h = 0; h < this.harts.length; h++) {
      const port = this.harts[h]!;
      const m = this.best(2 * h, this.s.threshold[2 * h]!) !== 0;
      const sv = this.best(2 * h + 1, this.s.threshold[2 * h + 1]!) !== 0;
      const lines = port.irqLines();
      if (m !== ((lines & MIP_MEIP) !== 0)) port.setIrqLine(MIP_MEIP, m);
      if (sv !== ((lines & MIP_SEIP) !== 0)) port.setIrqLine(MIP_SEIP, sv);
    }
  }

  save(): PlicState {
    return structuredClone(this.s);
  }

  restore(state: PlicState): void {
    if (state.version !== 1) throw new RangeError(`plic state version ${String(state.version)}`);
    if (state.threshold.length !== this.s.threshold.length) throw new RangeError('plic state has another number of contexts');
    this.s = structuredClone(state);
    this.update();
  }
}
