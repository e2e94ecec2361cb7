/**
 * How virtio devices reach guest memory (DMA). Everything a guest hands a
 * device — ring addresses, descriptor addresses and lengths, indices — is
 * hostile: every access goes through `CheckedMemory`, which validates the range
 * before asking the `GuestMemory` the machine provides, and never throws.
 */

/**
 * Guest-physical memory as a device may access it; the machine implements it
 * over the VM's pmap (see `pmapGuestMemory`).
 *
 * Callers (CheckedMemory) only pass non-negative safe integers with
 * `gpa + length <= Number.MAX_SAFE_INTEGER` and `length > 0`.
 * Implementations must not throw for any address (a throw is treated as "not
 * RAM"), and must make 2-byte accesses at even addresses single-copy atomic
 * (the ring indices are published with them; over a SharedArrayBuffer use
 * Atomics, which also orders them against the other accesses).
 */
export interface GuestMemory {
  /** True if every byte of [gpa, gpa + length) is guest RAM a device may read and write. */
  isRam(gpa: number, length: number): boolean;
  /** A copy of [gpa, gpa + length), or null if any byte is not RAM. */
  read(gpa: number, length: number): Uint8Array | null;
  /** Copies `data` to gpa; false if any byte is not RAM (then nothing, or a prefix, was written). */
  write(gpa: number, data: Uint8Array): boolean;
}

/** Guest-physical addresses at or above 2^53 are not representable as numbers; no RAM is there. */
const MAX_ADDRESS = Number.MAX_SAFE_INTEGER;

/**
 * A 64-bit guest address from its 32-bit halves, or -1 if it is beyond 2^53
 * (such an address cannot be RAM).
 */
export function address64(lo: number, hi: number): number {
  const h = hi >>> 0;
  if (h >= 0x200000) return -1;
  return h * 0x1_0000_0000 + (lo >>> 0);
}

/** Bounds-checked, exception-free access to guest memory. */
export class CheckedMemory {
  constructor(readonly mem: GuestMemory) {}

  /** True if [gpa, gpa + length) is a valid, representable range entirely in RAM (length 0: any valid address). */
  valid(gpa: number, length: number): boolean {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(length) || gpa < 0 || length < 0) return false;
    if (gpa > MAX_ADDRESS - length) return false;
    if (length === 0) return true;
    try {
      return this.mem.isRam(gpa, length) === true;
    } catch {
      return false;
    }
  }

  read(gpa: number, length: number): Uint8Array | null {
    if (!this.valid(gpa, length)) return null;
    if (length === 0) return new Uint8Array(0);
    try {
      const b = this.mem.read(gpa, length);
      return b instanceof Uint8Array && b.length === length ? b : null;
    } catch {
      return null;
    }
  }

  write(gpa: number, data: Uint8Array): boolean {
    if (!this.valid(gpa, data.length)) return false;
    if (data.length === 0) return true;
    try {
      return this.mem.write(gpa, data) === true;
    } catch {
      return false;
    }
  }

  /** A little-endian u16, or -1. */
  u16(gpa: number): number {
    const b = this.read(gpa, 2);
    return b ? b[0]! | (b[1]! << 8) : -1;
  }

  /** A little-endian u32, or -1. */
  u32(gpa: number): number {
    const b = this.read(gpa, 4);
    return b ? (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0 : -1;
  }

  setU16(gpa: number, v: number): boolean {
    return this.write(gpa, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  }

  setU32(gpa: number, v: number): boolean {
    return this.write(gpa, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff));
  }
}
