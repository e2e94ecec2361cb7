/**
 * An empty virtio-mmio slot (virtio 1.2, section 4.2.2): the magic value and
 * version are there, DeviceID 0 says "no device", as on QEMU virt.
 */
import type { AccessSize, MmioDevice } from './device.js';

const MAGIC = 0x74726976n; // "virt"
const VENDOR = 0n;

export class VirtioMmioEmpty implements MmioDevice {
  readonly name = 'virtio-mmio';
  readonly size = 0x1000;

  constructor(readonly base: number) {}

  read(off: number, size: AccessSize): bigint | null {
    if (size !== 4) return 0n;
    switch (off) {
      case 0x000: return MAGIC;
      case 0x004: return 2n; // Version
      case 0x008: return 0n; // DeviceID: none
      case 0x00c: return VENDOR;
      default: return 0n;
    }
  }

  write(): boolean {
    return true;
  }
}
