/**
 * SiFive test device ("sifive,test1", QEMU virt at 0x100000): a 32-bit write of
 * 0x5555 powers off, 0x7777 resets, 0x3333 | code << 16 fails with `code`.
 * Linux drives it through syscon-poweroff / syscon-reboot.
 */
import type { AccessSize, MmioDevice } from './device.js';

export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;

export type PowerEvent =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'fail'; readonly code: number };

export class SifiveTest implements MmioDevice {
  readonly name = 'sifive_test';
  readonly size = 0x1000;

  constructor(readonly base: number, private readonly power: (e: PowerEvent) => void) {}

  read(_off: number, _size: AccessSize): bigint | null {
    return 0n;
  }

  write(off: number, size: AccessSize, value: bigint): boolean {
    if (off !== 0 || size !== 4) return true;
    const v = Number(value & 0xffffffffn);
    switch (v & 0xffff) {
      case FINISHER_PASS: this.power({ kind: 'poweroff' }); break;
      case FINISHER_RESET: this.power({ kind: 'reset' }); break;
      case FINISHER_FAIL: this.power({ kind: 'fail', code: v >>> 16 }); break;
      default: break;
    }
    return true;
  }
}
