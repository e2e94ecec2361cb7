/**
 * One RISC-V RV64GC hart: the interpreter (the reference and the cold tier),
 * CSRs, traps, the MMU with its soft TLB, and PMP. Privileged spec 1.12.
 *
 * Every architectural register lives in the hart state block in machine memory
 * (see layout.ts); integer registers are read as two 32-bit halves on the hot
 * paths and as BigInt only where 64-bit arithmetic needs it (multiply, divide).
 *
 * The boundary with the caller is `run(budget) → Exit`, as with KVM_RUN.
 */
import { DOUBLE_FIELD } from './counter.js';
import { CAUSE, CSR, IRQ, MENVCFG_STCE, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP, MIP_STIP, MSTATUS, PRIV_M, PRIV_S, PRIV_U, SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48 } from './csr-numbers.js';
import type { Exit, LoadDest } from './exit.js';
import { Fpu } from './fpu.js';
import { HART_BLOCK_BYTES, HART_STATE_VERSION, PMP_ENTRIES, REQ_FENCE_I, REQ_FLUSH_TLB, SLOT, TLB_BANK_CONTEXTS, TLB_BANKS, TLB_BYTES, TLB_CONTEXTS, TLB_CTX_M, TLB_CTX_S, TLB_CTX_S_FETCH, TLB_CTX_S_SUM, TLB_CTX_U, TLB_CTX_U_FETCH, TLB_ENTRIES, TLB_ENTRY_WORDS, TLB_GPPN, TLB_INVALID, TLB_MADDR, TLB_TAG_EXEC, TLB_HI, TLB_TAG_READ, TLB_TAG_WRITE } from './layout.js';
import { Clock } from './clock.js';
import { rvcTable } from './rvc.js';
import { HartIrqPort } from './irq-port.js';
import { MachineMemory, PAGE_SIZE } from '../memory/machine-memory.js';
import { CODE_LOG_ENTRIES, PM_CODE, PM_FRAME_SHIFT, PM_WATCH, PM_WRITE, Pmap } from '../memory/pmap.js';

/** Thrown inside the interpreter to leave an instruction that raised an exception. */
const TRAP = { trap: true };
/** Thrown inside the interpreter to leave run() with `pendingExit`. */
const EXIT = { exit: true };

/** Instructions between checks of timers, interrupts and pmap changes. */
const SLICE = 2048;

const ACC_READ = 0;
const ACC_WRITE = 1;
const ACC_EXEC = 2;
type Access = 0 | 1 | 2;

const TLB_MASK = TLB_ENTRIES - 1;
const TLB_CTX_WORDS = TLB_ENTRIES * TLB_ENTRY_WORDS;
/**
 * Victim entries per TLB context (QEMU's victim TLB): what a fill evicts from
 * the direct-mapped table goes here, and a miss looks here before walking, so
 * two hot pages with the same index (8 MiB apart) do not walk on every turn.
 */
const TLB_VICTIMS = 8;

/** Makes the soft-TLB entry at word `e` of `t` (a table or the victims) match no access. */
function dropTags(t: Int32Array, e: number): void {
  t[e + TLB_TAG_READ] = TLB_INVALID;
  t[e + TLB_TAG_WRITE] = TLB_INVALID;
  t[e + TLB_TAG_EXEC] = TLB_INVALID;
}

// PTE bits, privileged spec 4.3.1
const PTE_V = 1, PTE_R = 2, PTE_W = 4, PTE_X = 8, PTE_U = 16, PTE_A = 64, PTE_D = 128;

// PMP configuration bits, section 3.7.1
const PMP_R = 1, PMP_W = 2, PMP_X = 4, PMP_A = 0x18, PMP_L = 0x80;
const PMP_OFF = 0, PMP_TOR = 1, PMP_NA4 = 2, PMP_NAPOT = 3;

const MSTATUS_WRITABLE = BigInt(MSTATUS.SIE | MSTATUS.MIE | MSTATUS.SPIE | MSTATUS.MPIE | MSTATUS.SPP | MSTATUS.MPP |
  MSTATUS.FS | MSTATUS.MPRV | MSTATUS.SUM | MSTATUS.MXR | MSTATUS.TVM | MSTATUS.TW | MSTATUS.TSR);
const SSTATUS_MASK = BigInt(MSTATUS.SIE | MSTATUS.SPIE | MSTATUS.SPP | MSTATUS.FS | MSTATUS.SUM | MSTATUS.MXR) |
  (3n << 32n) /* UXL */ | (1n << 63n) /* SD */;
/** mstatus.UXL = mstatus.SXL = 2 (64-bit), read-only. */
const MSTATUS_XL = (2n << 32n) | (2n << 34n);
const MIE_MASK = BigInt(MIP_SSIP | MIP_MSIP | MIP_STIP | MIP_MTIP | MIP_SEIP | MIP_MEIP);
const MIDELEG_MASK = BigInt(MIP_SSIP | MIP_STIP | MIP_SEIP);
/** Exceptions that may be delegated: all defined ones but ECALL from M. */
const MEDELEG_MASK = 0xb3ffn;
/** RV64 with A, C, D, F, I, M, S, U (misa, section 3.1.1). */
const MISA_VALUE = (2n << 62n) | BigInt((1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20));
const ASID_BITS = 16;
/** menvcfg.STCE (bit 63) in the high word. */
const MENVCFG_STCE_HI = Number(MENVCFG_STCE >> 32n) | 0;

export interface HartOptions {
  readonly mem: MachineMemory;
  readonly pmap: Pmap;
  readonly clock: Clock;
  readonly hartId: number;
  /** Byte offset of an existing state block (attaching from another thread); omitted: allocate and reset. */
  readonly block?: number;
  /** Byte offset of an existing soft TLB; omitted: allocate. */
  readonly tlb?: number;
  /** Bit p set: ECALL from privilege p exits to the caller instead of trapping (SBI in the hypervisor). */
  readonly ecallExitMask?: number;
  /** Guest-physical address of the HTIF tohost word, if the guest has one. */
  readonly tohost?: number;
  /**
   * Exceptions that would enter M-mode exit instead ({kind:'trap'}): for guests whose M-mode
   * is the hypervisor itself (no firmware in the VM), such a trap is a guest error to report.
   */
  readonly machineTrapExit?: boolean;
}

/** What a snapshot of one hart holds: the state block, verbatim. */
export interface HartState {
  readonly version: number;
  readonly hartId: number;
  readonly block: Uint8Array;
}

/**
 * A translator attached to a hart (src/jit): `run()` hands it the budget and it
 * returns the exit, using the interpreter for cold code and the `jit*` port below.
 */
export interface HartAccelerator {
  run(budget: number): Exit;
}

/** interpret() flags. */
export const INTERPRET_STOP_AT_JUMP = 1;
/** Skip the interrupt check before the first instruction (the caller did it). */
export const INTERPRET_NO_IRQ = 2;
/** Leave retired instructions pending (the caller settles them before its run() returns). */
export const INTERPRET_NO_FLUSH = 4;
/**
 * Count taken jumps in the jump watch (setJumpWatch) and stop after one whose
 * target's counter reaches zero: an accelerator watches block entries without
 * a call per block.
 */
export const INTERPRET_STOP_AT_WATCHED = 8;

/** The jump watch's slot for a target pc (low word): the page number is mixed in. */
export function jumpWatchIndex(pcLo: number, mask: number): number {
  return ((pcLo >>> 1) ^ (pcLo >>> 13)) & mask;
}

export class Hart {
  readonly hartId: number;
  readonly mem: MachineMemory;
  readonly pmap: Pmap;
  readonly clock: Clock;
  /** Byte offset of the state block and soft TLB in machine memory. */
  readonly blockOffset: number;
  readonly tlbOffset: number;
  /** Interrupt inputs, for device models. */
  readonly port: HartIrqPort;

  // Views of the whole machine memory.
  private readonly u8: Uint8Array;
  private readonly i8: Int8Array;
  private readonly u16: Uint16Array;
  private readonly i16: Int16Array;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  private readonly f64: Float64Array;
  private readonly pmapEntries: Int32Array;

  /** i32 index of x0, i64 index of slot 0, i32 index of the TLB. */
  private readonly xw: number;
  private readonly sq: number;
  private readonly tw: number;
  private readonly rvc: Int32Array;
  private readonly fpu: Fpu;

  ecallExitMask: number;
  tohost: number;
  machineTrapExit: boolean;

  // Caches derived from the state block (recomputed by updateContexts()).
  private fetchCtx = 0;
  private dataCtx = 0;
  private fetchTagLo = TLB_INVALID;
  private fetchTagHi = 0;
  private fetchBase = 0;
  private pmapGeneration = -1;
  private pmpActive = false;

  // Trap being raised.
  private trapCause = 0;
  private trapTval = 0n;
  // Exit being taken.
  private pendingExit: Exit | null = null;
  /** A load to MMIO waiting for completeLoad(): destination, size and instruction length. */
  private pendingLoad: { dest: LoadDest; size: number; len: number } | null = null;
  private mmioGpa = 0;
  /** Virtual address of the access that found no RAM (tval of its access fault). */
  private mmioVa = 0n;
  /** Retired instructions not yet added to minstret/mcycle. */
  private unretired = 0;
  /** Instructions executed since the hart was created (budget accounting). A double field: see DOUBLE_FIELD. */
  steps = DOUBLE_FIELD;
  private accessTlbFill = true;

  constructor(opts: HartOptions) {
    this.steps = 0;
    this.walks = 0;
    this.hartId = opts.hartId;
    this.mem = opts.mem;
    this.pmap = opts.pmap;
    this.clock = opts.clock;
    this.ecallExitMask = opts.ecallExitMask ?? 0;
    this.tohost = opts.tohost ?? -1;
    this.machineTrapExit = opts.machineTrapExit ?? false;
    const buf = opts.mem.buffer;
    this.u8 = new Uint8Array(buf);
    this.i8 = new Int8Array(buf);
    this.u16 = new Uint16Array(buf, 0, buf.byteLength >>> 1);
    this.i16 = new Int16Array(buf, 0, buf.byteLength >>> 1);
    this.i32 = new Int32Array(buf, 0, buf.byteLength >>> 2);
    this.i64 = new BigInt64Array(buf, 0, buf.byteLength >>> 3);
    this.f64 = new Float64Array(buf, 0, buf.byteLength >>> 3);
    this.pmapEntries = opts.pmap.entries;
    const fresh = opts.block === undefined;
    if (opts.block === undefined) {
      const frames = Math.ceil(HART_BLOCK_BYTES / PAGE_SIZE);
      const f = opts.mem.allocContiguous(frames);
      if (f < 0) throw new RangeError('machine memory exhausted (hart state)');
      this.blockOffset = f * PAGE_SIZE;
    } else {
      this.blockOffset = opts.block;
    }
    if (opts.tlb === undefined) {
      const f = opts.mem.allocContiguous(Math.ceil(TLB_BYTES / PAGE_SIZE));
      if (f < 0) throw new RangeError('machine memory exhausted (TLB)');
      this.tlbOffset = f * PAGE_SIZE;
    } else {
      this.tlbOffset = opts.tlb;
    }
    this.xw = this.blockOffset >>> 2;
    this.sq = this.blockOffset >>> 3;
    this.tw = this.tlbOffset >>> 2;
    this.rvc = rvcTable();
    this.port = new HartIrqPort(opts.mem, this.blockOffset);
    this.fpu = new Fpu({ f64: this.f64, i32: this.i32, x: this.i64, fBase: this.sq + SLOT.F, xBase: this.sq + SLOT.X });
    // A fresh hart's TLB starts empty: no write tag predates the marks made so far.
    if (fresh) this.marksSeen = this.pmap.markGeneration();
    if (fresh) this.reset();
    this.flushTlb();
    this.updateContexts();
  }

  // ---------------------------------------------------------------- state

  private slot(i: number): bigint {
    return this.i64[this.sq + i]!;
  }
  private setSlot(i: number, v: bigint): void {
    this.i64[this.sq + i] = BigInt.asIntN(64, v);
  }
  private slotU(i: number): bigint {
    return BigInt.asUintN(64, this.i64[this.sq + i]!);
  }
  private slotLo(i: number): number {
    return this.i32[this.xw + 2 * i]!;
  }

  /** Power-on reset (privileged spec 3.4): M-mode, MIE=0, MPRV=0, misa at its maximum. */
  reset(pc = 0x1000n): void {
    this.u8.fill(0, this.blockOffset, this.blockOffset + HART_BLOCK_BYTES);
    this.setSlot(SLOT.PC, pc);
    this.setSlot(SLOT.PRIV, BigInt(PRIV_M));
    this.setSlot(SLOT.MISA, MISA_VALUE);
    this.setSlot(SLOT.MSTATUS, MSTATUS_XL);
    this.setSlot(SLOT.MHARTID, BigInt(this.hartId));
    this.setSlot(SLOT.MTIMECMP, -1n);
    this.setSlot(SLOT.STIMECMP, -1n);
    this.setSlot(SLOT.RES_ADDR, -1n);
    this.setSlot(SLOT.VERSION, BigInt(HART_STATE_VERSION));
    this.flushTlb();
    this.updateContexts();
  }

  get priv(): number {
    return this.slotLo(SLOT.PRIV);
  }
  set priv(p: number) {
    this.setSlot(SLOT.PRIV, BigInt(p));
    this.updateContexts();
  }
  get pc(): bigint {
    return this.slotU(SLOT.PC);
  }
  set pc(v: bigint) {
    this.setSlot(SLOT.PC, v);
  }

  getX(i: number): bigint {
    return BigInt.asUintN(64, this.i64[this.sq + SLOT.X + (i & 31)]!);
  }
  setX(i: number, v: bigint): void {
    if ((i & 31) !== 0) this.i64[this.sq + SLOT.X + (i & 31)] = BigInt.asIntN(64, v);
  }
  /** Raw bits of f register i. */
  getF(i: number): bigint {
    return BigInt.asUintN(64, this.i64[this.sq + SLOT.F + (i & 31)]!);
  }
  setF(i: number, v: bigint): void {
    this.i64[this.sq + SLOT.F + (i & 31)] = BigInt.asIntN(64, v);
  }

  /** Reads a CSR as the hart would, without privilege checks or side effects on the guest. */
  readCsr(num: number): bigint {
    const v = this.csrRead(num);
    if (v === null) throw new RangeError(`no CSR 0x${num.toString(16)}`);
    return v;
  }
  /** Writes a CSR with the hart's WARL rules, without privilege checks. */
  writeCsr(num: number, value: bigint): void {
    if (!this.csrWrite(num, BigInt.asUintN(64, value))) throw new RangeError(`CSR 0x${num.toString(16)} is not writable`);
  }

