/**
 * Steal-time accounting (SBI 2.0, chapter 16, "Steal-time Accounting
 * Extension", EID 0x535441 "STA"): a paravirtual guest registers, per hart, a
 * 64-byte area of its RAM where the hypervisor publishes how long that vCPU
 * was runnable but not running (waiting for a host thread).
 *
 *   offset 0  u32 sequence   odd while the hypervisor writes
 *   offset 4  u32 flags      0
 *   offset 8  u64 steal      nanoseconds
 *   offset 16 u8  preempted
 *   offset 17 pad to 64
 *
 * The guest reads sequence, steal, sequence again and retries while the
 * sequence is odd or changed (Linux arch/riscv/kernel/paravirt.c).
 */
import type { Pmap } from '../memory/pmap.js';
import { SBI_ERR_INVALID_ADDRESS, SBI_ERR_INVALID_PARAM, SBI_SUCCESS } from './sbi.js';

export const STA_SHMEM_SIZE = 64;
const DISABLE = (1n << 64n) - 1n;

export interface StealTimeState {
  /** Per hart: the registered guest-physical address, or -1. */
  readonly shmem: readonly number[];
  /** Per hart: steal time accumulated, in nanoseconds. */
  readonly stealNs: readonly number[];
}

export class StealTime {
  private readonly shmem: number[];
  private readonly stealNs: number[];

  constructor(private readonly pmap: Pmap, harts: number) {
    this.shmem = new Array<number>(harts).fill(-1);
    this.stealNs = new Array<number>(harts).fill(0);
  }

  /** sbi_steal_time_set_shmem(lo, hi, flags): returns an SBI error code. */
  setShmem(hartId: number, lo: bigint, hi: bigint, flags: bigint): number {
    if (flags !== 0n) return SBI_ERR_INVALID_PARAM;
    if (BigInt.asUintN(64, lo) === DISABLE && BigInt.asUintN(64, hi) === DISABLE) {
      this.shmem[hartId] = -1;
      return SBI_SUCCESS;
    }
    if ((lo & 63n) !== 0n) return SBI_ERR_INVALID_PARAM;
    // On RV64 the high word carries address bits above XLEN: never RAM.
    if (hi !== 0n || lo > BigInt(Number.MAX_SAFE_INTEGER)) return SBI_ERR_INVALID_ADDRESS;
    const gpa = Number(lo);
    const region = this.pmap.regionOf(gpa);
    if (region === undefined || region.kind !== 'ram' || this.pmap.regionOf(gpa + STA_SHMEM_SIZE - 1) !== region) return SBI_ERR_INVALID_ADDRESS;
    // The area starts zeroed apart from what the hypervisor publishes.
    const area = new Uint8Array(STA_SHMEM_SIZE);
    new DataView(area.buffer).setBigUint64(8, BigInt(Math.floor(this.stealNs[hartId] ?? 0)), true);
    try {
      this.pmap.write(gpa, area);
    } catch {
      return SBI_ERR_INVALID_ADDRESS;
    }
    this.shmem[hartId] = gpa;
    return SBI_SUCCESS;
  }

  /** Hart `hartId` waited `ns` while runnable: account it and publish it if the guest asked. */
  add(hartId: number, ns: number): void {
    const total = (this.stealNs[hartId] ?? 0) + ns;
    this.stealNs[hartId] = total;
    const gpa = this.shmem[hartId] ?? -1;
    if (gpa < 0) return;
    const ma = this.pmap.machineAddress(gpa);
    if (ma < 0) return;
    const u8 = this.pmap.mem.u8;
    const dv = new DataView(u8.buffer, ma, STA_SHMEM_SIZE);
    const seq = dv.getUint32(0, true);
    dv.setUint32(0, (seq + 1) >>> 0, true);
    dv.setBigUint64(8, BigInt(Math.floor(total)), true);
    dv.setUint32(0, (seq + 2) >>> 0, true);
  }

  /** Steal time of hart `hartId` so far, in nanoseconds. */
  total(hartId: number): number {
    return this.stealNs[hartId] ?? 0;
  }

  save(): StealTimeState {
    return { shmem: [...this.shmem], stealNs: [...this.stealNs] };
  }
}
