/**
 * CLINT / ACLINT (MSWI + MTIMER) at QEMU virt's layout: msip of hart h at 4h,
 * mtimecmp of hart h at 0x4000 + 8h, mtime at 0xBFF8; 10 MHz.
 * Its state (msip lines, comparators) lives in the harts' state blocks, so a
 * snapshot of the harts carries it.
 */
import { MIP_MSIP } from '../cpu/csr-numbers.js';
import type { Clock } from '../cpu/clock.js';
import type { AccessSize, InterruptPort, MmioDevice } from './device.js';

export const CLINT_SIZE = 0x10000;
const MSIP = 0x0;
const MTIMECMP = 0x4000;
const MTIME = 0xbff8;

export class Clint implements MmioDevice {
  readonly name = 'clint';
  readonly size = CLINT_SIZE;

  constructor(readonly base: number, private readonly harts: readonly InterruptPort[], private readonly clock: Clock) {}

  read(off: number, size: AccessSize): bigint | null {
    const h = this.harts;
    if (off < MSIP + 4 * h.length) {
      if (size !== 4 || off % 4) return null;
      return (h[off >> 2]!.irqLines() & MIP_MSIP) ? 1n : 0n;
    }
    if (off >= MTIMECMP && off < MTIMECMP + 8 * h.length) return sub(h[(off - MTIMECMP) >> 3]!.timerCompare(), off & 7, size);
    if (off >= MTIME && off < MTIME + 8) return sub(BigInt(this.clock.now()), off - MTIME, size);
    return 0n;
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    const h = this.harts;
    if (off < MSIP + 4 * h.length) {
      if (size !== 4 || off % 4) return false;
      h[off >> 2]!.setIrqLine(MIP_MSIP, (value & 1n) !== 0n);
      return true;
    }
    if (off >= MTIMECMP && off < MTIMECMP + 8 * h.length) {
      const port = h[(off - MTIMECMP) >> 3]!;
      port.setTimerCompare(merge(port.timerCompare(), off & 7, size, value));
      return true;
    }
    if (off >= MTIME && off < MTIME + 8) {
      this.clock.set(Number(merge(BigInt(this.clock.now()), off - MTIME, size, value)));
      return true;
    }
    return true;
  }
}

/** The `size` bytes at byte `shift` of a 64-bit register. */
function sub(reg: bigint, shift: number, size: AccessSize): bigint {
  return BigInt.asUintN(size * 8, BigInt.asUintN(64, reg) >> BigInt(shift * 8));
}

function merge(reg: bigint, shift: number, size: AccessSize, value: bigint): bigint {
  const bits = BigInt(size * 8);
  const sh = BigInt(shift * 8);
  const mask = ((1n << bits) - 1n) << sh;
  return BigInt.asUintN(64, (BigInt.asUintN(64, reg) & ~mask) | ((BigInt.asUintN(Number(bits), value) << sh) & mask));
}