  /**
   * The earliest timer deadline (mtime ticks) that could raise an enabled interrupt, or Infinity.
   * Comparators beyond 2^53 ticks (Linux parks stimecmp at all ones) count as never: at 10 MHz
   * they are decades away, and jumping an instruction-driven clock there would wreck guest time.
   */
  nextTimerDeadline(): number {
    let d = Infinity;
    const mie = Number(this.slot(SLOT.MIE) & 0xfffn);
    const consider = (cmp: bigint): void => {
      if (cmp < 1n << 53n) d = Math.min(d, Number(cmp));
    };
    if (mie & MIP_MTIP) consider(this.slotU(SLOT.MTIMECMP));
    if ((mie & MIP_STIP) && (this.slotU(SLOT.MENVCFG) & MENVCFG_STCE)) consider(this.slotU(SLOT.STIMECMP));
    return d;
  }

  /** True if an interrupt is pending and locally enabled (the condition that ends WFI). */
  interruptPendingForWfi(): boolean {
    return (this.effectiveMip() & Number(this.slot(SLOT.MIE))) !== 0;
  }

  save(): HartState {
    this.flushRetired();
    return { version: HART_STATE_VERSION, hartId: this.hartId, block: this.u8.slice(this.blockOffset, this.blockOffset + HART_BLOCK_BYTES) };
  }

  restore(state: HartState): void {
    if (state.version !== HART_STATE_VERSION) throw new RangeError(`hart state version ${state.version}, expected ${HART_STATE_VERSION}`);
    if (state.block.length !== HART_BLOCK_BYTES) throw new RangeError('hart state block has the wrong size');
    this.u8.set(state.block, this.blockOffset);
    this.pendingLoad = null;
    this.pendingStoreLen = 0;
    this.flushTlb();
    this.updateContexts();
  }

  // ---------------------------------------------------------------- MMIO completion

  /** Completes the MMIO load the last 'mmio' exit asked for. */
  completeLoad(value: bigint): void {
    const p = this.pendingLoad;
    if (!p) throw new Error('no MMIO load is pending');
    this.pendingLoad = null;
    const bitsz = BigInt(p.size * 8);
    let v = BigInt.asUintN(Number(bitsz), value);
    if (p.dest.file === 'x') {
      if (p.dest.signed) v = BigInt.asIntN(Number(bitsz), v);
      this.setX(p.dest.reg, v);
    } else {
      // FLW NaN-boxes.
      this.setF(p.dest.reg, p.size === 4 ? v | 0xffffffff00000000n : v);
      this.markFsDirty();
    }
    this.pc = this.pc + BigInt(p.len);
    this.unretired++;
  }

  /**
   * Raises the access fault for the last 'mmio' exit instead of completing it (no device there).
   * A store exit had already retired the store; that is undone.
   */
  accessFault(): void {
    let pc = this.pc;
    let cause: number;
    if (this.pendingLoad) {
      this.pendingLoad = null;
      cause = CAUSE.LOAD_ACCESS;
    } else if (this.pendingStoreLen > 0) {
      pc -= BigInt(this.pendingStoreLen);
      this.pendingStoreLen = 0;
      cause = CAUSE.STORE_ACCESS;
      // The store was counted when it exited; take it back from the counters that counted it.
      const inhibit = this.slotLo(SLOT.MCOUNTINHIBIT);
      if ((inhibit & 1) === 0) this.setSlot(SLOT.MCYCLE, this.slot(SLOT.MCYCLE) - 1n);
      if ((inhibit & 4) === 0) this.setSlot(SLOT.MINSTRET, this.slot(SLOT.MINSTRET) - 1n);
    } else {
      throw new Error('accessFault() without a pending MMIO exit');
    }
    this.takeTrap(cause, false, this.mmioVa, pc);
  }
  /** Length of the store the last 'mmio' store exit reported (0: none), for accessFault(). */
  private pendingStoreLen = 0;

  // ---------------------------------------------------------------- the run loop

  /**
   * Runs at most `budget` instructions and returns why it stopped.
   * Interrupts are taken at instruction boundaries, checked at least every SLICE instructions.
   */
  run(budget: number): Exit {
    if (this.pendingLoad) throw new Error('run() called with an MMIO load not completed');
    this.pendingStoreLen = 0;
    // Before the first boundary serves requests: one posted after this store is waited for.
    const inRun = this.xw + 2 * SLOT.IN_RUN;
    Atomics.store(this.i32, inRun, 1);
    try {
      if (this.accel !== null) return this.accel.run(budget);
      return this.interpret(budget, 0);
    } finally {
      Atomics.store(this.i32, inRun, 0);
      // Before the exit is handled (an SBI remote FENCE.I, say), stores this hart
      // may have made through a tag older than a mark are accounted for.
      this.followMarks();
    }
  }

  private accel: HartAccelerator | null = null;

  /** Attaches (or, with null, detaches) a translator; run() then goes through it. */
  private jumpWatch: Int32Array | null = null;
  private jumpWatchMask = 0;

  /**
   * The jump watch for INTERPRET_STOP_AT_WATCHED: one counter per slot
   * (jumpWatchIndex of the target pc), a power-of-two number of them.
   */
  setJumpWatch(watch: Int32Array | null): void {
    if (watch !== null && (watch.length & (watch.length - 1)) !== 0) throw new RangeError('jump watch size must be a power of two');
    this.jumpWatch = watch;
    this.jumpWatchMask = watch === null ? 0 : watch.length - 1;
  }

  attachAccelerator(a: HartAccelerator | null): void {
    this.accel = a;
  }

