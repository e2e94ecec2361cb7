/**
 * The Supervisor Binary Interface served by the hypervisor (SBI 2.0): a guest
 * kernel's ECALL from S-mode exits the hart's run loop and lands here, the way
 * KVM serves SBI to RISC-V guests — SBI calls are hypercalls.
 * Extension IDs and function numbers from the SBI specification v2.0.
 */
import type { Hart } from '../cpu/hart.js';

export const SBI_EXT = {
  BASE: 0x10,
  TIME: 0x54494d45,
  IPI: 0x735049,
  RFENCE: 0x52464e43,
  HSM: 0x48534d,
  SRST: 0x53525354,
  DBCN: 0x4442434e,
  STA: 0x535441,
} as const;

export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_DENIED = -4;
export const SBI_ERR_INVALID_ADDRESS = -5;
export const SBI_ERR_ALREADY_AVAILABLE = -6;
export const SBI_ERR_ALREADY_STARTED = -7;
export const SBI_ERR_ALREADY_STOPPED = -8;

/** SBI 2.0 = major 2, minor 0 (section 4.1). */
const SPEC_VERSION = 2 << 24;
/** Implementation ID: not one of the registered ones (section 4.9); "DSCO". */
export const SBI_IMPL_ID = 0x4453434f;
export const SBI_IMPL_VERSION = 1;

/** HSM hart states (section 9.1). */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_START_PENDING = 2;
export const HSM_STOP_PENDING = 3;

/** SRST reset types (section 10.1). */
export const SRST_SHUTDOWN = 0;
export const SRST_COLD_REBOOT = 1;
export const SRST_WARM_REBOOT = 2;

/** What the SBI implementation needs from the machine. */
export interface SbiPlatform {
  readonly hartCount: number;
  hartState(hartId: number): number;
  /** Starts a stopped hart in S-mode at `addr` with a0 = hartId, a1 = opaque. */
  hartStart(hartId: number, addr: bigint, opaque: bigint): void;
  /** The calling hart stops (its loop parks it until hart_start). */
  hartStop(hartId: number): void;
  sendIpi(hartId: number): void;
  /** SFENCE.VMA (asid < 0: all) / FENCE.I on another hart, complete before returning. */
  remoteFence(hartId: number, kind: 'i' | 'vma'): void;
  systemReset(type: number, reason: number): void;
  consoleWrite(bytes: Uint8Array): void;
  /** Up to `max` bytes of console input (possibly none). */
  consoleRead(max: number): Uint8Array;
  /** Guest-physical memory; null when the range is not RAM. */
  readGuest(gpa: number, length: number): Uint8Array | null;
  writeGuest(gpa: number, data: Uint8Array): boolean;
  /**
   * STA sbi_steal_time_set_shmem for the calling hart (returns an SBI error
   * code); a platform without it does not offer the STA extension.
   */
  stealTimeSetShmem?(hartId: number, lo: bigint, hi: bigint, flags: bigint): number;
}

/** Outcome of one call, for the caller's accounting. */
export type SbiResult =
  | { readonly kind: 'done' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'reset' };

const MAX_CONSOLE_IO = 1 << 20;

