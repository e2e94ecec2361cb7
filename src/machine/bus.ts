/** The MMIO bus: routes a hart's device accesses to the device whose window holds the address. */
import type { AccessSize, MmioDevice } from '../devices/device.js';

export class MmioBus {
  private readonly devices: MmioDevice[] = [];

  add(dev: MmioDevice): void {
    for (const d of this.devices) {
      if (dev.base < d.base + d.size && d.base < dev.base + dev.size) throw new RangeError(`${dev.name} overlaps ${d.name}`);
    }
    this.devices.push(dev);
  }

  find(gpa: number): MmioDevice | undefined {
    for (const d of this.devices) if (gpa >= d.base && gpa < d.base + d.size) return d;
    return undefined;
  }

  /** null: no device there, or the device refused (the hart takes an access fault). */
  read(gpa: number, size: AccessSize): bigint | null {
    const d = this.find(gpa);
    if (!d || gpa + size > d.base + d.size) return null;
    return d.read(gpa - d.base, size);
  }

  write(gpa: number, size: AccessSize, value: bigint): boolean {
    const d = this.find(gpa);
    if (!d || gpa + size > d.base + d.size) return false;
    return d.write(gpa - d.base, size, value);
  }
}