  /**
   * The interpreter: runs at most `budget` instructions. With INTERPRET_STOP_AT_JUMP it also
   * stops after the first jump or taken branch (the translator counts block entries that way).
   */
  interpret(budget: number, flags: number): Exit {
    const stopAtJump = (flags & INTERPRET_STOP_AT_JUMP) !== 0;
    // The watch is counted inline at each of the three taken-jump sites (jumpWatchIndex's
    // hash): a shared function there cost a boot ~5 % (the loop is too large for V8 to inline it).
    const watch = (flags & INTERPRET_STOP_AT_WATCHED) !== 0 ? this.jumpWatch : null;
    const watchMask = this.jumpWatchMask;
    const noFlush = (flags & INTERPRET_NO_FLUSH) !== 0;
    let checkIrq = (flags & INTERPRET_NO_IRQ) === 0;
    const R = this.i32;
    const U16 = this.u16;
    const T = this.i32; // TLB words live in the same memory
    const xw = this.xw;
    const rvc = this.rvc;
    let pcLo = R[xw + 2 * SLOT.PC]!;
    let pcHi = R[xw + 2 * SLOT.PC + 1]!;
    let n = 0;
    let trapped = 0;
    /** Retired instructions of this run already added to `unretired`. */
    let accounted = 0;
    let result: Exit | null = null;
    outer: for (;;) {
      // ---- slice boundary: timers, interrupts, pmap changes, budget
      R[xw + 2 * SLOT.PC] = pcLo;
      R[xw + 2 * SLOT.PC + 1] = pcHi;
      this.unretired += n - trapped - accounted;
      accounted = n - trapped;
      if (n >= budget) {
        result = BUDGET_EXIT;
        break;
      }
      this.followPmap();
      if (checkIrq && this.takePendingInterrupt()) {
        pcLo = R[xw + 2 * SLOT.PC]!;
        pcHi = R[xw + 2 * SLOT.PC + 1]!;
      }
      checkIrq = true;
      let limit = Math.min(budget, n + SLICE);
      let len = 4;
      /** The first 16 bits fetched: the tval of an illegal compressed instruction. */
      let parcel = 0;
      try {
        while (n < limit) {
          // Every attempt counts against the budget, also one whose fetch faults:
          // a trap vector that itself faults must not spin inside run().
          n++;
          // ---- fetch
          const off = pcLo & 0xfff;
          let ma: number;
          if ((pcLo & -4096) === this.fetchTagLo && pcHi === this.fetchTagHi) ma = this.fetchBase + off;
          else ma = this.fetchSlow(pcLo, pcHi);
          let insn = U16[ma >>> 1]!;
          parcel = insn;
          if ((insn & 3) !== 3) {
            len = 2;
            const e = rvc[insn]!;
            if (e === 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn));
            insn = e;
          } else {
            len = 4;
            if (off === 0xffe) insn |= this.fetchHalfSlow(pcLo, pcHi) << 16;
            else insn |= U16[(ma >>> 1) + 1]! << 16;
          }
          // ---- execute
          const rd = (insn >>> 7) & 31;
          const rs1 = (insn >>> 15) & 31;
          const xd = xw + 2 * rd;
          const x1 = xw + 2 * rs1;
          switch (insn & 0x7f) {
            case 0x03: { // LOAD
              const imm = insn >> 20;
              const s = (R[x1]! >>> 0) + (imm >>> 0);
              const lo = s | 0;
              const hi = (R[x1 + 1]! + (imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
              const f3 = (insn >>> 12) & 7;
              if (f3 === 7) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              const size = 1 << (f3 & 3);
              const e = this.tw + this.dataCtx + (((lo >>> 12) & TLB_MASK) << 3);
              let a: number;
              if (T[e + TLB_TAG_READ] === (lo & -4096) && T[e + TLB_TAG_READ + TLB_HI] === hi && (lo & (size - 1)) === 0) {
                a = (T[e + TLB_MADDR]! >>> 0) + (lo & 0xfff);
              } else {
                a = this.loadSlow(lo, hi, size, { file: 'x', reg: rd, signed: f3 < 4 }, len);
                if (a < 0) { // misaligned, done through the scratch word
                  this.loadScratch(xd, f3);
                  break;
                }
              }
              switch (f3) {
                case 0: R[xd] = this.i8[a]!; R[xd + 1] = R[xd]! >> 31; break;
                case 1: R[xd] = this.i16[a >>> 1]!; R[xd + 1] = R[xd]! >> 31; break;
                case 2: R[xd] = R[a >>> 2]!; R[xd + 1] = R[xd]! >> 31; break;
                case 3: R[xd] = R[a >>> 2]!; R[xd + 1] = R[(a >>> 2) + 1]!; break;
                case 4: R[xd] = this.u8[a]!; R[xd + 1] = 0; break;
                case 5: R[xd] = U16[a >>> 1]!; R[xd + 1] = 0; break;
                default: R[xd] = R[a >>> 2]!; R[xd + 1] = 0; break;
              }
              break;
            }
            case 0x23: { // STORE
              const imm = ((insn >> 25) << 5) | ((insn >>> 7) & 31);
              const s = (R[x1]! >>> 0) + (imm >>> 0);
              const lo = s | 0;
              const hi = (R[x1 + 1]! + (imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
              const f3 = (insn >>> 12) & 7;
              if (f3 > 3) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              const size = 1 << f3;
              const x2 = xw + 2 * ((insn >>> 20) & 31);
              const e = this.tw + this.dataCtx + (((lo >>> 12) & TLB_MASK) << 3);
              if (T[e + TLB_TAG_WRITE] === (lo & -4096) && T[e + TLB_TAG_WRITE + TLB_HI] === hi && (lo & (size - 1)) === 0) {
                const a = (T[e + TLB_MADDR]! >>> 0) + (lo & 0xfff);
                switch (f3) {
                  case 0: this.u8[a] = R[x2]!; break;
                  case 1: U16[a >>> 1] = R[x2]!; break;
                  case 2: R[a >>> 2] = R[x2]!; break;
                  default: R[a >>> 2] = R[x2]!; R[(a >>> 2) + 1] = R[x2 + 1]!; break;
                }
              } else {
                this.storeSlow(lo, hi, size, R[x2]!, R[x2 + 1]!, len);
              }
              break;
            }
            case 0x13: { // OP-IMM
              const imm = insn >> 20;
              const alo = R[x1]!, ahi = R[x1 + 1]!;
              switch ((insn >>> 12) & 7) {
                case 0: { // ADDI
                  const s = (alo >>> 0) + (imm >>> 0);
                  R[xd] = s | 0;
                  R[xd + 1] = (ahi + (imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
                  break;
                }
                case 1: { // SLLI
                  if ((insn >>> 26) !== 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
                  const sh = imm & 63;
                  if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                  else if (sh < 32) { R[xd + 1] = (ahi << sh) | (alo >>> (32 - sh)); R[xd] = alo << sh; }
                  else { R[xd + 1] = alo << (sh - 32); R[xd] = 0; }
                  break;
                }
                case 2: { // SLTI
                  const bhi = imm >> 31;
                  R[xd] = ahi < bhi || (ahi === bhi && (alo >>> 0) < (imm >>> 0)) ? 1 : 0;
                  R[xd + 1] = 0;
                  break;
                }
                case 3: { // SLTIU
                  const bhi = (imm >> 31) >>> 0;
                  R[xd] = (ahi >>> 0) < bhi || ((ahi >>> 0) === bhi && (alo >>> 0) < (imm >>> 0)) ? 1 : 0;
                  R[xd + 1] = 0;
                  break;
                }
                case 4: R[xd] = alo ^ imm; R[xd + 1] = ahi ^ (imm >> 31); break;
                case 5: { // SRLI / SRAI
                  const f6 = insn >>> 26;
                  const sh = imm & 63;
                  if (f6 === 0) {
                    if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                    else if (sh < 32) { R[xd] = (alo >>> sh) | (ahi << (32 - sh)); R[xd + 1] = ahi >>> sh; }
                    else { R[xd] = ahi >>> (sh - 32); R[xd + 1] = 0; }
                  } else if (f6 === 0x10) {
                    if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                    else if (sh < 32) { R[xd] = (alo >>> sh) | (ahi << (32 - sh)); R[xd + 1] = ahi >> sh; }
                    else { R[xd] = ahi >> (sh - 32); R[xd + 1] = ahi >> 31; }
                  } else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
                  break;
                }
                case 6: R[xd] = alo | imm; R[xd + 1] = ahi | (imm >> 31); break;
                default: R[xd] = alo & imm; R[xd + 1] = ahi & (imm >> 31); break;
              }
              break;
            }
            case 0x1b: { // OP-IMM-32
              const imm = insn >> 20;
              const a = R[x1]!;
              let r: number;
              switch ((insn >>> 12) & 7) {
                case 0: r = (a + imm) | 0; break;
                case 1:
                  if ((insn >>> 25) !== 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
                  r = a << (imm & 31); break;
                case 5: {
                  const f7 = insn >>> 25;
                  if (f7 === 0) r = a >>> (imm & 31);
                  else if (f7 === 0x20) r = a >> (imm & 31);
                  else { this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0)); r = 0; }
                  r |= 0;
                  break;
                }
                default: this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0)); r = 0;
              }
              R[xd] = r; R[xd + 1] = r >> 31;
              break;
            }
            case 0x33: { // OP
              const x2 = xw + 2 * ((insn >>> 20) & 31);
              const alo = R[x1]!, ahi = R[x1 + 1]!, blo = R[x2]!, bhi = R[x2 + 1]!;
              const f7 = insn >>> 25;
              const f3 = (insn >>> 12) & 7;
              if (f7 === 0) {
                switch (f3) {
                  case 0: { const s = (alo >>> 0) + (blo >>> 0); R[xd] = s | 0; R[xd + 1] = (ahi + bhi + (s > 0xffffffff ? 1 : 0)) | 0; break; }
                  case 1: {
                    const sh = blo & 63;
                    if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                    else if (sh < 32) { R[xd + 1] = (ahi << sh) | (alo >>> (32 - sh)); R[xd] = alo << sh; }
                    else { R[xd + 1] = alo << (sh - 32); R[xd] = 0; }
                    break;
                  }
                  case 2: R[xd] = ahi < bhi || (ahi === bhi && (alo >>> 0) < (blo >>> 0)) ? 1 : 0; R[xd + 1] = 0; break;
                  case 3: R[xd] = (ahi >>> 0) < (bhi >>> 0) || (ahi === bhi && (alo >>> 0) < (blo >>> 0)) ? 1 : 0; R[xd + 1] = 0; break;
                  case 4: R[xd] = alo ^ blo; R[xd + 1] = ahi ^ bhi; break;
                  case 5: {
                    const sh = blo & 63;
                    if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                    else if (sh < 32) { R[xd] = (alo >>> sh) | (ahi << (32 - sh)); R[xd + 1] = ahi >>> sh; }
                    else { R[xd] = ahi >>> (sh - 32); R[xd + 1] = 0; }
                    break;
                  }
                  case 6: R[xd] = alo | blo; R[xd + 1] = ahi | bhi; break;
                  default: R[xd] = alo & blo; R[xd + 1] = ahi & bhi; break;
                }
              } else if (f7 === 0x20) {
                if (f3 === 0) {
                  R[xd] = (alo - blo) | 0;
                  R[xd + 1] = (ahi - bhi - ((alo >>> 0) < (blo >>> 0) ? 1 : 0)) | 0;
                } else if (f3 === 5) {
                  const sh = blo & 63;
                  if (sh === 0) { R[xd] = alo; R[xd + 1] = ahi; }
                  else if (sh < 32) { R[xd] = (alo >>> sh) | (ahi << (32 - sh)); R[xd + 1] = ahi >> sh; }
                  else { R[xd] = ahi >> (sh - 32); R[xd + 1] = ahi >> 31; }
                } else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              } else if (f7 === 1) {
                this.mulDiv(f3, xd, x1, x2);
              } else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              break;
            }
            case 0x3b: { // OP-32
              const x2 = xw + 2 * ((insn >>> 20) & 31);
              const a = R[x1]!, b = R[x2]!;
              const f7 = insn >>> 25;
              const f3 = (insn >>> 12) & 7;
              let r = 0;
              if (f7 === 0) {
                if (f3 === 0) r = (a + b) | 0;
                else if (f3 === 1) r = a << (b & 31);
                else if (f3 === 5) r = (a >>> (b & 31)) | 0;
                else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              } else if (f7 === 0x20) {
                if (f3 === 0) r = (a - b) | 0;
                else if (f3 === 5) r = a >> (b & 31);
                else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              } else if (f7 === 1) {
                switch (f3) {
                  case 0: r = Math.imul(a, b); break;
                  case 4: r = b === 0 ? -1 : (a === -0x80000000 && b === -1) ? a : (a / b) | 0; break;
                  case 5: r = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0; break;
                  case 6: r = b === 0 ? a : (a === -0x80000000 && b === -1) ? 0 : (a % b) | 0; break;
                  case 7: r = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0; break;
                  default: this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
                }
              } else this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              R[xd] = r; R[xd + 1] = r >> 31;
              break;
            }
            case 0x37: // LUI
              R[xd] = insn & 0xfffff000; R[xd + 1] = insn >> 31;
              break;
            case 0x17: { // AUIPC
              const imm = insn & 0xfffff000;
              const s = (pcLo >>> 0) + (imm >>> 0);
              R[xd] = s | 0; R[xd + 1] = (pcHi + (imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
              break;
            }
            case 0x6f: { // JAL
              const imm = (((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1));
              const s = (pcLo >>> 0) + len;
              R[xd] = s | 0; R[xd + 1] = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
              const t = (pcLo >>> 0) + (imm >>> 0);
              pcHi = (pcHi + (imm >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
              pcLo = t | 0;
              R[xw] = 0; R[xw + 1] = 0;
              if (stopAtJump) budget = limit = n;
              else if (watch !== null) {
                const k = ((pcLo >>> 1) ^ (pcLo >>> 13)) & watchMask;
                const v = watch[k]! + 1;
                watch[k] = v;
                if (v >= 0) budget = limit = n;
              }
              continue;
            }
            case 0x67: { // JALR
              if (((insn >>> 12) & 7) !== 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              const imm = insn >> 20;
              const t = (R[x1]! >>> 0) + (imm >>> 0);
              const thi = (R[x1 + 1]! + (imm >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
              const s = (pcLo >>> 0) + len;
              R[xd] = s | 0; R[xd + 1] = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
              pcLo = t & ~1; pcHi = thi;
              R[xw] = 0; R[xw + 1] = 0;
              if (stopAtJump) budget = limit = n;
              else if (watch !== null) {
                const k = ((pcLo >>> 1) ^ (pcLo >>> 13)) & watchMask;
                const v = watch[k]! + 1;
                watch[k] = v;
                if (v >= 0) budget = limit = n;
              }
              continue;
            }
            case 0x63: { // BRANCH
              const x2 = xw + 2 * ((insn >>> 20) & 31);
              const alo = R[x1]!, ahi = R[x1 + 1]!, blo = R[x2]!, bhi = R[x2 + 1]!;
              let take: boolean;
              switch ((insn >>> 12) & 7) {
                case 0: take = alo === blo && ahi === bhi; break;
                case 1: take = alo !== blo || ahi !== bhi; break;
                case 4: take = ahi < bhi || (ahi === bhi && (alo >>> 0) < (blo >>> 0)); break;
                case 5: take = !(ahi < bhi || (ahi === bhi && (alo >>> 0) < (blo >>> 0))); break;
                case 6: take = (ahi >>> 0) < (bhi >>> 0) || (ahi === bhi && (alo >>> 0) < (blo >>> 0)); break;
                case 7: take = !((ahi >>> 0) < (bhi >>> 0) || (ahi === bhi && (alo >>> 0) < (blo >>> 0))); break;
                default: this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0)); take = false;
              }
              if (take) {
                const imm = (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
                const t = (pcLo >>> 0) + (imm >>> 0);
                pcHi = (pcHi + (imm >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
                pcLo = t | 0;
                if (stopAtJump) budget = limit = n;
                else if (watch !== null) {
                  const k = ((pcLo >>> 1) ^ (pcLo >>> 13)) & watchMask;
                  const v = watch[k]! + 1;
                  watch[k] = v;
                  if (v >= 0) budget = limit = n;
                }
                continue;
              }
              break;
            }
            case 0x0f: { // MISC-MEM
              const f3 = (insn >>> 12) & 7;
              if (f3 === 1) this.fenceI();
              else if (f3 !== 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
              break;
            }
            case 0x73: { // SYSTEM
              R[xw + 2 * SLOT.PC] = pcLo;
              R[xw + 2 * SLOT.PC + 1] = pcHi;
              this.pendingLen = len;
              // CSR reads of instret must see every instruction before this one.
              this.unretired += n - 1 - trapped - accounted;
              accounted = n - 1 - trapped;
              const next = this.system(insn, rd, rs1);
              R[xw] = 0; R[xw + 1] = 0;
              if (next === SYS_EXIT) {
                // pc in the block already points past the instruction
                pcLo = R[xw + 2 * SLOT.PC]!;
                pcHi = R[xw + 2 * SLOT.PC + 1]!;
                result = this.pendingExit!;
                this.pendingExit = null;
                break outer;
              }
              if (next === SYS_JUMP) {
                pcLo = R[xw + 2 * SLOT.PC]!;
                pcHi = R[xw + 2 * SLOT.PC + 1]!;
              } else {
                const s = (pcLo >>> 0) + len;
                pcLo = s | 0; pcHi = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
                if (next === SYS_NEXT_QUIET) continue;
              }
              // CSR writes may have enabled an interrupt or changed translation: end the slice.
              limit = n;
              this.boundaryDue = true;
              continue;
            }
            case 0x2f: // AMO
              this.amo(insn, rd, rs1);
              break;
            case 0x07: case 0x27: // LOAD-FP / STORE-FP
              this.fpLoadStore(insn, rd, rs1, len);
              break;
            case 0x53: case 0x43: case 0x47: case 0x4b: case 0x4f: { // OP-FP, FMADD..FNMADD
              this.fpOp(insn);
              break;
            }
            default:
              this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
          }
          R[xw] = 0; R[xw + 1] = 0;
          const s = (pcLo >>> 0) + len;
          pcLo = s | 0;
          pcHi = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
        }
      } catch (e) {
        R[xw] = 0; R[xw + 1] = 0;
        if (e === TRAP) {
          trapped++;
          if (this.trapCause === CAUSE.ILLEGAL_INSTRUCTION && len === 2) this.trapTval = BigInt(parcel);
          if (this.machineTrapExit && !this.delegated(this.trapCause, false)) {
            result = { kind: 'trap', cause: this.trapCause, tval: this.trapTval, epc: vaddr(pcLo, pcHi) };
            break;
          }
          this.takeTrap(this.trapCause, false, this.trapTval, BigInt.asUintN(64, (BigInt(pcHi) << 32n) | BigInt(pcLo >>> 0)));
          pcLo = R[xw + 2 * SLOT.PC]!;
          pcHi = R[xw + 2 * SLOT.PC + 1]!;
        } else if (e === EXIT) {
          const ex = this.pendingExit!;
          this.pendingExit = null;
          // MMIO loads retire in completeLoad(); MMIO stores and HTIF stores retire here (accessFault()
          // takes a store back); readonly and nomem leave pc on the instruction.
          if (ex.kind === 'mmio' ? !ex.write : ex.kind !== 'htif') trapped++;
          if (ex.kind === 'mmio' && ex.write || ex.kind === 'htif') {
            const s = (pcLo >>> 0) + len;
            pcLo = s | 0;
            pcHi = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
          }
          result = ex;
          break;
        } else {
          throw e;
        }
      }
    }
    R[xw + 2 * SLOT.PC] = pcLo;
    R[xw + 2 * SLOT.PC + 1] = pcHi;
    this.unretired += n - trapped - accounted;
    this.steps += n;
    if (!noFlush) this.flushRetired();
    return result;
  }
  private pendingLen = 4;

  // ---------------------------------------------------------------- the translator's port (src/jit)

  /** Set when a SYSTEM instruction ran: the translator must pass a slice boundary before going on. */
  boundaryDue = false;
  /** Instructions the translator's load/store helpers attempted that did not retire. */
  jitNonRetired = 0;
  /** A store (or DMA) hit a page holding translated code; the pmap has told the translators. */
  private codeHit = false;

  /** The slice boundary of the run loop: pmap changes, then pending interrupts. */
  boundary(): void {
    this.boundaryDue = false;
    this.followPmap();
    this.takePendingInterrupt();
  }

  /** A removed or weakened pmap mapping (new generation) drops every cached translation. */
  private followPmap(): void {
    const gen = this.pmap.generation();
    if (gen !== this.pmapGeneration) {
      this.pmapGeneration = gen;
      this.flushTlb();
    }
    this.followMarks();
    if (this.i32[this.xw + 2 * SLOT.REQ_SEQ] !== this.i32[this.xw + 2 * SLOT.REQ_ACK]) this.serveRequests();
  }

  /**
   * Serves what other threads asked of this hart (HartIrqPort.request). The
   * sequence number is read before the bits are taken: a request whose bits
   * land later than that read is served at the next boundary, never acknowledged unserved.
   */
  serveRequests(): void {
    const R = this.i32;
    const seq = Atomics.load(R, this.xw + 2 * SLOT.REQ_SEQ);
    const bits = Atomics.exchange(R, this.xw + 2 * SLOT.REQ_BITS, 0);
    if (bits & REQ_FLUSH_TLB) this.flushTlb();
    if (bits & REQ_FENCE_I) this.fenceI();
    Atomics.store(R, this.xw + 2 * SLOT.REQ_ACK, seq);
    Atomics.notify(R, this.xw + 2 * SLOT.REQ_ACK);
  }

  /** Accounts instructions the translated code ran (retired ones go to minstret, mcycle and the clock). */
  creditRetired(retired: number, attempts: number): void {
    this.unretired += retired;
    this.steps += attempts;
  }

  /** The exit a helper left for the dispatcher, if any. */
  takePendingExit(): Exit | null {
    const e = this.pendingExit;
    this.pendingExit = null;
    return e;
  }

  /** Adds the retired instructions to the counters (before run() returns). */
  settleRetired(): void {
    this.flushRetired();
  }

  /**
   * Slow path of a translated integer load; op = funct3 | rd << 3 | length << 8.
   * 0: done, the extended value is in the JIT_SCRATCH slot. 2: not done, pc is set
   * (a trap was taken, or an exit is pending for the dispatcher).
   */
  jitLoad(lo: number, hi: number, op: number, pcLo: number, pcHi: number): number {
    const f3 = op & 7;
    const len = op >>> 8;
    const sc = this.xw + 2 * SLOT.JIT_SCRATCH;
    const R = this.i32;
    try {
      const size = 1 << (f3 & 3);
      const a = this.loadSlow(lo, hi, size, { file: 'x', reg: (op >>> 3) & 31, signed: f3 < 4 }, len);
      let vlo: number, vhi: number;
      if (a < 0) {
        vlo = this.scratchLo;
        vhi = this.scratchHi;
      } else {
        vlo = size === 1 ? this.u8[a]! : size === 2 ? this.u16[a >>> 1]! : R[a >>> 2]!;
        vhi = size === 8 ? R[(a >>> 2) + 1]! : 0;
      }
      switch (f3) {
        case 0: vlo = (vlo << 24) >> 24; vhi = vlo >> 31; break;
        case 1: vlo = (vlo << 16) >> 16; vhi = vlo >> 31; break;
        case 2: vhi = vlo >> 31; break;
        case 4: vlo &= 0xff; vhi = 0; break;
        case 5: vlo &= 0xffff; vhi = 0; break;
        case 6: vhi = 0; break;
        default: break;
      }
      R[sc] = vlo;
      R[sc + 1] = vhi;
      return 0;
    } catch (e) {
      return this.jitFault(e, pcLo, pcHi, len);
    }
  }

  /**
   * Slow path of a translated integer store; op = funct3 | length << 8.
   * 0: done. 1: done, and it wrote to a page holding translated code (leave the region).
   * 2: not done or an exit is pending; pc is set.
   */
  jitStore(lo: number, hi: number, vlo: number, vhi: number, op: number, pcLo: number, pcHi: number): number {
    const len = op >>> 8;
    this.codeHit = false;
    try {
      this.storeSlow(lo, hi, 1 << (op & 3), vlo, vhi, len);
    } catch (e) {
      return this.jitFault(e, pcLo, pcHi, len);
    }
    return this.codeHit ? 1 : 0;
  }

  /**
   * An OP-FP or fused multiply-add instruction for translated code: 0 when done,
   * 1 (nothing changed) when it must trap, which the interpreter then raises.
   */
  jitFp(insn: number): number {
    if (this.fsOff()) return 1;
    const fcsrIdx = this.xw + 2 * SLOT.FCSR;
    const fcsr = this.i32[fcsrIdx]!;
    const flags = this.fpu.execute(insn, (fcsr >>> 5) & 7);
    if (flags < 0) return 1;
    if (flags !== 0) this.i32[fcsrIdx] = fcsr | flags;
    this.i32[this.xw] = 0;
    this.i32[this.xw + 1] = 0;
    this.markFsDirty();
    return 0;
  }

  /**
   * Interprets the one instruction at pc (one the translator does not translate).
   * 0: it fell through to pc + len; 1: it did anything else (jumped, trapped, wrote
   * translated code, needs a slice boundary, or left an exit for the dispatcher).
   */
  jitStep(pcLo: number, pcHi: number, len: number): number {
    const R = this.i32;
    const p = this.xw + 2 * SLOT.PC;
    R[p] = pcLo;
    R[p + 1] = pcHi;
    this.codeHit = false;
    this.pendingStoreLen = 0;
    const exit = this.interpret(1, INTERPRET_NO_IRQ | INTERPRET_NO_FLUSH);
    if (exit.kind !== 'budget') {
      this.pendingExit = exit;
      return 1;
    }
    if (this.codeHit || this.boundaryDue) return 1;
    const s = (pcLo >>> 0) + len;
    return R[p] === (s | 0) && R[p + 1] === ((pcHi + (s > 0xffffffff ? 1 : 0)) | 0) ? 0 : 1;
  }

  /**
   * Caches the fetch translation of pc in the soft TLB (data accesses to a page with
   * the same index evict it). False if fetching there would fault: the interpreter
   * then raises the fault.
   */
  jitFetchProbe(pcLo: number, pcHi: number): boolean {
    try {
      const a = this.translate(pcLo, pcHi, ACC_EXEC, 2);
      return a >= 0 && this.accessTlbFill;
    } catch (e) {
      if (e === TRAP || e === EXIT) {
        this.pendingExit = null;
        return false;
      }
      throw e;
    }
  }

  /** A helper's trap or exit, as the run loop's catch handles them. */
  private jitFault(e: unknown, pcLo: number, pcHi: number, len: number): number {
    const R = this.i32;
    const p = this.xw + 2 * SLOT.PC;
    R[p] = pcLo;
    R[p + 1] = pcHi;
    if (e === TRAP) {
      this.jitNonRetired++;
      if (this.machineTrapExit && !this.delegated(this.trapCause, false)) {
        this.pendingExit = { kind: 'trap', cause: this.trapCause, tval: this.trapTval, epc: vaddr(pcLo, pcHi) };
        return 2;
      }
      this.takeTrap(this.trapCause, false, this.trapTval, vaddr(pcLo, pcHi));
      return 2;
    }
    if (e === EXIT) {
      const ex = this.pendingExit!;
      if ((ex.kind === 'mmio' && ex.write) || ex.kind === 'htif') {
        const s = (pcLo >>> 0) + len;
        R[p] = s | 0;
        R[p + 1] = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
        if (ex.kind === 'mmio') this.pendingStoreLen = len;
      } else {
        this.jitNonRetired++;
      }
      return 2;
    }
    throw e;
  }

  /**
   * Stops stores through this hart's soft TLB to the machine page at
   * `frameAddr` (it now holds translated code). Returns whether a write tag
   * was dropped.
   */
  dropWriteTags(frameAddr: number): boolean {
    const T = this.i32;
    const fa = frameAddr | 0;
    let had = false;
    for (let c = 0; c < TLB_CONTEXTS; c++) {
      if (this.ctxFilled[c] === 0) continue;
      const end = this.tw + (c + 1) * TLB_CTX_WORDS;
      for (let e = this.tw + c * TLB_CTX_WORDS; e < end; e += TLB_ENTRY_WORDS) {
        if (T[e + TLB_MADDR] === fa && T[e + TLB_TAG_WRITE] !== TLB_INVALID) {
          T[e + TLB_TAG_WRITE] = TLB_INVALID;
          had = true;
        }
      }
    }
    const V = this.victims;
    for (let v = 0; v < V.length; v += TLB_ENTRY_WORDS) {
      if (V[v + TLB_MADDR] === fa && V[v + TLB_TAG_WRITE] !== TLB_INVALID) {
        V[v + TLB_TAG_WRITE] = TLB_INVALID;
        had = true;
      }
    }
    return had;
  }

  /**
   * Pages marked as translated code since this hart last looked (by a
   * translator on any thread): their write tags go. A tag still there may
   * have let this hart store into the page after it was marked, unseen, so
   * the page counts as written and its translations are dropped.
   */
  private followMarks(): void {
    const pm = this.pmap;
    const g = pm.markGeneration();
    if (g === this.marksSeen) return;
    if (g - this.marksSeen > CODE_LOG_ENTRIES) {
      // Too far behind to know which pages: every write tag goes, and every marked page counts as written.
      this.flushTlb();
      for (let i = 0; i < pm.entries.length; i++) if (Atomics.load(pm.entries, i) & PM_CODE) pm.codeWritten(i);
      this.marksSeen = g;
      return;
    }
    for (let n = this.marksSeen; n < g; n++) {
      const idx = pm.markLogEntry(n);
      const e = Atomics.load(pm.entries, idx);
      if ((e & PM_CODE) !== 0 && this.dropWriteTags((e >>> PM_FRAME_SHIFT) * PAGE_SIZE)) pm.codeWritten(idx);
    }
    this.marksSeen = g;
  }
  /** Mark-log entries this hart has followed (Pmap.markGeneration). */
  private marksSeen = 0;

  // ---------------------------------------------------------------- helpers of the interpreter

  /** Raises an exception: the instruction does not retire. */
  private raise(cause: number, tval: bigint): never {
    this.trapCause = cause;
    this.trapTval = tval;
    throw TRAP;
  }

  private exitWith(exit: Exit): never {
    this.pendingExit = exit;
    throw EXIT;
  }

  /** Adds retired instructions to minstret and mcycle (unless inhibited) and to the clock. */
  private flushRetired(): void {
    const n = this.unretired;
    if (n === 0) return;
    this.unretired = 0;
    const inhibit = this.slotLo(SLOT.MCOUNTINHIBIT);
    const bn = BigInt(n);
    if ((inhibit & 1) === 0) this.setSlot(SLOT.MCYCLE, this.slot(SLOT.MCYCLE) + bn);
    if ((inhibit & 4) === 0) this.setSlot(SLOT.MINSTRET, this.slot(SLOT.MINSTRET) + bn);
    this.clock.retire(n);
  }

  private mulDiv(f3: number, xd: number, x1: number, x2: number): void {
    const Q = this.i64;
    const a = Q[x1 >>> 1]!, b = Q[x2 >>> 1]!;
    let r: bigint;
    switch (f3) {
      case 0: r = a * b; break;
      case 1: r = (a * b) >> 64n; break;
      case 2: r = (a * BigInt.asUintN(64, b)) >> 64n; break;
      case 3: r = (BigInt.asUintN(64, a) * BigInt.asUintN(64, b)) >> 64n; break;
      case 4: r = b === 0n ? -1n : (a === -(1n << 63n) && b === -1n) ? a : a / b; break;
      case 5: r = b === 0n ? -1n : BigInt.asUintN(64, a) / BigInt.asUintN(64, b); break;
      case 6: r = b === 0n ? a : (a === -(1n << 63n) && b === -1n) ? 0n : a % b; break;
      default: r = b === 0n ? a : BigInt.asUintN(64, a) % BigInt.asUintN(64, b); break;
    }
    Q[xd >>> 1] = BigInt.asIntN(64, r);
  }

  // ---------------------------------------------------------------- fetch

  /** Fetch from a page other than the current one: the soft TLB first, then a walk. */
  private fetchSlow(lo: number, hi: number): number {
    const T = this.i32;
    const e = this.tw + this.fetchCtx + (((lo >>> 12) & TLB_MASK) << 3);
    if (T[e + TLB_TAG_EXEC] === (lo & -4096) && T[e + TLB_TAG_EXEC + TLB_HI] === hi) {
      const base = T[e + TLB_MADDR]! >>> 0;
      this.fetchTagLo = lo & -4096;
      this.fetchTagHi = hi;
      this.fetchBase = base;
      return base + (lo & 0xfff);
    }
    const a = this.translate(lo, hi, ACC_EXEC, 2);
    if (a < 0) this.raise(CAUSE.FETCH_ACCESS, vaddr(lo, hi));
    if (this.accessTlbFill) {
      this.fetchTagLo = lo & -4096;
      this.fetchTagHi = hi;
      this.fetchBase = (a - (lo & 0xfff)) >>> 0;
    }
    return a;
  }

  /** The upper half of a 32-bit instruction that starts in the last halfword of a page. */
  private fetchHalfSlow(lo: number, hi: number): number {
    const s = (lo >>> 0) + 2;
    const nlo = s | 0, nhi = (hi + (s > 0xffffffff ? 1 : 0)) | 0;
    // The soft TLB first (a walk each time made straddling instructions a large share of a boot's walks).
    const T = this.i32;
    const e = this.tw + this.fetchCtx + (((nlo >>> 12) & TLB_MASK) << 3);
    if (T[e + TLB_TAG_EXEC] === nlo && T[e + TLB_TAG_EXEC + TLB_HI] === nhi) return this.u16[(T[e + TLB_MADDR]! >>> 0) >>> 1]!;
    const a = this.translate(nlo, nhi, ACC_EXEC, 2);
    if (a < 0) this.raise(CAUSE.FETCH_ACCESS, vaddr(nlo, nhi));
    // The cached fetch page stays the instruction's first page.
    this.fetchTagLo = TLB_INVALID;
    return this.u16[a >>> 1]!;
  }

  /** FENCE.I: later fetches see earlier stores (also remote fences through SBI). */
  fenceI(): void {
    // The interpreter always fetches from memory; translated code is invalidated by the translator's hooks.
    this.fetchTagLo = TLB_INVALID;
  }

  // ---------------------------------------------------------------- loads and stores (slow paths)

  private scratchLo = 0;
  private scratchHi = 0;

  /**
   * Load slow path. Returns a machine address for an aligned RAM access; for a misaligned
   * access, loads the bytes into the scratch word and returns -1; exits for MMIO.
   */
  private loadSlow(lo: number, hi: number, size: number, dest: LoadDest, len: number): number {
    if ((lo & (size - 1)) === 0) {
      const a = this.translate(lo, hi, ACC_READ, size);
      if (a >= 0) return a;
      this.pendingLoad = { dest, size, len };
      this.exitWith({ kind: 'mmio', write: false, gpa: this.mmioGpa, size: size as 1 | 2 | 4 | 8, value: 0n, dest });
    }
    this.misalignedRead(lo, hi, size, CAUSE.MISALIGNED_LOAD);
    return -1;
  }

  /** Machine addresses of the first and last byte of a misaligned access (two pages at most); -1 for non-RAM. */
  private misalignedPages(lo: number, hi: number, size: number, access: Access, misalignedCause: number): [number, number] {
    // Translate both pages first so that a fault leaves nothing half done.
    const a0 = this.cachedData(lo, hi, access) ?? this.translate(lo, hi, access, 1, false);
    const end = (lo >>> 0) + size - 1;
    const elo = end | 0, ehi = (hi + (end > 0xffffffff ? 1 : 0)) | 0;
    const a1 = (lo & -4096) === (elo & -4096) ? a0 + size - 1 : this.cachedData(elo, ehi, access) ?? this.translate(elo, ehi, access, 1, false);
    // Misaligned accesses to devices are not performed: they trap.
    if (a0 < 0 || a1 < 0) this.raise(misalignedCause, vaddr(lo, hi));
    return [a0, a1];
  }

  /**
   * The machine address of a data access the soft TLB already holds, or null.
   * A page that is watched or holds translated code never has a write tag, so a
   * hit needs none of translate()'s write bookkeeping.
   */
  private cachedData(lo: number, hi: number, access: Access): number | null {
    const R = this.i32;
    const e = this.tw + this.dataCtx + (((lo >>> 12) & TLB_MASK) << 3);
    const t = access === ACC_WRITE ? TLB_TAG_WRITE : TLB_TAG_READ;
    if (R[e + t] === (lo & -4096) && R[e + t + TLB_HI] === hi) {
      if (access === ACC_WRITE) this.watchHit = -1;
      return (R[e + TLB_MADDR]! >>> 0) + (lo & 0xfff);
    }
    return null;
  }

  /** Reads `size` bytes at a misaligned address into the scratch word. */
  private misalignedRead(lo: number, hi: number, size: number, misalignedCause: number): void {
    const [a0, a1] = this.misalignedPages(lo, hi, size, ACC_READ, misalignedCause);
    const first = 4096 - (lo & 0xfff); // bytes on the first page
    let vlo = 0, vhi = 0;
    for (let i = 0; i < size; i++) {
      const b = i < first ? this.u8[a0 + i]! : this.u8[a1 - (size - 1) + i]!;
      if (i < 4) vlo |= b << (8 * i);
      else vhi |= b << (8 * (i - 4));
    }
    this.scratchLo = vlo;
    this.scratchHi = vhi;
  }

  /** Writes the scratch word to x register (i32 index xd) with the extension LOAD funct3 asks for. */
  private loadScratch(xd: number, f3: number): void {
    const R = this.i32;
    const lo = this.scratchLo, hi = this.scratchHi;
    switch (f3) {
      case 1: R[xd] = (lo << 16) >> 16; R[xd + 1] = R[xd]! >> 31; break;
      case 2: R[xd] = lo; R[xd + 1] = lo >> 31; break;
      case 3: R[xd] = lo; R[xd + 1] = hi; break;
      case 5: R[xd] = lo & 0xffff; R[xd + 1] = 0; break;
      case 6: R[xd] = lo; R[xd + 1] = 0; break;
      default: break;
    }
  }

  private storeSlow(lo: number, hi: number, size: number, vlo: number, vhi: number, len: number): void {
    if ((lo & (size - 1)) !== 0) {
      this.misalignedWrite(lo, hi, size, vlo, vhi);
      return;
    }
    const a = this.translate(lo, hi, ACC_WRITE, size);
    if (a < 0) {
      this.pendingStoreLen = len;
      const value = size === 8 ? BigInt.asUintN(64, (BigInt(vhi) << 32n) | BigInt(vlo >>> 0)) : BigInt.asUintN(size * 8, BigInt(vlo));
      this.exitWith({ kind: 'mmio', write: true, gpa: this.mmioGpa, size: size as 1 | 2 | 4 | 8, value, dest: null });
    }
    this.writeRaw(a, size, vlo, vhi);
    this.afterSlowStore(a, size);
  }

  private writeRaw(a: number, size: number, vlo: number, vhi: number): void {
    switch (size) {
      case 1: this.u8[a] = vlo; break;
      case 2: this.u16[a >>> 1] = vlo; break;
      case 4: this.i32[a >>> 2] = vlo; break;
      default: this.i32[a >>> 2] = vlo; this.i32[(a >>> 2) + 1] = vhi; break;
    }
  }

  /** Stores that took the slow path to a watched page: report the HTIF tohost write. */
  private afterSlowStore(a: number, size: number): void {
    if (this.watchHit >= 0 && this.tohost >= 0) {
      const gpa = this.watchHit;
      this.watchHit = -1;
      if (gpa <= this.tohost && this.tohost < gpa + size) {
        const ta = a - (gpa - this.tohost);
        const v = BigInt.asUintN(64, this.i64[ta >>> 3]!);
        if (v !== 0n) this.exitWith({ kind: 'htif', value: v });
      }
    }
  }
  private watchHit = -1;

  private misalignedWrite(lo: number, hi: number, size: number, vlo: number, vhi: number): void {
    const [a0, a1] = this.misalignedPages(lo, hi, size, ACC_WRITE, CAUSE.MISALIGNED_STORE);
    const first = 4096 - (lo & 0xfff);
    for (let i = 0; i < size; i++) {
      const b = i < 4 ? (vlo >>> (8 * i)) & 0xff : (vhi >>> (8 * (i - 4))) & 0xff;
      if (i < first) this.u8[a0 + i] = b;
      else this.u8[a1 - (size - 1) + i] = b;
    }
  }

  // ---------------------------------------------------------------- atomics (A extension)

  private amo(insn: number, rd: number, rs1: number): void {
    const f3 = (insn >>> 12) & 7;
    if (f3 !== 2 && f3 !== 3) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    const f5 = insn >>> 27;
    const rs2 = (insn >>> 20) & 31;
    const size = f3 === 2 ? 4 : 8;
    const R = this.i32;
    const lo = R[this.xw + 2 * rs1]!, hi = R[this.xw + 2 * rs1 + 1]!;
    const isLr = f5 === 2;
    if (isLr && rs2 !== 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    switch (f5) {
      case 0: case 1: case 2: case 3: case 4: case 8: case 0xc: case 0x10: case 0x14: case 0x18: case 0x1c: break;
      default: this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    }
    if ((lo & (size - 1)) !== 0) this.raise(isLr ? CAUSE.MISALIGNED_LOAD : CAUSE.MISALIGNED_STORE, vaddr(lo, hi));
    // The soft TLB first, as for loads and stores: a page walk per AMO made lock-heavy code walk-bound.
    let a = this.cachedData(lo, hi, isLr ? ACC_READ : ACC_WRITE);
    if (a === null) {
      a = this.translate(lo, hi, isLr ? ACC_READ : ACC_WRITE, size);
      if (a < 0) this.raise(isLr ? CAUSE.LOAD_ACCESS : CAUSE.STORE_ACCESS, this.mmioVa);
    }
    const b = this.i64[this.sq + SLOT.X + rs2]!;
    const xd = this.xw + 2 * rd;
    if (size === 4) {
      const I = this.i32;
      const idx = a >>> 2;
      const v = Number(BigInt.asIntN(32, b));
      let old: number;
      switch (f5) {
        case 2: // LR.W
          old = Atomics.load(I, idx);
          this.setSlot(SLOT.RES_ADDR, BigInt(a));
          this.setSlot(SLOT.RES_VALUE, BigInt(old));
          break;
        case 3: { // SC.W
          const ok = this.slot(SLOT.RES_ADDR) === BigInt(a) && Atomics.compareExchange(I, idx, Number(this.slot(SLOT.RES_VALUE)), v) === Number(this.slot(SLOT.RES_VALUE));
          this.setSlot(SLOT.RES_ADDR, -1n);
          old = ok ? 0 : 1;
          break;
        }
        case 1: old = Atomics.exchange(I, idx, v); break;
        case 0: old = Atomics.add(I, idx, v); break;
        case 4: old = Atomics.xor(I, idx, v); break;
        case 0xc: old = Atomics.and(I, idx, v); break;
        case 8: old = Atomics.or(I, idx, v); break;
        default: {
          for (;;) {
            old = Atomics.load(I, idx);
            let nv: number;
            switch (f5) {
              case 0x10: nv = Math.min(old, v); break;
              case 0x14: nv = Math.max(old, v); break;
              case 0x18: nv = (old >>> 0) < (v >>> 0) ? old : v; break;
              default: nv = (old >>> 0) > (v >>> 0) ? old : v; break;
            }
            if (Atomics.compareExchange(I, idx, old, nv) === old) break;
          }
        }
      }
      if (rd !== 0) { R[xd] = old; R[xd + 1] = old >> 31; }
    } else {
      const Q = this.i64;
      const idx = a >>> 3;
      let old: bigint;
      switch (f5) {
        case 2:
          old = Atomics.load(Q, idx);
          this.setSlot(SLOT.RES_ADDR, BigInt(a));
          this.setSlot(SLOT.RES_VALUE, old);
          break;
        case 3: {
          const exp = this.slot(SLOT.RES_VALUE);
          const ok = this.slot(SLOT.RES_ADDR) === BigInt(a) && Atomics.compareExchange(Q, idx, exp, b) === exp;
          this.setSlot(SLOT.RES_ADDR, -1n);
          old = ok ? 0n : 1n;
          break;
        }
        case 1: old = Atomics.exchange(Q, idx, b); break;
        case 0: old = Atomics.add(Q, idx, b); break;
        case 4: old = Atomics.xor(Q, idx, b); break;
        case 0xc: old = Atomics.and(Q, idx, b); break;
        case 8: old = Atomics.or(Q, idx, b); break;
        default: {
          for (;;) {
            old = Atomics.load(Q, idx);
            let nv: bigint;
            switch (f5) {
              case 0x10: nv = old < b ? old : b; break;
              case 0x14: nv = old > b ? old : b; break;
              case 0x18: nv = BigInt.asUintN(64, old) < BigInt.asUintN(64, b) ? old : b; break;
              default: nv = BigInt.asUintN(64, old) > BigInt.asUintN(64, b) ? old : b; break;
            }
            if (Atomics.compareExchange(Q, idx, old, nv) === old) break;
          }
        }
      }
      if (rd !== 0) Q[xd >>> 1] = old;
    }
    if (!isLr) this.afterSlowStore(a, size);
  }

  // ---------------------------------------------------------------- floating point

  private fsOff(): boolean {
    return (this.slotLo(SLOT.MSTATUS) & MSTATUS.FS) === 0;
  }

  private markFsDirty(): void {
    const i = this.xw + 2 * SLOT.MSTATUS;
    this.i32[i] = this.i32[i]! | MSTATUS.FS;
  }

  private fpLoadStore(insn: number, rd: number, rs1: number, len: number): void {
    const f3 = (insn >>> 12) & 7;
    if ((f3 !== 2 && f3 !== 3) || this.fsOff()) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    const size = f3 === 2 ? 4 : 8;
    const R = this.i32;
    const store = (insn & 0x7f) === 0x27;
    const imm = store ? ((insn >> 25) << 5) | ((insn >>> 7) & 31) : insn >> 20;
    const s = (R[this.xw + 2 * rs1]! >>> 0) + (imm >>> 0);
    const lo = s | 0;
    const hi = (R[this.xw + 2 * rs1 + 1]! + (imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
    const fw = this.xw + 2 * SLOT.F;
    if (store) {
      const fs = fw + 2 * ((insn >>> 20) & 31);
      const vlo = R[fs]!, vhi = R[fs + 1]!;
      const e = this.tw + this.dataCtx + (((lo >>> 12) & TLB_MASK) << 3);
      if (R[e + TLB_TAG_WRITE] === (lo & -4096) && R[e + TLB_TAG_WRITE + TLB_HI] === hi && (lo & (size - 1)) === 0) {
        this.writeRaw((R[e + TLB_MADDR]! >>> 0) + (lo & 0xfff), size, vlo, vhi);
      } else {
        this.storeSlow(lo, hi, size, vlo, vhi, len);
      }
      return;
    }
    const fd = fw + 2 * rd;
    const e = this.tw + this.dataCtx + (((lo >>> 12) & TLB_MASK) << 3);
    let a: number;
    if (R[e + TLB_TAG_READ] === (lo & -4096) && R[e + TLB_TAG_READ + TLB_HI] === hi && (lo & (size - 1)) === 0) {
      a = (R[e + TLB_MADDR]! >>> 0) + (lo & 0xfff);
    } else {
      a = this.loadSlow(lo, hi, size, { file: 'f', reg: rd, signed: false }, len);
    }
    if (a < 0) {
      R[fd] = this.scratchLo;
      R[fd + 1] = size === 4 ? -1 : this.scratchHi;
    } else if (size === 4) {
      R[fd] = R[a >>> 2]!;
      R[fd + 1] = -1; // NaN-boxing
    } else {
      R[fd] = R[a >>> 2]!;
      R[fd + 1] = R[(a >>> 2) + 1]!;
    }
    this.markFsDirty();
  }

  private fpOp(insn: number): void {
    if (this.fsOff()) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    const fcsrIdx = this.xw + 2 * SLOT.FCSR;
    const fcsr = this.i32[fcsrIdx]!;
    const flags = this.fpu.execute(insn, (fcsr >>> 5) & 7);
    if (flags < 0) this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    if (flags !== 0) this.i32[fcsrIdx] = fcsr | flags;
    this.i32[this.xw] = 0;
    this.i32[this.xw + 1] = 0;
    this.markFsDirty();
  }

  // ---------------------------------------------------------------- SYSTEM: CSRs, xRET, WFI, SFENCE.VMA, ECALL

  /** Executes a SYSTEM instruction; pc in the block is the instruction's. */
  private system(insn: number, rd: number, rs1: number): number {
    const f3 = (insn >>> 12) & 7;
    const priv = this.priv;
    const ill: () => never = () => this.raise(CAUSE.ILLEGAL_INSTRUCTION, BigInt(insn >>> 0));
    if (f3 === 0) {
      if (insn === 0x00000073) { // ECALL
        if ((this.ecallExitMask >> priv) & 1) {
          this.pc = this.pc + 4n;
          this.pendingExit = { kind: 'ecall', priv };
          return SYS_EXIT;
        }
        this.raise(priv === PRIV_U ? CAUSE.USER_ECALL : priv === PRIV_S ? CAUSE.SUPERVISOR_ECALL : CAUSE.MACHINE_ECALL, 0n);
      }
      if (insn === 0x00100073) this.raise(CAUSE.BREAKPOINT, this.pc); // EBREAK
      if (insn === 0x30200073) { // MRET
        if (priv < PRIV_M) ill();
        this.mret();
        return SYS_JUMP;
      }
      if (insn === 0x10200073) { // SRET
        if (priv < PRIV_S || (priv === PRIV_S && (this.slotLo(SLOT.MSTATUS) & MSTATUS.TSR))) ill();
        this.sret();
        return SYS_JUMP;
      }
      if (insn === 0x10500073) { // WFI
        if (priv === PRIV_U || (priv === PRIV_S && (this.slotLo(SLOT.MSTATUS) & MSTATUS.TW))) ill();
        if (this.interruptPendingForWfi()) return SYS_NEXT;
        this.pc = this.pc + BigInt(this.pendingLen);
        this.pendingExit = WFI_EXIT;
        return SYS_EXIT;
      }
      if ((insn >>> 25) === 0x09 && rd === 0) { // SFENCE.VMA
        if (priv === PRIV_U || (priv === PRIV_S && (this.slotLo(SLOT.MSTATUS) & MSTATUS.TVM))) ill();
        const rs2 = (insn >>> 20) & 31;
        if (rs1 === 0 && rs2 === 0) this.flushTlb();
        else if (rs1 === 0) this.flushTlbAsid(this.i32[this.xw + 2 * rs2]! & 0xffff);
        else this.flushTlbPage(this.i32[this.xw + 2 * rs1]!, this.i32[this.xw + 2 * rs1 + 1]!);
        return SYS_NEXT;
      }
      ill();
    }
    if (f3 === 4) ill();
    // Zicsr
    const csr = insn >>> 20;
    const op = f3 & 3;
    const src = f3 & 4 ? BigInt(rs1) : this.getX(rs1);
    const writes = op === 1 || rs1 !== 0;
    if (((csr >>> 8) & 3) > priv) ill();
    if (writes && (csr >>> 10) === 3) ill();
    if (!this.csrAccessible(csr, priv)) ill();
    const old = this.csrRead(csr);
    if (old === null) ill();
    if (!writes) {
      this.setX(rd, old);
      return SYS_NEXT_QUIET;
    }
    const mst = this.slotLo(SLOT.MSTATUS);
    const nv = op === 1 ? src : op === 2 ? old | src : old & ~src;
    if (!this.csrWrite(csr, BigInt.asUintN(64, nv))) ill();
    this.setX(rd, old);
    return this.csrWriteQuiet(csr, mst) ? SYS_NEXT_QUIET : SYS_NEXT;
  }

  /**
   * Whether a CSR write leaves nothing for a slice boundary: no interrupt it may
   * have made deliverable, no change to how loads and stores translate (translated
   * code keeps the data context in a local). The common ones in a kernel's trap and
   * interrupt paths are; a boundary after each cost a round trip out of translated code.
   */
  private csrWriteQuiet(csr: number, mstatusBefore: number): boolean {
    switch (csr) {
      case CSR.sscratch: case CSR.sepc: case CSR.scause: case CSR.stval:
      case CSR.mscratch: case CSR.mepc: case CSR.mcause: case CSR.mtval:
      case CSR.fflags: case CSR.frm: case CSR.fcsr:
        return true;
      case CSR.sstatus: case CSR.mstatus: {
        const now = this.slotLo(SLOT.MSTATUS);
        if (((now ^ mstatusBefore) & MSTATUS_DATA_CONTEXT) !== 0) return false;
        // Interrupts just enabled: quiet only if none is pending.
        if ((now & ~mstatusBefore & (MSTATUS.SIE | MSTATUS.MIE)) !== 0 && this.interruptPendingForWfi()) return false;
        return true;
      }
      default:
        return false;
    }
  }

  /** Counter enables, TVM, FS=Off and Sstc gating, beyond the address-encoded privilege. */
  private csrAccessible(csr: number, priv: number): boolean {
    if (csr <= 3) return !this.fsOff();
    if ((csr >= CSR.cycle && csr <= CSR.hpmcounter31)) {
      const bit = 1n << BigInt(csr - CSR.cycle);
      if (priv < PRIV_M && (this.slot(SLOT.MCOUNTEREN) & bit) === 0n) return false;
      if (priv < PRIV_S && (this.slot(SLOT.SCOUNTEREN) & bit) === 0n) return false;
      return true;
    }
    if (csr === CSR.satp && priv === PRIV_S && (this.slotLo(SLOT.MSTATUS) & MSTATUS.TVM)) return false;
    if (csr === CSR.stimecmp && priv === PRIV_S) {
      if ((this.slotU(SLOT.MENVCFG) & MENVCFG_STCE) === 0n) return false;
      if ((this.slot(SLOT.MCOUNTEREN) & 2n) === 0n) return false;
    }
    return true;
  }

  /** mip as software sees it: stored bits, device lines and timer comparisons. */
  private effectiveMip(): number {
    let mip = this.slotLo(SLOT.MIP) | this.port.irqLines();
    const now = this.clock.now();
    // Read as numbers (not BigInt): this runs at every slice boundary.
    if (now >= this.slotNum(SLOT.MTIMECMP)) mip |= MIP_MTIP;
    if (this.i32[this.xw + 2 * SLOT.MENVCFG + 1]! & MENVCFG_STCE_HI) {
      mip &= ~MIP_STIP;
      if (now >= this.slotNum(SLOT.STIMECMP)) mip |= MIP_STIP;
    }
    return mip;
  }

  /** A 64-bit slot as an unsigned number (rounded above 2^53, which time comparisons tolerate). */
  private slotNum(i: number): number {
    const w = this.xw + 2 * i;
    return (this.i32[w + 1]! >>> 0) * 4294967296 + (this.i32[w]! >>> 0);
  }

  private mstatusRead(): bigint {
    let v = BigInt.asUintN(64, this.slot(SLOT.MSTATUS));
    if ((v & BigInt(MSTATUS.FS)) === BigInt(MSTATUS.FS)) v |= 1n << 63n;
    return v;
  }

  private csrRead(csr: number): bigint | null {
    this.flushRetired();
    switch (csr) {
      case CSR.fflags: return BigInt(this.slotLo(SLOT.FCSR) & 0x1f);
      case CSR.frm: return BigInt((this.slotLo(SLOT.FCSR) >>> 5) & 7);
      case CSR.fcsr: return BigInt(this.slotLo(SLOT.FCSR) & 0xff);
      case CSR.cycle: case CSR.mcycle: return this.slotU(SLOT.MCYCLE);
      case CSR.instret: case CSR.minstret: return this.slotU(SLOT.MINSTRET);
      case CSR.time: return BigInt(this.clock.now());
      case CSR.sstatus: return this.mstatusRead() & SSTATUS_MASK;
      case CSR.sie: return this.slotU(SLOT.MIE) & this.slotU(SLOT.MIDELEG);
      case CSR.sip: return BigInt(this.effectiveMip()) & this.slotU(SLOT.MIDELEG);
      case CSR.stvec: return this.slotU(SLOT.STVEC);
      case CSR.scounteren: return this.slotU(SLOT.SCOUNTEREN);
      case CSR.senvcfg: return this.slotU(SLOT.SENVCFG);
      case CSR.sscratch: return this.slotU(SLOT.SSCRATCH);
      case CSR.sepc: return this.slotU(SLOT.SEPC);
      case CSR.scause: return this.slotU(SLOT.SCAUSE);
      case CSR.stval: return this.slotU(SLOT.STVAL);
      case CSR.stimecmp: return this.slotU(SLOT.STIMECMP);
      case CSR.satp: return this.slotU(SLOT.SATP);
      case CSR.mvendorid: case CSR.marchid: case CSR.mimpid: case CSR.mconfigptr: return 0n;
      case CSR.mhartid: return this.slotU(SLOT.MHARTID);
      case CSR.mstatus: return this.mstatusRead();
      case CSR.misa: return MISA_VALUE;
      case CSR.medeleg: return this.slotU(SLOT.MEDELEG);
      case CSR.mideleg: return this.slotU(SLOT.MIDELEG);
      case CSR.mie: return this.slotU(SLOT.MIE);
      case CSR.mtvec: return this.slotU(SLOT.MTVEC);
      case CSR.mcounteren: return this.slotU(SLOT.MCOUNTEREN);
      case CSR.menvcfg: return this.slotU(SLOT.MENVCFG);
      case CSR.mcountinhibit: return this.slotU(SLOT.MCOUNTINHIBIT);
      case CSR.mscratch: return this.slotU(SLOT.MSCRATCH);
      case CSR.mepc: return this.slotU(SLOT.MEPC);
      case CSR.mcause: return this.slotU(SLOT.MCAUSE);
      case CSR.mtval: return this.slotU(SLOT.MTVAL);
      case CSR.mip: return BigInt(this.effectiveMip());
      case CSR.pmpcfg0: return this.slotU(SLOT.PMPCFG0);
      case CSR.pmpcfg2: return this.slotU(SLOT.PMPCFG2);
      case CSR.mseccfg: return 0n;
      case CSR.tselect: return 0n;
      case CSR.tdata1: case CSR.tdata2: case CSR.tdata3: return 0n;
      default:
        if (csr >= CSR.pmpaddr0 && csr < CSR.pmpaddr0 + PMP_ENTRIES) return this.slotU(SLOT.PMPADDR0 + csr - CSR.pmpaddr0);
        if ((csr >= CSR.mhpmcounter3 && csr <= CSR.mhpmcounter31) || (csr >= CSR.hpmcounter3 && csr <= CSR.hpmcounter31) ||
          (csr >= CSR.mhpmevent3 && csr <= CSR.mhpmevent31)) return 0n;
        return null;
    }
  }

  /** Writes a CSR (value unsigned 64-bit) with WARL legalisation; false if it is not writable. */
  private csrWrite(csr: number, v: bigint): boolean {
    switch (csr) {
      case CSR.fflags: this.setSlot(SLOT.FCSR, (this.slot(SLOT.FCSR) & ~0x1fn) | (v & 0x1fn)); this.markFsDirty(); return true;
      case CSR.frm: this.setSlot(SLOT.FCSR, (this.slot(SLOT.FCSR) & 0x1fn) | ((v & 7n) << 5n)); this.markFsDirty(); return true;
      case CSR.fcsr: this.setSlot(SLOT.FCSR, v & 0xffn); this.markFsDirty(); return true;
      case CSR.mcycle: this.flushRetired(); this.setSlot(SLOT.MCYCLE, v - 1n); return true;
      case CSR.minstret: this.flushRetired(); this.setSlot(SLOT.MINSTRET, v - 1n); return true;
      case CSR.sstatus: {
        const m = SSTATUS_MASK & MSTATUS_WRITABLE;
        this.writeMstatus((this.slotU(SLOT.MSTATUS) & ~m) | (v & m));
        return true;
      }
      case CSR.sie: {
        const d = this.slotU(SLOT.MIDELEG);
        this.setSlot(SLOT.MIE, (this.slotU(SLOT.MIE) & ~d) | (v & d & MIE_MASK));
        return true;
      }
      case CSR.sip: {
        // Only SSIP is writable through sip (when delegated).
        const m = this.slotU(SLOT.MIDELEG) & BigInt(MIP_SSIP);
        this.setSlot(SLOT.MIP, (this.slotU(SLOT.MIP) & ~m) | (v & m));
        if (m !== 0n && (v & m) === 0n) this.port.setIrqLine(MIP_SSIP, false);
        return true;
      }
      case CSR.stvec: return this.writeTvec(SLOT.STVEC, v);
      case CSR.scounteren: this.setSlot(SLOT.SCOUNTEREN, v & 0xffffffffn); return true;
      case CSR.senvcfg: this.setSlot(SLOT.SENVCFG, v & 1n); return true;
      case CSR.sscratch: this.setSlot(SLOT.SSCRATCH, v); return true;
      case CSR.sepc: this.setSlot(SLOT.SEPC, v & ~1n); return true;
      case CSR.scause: this.setSlot(SLOT.SCAUSE, v); return true;
      case CSR.stval: this.setSlot(SLOT.STVAL, v); return true;
      case CSR.stimecmp: this.setSlot(SLOT.STIMECMP, v); return true;
      case CSR.satp: {
        const mode = Number(v >> 60n);
        if (mode !== SATP_MODE_BARE && mode !== SATP_MODE_SV39 && mode !== SATP_MODE_SV48) return true; // WARL: ignored
        const asidMask = ((1n << BigInt(ASID_BITS)) - 1n) << 44n;
        const nv = mode === SATP_MODE_BARE ? 0n : (v & ((0xfn << 60n) | asidMask | ((1n << 44n) - 1n)));
        this.setSlot(SLOT.SATP, nv);
        this.selectBank();
        return true;
      }
      case CSR.mstatus: this.writeMstatus(v); return true;
      case CSR.misa: return true; // WARL: fixed
      case CSR.medeleg: this.setSlot(SLOT.MEDELEG, v & MEDELEG_MASK); return true;
      case CSR.mideleg: this.setSlot(SLOT.MIDELEG, v & MIDELEG_MASK); return true;
      case CSR.mie: this.setSlot(SLOT.MIE, v & MIE_MASK); return true;
      case CSR.mtvec: return this.writeTvec(SLOT.MTVEC, v);
      case CSR.mcounteren: this.setSlot(SLOT.MCOUNTEREN, v & 0xffffffffn); return true;
      case CSR.menvcfg: this.setSlot(SLOT.MENVCFG, v & (MENVCFG_STCE | 1n)); return true;
      case CSR.mcountinhibit: this.flushRetired(); this.setSlot(SLOT.MCOUNTINHIBIT, v & 5n); return true;
      case CSR.mscratch: this.setSlot(SLOT.MSCRATCH, v); return true;
      case CSR.mepc: this.setSlot(SLOT.MEPC, v & ~1n); return true;
      case CSR.mcause: this.setSlot(SLOT.MCAUSE, v); return true;
      case CSR.mtval: this.setSlot(SLOT.MTVAL, v); return true;
      case CSR.mip: {
        let m = BigInt(MIP_SSIP | MIP_SEIP);
        if ((this.slotU(SLOT.MENVCFG) & MENVCFG_STCE) === 0n) m |= BigInt(MIP_STIP);
        this.setSlot(SLOT.MIP, (this.slotU(SLOT.MIP) & ~m) | (v & m));
        // An IPI raises SSIP as a line (SBI IPI, ACLINT SSWI); software clearing SSIP clears it.
        if ((v & BigInt(MIP_SSIP)) === 0n) this.port.setIrqLine(MIP_SSIP, false);
        return true;
      }
      case CSR.pmpcfg0: case CSR.pmpcfg2: this.writePmpcfg(csr === CSR.pmpcfg0 ? 0 : 8, v); return true;
      case CSR.mseccfg: return true;
      case CSR.tselect: case CSR.tdata1: case CSR.tdata2: case CSR.tdata3: return true;
      default:
        if (csr >= CSR.pmpaddr0 && csr < CSR.pmpaddr0 + PMP_ENTRIES) { this.writePmpaddr(csr - CSR.pmpaddr0, v); return true; }
        if ((csr >= CSR.mhpmcounter3 && csr <= CSR.mhpmcounter31) || (csr >= CSR.mhpmevent3 && csr <= CSR.mhpmevent31)) return true;
        return false;
    }
  }

  // mcycle/minstret writes store v - 1: the writing instruction retires afterwards and adds one,
  // so the value written is what the next instruction sees (privileged spec 3.1.10).

  private writeMstatus(v: bigint): void {
    const old = this.slotU(SLOT.MSTATUS);
    let nv = (old & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
    // MPP: 2 is reserved (WARL); keep the previous value.
    if (((nv >> BigInt(MSTATUS.MPP_SHIFT)) & 3n) === 2n) nv = (nv & ~BigInt(MSTATUS.MPP)) | (old & BigInt(MSTATUS.MPP));
    nv = (nv & ~((3n << 32n) | (3n << 34n))) | MSTATUS_XL;
    this.setSlot(SLOT.MSTATUS, nv);
    if (((old ^ nv) & BigInt(MSTATUS.MXR)) !== 0n) this.flushTlb();
    this.updateContexts();
  }

  private writeTvec(slot: number, v: bigint): boolean {
    // MODE >= 2 is reserved: WARL, the write is ignored.
    if ((v & 3n) >= 2n) return true;
    this.setSlot(slot, v);
    return true;
  }

  private mret(): void {
    let ms = this.slotU(SLOT.MSTATUS);
    const mpp = Number((ms >> BigInt(MSTATUS.MPP_SHIFT)) & 3n);
    const mpie = (ms & BigInt(MSTATUS.MPIE)) !== 0n;
    ms = mpie ? ms | BigInt(MSTATUS.MIE) : ms & ~BigInt(MSTATUS.MIE);
    ms |= BigInt(MSTATUS.MPIE);
    ms &= ~BigInt(MSTATUS.MPP); // least-privileged mode: U
    if (mpp !== PRIV_M) ms &= ~BigInt(MSTATUS.MPRV);
    this.setSlot(SLOT.MSTATUS, ms);
    this.priv = mpp;
    this.pc = this.slotU(SLOT.MEPC);
    this.setSlot(SLOT.RES_ADDR, -1n);
    this.updateContexts();
  }

  private sret(): void {
    let ms = this.slotU(SLOT.MSTATUS);
    const spp = (ms & BigInt(MSTATUS.SPP)) !== 0n ? PRIV_S : PRIV_U;
    const spie = (ms & BigInt(MSTATUS.SPIE)) !== 0n;
    ms = spie ? ms | BigInt(MSTATUS.SIE) : ms & ~BigInt(MSTATUS.SIE);
    ms |= BigInt(MSTATUS.SPIE);
    ms &= ~BigInt(MSTATUS.SPP);
    ms &= ~BigInt(MSTATUS.MPRV);
    this.setSlot(SLOT.MSTATUS, ms);
    this.priv = spp;
    this.pc = this.slotU(SLOT.SEPC);
    this.setSlot(SLOT.RES_ADDR, -1n);
    this.updateContexts();
  }

  // ---------------------------------------------------------------- traps and interrupts

  /** Enters the trap handler (privileged spec 3.1.6.1, 3.1.7, 4.1.1): sets state and pc in the block. */
  /** Whether a trap taken now goes to S-mode (section 3.1.8). */
  private delegated(cause: number, interrupt: boolean): boolean {
    const bit = 1n << BigInt(cause);
    return this.priv <= PRIV_S && ((interrupt ? this.slotU(SLOT.MIDELEG) : this.slotU(SLOT.MEDELEG)) & bit) !== 0n;
  }

  takeTrap(cause: number, interrupt: boolean, tval: bigint, epc: bigint): void {
    const priv = this.priv;
    const deleg = this.delegated(cause, interrupt);
    const causeVal = interrupt ? (1n << 63n) | BigInt(cause) : BigInt(cause);
    let ms = this.slotU(SLOT.MSTATUS);
    let tvec: bigint;
    if (deleg) {
      this.setSlot(SLOT.SEPC, epc);
      this.setSlot(SLOT.SCAUSE, causeVal);
      this.setSlot(SLOT.STVAL, tval);
      ms = (ms & BigInt(MSTATUS.SIE)) ? ms | BigInt(MSTATUS.SPIE) : ms & ~BigInt(MSTATUS.SPIE);
      ms &= ~BigInt(MSTATUS.SIE);
      ms = priv === PRIV_S ? ms | BigInt(MSTATUS.SPP) : ms & ~BigInt(MSTATUS.SPP);
      this.priv = PRIV_S;
      tvec = this.slotU(SLOT.STVEC);
    } else {
      this.setSlot(SLOT.MEPC, epc);
      this.setSlot(SLOT.MCAUSE, causeVal);
      this.setSlot(SLOT.MTVAL, tval);
      ms = (ms & BigInt(MSTATUS.MIE)) ? ms | BigInt(MSTATUS.MPIE) : ms & ~BigInt(MSTATUS.MPIE);
      ms &= ~BigInt(MSTATUS.MIE);
      ms = (ms & ~BigInt(MSTATUS.MPP)) | (BigInt(priv) << BigInt(MSTATUS.MPP_SHIFT));
      this.priv = PRIV_M;
      tvec = this.slotU(SLOT.MTVEC);
    }
    this.setSlot(SLOT.MSTATUS, ms);
    const base = tvec & ~3n;
    this.pc = interrupt && (tvec & 3n) === 1n ? base + 4n * BigInt(cause) : base;
    this.updateContexts();
  }

  /** Takes the highest-priority pending and enabled interrupt, if any (section 3.1.9). */
  private takePendingInterrupt(): boolean {
    const pending = this.effectiveMip() & Number(this.slot(SLOT.MIE));
    if (pending === 0) return false;
    const priv = this.priv;
    const mideleg = Number(this.slot(SLOT.MIDELEG));
    const ms = this.slotLo(SLOT.MSTATUS);
    const mEnabled = priv < PRIV_M || (ms & MSTATUS.MIE) !== 0;
    const sEnabled = priv < PRIV_S || (priv === PRIV_S && (ms & MSTATUS.SIE) !== 0);
    let cand = 0;
    if (mEnabled) cand = pending & ~mideleg;
    if (cand === 0 && sEnabled) cand = pending & mideleg;
    if (cand === 0) return false;
    for (const irq of IRQ_PRIORITY) {
      if (cand & (1 << irq)) {
        this.takeTrap(irq, true, 0n, this.pc);
        return true;
      }
    }
    return false;
  }

  // ---------------------------------------------------------------- MMU

  /** Recomputes the TLB contexts for fetch and data from priv, mstatus and the current bank. */
  private updateContexts(): void {
    const priv = this.priv;
    const ms = this.slotLo(SLOT.MSTATUS);
    const bankBase = 1 + this.bank * TLB_BANK_CONTEXTS;
    const ctx = (p: number): number => {
      if (p === PRIV_M) return TLB_CTX_M;
      return bankBase + (p === PRIV_U ? TLB_CTX_U : (ms & MSTATUS.SUM) ? TLB_CTX_S_SUM : TLB_CTX_S);
    };
    // SUM does not change what S-mode may execute.
    this.fetchCtx = (priv === PRIV_M ? TLB_CTX_M : bankBase + (priv === PRIV_U ? TLB_CTX_U_FETCH : TLB_CTX_S_FETCH)) * TLB_CTX_WORDS;
    let dp = priv;
    if (priv === PRIV_M && (ms & MSTATUS.MPRV)) dp = (ms >>> MSTATUS.MPP_SHIFT) & 3;
    this.dataCtx = ctx(dp) * TLB_CTX_WORDS;
    this.dataPriv = dp;
    const R = this.i32;
    R[this.xw + 2 * SLOT.JIT_FETCH_TLB] = this.tlbOffset + this.fetchCtx * 4;
    R[this.xw + 2 * SLOT.JIT_DATA_TLB] = this.tlbOffset + this.dataCtx * 4;
    this.fetchTagLo = TLB_INVALID;
  }
  private dataPriv = PRIV_M;

  // Address-space banks of the TLB: which satp (MODE and ASID) each holds, and their age.
  private readonly bankKey = new Int32Array(TLB_BANKS).fill(-1);
  private readonly bankAge = new Float64Array(TLB_BANKS);
  private bank = 0;
  private bankClock = 0;

  /** The address space of satp: MODE and ASID (translations do not depend on anything else once cached). */
  private static satpKey(satp: bigint): number {
    return (Number(satp >> 60n) << 16) | Number((satp >> 44n) & 0xffffn);
  }

  /** Selects (or recycles) the TLB bank for the current satp; no flush when the address space was seen recently. */
  private selectBank(): void {
    const key = Hart.satpKey(this.slotU(SLOT.SATP));
    let pick = -1;
    for (let b = 0; b < TLB_BANKS; b++) if (this.bankKey[b] === key) pick = b;
    if (pick < 0) {
      pick = 0;
      for (let b = 1; b < TLB_BANKS; b++) if (this.bankAge[b]! < this.bankAge[pick]!) pick = b;
      this.flushContexts(1 + pick * TLB_BANK_CONTEXTS, TLB_BANK_CONTEXTS);
      this.bankKey[pick] = key;
    }
    this.bankAge[pick] = ++this.bankClock;
    this.bank = pick;
    this.updateContexts();
  }

  private flushContexts(first: number, count: number): void {
    const T = this.i32;
    for (let c = first; c < first + count; c++) {
      // A table nothing was cached in since its last flush is clean already.
      if (this.ctxFilled[c] === 0) continue;
      this.ctxFilled[c] = 0;
      const start = this.tw + c * TLB_CTX_WORDS;
      const end = start + TLB_CTX_WORDS;
      for (let i = start; i < end; i += TLB_ENTRY_WORDS) {
        dropTags(T, i);
      }
      const V = this.victims;
      for (let v = c * TLB_VICTIMS * TLB_ENTRY_WORDS, ve = v + TLB_VICTIMS * TLB_ENTRY_WORDS; v < ve; v += TLB_ENTRY_WORDS) {
        dropTags(V, v);
      }
    }
    this.fetchTagLo = TLB_INVALID;
  }
  /** Victim entries, TLB_VICTIMS per context, laid out as the table's entries. */
  private readonly victims = new Int32Array(TLB_CONTEXTS * TLB_VICTIMS * TLB_ENTRY_WORDS).fill(TLB_INVALID);
  /** Per context, the victim entry the next eviction replaces. */
  private readonly victimNext = new Uint8Array(TLB_CONTEXTS);
  /** Per TLB context: filled since its last flush (1 at first: its memory is not known to be clean). */
  private readonly ctxFilled = new Uint8Array(TLB_CONTEXTS).fill(1);

  /** Drops every cached translation of every address space. */
  flushTlb(): void {
    this.flushContexts(0, TLB_CONTEXTS);
    this.bankKey.fill(-1);
    this.bankKey[this.bank] = Hart.satpKey(this.slotU(SLOT.SATP));
    this.pmpActive = this.computePmpActive();
  }

  /** SFENCE.VMA rs1 = x0, rs2 = ASID: drops the translations of that ASID (any MODE). */
  private flushTlbAsid(asid: number): void {
    for (let b = 0; b < TLB_BANKS; b++) {
      if (this.bankKey[b] !== -1 && (this.bankKey[b]! & 0xffff) === asid) this.flushContexts(1 + b * TLB_BANK_CONTEXTS, TLB_BANK_CONTEXTS);
    }
  }

  /** SFENCE.VMA with an address: drops that page from every context (the index does not depend on the context). */
  private flushTlbPage(lo: number, _hi: number): void {
    const T = this.i32;
    const idx = ((lo >>> 12) & TLB_MASK) * TLB_ENTRY_WORDS;
    for (let c = 0; c < TLB_CONTEXTS; c++) {
      const e = this.tw + c * TLB_CTX_WORDS + idx;
      dropTags(T, e);
    }
    // Victims with the same index (whatever their high bits: the flush may be for any of them).
    const V = this.victims;
    const page = lo & -4096;
    for (let v = 0; v < V.length; v += TLB_ENTRY_WORDS) {
      if (((V[v + TLB_TAG_READ]! ^ page) & (TLB_MASK << 12)) === 0 || ((V[v + TLB_TAG_WRITE]! ^ page) & (TLB_MASK << 12)) === 0
        || ((V[v + TLB_TAG_EXEC]! ^ page) & (TLB_MASK << 12)) === 0) {
        dropTags(V, v);
      }
    }
    this.fetchTagLo = TLB_INVALID;
  }

  /**
   * Translates a virtual address for an access of `size` bytes (aligned, within a page).
   * Returns the machine address for RAM, or -1 for an address no RAM region maps (mmioGpa set).
   * Raises page faults and access faults; exits for read-only pages and exhausted memory.
   * With `fill`, caches the page in the soft TLB when that is safe.
   */
  private translate(lo: number, hi: number, access: Access, size: number, fill = true): number {
    const priv = access === ACC_EXEC ? this.priv : this.dataPriv;
    let gpa: number;
    let pteFlags = PTE_R | PTE_W | PTE_X | PTE_D;
    // satp (section 10.1.11): MODE is bits 60-63, PPN bits 0-43.
    const satpHi = this.i32[this.xw + 2 * SLOT.SATP + 1]!;
    const mode = satpHi >>> 28;
    if (priv === PRIV_M || mode === SATP_MODE_BARE) {
      // Physical addresses are 56 bits.
      if ((hi >>> 24) !== 0) this.raise(accessFaultCause(access), vaddr(lo, hi));
      gpa = (hi >>> 0) * 4294967296 + (lo >>> 0);
    } else {
      const v = fill ? this.victimHit(lo, hi, access) : -1;
      if (v >= 0) {
        gpa = v;
      } else {
        gpa = this.walk(lo, hi, access, priv, mode, (satpHi & 0xfff) * 4294967296 + (this.slotLo(SLOT.SATP) >>> 0));
        pteFlags = this.walkFlags;
      }
    }
    // PMP (section 3.7): checked for the whole page when caching, else for the access itself.
    const pageGpa = gpa - (gpa % PAGE_SIZE);
    let cacheable = fill;
    if (this.pmpActive || priv !== PRIV_M) {
      const pmpAcc = access === ACC_EXEC ? PMP_X : access === ACC_WRITE ? PMP_W : PMP_R;
      if (!this.pmpCheck(pageGpa, PAGE_SIZE, pmpAcc, priv)) {
        cacheable = false;
        if (!this.pmpCheck(gpa, size, pmpAcc, priv)) this.raise(accessFaultCause(access), vaddr(lo, hi));
      }
    }
    const idx = this.pmap.indexOf(gpa);
    if (idx < 0) {
      this.mmioGpa = gpa;
      this.mmioVa = vaddr(lo, hi);
      return -1;
    }
    let ent = this.pmapEntries[idx]!;
    if (ent === 0) {
      ent = this.pmap.entry(idx);
      if (ent === 0) this.exitWith({ kind: 'nomem', gpa });
    }
    const frameAddr = (ent >>> PM_FRAME_SHIFT) * PAGE_SIZE;
    const ma = frameAddr + (gpa % PAGE_SIZE);
    if (access === ACC_WRITE) {
      if ((ent & PM_WRITE) === 0) {
        if (this.pmap.regionOf(gpa)?.kind === 'rom') this.raise(CAUSE.STORE_ACCESS, vaddr(lo, hi));
        this.exitWith({ kind: 'readonly', gpa });
      }
      this.watchHit = (ent & PM_WATCH) ? gpa : -1;
      if (ent & PM_CODE) {
        // Translated code is dropped before the store lands; the translator leaves the region.
        this.pmap.codeWritten(idx);
        this.codeHit = true;
      }
    }
    this.accessTlbFill = cacheable;
    if (cacheable) {
      const T = this.i32;
      const ctx = access === ACC_EXEC ? this.fetchCtx : this.dataCtx;
      this.ctxFilled[ctx / TLB_CTX_WORDS] = 1;
      const e = this.tw + ctx + (((lo >>> 12) & TLB_MASK) << 3);
      const tag = lo & -4096;
      // Reading a page cached for another access type keeps its tags only if they describe this page.
      if (T[e + TLB_MADDR] !== (frameAddr | 0) ||
        !((T[e + TLB_TAG_READ] === tag && T[e + TLB_TAG_READ + TLB_HI] === hi) ||
          (T[e + TLB_TAG_WRITE] === tag && T[e + TLB_TAG_WRITE + TLB_HI] === hi) ||
          (T[e + TLB_TAG_EXEC] === tag && T[e + TLB_TAG_EXEC + TLB_HI] === hi))) {
        this.evict(ctx / TLB_CTX_WORDS, e);
        dropTags(T, e);
      }
      T[e + TLB_MADDR] = frameAddr | 0;
      T[e + TLB_GPPN] = Math.floor(gpa / PAGE_SIZE) | 0;
      if (access === ACC_EXEC) {
        T[e + TLB_TAG_EXEC] = tag;
        T[e + TLB_TAG_EXEC + TLB_HI] = hi;
      } else if (access === ACC_READ) {
        T[e + TLB_TAG_READ] = tag;
        T[e + TLB_TAG_READ + TLB_HI] = hi;
      } else if ((ent & (PM_WATCH | PM_CODE)) === 0 && (pteFlags & PTE_D)) {
        T[e + TLB_TAG_WRITE] = tag;
        T[e + TLB_TAG_WRITE + TLB_HI] = hi;
        T[e + TLB_TAG_READ] = tag;
        T[e + TLB_TAG_READ + TLB_HI] = hi;
      }
    }
    return ma;
  }

  private walkFlags = 0;
  /** Page-table walks so far (soft-TLB misses that found no victim entry). A double field: see DOUBLE_FIELD. */
  walks = DOUBLE_FIELD;

  /**
   * A victim entry of the current context with a tag for this access: it and
   * the table's entry at its index change places, and the guest-physical
   * address is returned (else -1).
   */
  private victimHit(lo: number, hi: number, access: Access): number {
    const ctx = access === ACC_EXEC ? this.fetchCtx : this.dataCtx;
    const c = ctx / TLB_CTX_WORDS;
    const V = this.victims;
    const tagW = access === ACC_EXEC ? TLB_TAG_EXEC : access === ACC_WRITE ? TLB_TAG_WRITE : TLB_TAG_READ;
    const tag = lo & -4096;
    for (let v = c * TLB_VICTIMS * TLB_ENTRY_WORDS, ve = v + TLB_VICTIMS * TLB_ENTRY_WORDS; v < ve; v += TLB_ENTRY_WORDS) {
      if (V[v + tagW] !== tag || V[v + tagW + TLB_HI] !== hi) continue;
      const T = this.i32;
      const e = this.tw + ctx + (((lo >>> 12) & TLB_MASK) << 3);
      for (let k = 0; k < TLB_ENTRY_WORDS; k++) {
        const t = T[e + k]!;
        T[e + k] = V[v + k]!;
        V[v + k] = t;
      }
      this.ctxFilled[c] = 1;
      return (T[e + TLB_GPPN]! >>> 0) * PAGE_SIZE + (lo & 0xfff);
    }
    return -1;
  }

  /** The table's entry e of context c is about to describe another page: its translation moves to a victim entry. */
  private evict(c: number, e: number): void {
    const T = this.i32;
    if (T[e + TLB_TAG_READ] === TLB_INVALID && T[e + TLB_TAG_WRITE] === TLB_INVALID && T[e + TLB_TAG_EXEC] === TLB_INVALID) return;
    const n = this.victimNext[c]!;
    this.victimNext[c] = (n + 1) % TLB_VICTIMS;
    const v = (c * TLB_VICTIMS + n) * TLB_ENTRY_WORDS;
    for (let k = 0; k < TLB_ENTRY_WORDS; k++) this.victims[v + k] = T[e + k]!;
  }

  /** Sv39/Sv48 page-table walk (section 4.3.2) with hardware A/D update. Returns the guest-physical address. */
  private walk(lo: number, hi: number, access: Access, priv: number, mode: number, rootPpn: number): number {
    // Integer arithmetic on the two 32-bit halves throughout: a walk runs on every
    // soft-TLB miss, and BigInt or floating-point division here cost a boot ~3 %.
    this.walks++;
    const levels = mode === SATP_MODE_SV39 ? 3 : 4;
    const faultCause = access === ACC_EXEC ? CAUSE.FETCH_PAGE_FAULT : access === ACC_WRITE ? CAUSE.STORE_PAGE_FAULT : CAUSE.LOAD_PAGE_FAULT;
    // Bits above the VA width (39 or 48) must equal its top bit.
    const top = hi >> (9 * levels - 21);
    if (top !== 0 && top !== -1) this.raise(faultCause, vaddr(lo, hi));
    const ms = this.slotLo(SLOT.MSTATUS);
    const I = this.i32;
    let a = rootPpn * PAGE_SIZE;
    for (let i = levels - 1; i >= 0; i--) {
      // VPN[i] is VA bits 12+9i..20+9i (Sv39/Sv48 VA layout, privileged spec 10.4.1/10.5.1).
      const vpn = (i < 2 ? lo >>> (12 + 9 * i) : i === 2 ? (lo >>> 30) | (hi << 2) : hi >>> 7) & 511;
      const pteAddr = a + vpn * 8;
      // Implicit accesses of the walk are checked by PMP as S-mode accesses (section 3.7.2).
      if (!this.pmpCheck(pteAddr, 8, PMP_R, PRIV_S)) this.raise(accessFaultCause(access), vaddr(lo, hi));
      const pidx = this.pmap.indexOf(pteAddr);
      if (pidx < 0) this.raise(accessFaultCause(access), vaddr(lo, hi));
      const ent = this.pmap.entry(pidx);
      if (ent === 0) this.exitWith({ kind: 'nomem', gpa: pteAddr });
      const w = ((ent >>> PM_FRAME_SHIFT) * PAGE_SIZE + (pteAddr & (PAGE_SIZE - 1))) >>> 2;
      for (;;) {
        // The PTE as one 64-bit value without a BigInt: the low word read again after the
        // high one, so that a store by another hart between the two reads is seen and retried.
        const plo = Atomics.load(I, w);
        const phi = Atomics.load(I, w + 1);
        if (Atomics.load(I, w) !== plo) continue;
        const f = plo & 0xff;
        if ((f & PTE_V) === 0 || ((f & PTE_R) === 0 && (f & PTE_W) !== 0)) this.raise(faultCause, vaddr(lo, hi));
        // Reserved high bits 54-63 (no Svpbmt/Svnapot): must be zero.
        if ((phi >>> 22) !== 0) this.raise(faultCause, vaddr(lo, hi));
        // PPN: PTE bits 10-53.
        const ppn = (phi & 0x3fffff) * 4194304 + (plo >>> 10);
        if ((f & (PTE_R | PTE_X)) === 0) {
          // Pointer to the next level; A, D, U are reserved there.
          if (i === 0 || (f & (PTE_A | PTE_D | PTE_U)) !== 0) this.raise(faultCause, vaddr(lo, hi));
          a = ppn * PAGE_SIZE;
          break;
        }
        // Leaf: permissions.
        if (priv === PRIV_U) {
          if ((f & PTE_U) === 0) this.raise(faultCause, vaddr(lo, hi));
        } else if (f & PTE_U) {
          if (access === ACC_EXEC || (ms & MSTATUS.SUM) === 0) this.raise(faultCause, vaddr(lo, hi));
        }
        if (access === ACC_EXEC) {
          if ((f & PTE_X) === 0) this.raise(faultCause, vaddr(lo, hi));
        } else if (access === ACC_READ) {
          if ((f & PTE_R) === 0 && !((ms & MSTATUS.MXR) && (f & PTE_X))) this.raise(faultCause, vaddr(lo, hi));
        } else if ((f & PTE_W) === 0) this.raise(faultCause, vaddr(lo, hi));
        // Superpage alignment: the PPN's low 9i bits (at most 27) must be zero.
        if (i > 0 && (((plo >>> 10) | (phi << 22)) & ((1 << (9 * i)) - 1)) !== 0) this.raise(faultCause, vaddr(lo, hi));
        // Hardware A/D update, atomically on the whole PTE (section 4.3.2 step 7).
        const want = PTE_A | (access === ACC_WRITE ? PTE_D : 0);
        if ((f & want) !== want) {
          if (!this.pmpCheck(pteAddr, 8, PMP_W, PRIV_S)) this.raise(accessFaultCause(access), vaddr(lo, hi));
          if ((ent & PM_WRITE) === 0) this.exitWith({ kind: 'readonly', gpa: pteAddr });
          const pte = (BigInt(phi) << 32n) | BigInt(plo >>> 0);
          if (Atomics.compareExchange(this.i64, w >>> 1, pte, pte | BigInt(want)) !== pte) continue;
        }
        this.walkFlags = f | want;
        // The page offset is VA bits below 12+9i; the leaf's PPN is aligned to it.
        const offLo = i < 2 ? lo & ((1 << (12 + 9 * i)) - 1) : i === 2 ? lo & 0x3fffffff : lo >>> 0;
        const offHi = i === 3 ? (hi & 0x7f) * 4294967296 : 0;
        return ppn * PAGE_SIZE + offHi + offLo;
      }
    }
    this.raise(faultCause, vaddr(lo, hi));
  }

  // ---------------------------------------------------------------- PMP (section 3.7)

  private pmpCfg(i: number): number {
    const s = i < 8 ? SLOT.PMPCFG0 : SLOT.PMPCFG2;
    const b = i & 7;
    return this.u8[this.blockOffset + s * 8 + b]!;
  }

  private computePmpActive(): boolean {
    this.decodePmp();
    for (let i = 0; i < PMP_ENTRIES; i++) if (this.pmpHi[i] !== 0) return true;
    return false;
  }

  private writePmpcfg(first: number, v: bigint): void {
    const slot = first === 0 ? SLOT.PMPCFG0 : SLOT.PMPCFG2;
    for (let b = 0; b < 8; b++) {
      const i = first + b;
      const old = this.pmpCfg(i);
      if (old & PMP_L) continue;
      let nb = Number((v >> BigInt(8 * b)) & 0xffn) & (PMP_R | PMP_W | PMP_X | PMP_A | PMP_L);
      // R=0, W=1 is reserved (WARL): keep the entry's previous value.
      if ((nb & (PMP_R | PMP_W)) === PMP_W) nb = old;
      this.u8[this.blockOffset + slot * 8 + b] = nb;
    }
    this.flushTlb();
  }

  private writePmpaddr(i: number, v: bigint): void {
    if (this.pmpCfg(i) & PMP_L) return;
    if (i + 1 < PMP_ENTRIES) {
      const next = this.pmpCfg(i + 1);
      if ((next & PMP_L) && ((next & PMP_A) >> 3) === PMP_TOR) return;
    }
    this.setSlot(SLOT.PMPADDR0 + i, v & ((1n << 54n) - 1n));
    this.flushTlb();
  }

  /** Decodes every PMP entry into byte ranges [pmpLo, pmpHi); an entry that is off has pmpHi = 0. */
  private decodePmp(): void {
    for (let i = 0; i < PMP_ENTRIES; i++) {
      const cfg = this.pmpCfg(i);
      const addr = this.slotU(SLOT.PMPADDR0 + i);
      let lo = 0n, hi = 0n;
      switch ((cfg & PMP_A) >> 3) {
        case PMP_OFF: break;
        case PMP_TOR: lo = i === 0 ? 0n : this.slotU(SLOT.PMPADDR0 + i - 1) << 2n; hi = addr << 2n; break;
        case PMP_NA4: lo = addr << 2n; hi = lo + 4n; break;
        default: {
          // NAPOT: the trailing ones of pmpaddr encode the size (section 3.7.1, table 3.10).
          let ones = 0n;
          while (((addr >> ones) & 1n) === 1n) ones++;
          const size = 1n << (ones + 3n);
          lo = (addr << 2n) & ~(size - 1n);
          hi = lo + size;
        }
      }
      // Physical addresses are below 2^56: clamping keeps the doubles exact where it matters.
      this.pmpLo[i] = Number(lo);
      this.pmpHi[i] = lo < hi ? Number(hi) : 0;
      this.pmpCfgs[i] = cfg;
    }
  }
  private readonly pmpLo = new Float64Array(PMP_ENTRIES);
  private readonly pmpHi = new Float64Array(PMP_ENTRIES);
  private readonly pmpCfgs = new Uint8Array(PMP_ENTRIES);

  /** True if an access of `size` bytes at physical `pa` with permission bit `perm` is allowed for `priv`. */
  private pmpCheck(pa: number, size: number, perm: number, priv: number): boolean {
    for (let i = 0; i < PMP_ENTRIES; i++) {
      const hi = this.pmpHi[i]!;
      if (hi === 0) continue;
      const lo = this.pmpLo[i]!;
      if (pa + size <= lo || pa >= hi) continue; // no byte matches
      if (pa < lo || pa + size > hi) return false; // a partial match fails
      const cfg = this.pmpCfgs[i]!;
      if (priv === PRIV_M && (cfg & PMP_L) === 0) return true;
      return (cfg & perm) !== 0;
    }
    return priv === PRIV_M;
  }

}

const SYS_NEXT = 0;
const SYS_JUMP = 1;
const SYS_EXIT = 2;
/** Falls through with nothing for a slice boundary to do (no interrupt enabled, no translation context changed). */
const SYS_NEXT_QUIET = 3;
/** mstatus bits that select the soft-TLB context of loads and stores (section 3.1.6.3). */
const MSTATUS_DATA_CONTEXT = MSTATUS.SUM | MSTATUS.MXR | MSTATUS.MPRV | MSTATUS.MPP;
const BUDGET_EXIT: Exit = { kind: 'budget' };
const WFI_EXIT: Exit = { kind: 'wfi' };
const IRQ_PRIORITY = [IRQ.MEI, IRQ.MSI, IRQ.MTI, IRQ.SEI, IRQ.SSI, IRQ.STI] as const;

function vaddr(lo: number, hi: number): bigint {
  return BigInt.asUintN(64, (BigInt(hi) << 32n) | BigInt(lo >>> 0));
}

function accessFaultCause(access: Access): number {
  return access === ACC_EXEC ? CAUSE.FETCH_ACCESS : access === ACC_WRITE ? CAUSE.STORE_ACCESS : CAUSE.LOAD_ACCESS;
}