/** Serves the SBI call the hart exited with (a7 = EID, a6 = FID, a0–a5 = arguments); a0/a1 get error/value. */
export function serveSbi(hart: Hart, p: SbiPlatform): SbiResult {
  const eid = Number(hart.getX(17));
  const fid = Number(hart.getX(16));
  const a = (i: number): bigint => hart.getX(10 + i);
  let error = SBI_SUCCESS;
  let value = 0n;
  let result: SbiResult = DONE;
  const ret = (e: number, v: bigint = 0n): void => { error = e; value = v; };
  switch (eid) {
    case SBI_EXT.BASE:
      switch (fid) {
        case 0: ret(SBI_SUCCESS, BigInt(SPEC_VERSION)); break;
        case 1: ret(SBI_SUCCESS, BigInt(SBI_IMPL_ID)); break;
        case 2: ret(SBI_SUCCESS, BigInt(SBI_IMPL_VERSION)); break;
        case 3: {
          const probed = Number(BigInt.asUintN(32, a(0)));
          const offered = (Object.values(SBI_EXT) as number[]).includes(probed) && (probed !== SBI_EXT.STA || p.stealTimeSetShmem !== undefined);
          ret(SBI_SUCCESS, offered ? 1n : 0n);
          break;
        }
        case 4: case 5: case 6: ret(SBI_SUCCESS, 0n); break; // mvendorid, marchid, mimpid
        default: ret(SBI_ERR_NOT_SUPPORTED);
      }
      break;
    case SBI_EXT.TIME:
      if (fid === 0) {
        // set_timer: the next timer event; clears the pending one (Sstc's stimecmp does both).
        hart.writeCsr(0x14d, a(0));
        ret(SBI_SUCCESS);
      } else ret(SBI_ERR_NOT_SUPPORTED);
      break;
    case SBI_EXT.IPI:
      if (fid === 0) ret(forEachHart(p, a(0), a(1), (h) => p.sendIpi(h)));
      else ret(SBI_ERR_NOT_SUPPORTED);
      break;
    case SBI_EXT.RFENCE:
      switch (fid) {
        case 0: ret(forEachHart(p, a(0), a(1), (h) => h === hart.hartId ? hart.fenceI() : p.remoteFence(h, 'i'))); break;
        case 1: case 2:
          // Whole-TLB flushes stand in for the ranged ones: always correct, rarely slower here.
          ret(forEachHart(p, a(0), a(1), (h) => h === hart.hartId ? hart.flushTlb() : p.remoteFence(h, 'vma')));
          break;
        default: ret(SBI_ERR_NOT_SUPPORTED); // hypervisor fences: no H extension
      }
      break;
    case SBI_EXT.HSM:
      switch (fid) {
        case 0: { // hart_start
          const id = Number(BigInt.asUintN(32, a(0)));
          if (a(0) >= BigInt(p.hartCount)) ret(SBI_ERR_INVALID_PARAM);
          else if (p.hartState(id) !== HSM_STOPPED) ret(SBI_ERR_ALREADY_AVAILABLE);
          else if (p.readGuest(Number(a(1)), 2) === null) ret(SBI_ERR_INVALID_ADDRESS);
          else { p.hartStart(id, a(1), a(2)); ret(SBI_SUCCESS); }
          break;
        }
        case 1: // hart_stop: does not return on success
          p.hartStop(hart.hartId);
          result = STOPPED;
          break;
        case 2: {
          if (a(0) >= BigInt(p.hartCount)) ret(SBI_ERR_INVALID_PARAM);
          else ret(SBI_SUCCESS, BigInt(p.hartState(Number(a(0)))));
          break;
        }
        default: ret(SBI_ERR_NOT_SUPPORTED); // hart_suspend: no idle states are described
      }
      break;
    case SBI_EXT.SRST:
      if (fid === 0) {
        const type = Number(BigInt.asUintN(32, a(0)));
        const reason = Number(BigInt.asUintN(32, a(1)));
        if (type > SRST_WARM_REBOOT) ret(SBI_ERR_INVALID_PARAM);
        else if (reason > 1 && reason < 0xe0000000) ret(SBI_ERR_INVALID_PARAM);
        else { p.systemReset(type, reason); result = RESET; }
      } else ret(SBI_ERR_NOT_SUPPORTED);
      break;
    case SBI_EXT.DBCN: {
      switch (fid) {
        case 0: case 1: { // console_write / console_read (num_bytes, base_lo, base_hi)
          const n = Number(BigInt.asUintN(64, a(0)));
          // base_addr_hi holds the physical address bits above XLEN: nonzero is never RAM.
          const addr = BigInt.asUintN(64, a(1));
          if (a(2) !== 0n || n > MAX_CONSOLE_IO || addr > BigInt(Number.MAX_SAFE_INTEGER)) { ret(SBI_ERR_INVALID_PARAM); break; }
          if (fid === 0) {
            const data = p.readGuest(Number(addr), n);
            if (!data) ret(SBI_ERR_INVALID_PARAM);
            else { p.consoleWrite(data); ret(SBI_SUCCESS, BigInt(n)); }
          } else {
            if (p.readGuest(Number(addr), n) === null) { ret(SBI_ERR_INVALID_PARAM); break; }
            const data = p.consoleRead(n);
            p.writeGuest(Number(addr), data);
            ret(SBI_SUCCESS, BigInt(data.length));
          }
          break;
        }
        case 2: p.consoleWrite(Uint8Array.of(Number(a(0) & 0xffn))); ret(SBI_SUCCESS); break;
        default: ret(SBI_ERR_NOT_SUPPORTED);
      }
      break;
    }
    case SBI_EXT.STA:
      // sbi_steal_time_set_shmem(shmem_phys_lo, shmem_phys_hi, flags)
      if (fid === 0 && p.stealTimeSetShmem) ret(p.stealTimeSetShmem(hart.hartId, BigInt.asUintN(64, a(0)), BigInt.asUintN(64, a(1)), BigInt.asUintN(64, a(2))));
      else ret(SBI_ERR_NOT_SUPPORTED);
      break;
    default:
      ret(SBI_ERR_NOT_SUPPORTED);
  }
  if (result === DONE) {
    hart.setX(10, BigInt(error));
    hart.setX(11, value);
  }
  return result;
}

const DONE: SbiResult = { kind: 'done' };
const STOPPED: SbiResult = { kind: 'stopped' };
const RESET: SbiResult = { kind: 'reset' };

/** Applies `f` to every hart of (hart_mask, hart_mask_base) (section 3.1); base = -1 means all harts. */
function forEachHart(p: SbiPlatform, mask: bigint, base: bigint, f: (hartId: number) => void): number {
  if (BigInt.asUintN(64, base) === BigInt.asUintN(64, -1n)) {
    for (let h = 0; h < p.hartCount; h++) f(h);
    return SBI_SUCCESS;
  }
  const b = BigInt.asUintN(64, base);
  const m = BigInt.asUintN(64, mask);
  if (m === 0n) return SBI_SUCCESS;
  const targets: number[] = [];
  for (let i = 0n; i < 64n; i++) {
    if ((m >> i) & 1n) {
      const id = b + i;
      if (id >= BigInt(p.hartCount)) return SBI_ERR_INVALID_PARAM;
      targets.push(Number(id));
    }
  }
  for (const t of targets) f(t);
  return SBI_SUCCESS;
}
