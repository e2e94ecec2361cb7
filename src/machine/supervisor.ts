/**
 * What firmware leaves behind for an S-mode kernel when Disco's SBI is the
 * firmware, and the hand-off itself (boot, and SBI HSM hart_start on any thread).
 */
import { CAUSE, MENVCFG_STCE, PRIV_S } from '../cpu/csr-numbers.js';
import type { Hart } from '../cpu/hart.js';

const CSR_SCOUNTEREN = 0x106, CSR_MEDELEG = 0x302, CSR_MIDELEG = 0x303, CSR_MCOUNTEREN = 0x306, CSR_MENVCFG = 0x30a;
const CSR_PMPADDR0 = 0x3b0, CSR_PMPCFG0 = 0x3a0, CSR_SATP = 0x180;

/** Delegation, PMP open, counters, Sstc. */
export function prepareSupervisor(h: Hart): void {
  let medeleg = 0n;
  for (const c of [CAUSE.MISALIGNED_FETCH, CAUSE.FETCH_ACCESS, CAUSE.ILLEGAL_INSTRUCTION, CAUSE.BREAKPOINT, CAUSE.MISALIGNED_LOAD,
    CAUSE.LOAD_ACCESS, CAUSE.MISALIGNED_STORE, CAUSE.STORE_ACCESS, CAUSE.USER_ECALL, CAUSE.FETCH_PAGE_FAULT,
    CAUSE.LOAD_PAGE_FAULT, CAUSE.STORE_PAGE_FAULT]) medeleg |= 1n << BigInt(c);
  h.writeCsr(CSR_MEDELEG, medeleg);
  h.writeCsr(CSR_MIDELEG, (1n << 1n) | (1n << 5n) | (1n << 9n));
  h.writeCsr(CSR_MCOUNTEREN, 7n);
  // User-mode `rdtime` (the vDSO's clock_gettime): on OpenSBI, Linux's SBI PMU
  // driver grants it through scounteren.TM; Disco's SBI has no PMU extension,
  // so that driver never runs and the boot hand-off grants it instead.
  h.writeCsr(CSR_SCOUNTEREN, 2n);
  h.writeCsr(CSR_MENVCFG, MENVCFG_STCE);
  h.writeCsr(CSR_PMPADDR0, (1n << 54n) - 1n);
  h.writeCsr(CSR_PMPCFG0, 0x1fn); // NAPOT, R, W, X
}

/** Enters S-mode at `pc` with a0 = hartid, a1 = `a1`, translation off (SBI HSM, section 9.1). */
export function enterSupervisor(h: Hart, pc: bigint, a1: bigint): void {
  h.setX(10, BigInt(h.hartId));
  h.setX(11, a1);
  h.writeCsr(CSR_SATP, 0n);
  h.pc = pc;
  h.priv = PRIV_S;
}
