/**
 * The translator: one region of guest code (basic blocks within one guest page,
 * following its branches) becomes one WebAssembly function.
 *
 * The contract with the dispatcher (engine.ts):
 * - The function takes the instruction budget left and returns what is left.
 *   Every basic block takes its length from the budget on entry. The budget is
 *   checked only where a run of blocks can start: at the region's entry and at
 *   the targets of backward branches, each for the longest path to the next
 *   check (at most CHECK_SPAN instructions), so a region never runs more
 *   instructions than it was given. A region refusing to start returns the
 *   budget unchanged.
 * - Guest integer registers are cached in i64 locals, loaded from the hart state
 *   block on entry; a write reaches the block at the next instruction that can
 *   read it or leave the region (anything but integer arithmetic), once per
 *   register however often it was written, and before that instruction on the
 *   straight path, so the block is current wherever control can leave and no
 *   way out stores anything. (Storing on the way out meant every exit edge
 *   carried every written register: TurboFan's time went mostly into those merges.)
 * - The region is keyed by its virtual pc and the machine page it was read from:
 *   on entry it checks that the hart's fetch TLB still maps that pc to that page
 *   (any other address space, privilege or remapping makes it return at once).
 * - Loads and stores use the soft TLB inline; a miss calls a small helper of the
 *   module that calls the hart's slow path, which may take a trap or leave an exit
 *   for the dispatcher (pc is then set, and the helper wrote how much of the
 *   block's budget to give back into SLOT.JIT_REFUND).
 * - Instructions not translated here (CSRs, atomics, ...) are interpreted in
 *   place through the `step` helper: it reads the hart block, and rd is reloaded after it.
 * - Helpers learn the pc of the instruction from its page offset (in their
 *   argument) and the region's page (SLOT.JIT_PAGE, written on entry).
 * - On leaving, a region with a budget left returns it, and the chaining loop
 *   looks the successor up and calls it, without returning to JavaScript.
 */
import { CSR, MSTATUS, PRIV_S } from '../cpu/csr-numbers.js';
import { SLOT, TLB_ENTRIES, TLB_HI, TLB_MADDR, TLB_TAG_EXEC, TLB_TAG_READ, TLB_TAG_WRITE } from '../cpu/layout.js';
import { ATOMIC, encodeModule, F64, FunctionBody, HINT_LIKELY, HINT_UNLIKELY, I32, I64, OP, SIMD, type Label } from './wasm.js';

const MSTATUS_FS = MSTATUS.FS;

/** Longest basic block (instructions). */
export const BLOCK_MAX = 64;
/** Most instructions one region translates. */
export const REGION_MAX = 512;
/** Longest run of instructions between two budget checks; a budget this large always lets a region start. */
export const CHECK_SPAN = 128;

/**
 * Lookup table: sets of two entries of four words (pc low, pc high, table slot,
 * machine page), the set chosen by pc bits. Two ways: with one, a pair of hot
 * entries sharing a slot (common among a few hundred) evicted each other on every use.
 */
export const LOOKUP_SETS = 4096;
export const LOOKUP_ENTRIES = 2 * LOOKUP_SETS;
export const LOOKUP_BYTES = LOOKUP_ENTRIES * 16;
/** The word offset of pc's set (its first entry) in the table. */
export function lookupSet(pcLo: number): number {
  // The page number is mixed in: function entries at the same page offset are common.
  return (((pcLo >>> 1) ^ (pcLo >>> 13)) & (LOOKUP_SETS - 1)) * 8;
}

/**
 * What a helper call tells the hart's slow path about its instruction, in one
 * i32: the page offset (its pc is SLOT.JIT_PAGE + offset), funct3, rd, whether
 * it is 4 bytes long, and how many instructions of its block follow it (the
 * budget to give back if it leaves the region).
 */
export const META_OFF_MASK = 0xfff;
export const META_F3_SHIFT = 12;
export const META_RD_SHIFT = 15;
export const META_LEN4 = 1 << 20;
export const META_REST_SHIFT = 21;
function meta(off: number, f3: number, rd: number, len: number, rest: number): number {
  return off | (f3 << META_F3_SHIFT) | (rd << META_RD_SHIFT) | (len === 4 ? META_LEN4 : 0) | (rest << META_REST_SHIFT);
}

// Function types.
const T_REGION = 0;
const T_LOAD = 1;
const T_STORE = 2;
const T_STEP = 3;
const T_FP = 4;
const T_LDW = 5;
const T_STW = 6;
const TYPES = [
  { params: [I32], results: [I32] },
  { params: [I32, I32, I32], results: [I32] },
  { params: [I32, I32, I32, I32, I32], results: [I32] },
  { params: [I32, I32], results: [I32] },
  { params: [I32], results: [I32] },
  { params: [I64, I32], results: [I32] },
  { params: [I64, I64, I32], results: [I32] },
] as const;
/**
 * The helper table's entries (the hart's helper module's functions, see
 * helperModule), which region modules call indirectly.
 */
export const HELPER_EXPORTS = ['ldw', 'stw', 'step', 'fp'] as const;
const H_LDW = 0;
const H_STW = 1;
const H_STEP = 2;
const H_FP = 3;

const TLB_BYTES_PER_ENTRY = 32;
const TLB_MASK = TLB_ENTRIES - 1;

export interface RegionSource {
  /** Machine memory, halfword view. */
  readonly u16: Uint16Array;
  /** Machine address of the guest page holding the code. */
  readonly maddrPage: number;
  /** Virtual pc of the region's entry. */
  readonly pcLo: number;
  readonly pcHi: number;
  /** Byte offsets in machine memory of the hart state block and the lookup table. */
  readonly blockAddr: number;
  readonly lookupAddr: number;
  /** The C extension table (cpu/rvc.ts). */
  readonly rvc: Int32Array;
  /** The host has an exact fused multiply-add (fma.ts): FMADD.D and its kin use it. */
  readonly fusedMadd?: boolean;
  /**
   * Whether another region is entered at this page offset: the region stops there
   * and chains to it, rather than translating that code a second time.
   */
  readonly entered?: (off: number) => boolean;
}

export interface Translation {
  readonly body: FunctionBody;
  /** Guest instructions translated. */
  readonly instructions: number;
  readonly blocks: number;
  /**
   * Page offsets where the region may also be entered (besides its entry): the
   * blocks that check the budget, where it leaves when the budget runs out (loop
   * heads, mostly). The dispatcher finds the region there, so a loop interrupted
   * by a slice boundary resumes in translated code.
   */
  readonly entries: readonly number[];
  /**
   * Page offsets (4096 and above: on the next page) where the region leaves
   * without a jump: where it ran out of room, the page's end, the instruction
   * after one that straddles it. The interpreter counts only the targets of
   * jumps, so a long run of straight-line code would become hot one region at
   * a time, a threshold's worth of passes each: the translator takes these as
   * hot with the region.
   */
  readonly falls: readonly number[];
}

/** One decoded instruction of a block. */
interface Insn {
  /** Offset in the page. */
  readonly off: number;
  readonly len: number;
  /** The 32-bit form (compressed ones expanded); 0 for an illegal parcel. */
  readonly insn: number;
  readonly kind: Kind;
}

const enum Kind {
  Native,
  /** Interpreted in place; falls through unless it reports otherwise. */
  Step,
  /** A SYSTEM instruction: interpreted, then the region ends (a slice boundary may be due). */
  System,
  /** OP-FP and the fused multiply-adds: the FP helper, which touches no x register but rd/rs1. */
  Fp,
  /** FLW, FLD, FSW, FSD: the soft-TLB fast path inline, else interpreted in place. */
  FpMem,
  /** AMOs, LR and SC: on a soft-TLB hit with the host's atomics, else interpreted in place. */
  Amo,
  /** Accesses to sstatus.SIE and the S-mode trap CSRs (csrFast): inline in S-mode, else interpreted in place. */
  Csr,
}

interface Block {
  readonly start: number;
  readonly insns: Insn[];
  /** Offset the block continues at when it falls through (or after a not-taken branch), -1 if it cannot. */
  readonly next: number;
}

function jalImm(insn: number): number {
  return ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
}
function branchImm(insn: number): number {
  return ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
}

/** Whether the translator emits the instruction itself (exactly the encodings the interpreter accepts). */
function classify(insn: number): Kind {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  switch (insn & 0x7f) {
    case 0x37: case 0x17: case 0x6f: return Kind.Native;
    case 0x67: return f3 === 0 ? Kind.Native : Kind.Step;
    case 0x63: return f3 === 2 || f3 === 3 ? Kind.Step : Kind.Native;
    case 0x03: return f3 === 7 ? Kind.Step : Kind.Native;
    case 0x23: return f3 > 3 ? Kind.Step : Kind.Native;
    case 0x13:
      if (f3 === 1) return (insn >>> 26) === 0 ? Kind.Native : Kind.Step;
      if (f3 === 5) return (insn >>> 26) === 0 || (insn >>> 26) === 0x10 ? Kind.Native : Kind.Step;
      return Kind.Native;
    case 0x1b:
      if (f3 === 0) return Kind.Native;
      if (f3 === 1) return f7 === 0 ? Kind.Native : Kind.Step;
      if (f3 === 5) return f7 === 0 || f7 === 0x20 ? Kind.Native : Kind.Step;
      return Kind.Step;
    case 0x33:
      if (f7 === 0 || f7 === 1) return Kind.Native;
      if (f7 === 0x20) return f3 === 0 || f3 === 5 ? Kind.Native : Kind.Step;
      return Kind.Step;
    case 0x3b:
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5 ? Kind.Native : Kind.Step;
      if (f7 === 0x20) return f3 === 0 || f3 === 5 ? Kind.Native : Kind.Step;
      if (f7 === 1) return f3 === 0 || f3 >= 4 ? Kind.Native : Kind.Step;
      return Kind.Step;
    case 0x0f: return f3 <= 1 ? Kind.Native : Kind.Step; // FENCE, FENCE.I: stores to code are tracked exactly
    // CSR accesses run in place and the region goes on unless the hart needs a slice
    // boundary after them (Hart.csrWriteQuiet); ECALL, xRET, WFI and SFENCE end it.
    case 0x73: return f3 === 0 || f3 === 4 ? Kind.System : csrFast(insn) ? Kind.Csr : Kind.Step;
    case 0x07: case 0x27: return f3 === 2 || f3 === 3 ? Kind.FpMem : Kind.Step;
    case 0x2f: {
      // Reserved encodings (another width, funct5, LR with rs2 != 0) raise in the interpreter.
      const f5 = insn >>> 27;
      if (f3 !== 2 && f3 !== 3) return Kind.Step;
      if (f5 === 2) return ((insn >>> 20) & 31) === 0 ? Kind.Amo : Kind.Step;
      return f5 <= 4 || f5 === 8 || f5 === 0xc || f5 === 0x10 || f5 === 0x14 || f5 === 0x18 || f5 === 0x1c ? Kind.Amo : Kind.Step;
    }
    case 0x53: case 0x43: case 0x47: case 0x4b: case 0x4f: return Kind.Fp;
    default: return Kind.Step;
  }
}

/** Does the instruction end a basic block (a jump, a branch, a SYSTEM instruction)? */
function isTerminator(i: Insn): boolean {
  if (i.kind === Kind.System) return true;
  if (i.kind !== Kind.Native) return false;
  const op = i.insn & 0x7f;
  return op === 0x6f || op === 0x67 || op === 0x63;
}

function decodeAt(src: RegionSource, off: number): Insn | null {
  const base = src.maddrPage >>> 1;
  const p = src.u16[base + (off >>> 1)]!;
  if ((p & 3) !== 3) {
    const e = src.rvc[p]!;
    return { off, len: 2, insn: e, kind: e === 0 ? Kind.Step : classify(e) };
  }
  // A 32-bit instruction crossing the page end: its second half belongs to another
  // page (another mapping, another translation's invalidation), so it is fetched and
  // run by the interpreter every time, and ends the region like a SYSTEM instruction.
  if (off === 0xffe) return { off, len: 4, insn: p, kind: Kind.System };
  const insn = (p | (src.u16[base + (off >>> 1) + 1]! << 16)) | 0;
  return { off, len: 4, insn, kind: classify(insn) };
}

/** Branch and jump targets inside the page, as offsets (-1: outside). */
function targetsOf(i: Insn): number[] {
  if (i.kind !== Kind.Native) return [];
  const op = i.insn & 0x7f;
  const out: number[] = [];
  if (op === 0x6f) out.push(i.off + jalImm(i.insn));
  else if (op === 0x63) out.push(i.off + branchImm(i.insn), i.off + i.len);
  return out.filter((t) => t >= 0 && t < 4096);
}

/** Finds the blocks of the region: leaders first, then straight-line runs between them. */
function discover(src: RegionSource, start: number): Block[] {
  const leaders = new Set<number>();
  /** Offsets other regions are entered at, where a block of this one stops. */
  const stops = new Set<number>();
  const entered = (off: number): boolean => {
    if (off === start || src.entered === undefined) return false;
    if (stops.has(off)) return true;
    if (!src.entered(off)) return false;
    stops.add(off);
    return true;
  };
  const work = [start];
  let budget = REGION_MAX;
  while (work.length > 0 && budget > 0) {
    const s = work.pop()!;
    if (leaders.has(s) || entered(s)) continue;
    leaders.add(s);
    let off = s;
    let n = 0;
    for (;;) {
      if (off >= 4096 || budget <= 0) break;
      if (off !== s && (leaders.has(off) || entered(off))) break;
      const i = decodeAt(src, off);
      if (i === null) break;
      n++;
      budget--;
      if (isTerminator(i)) {
        for (const t of targetsOf(i)) work.push(t);
        break;
      }
      off += i.len;
      if (n >= BLOCK_MAX) {
        if (off < 4096) work.push(off);
        break;
      }
    }
  }
  const blocks: Block[] = [];
  for (const s of [...leaders].sort((a, b) => a - b)) {
    const insns: Insn[] = [];
    let off = s;
    let next = -1;
    for (;;) {
      if (off >= 4096) break;
      if (off !== s && (leaders.has(off) || stops.has(off))) { next = off; break; }
      if (insns.length >= BLOCK_MAX) { next = off; break; }
      const i = decodeAt(src, off);
      if (i === null) { next = off; break; }
      insns.push(i);
      off += i.len;
      if (isTerminator(i)) {
        // A conditional branch falls through; jumps and SYSTEM instructions do not continue here.
        next = (i.insn & 0x7f) === 0x63 && i.kind === Kind.Native ? off : -1;
        break;
      }
    }
    if (off >= 4096 && next === -1 && insns.length > 0 && !isTerminator(insns[insns.length - 1]!)) next = off;
    if (insns.length > 0) blocks.push({ start: s, insns, next });
  }
  return blocks;
}

/** Registers an instruction reads or writes natively (bit i: x_i). */
function regsOf(i: Insn): number {
  if (i.kind === Kind.FpMem) return 1 << ((i.insn >>> 15) & 31);
  if (i.kind === Kind.Amo) return (1 << ((i.insn >>> 7) & 31)) | (1 << ((i.insn >>> 15) & 31)) | (1 << ((i.insn >>> 20) & 31));
  if (i.kind === Kind.Csr) return (1 << ((i.insn >>> 7) & 31)) | ((i.insn & 0x4000) === 0 ? 1 << ((i.insn >>> 15) & 31) : 0);
  if (i.kind === Kind.Fp && fpFastOp(i.insn)?.kind === 'cvt') return 1 << ((i.insn >>> 15) & 31);
  if (i.kind !== Kind.Native) return 0;
  const rd = (i.insn >>> 7) & 31, rs1 = (i.insn >>> 15) & 31, rs2 = (i.insn >>> 20) & 31;
  switch (i.insn & 0x7f) {
    case 0x37: case 0x17: case 0x6f: return 1 << rd;
    case 0x67: case 0x03: case 0x13: case 0x1b: return (1 << rd) | (1 << rs1);
    case 0x23: case 0x63: return (1 << rs1) | (1 << rs2);
    case 0x33: case 0x3b: return (1 << rd) | (1 << rs1) | (1 << rs2);
    default: return 0;
  }
}

class Emitter {
  readonly f = new FunctionBody([I32]);
  readonly left = 0;
  /** The hart state block's address, in a local: every slot access is then two bytes shorter. */
  readonly base: number;
  readonly reg: number[] = [];
  readonly t0: number;
  readonly t1: number;
  readonly t2: number;
  readonly t3: number;
  readonly a0: number;
  readonly a1: number;
  /** The next pc, anywhere (exitFar) or as a page offset (exitOff). */
  readonly npc: number;
  readonly noff: number;
  readonly ret: number;
  readonly bb: number;
  readonly dctx: number;
  readonly usedMask: number;
  /** Leave, pc set: stop chaining. */
  exit!: Label;
  /** Leave, pc set, giving back SLOT.JIT_REFUND instructions of the budget. */
  exitR!: Label;
  /** Continue at npc (chaining). */
  exitFar!: Label;
  /** Continue at the page offset noff (chaining). */
  exitOff!: Label;
  /** The loop around the blocks, if the region has a backward edge. */
  top: Label | null = null;
  /** The label whose end starts block i's code; open while blocks before i are emitted. */
  blockLabels: Label[] = [];
  /** The block being emitted. */
  current = 0;
  /**
   * Registers the pure loop being emitted (blocks deferFrom..deferTo, see pureLoops)
   * keeps in locals only; they are stored when control leaves those blocks.
   */
  deferMask = 0;
  deferFrom = -1;
  deferTo = -1;
  /**
   * Registers written since the last point where anything can read the hart block
   * (a load, store, jump, branch or any instruction other than integer arithmetic):
   * stored there, once each, rather than at every write.
   */
  private dirty = 0;

  constructor(readonly src: RegionSource, usedMask: number) {
    const f = this.f;
    this.usedMask = usedMask & ~1;
    for (let r = 1; r < 32; r++) if (this.usedMask & (1 << r)) this.reg[r] = f.local(I64);
    this.t0 = f.local(I64);
    this.t1 = f.local(I64);
    this.t2 = f.local(I64);
    this.t3 = f.local(I64);
    this.npc = f.local(I64);
    this.a0 = f.local(I32);
    this.a1 = f.local(I32);
    this.bb = f.local(I32);
    this.dctx = f.local(I32);
    this.base = f.local(I32);
    this.noff = f.local(I32);
    this.ret = f.local(I32);
  }

  private readonly fTemps: number[] = [];
  private okLocal = -1;

  /** Pushes whether mstatus.FS is on (privileged spec 3.1.6.6: off makes every FP instruction illegal). */
  fsOn(): void {
    this.block();
    this.f.mem(OP.i32_load, 2, 8 * SLOT.MSTATUS).i32(MSTATUS_FS).op(OP.i32_and).i32(0).op(OP.i32_ne);
  }

  /** mstatus.FS = Dirty, as the interpreter's markFsDirty. */
  markFsDirty(): void {
    this.block();
    this.block();
    this.f.mem(OP.i32_load, 2, 8 * SLOT.MSTATUS).i32(MSTATUS_FS).op(OP.i32_or).mem(OP.i32_store, 2, 8 * SLOT.MSTATUS);
  }

  /** The n-th f64 scratch local (created on first use). */
  ft(n: number): number {
    while (this.fTemps.length <= n) this.fTemps.push(this.f.local(F64));
    return this.fTemps[n]!;
  }

  /** An i32 scratch local for FP fast-path conditions. */
  ok(): number {
    if (this.okLocal < 0) this.okLocal = this.f.local(I32);
    return this.okLocal;
  }

  /** Pushes x_r. */
  x(r: number): void {
    if (r === 0) this.f.i64(0, 0);
    else this.f.get(this.reg[r]!);
  }

  /**
   * Pops into x_r (x0 discards). It reaches the hart block at the next point
   * that can read it (flush), or where control leaves a pure loop that defers it.
   */
  setX(r: number): void {
    if (r === 0) {
      this.f.op(OP.drop);
      return;
    }
    this.f.set(this.reg[r]!);
    if (this.deferMask & (1 << r)) return;
    this.dirty |= 1 << r;
  }

  /** Stores the registers written since the last flush: the hart block is current after it. */
  flush(): void {
    const d = this.dirty;
    if (d === 0) return;
    this.dirty = 0;
    for (let r = 1; r < 32; r++) {
      if ((d & (1 << r)) === 0) continue;
      this.block();
      this.f.get(this.reg[r]!).mem(OP.i64_store, 3, 8 * (SLOT.X + r));
    }
  }

  /** Pushes the hart state block's address. */
  block(): void {
    this.f.get(this.base);
  }

  /** Stores the registers not yet in the hart block (a pure loop's, the last writes'): control leaves here. */
  leaveDeferred(): void {
    this.flush();
    for (let r = 1; r < 32; r++) {
      if ((this.deferMask & (1 << r)) === 0) continue;
      this.block();
      this.f.get(this.reg[r]!).mem(OP.i64_store, 3, 8 * (SLOT.X + r));
    }
  }

  /** Reloads those of `mask` the region holds in locals. */
  loadSome(mask: number): void {
    const m = mask & this.usedMask;
    for (let r = 1; r < 32; r++) {
      if ((m & (1 << r)) === 0) continue;
      this.block();
      this.f.mem(OP.i64_load, 3, 8 * (SLOT.X + r));
      this.f.set(this.reg[r]!);
    }
  }

  loadRegs(): void {
    this.loadSome(this.usedMask);
    this.block();
    this.f.mem(OP.i32_load, 2, 8 * SLOT.JIT_DATA_TLB);
    this.f.set(this.dctx);
  }

  /** Pushes the virtual pc at page offset `off` (0..4096) as i64. */
  pc(off: number): void {
    const s = ((this.src.pcLo & -4096) >>> 0) + off;
    this.f.i64(s | 0, (this.src.pcHi + (s > 0xffffffff ? 1 : 0)) | 0);
  }

  /** Pushes the page's virtual address plus a signed 32-bit `delta`, as i64 (targets on other pages). */
  pcPlus(delta: number): void {
    const s = ((this.src.pcLo & -4096) >>> 0) + delta;
    this.f.i64(s | 0, (this.src.pcHi + Math.floor(s / 0x100000000)) | 0);
  }

  /** left += n (a block's budget given back when it stops early). */
  refund(n: number): void {
    if (n === 0) return;
    this.f.get(this.left).i32(n).op(OP.i32_add).set(this.left);
  }

  /** Leaves for page offset `off`, chaining. */
  exitAt(off: number): void {
    this.leaveDeferred();
    if (off < 4096) {
      this.f.i32(off).set(this.noff).br(this.exitOff);
    } else {
      this.pc(off);
      this.f.set(this.npc).br(this.exitFar);
    }
  }
}

/**
 * The chaining loop, one per hart: looks the pc up and calls regions through the
 * table while they return a budget (>= 0) and make progress. Returns the budget
 * left, or ~left when a region stopped on purpose (a trap, an exit, a boundary).
 */
export function chainModule(blockAddr: number, lookupAddr: number): Uint8Array {
  const f = new FunctionBody([I32]);
  const left = 0;
  const pc = f.local(I64);
  const lo = f.local(I32);
  const ent = f.local(I32);
  const r = f.local(I32);
  // An entry's first 8 bytes are its pc as an i64 (low word first): one compare per way.
  const top = f.loop();
  f.i32(blockAddr).mem(OP.i64_load, 3, 8 * SLOT.PC).tee(pc).op(OP.i32_wrap_i64).tee(lo);
  f.i32(1).op(OP.i32_shr_u).get(lo).i32(13).op(OP.i32_shr_u).op(OP.i32_xor);
  f.i32(LOOKUP_SETS - 1).op(OP.i32_and).i32(5).op(OP.i32_shl).tee(ent);
  f.mem(OP.i64_load, 3, lookupAddr).get(pc).op(OP.i64_ne);
  f.if_();
  f.get(ent).i32(16).op(OP.i32_add).tee(ent).mem(OP.i64_load, 3, lookupAddr).get(pc).op(OP.i64_ne);
  f.if_();
  f.get(left).op(OP.return);
  f.end();
  f.end();
  f.get(left).get(ent).mem(OP.i32_load, 2, lookupAddr + 8).callIndirect(T_REGION).tee(r);
  // Stop when the region stopped on purpose (r < 0, unsigned: huge) or ran nothing (r = left).
  f.get(left).op(OP.i32_ge_u);
  f.if_();
  f.get(r).op(OP.return);
  f.end();
  f.get(r).set(left).br(top);
  f.end();
  f.op(OP.unreachable);
  return encodeModule({ types: [{ params: [I32], results: [I32] }], importFuncs: [], funcs: [{ type: T_REGION, body: f, export: 'f0' }], importTable: 'tab' });
}

/** Where a block goes when it ends: its in-region successors (indices). */
function successors(b: Block, index: Map<number, number>): number[] {
  const out: number[] = [];
  const last = b.insns[b.insns.length - 1]!;
  if (last.kind === Kind.Native) {
    const op = last.insn & 0x7f;
    if (op === 0x6f || op === 0x63) {
      const t = last.off + (op === 0x6f ? jalImm(last.insn) : branchImm(last.insn));
      const j = index.get(t);
      if (j !== undefined) out.push(j);
    }
  }
  if (b.next >= 0) {
    const j = index.get(b.next);
    if (j !== undefined) out.push(j);
  }
  return out;
}

/**
 * Which blocks check the budget, and for how many instructions: the targets of
 * backward edges (every loop passes one), and more wherever the longest path
 * between checks would exceed CHECK_SPAN. span[i] is the longest run of
 * instructions from block i's entry to the next check or exit.
 */
function budgetChecks(blocks: readonly Block[], index: Map<number, number>): { checked: Uint8Array; span: Int32Array } {
  const n = blocks.length;
  const checked = new Uint8Array(n);
  const succ = blocks.map((b) => successors(b, index));
  succ.forEach((ss, i) => { for (const j of ss) if (j <= i) checked[j] = 1; });
  const span = new Int32Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const len = blocks[i]!.insns.length;
    let most = 0;
    for (const j of succ[i]!) if (j > i && checked[j] === 0) most = Math.max(most, span[j]!);
    if (len + most > CHECK_SPAN) {
      for (const j of succ[i]!) if (j > i) checked[j] = 1;
      most = 0;
    }
    span[i] = len + most;
  }
  return { checked, span };
}

/**
 * Loops (the blocks from a backward edge's target to its source, overlapping ones
 * merged) whose instructions cannot leave the region except by their jumps and
 * budget checks: no loads, stores or in-place instructions, only integer
 * arithmetic and control flow. Such a loop keeps the registers it writes in
 * locals and stores them where control leaves it, rather than at every write:
 * nothing inside can read the hart block. mask: the registers its blocks write.
 */
function pureLoops(blocks: readonly Block[], index: Map<number, number>): { from: number; to: number; mask: number }[] {
  const ranges: { from: number; to: number }[] = [];
  blocks.forEach((b, i) => {
    for (const j of successors(b, index)) if (j <= i) ranges.push({ from: j, to: i });
  });
  ranges.sort((a, b) => a.from - b.from);
  const merged: { from: number; to: number }[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last !== undefined && r.from <= last.to) last.to = Math.max(last.to, r.to);
    else merged.push({ ...r });
  }
  const out: { from: number; to: number; mask: number }[] = [];
  for (const r of merged) {
    let mask = 0;
    let ok = true;
    for (let i = r.from; i <= r.to && ok; i++) {
      for (const ins of blocks[i]!.insns) {
        const op = ins.insn & 0x7f;
        if (ins.kind !== Kind.Native || op === 0x03 || op === 0x23) { ok = false; break; }
        if (op !== 0x63 && op !== 0x0f) mask |= 1 << ((ins.insn >>> 7) & 31);
      }
    }
    if (ok) out.push({ ...r, mask: mask & ~1 });
  }
  return out;
}

/** Compiles the region entered at src.pcLo/pcHi into a function body, or null if it holds nothing to translate. */
export function translateRegion(src: RegionSource): Translation | null {
  const start = src.pcLo & 0xfff;
  const blocks = discover(src, start);
  if (blocks.length === 0) return null;
  const index = new Map<number, number>();
  blocks.forEach((b, i) => index.set(b.start, i));
  let used = 0;
  let count = 0;
  for (const b of blocks) for (const i of b.insns) { used |= regsOf(i); count++; }
  const { checked, span } = budgetChecks(blocks, index);
  const entry = index.get(start)!;
  const falls: number[] = [];
  for (const b of blocks) {
    const last = b.insns[b.insns.length - 1]!;
    if (last.kind === Kind.System && last.off === 0xffe && last.len === 4) falls.push(0x1002);
    else if (b.next >= 0 && !index.has(b.next)) falls.push(b.next);
  }

  const e = new Emitter(src, used);
  const f = e.f;
  f.i32(src.blockAddr).set(e.base);

  // ---- entry: which block (the pc may be another entry's), is this page still what the
  // fetch TLB maps the pc to, is the budget enough to start?
  const entries: number[] = [];
  f.i32(entry).set(e.bb);
  f.i32(span[entry]!).set(e.noff);
  blocks.forEach((b, i) => {
    if (checked[i] === 0 || i === entry) return;
    entries.push(b.start);
    if (entries.length === 1) {
      e.block();
      f.mem(OP.i32_load, 2, 8 * SLOT.PC).i32(0xfff).op(OP.i32_and).set(e.a1);
    }
    f.get(e.a1).i32(b.start).op(OP.i32_eq).if_();
    f.i32(i).set(e.bb).i32(span[i]!).set(e.noff);
    f.end();
  });
  e.block();
  f.mem(OP.i32_load, 2, 8 * SLOT.JIT_FETCH_TLB);
  f.i32(((src.pcLo >>> 12) & TLB_MASK) * TLB_BYTES_PER_ENTRY).op(OP.i32_add).tee(e.a0);
  f.mem(OP.i64_load, 3, 4 * TLB_TAG_EXEC).i64(src.pcLo & -4096, src.pcHi).op(OP.i64_ne);
  f.get(e.a0).mem(OP.i32_load, 2, 4 * TLB_MADDR).i32(src.maddrPage | 0).op(OP.i32_ne).op(OP.i32_or);
  f.get(e.left).get(e.noff).op(OP.i32_lt_s).op(OP.i32_or);
  f.if_(undefined, HINT_UNLIKELY);
  f.get(e.left).op(OP.return);
  f.end();
  e.block();
  e.pc(0);
  f.mem(OP.i64_store, 3, 8 * SLOT.JIT_PAGE);
  e.loadRegs();

  const common = f.block();
  e.exit = f.block();
  e.exitR = f.block();
  e.exitFar = f.block();
  e.exitOff = f.block();
  // Without a backward edge no loop is needed, and with one entry no br_table:
  // TurboFan's work grows with the phis such merges need for every local.
  const back = blocks.some((b, i) => successors(b, index).some((j) => j <= i));
  if (back) e.top = f.loop();
  const labels: Label[] = [];
  for (let i = blocks.length - 1; i >= 0; i--) labels[i] = f.block();
  e.blockLabels = labels;
  if (back || entries.length > 0) f.get(e.bb).brTable(labels, labels[0]!);
  else if (entry !== 0) f.br(labels[entry]!);
  const pure = pureLoops(blocks, index);
  for (let i = 0; i < blocks.length; i++) {
    f.end();
    e.current = i;
    const p = pure.find((l) => l.from <= i && i <= l.to);
    e.deferMask = p === undefined ? 0 : p.mask & e.usedMask;
    e.deferFrom = p === undefined ? -1 : p.from;
    e.deferTo = p === undefined ? -1 : p.to;
    emitBlock(e, blocks[i]!, i, index, checked[i] !== 0 ? span[i]! : 0);
  }
  if (back) f.end(); // loop
  f.end(); // exitOff: npc = the page's address + noff
  e.pc(0);
  f.get(e.noff).op(OP.i64_extend_i32_u).op(OP.i64_or).set(e.npc);
  f.end(); // exitFar: store pc; the chaining loop goes on with the successor
  e.block();
  f.get(e.npc).mem(OP.i64_store, 3, 8 * SLOT.PC);
  f.get(e.left).set(e.ret).br(common);
  f.end(); // exitR: a helper left the region with part of the block's budget to give back
  f.get(e.left);
  e.block();
  f.mem(OP.i32_load, 2, 8 * SLOT.JIT_REFUND).op(OP.i32_add).set(e.left);
  f.end(); // exit: pc already set; stop chaining (~left)
  f.i32(-1).get(e.left).op(OP.i32_sub).set(e.ret);
  f.end(); // common
  f.get(e.ret);

  return { body: f, instructions: count, blocks: blocks.length, entries, falls: [...new Set(falls)] };
}

/**
 * The helper module, one per hart: imports the hart's slow paths (JavaScript
 * functions "ld", "st", "step", "fp") and exports them as Wasm functions
 * ("ldw", "stw", "step", "fp"; the first two split i64 arguments into halves).
 * They go into a function table ("m"."hlp", HELPER_EXPORTS in order) that every
 * region module imports and calls indirectly: V8 compiles a wrapper for every
 * imported function of every module it compiles, as if it were a JavaScript
 * one, and with 4 per module that was most of the cost of a module.
 */
export function helperModule(): Uint8Array {
  const ldw = new FunctionBody([I64, I32], 32);
  ldw.get(0).op(OP.i32_wrap_i64).get(0).i64(32, 0).op(OP.i64_shr_u).op(OP.i32_wrap_i64).get(1).call(0);
  const stw = new FunctionBody([I64, I64, I32], 32);
  stw.get(0).op(OP.i32_wrap_i64).get(0).i64(32, 0).op(OP.i64_shr_u).op(OP.i32_wrap_i64);
  stw.get(1).op(OP.i32_wrap_i64).get(1).i64(32, 0).op(OP.i64_shr_u).op(OP.i32_wrap_i64).get(2).call(1);
  const step = new FunctionBody([I32, I32], 16);
  step.get(0).get(1).call(2);
  const fp = new FunctionBody([I32], 16);
  fp.get(0).call(3);
  return encodeModule({
    types: TYPES,
    importFuncs: [{ name: 'ld', type: T_LOAD }, { name: 'st', type: T_STORE }, { name: 'step', type: T_STEP }, { name: 'fp', type: T_FP }],
    funcs: [{ type: T_LDW, body: ldw, export: 'ldw' }, { type: T_STW, body: stw, export: 'stw' }, { type: T_STEP, body: step, export: 'step' }, { type: T_FP, body: fp, export: 'fp' }],
  });
}

/**
 * The first functions of every region module: one per helper, calling it through
 * the helper table. Regions call these directly: a call_indirect is a dozen
 * TurboFan nodes (bounds, signature, target), and TurboFan's time grows with them.
 */
const W_LDW = 0;
const W_STW = 1;
const W_STEP = 2;
const W_FP = 3;
function helperWrappers(): { type: number; body: FunctionBody }[] {
  const wrap = (type: number, params: number, h: number): { type: number; body: FunctionBody } => {
    const body = new FunctionBody(TYPES[type]!.params, 8);
    for (let i = 0; i < params; i++) body.get(i);
    body.i32(h).callIndirect(type);
    return { type, body };
  };
  return [wrap(T_LDW, 2, H_LDW), wrap(T_STW, 3, H_STW), wrap(T_STEP, 2, H_STEP), wrap(T_FP, 1, H_FP)];
}

/** One module holding translated regions (exports f0, f1, ... in order); it imports the helper table. */
export function encodeRegions(bodies: readonly FunctionBody[]): Uint8Array {
  return encodeModule({
    types: TYPES,
    importFuncs: [],
    funcs: [...helperWrappers(), ...bodies.map((body, i) => ({ type: T_REGION, body, export: `f${i}` }))],
    importTable: 'hlp',
  });
}

/**
 * Continues at page offset `off`: another block of the region, or out through the
 * lookup table. A block later in the layout is a direct branch (its label is still
 * open); an earlier one goes back through the loop's br_table.
 */
function goTo(e: Emitter, off: number, index: Map<number, number>): void {
  e.flush();
  const j = index.get(off);
  if (j === undefined) {
    e.exitAt(off);
    return;
  }
  if (j < e.deferFrom || j > e.deferTo) e.leaveDeferred();
  if (j > e.current) e.f.br(e.blockLabels[j]!);
  else if (e.top !== null) e.f.i32(j).set(e.bb).br(e.top);
  else throw new Error('backward edge in a region without a loop');
}

/** Major opcodes of integer arithmetic (OP, OP-IMM, OP-32, OP-IMM-32, LUI, AUIPC) and FENCE. */
const ALU_OPCODES = new Set([0x13, 0x1b, 0x33, 0x3b, 0x37, 0x17, 0x0f]);

function emitBlock(e: Emitter, b: Block, i: number, index: Map<number, number>, check: number): void {
  const f = e.f;
  const len = b.insns.length;
  // Budget: a run of blocks starts only if all of it fits (budgetChecks).
  if (check > 0) {
    f.get(e.left).i32(check).op(OP.i32_lt_s);
    f.if_(undefined, HINT_UNLIKELY);
    e.exitAt(b.start);
    f.end();
  }
  f.get(e.left).i32(len).op(OP.i32_sub).set(e.left);
  for (let k = 0; k < len; k++) {
    const ins = b.insns[k]!;
    const rest = len - k - 1;
    // Only integer arithmetic neither reads the hart block nor can leave the region.
    if (ins.kind !== Kind.Native || !ALU_OPCODES.has(ins.insn & 0x7f)) e.flush();
    switch (ins.kind) {
      case Kind.System:
        // ECALL and CSR accesses may read any register (the block is current), and
        // the region ends here (the interpreter set the pc).
        emitStepCall(e, ins, rest);
        f.op(OP.drop);
        e.refund(rest);
        f.i32(-1).get(e.left).op(OP.i32_sub).op(OP.return);
        return;
      case Kind.Step:
        emitStep(e, ins, rest);
        break;
      case Kind.Fp: {
        // The helper fails (FP off, a reserved rounding mode) without side effects:
        // the interpreter then raises the trap.
        const rd = (ins.insn >>> 7) & 31;
        const f7 = ins.insn >>> 25;
        const writesX = (ins.insn & 0x7f) === 0x53 && (f7 === 0x50 || f7 === 0x51 || f7 === 0x60 || f7 === 0x61 || f7 === 0x70 || f7 === 0x71);
        const fast = fpFastOp(ins.insn);
        if (fast) {
          emitFpFast(e, fast);
          f.op(OP.i32_eqz).if_(undefined, HINT_UNLIKELY);
        }
        f.i32(ins.insn).call(W_FP);
        f.if_(undefined, HINT_UNLIKELY);
        emitStep(e, ins, rest);
        f.end();
        if (writesX) e.loadSome(1 << rd);
        if (fast) f.end();
        break;
      }
      case Kind.FpMem:
        emitFpMem(e, ins, rest);
        break;
      case Kind.Amo:
        emitAmo(e, ins, rest);
        break;
      case Kind.Csr:
        emitCsr(e, ins, rest);
        break;
      case Kind.Native:
        if (emitNative(e, ins, rest, index)) return;
        break;
    }
  }
  // Fell off the end of the block.
  if (b.next >= 0) {
    const j = index.get(b.next);
    if (j === i + 1) { // the next block follows in the layout
      e.flush();
      if (i === e.deferTo) e.leaveDeferred();
      return;
    }
    goTo(e, b.next, index);
  } else {
    f.op(OP.unreachable);
  }
}

/**
 * Interprets one instruction in place. The interpreter reads the hart block
 * (always current) and writes x[rd] at most (for FP and AMO instructions rd may
 * name an f register: reloading x[rd] is then a no-op).
 */
function emitStep(e: Emitter, ins: Insn, rest: number): void {
  const f = e.f;
  const rd = (ins.insn >>> 7) & 31;
  emitStepCall(e, ins, rest);
  f.set(e.a0);
  e.loadSome(1 << rd);
  f.get(e.a0).brIf(e.exitR, HINT_UNLIKELY);
}

/**
 * FLW/FLD/FSW/FSD with the FPU on and a soft-TLB hit, inline; anything else
 * (FP off, a miss, misalignment, MMIO) is interpreted in place.
 */
function emitFpMem(e: Emitter, ins: Insn, rest: number): void {
  const f = e.f;
  const insn = ins.insn;
  const store = (insn & 0x7f) === 0x27;
  const size = ((insn >>> 12) & 7) === 3 ? 8 : 4;
  const rs1 = (insn >>> 15) & 31;
  const fr = store ? (insn >>> 20) & 31 : (insn >>> 7) & 31;
  const imm = store ? ((insn >> 25) << 5) | ((insn >>> 7) & 31) : insn >> 20;
  const fslot = 8 * (SLOT.F + fr);
  emitAddress(e, rs1, imm);
  emitTlbHit(e, store ? TLB_TAG_WRITE : TLB_TAG_READ, size);
  e.fsOn();
  f.op(OP.i32_and);
  f.if_(undefined, HINT_LIKELY);
  emitHostAddress(e);
  if (store) {
    e.block();
    if (size === 8) f.mem(OP.i64_load, 3, fslot).mem(OP.i64_store, 3, 0);
    else f.mem(OP.i32_load, 2, fslot).mem(OP.i32_store, 2, 0);
  } else {
    f.set(e.a1);
    e.block();
    f.get(e.a1);
    if (size === 8) f.mem(OP.i64_load, 3, 0);
    else f.mem(OP.i64_load32_u, 2, 0).i64(0, -1).op(OP.i64_or); // NaN-boxed
    f.mem(OP.i64_store, 3, fslot);
    e.markFsDirty();
  }
  f.else_();
  emitStep(e, ins, rest);
  f.end();
}

/**
 * The A extension (unprivileged spec chapter 13) with the soft-TLB fast path
 * inline: the host's atomic instructions on the shared machine memory make an
 * AMO atomic against the other harts' (interpreted or translated) as the
 * interpreter's Atomics calls do. LR and SC keep the interpreter's reservation
 * (SLOT.RES_ADDR, the machine address, and SLOT.RES_VALUE, the value loaded):
 * SC succeeds when the address is reserved and memory still holds that value.
 * A miss, a misaligned address or MMIO is interpreted in place.
 */
function emitAmo(e: Emitter, ins: Insn, rest: number): void {
  const f = e.f;
  const insn = ins.insn;
  const rd = (insn >>> 7) & 31;
  const rs2 = (insn >>> 20) & 31;
  const f5 = insn >>> 27;
  const w = ((insn >>> 12) & 7) === 2;
  const al = w ? 2 : 3;
  /** Pushes x[rs2] at the access's width. */
  const src = (): void => { e.x(rs2); if (w) f.op(OP.i32_wrap_i64); };
  /** Pops the old value at the access's width into x[rd], sign-extended. */
  const result = (): void => { if (w) f.op(OP.i64_extend_i32_s); e.setX(rd); };
  emitAddress(e, (insn >>> 15) & 31, 0);
  emitTlbHit(e, f5 === 2 ? TLB_TAG_READ : TLB_TAG_WRITE, w ? 4 : 8);
  f.if_(undefined, HINT_LIKELY);
  emitHostAddress(e);
  f.set(e.a1);
  switch (f5) {
    case 2: // LR
      f.get(e.a1).atomic(w ? ATOMIC.i32_load : ATOMIC.i64_load, al);
      if (w) f.op(OP.i64_extend_i32_s);
      f.set(e.t1);
      e.block();
      f.get(e.a1).op(OP.i64_extend_i32_u).mem(OP.i64_store, 3, 8 * SLOT.RES_ADDR);
      e.block();
      f.get(e.t1).mem(OP.i64_store, 3, 8 * SLOT.RES_VALUE);
      f.get(e.t1);
      e.setX(rd);
      break;
    case 3: // SC: rd = 0 on success, 1 on failure; the reservation is gone either way
      e.block();
      f.mem(OP.i64_load, 3, 8 * SLOT.RES_ADDR).get(e.a1).op(OP.i64_extend_i32_u).op(OP.i64_eq);
      f.if_(I64);
      e.block();
      f.mem(OP.i64_load, 3, 8 * SLOT.RES_VALUE).set(e.t1);
      f.get(e.a1).get(e.t1);
      if (w) f.op(OP.i32_wrap_i64);
      src();
      f.atomic(w ? ATOMIC.i32_rmw_cmpxchg : ATOMIC.i64_rmw_cmpxchg, al);
      f.get(e.t1);
      if (w) f.op(OP.i32_wrap_i64).op(OP.i32_ne);
      else f.op(OP.i64_ne);
      f.op(OP.i64_extend_i32_u);
      f.else_();
      f.i64(1, 0);
      f.end();
      f.set(e.t1);
      e.block();
      f.i64(-1, -1).mem(OP.i64_store, 3, 8 * SLOT.RES_ADDR);
      f.get(e.t1);
      e.setX(rd);
      break;
    case 0x10: case 0x14: case 0x18: case 0x1c: {
      // AMOMIN/MAX[U]: compare-and-swap until memory did not change in between.
      const cmp = f5 === 0x10 ? (w ? OP.i32_lt_s : OP.i64_lt_s) : f5 === 0x14 ? (w ? OP.i32_gt_s : OP.i64_gt_s)
        : f5 === 0x18 ? (w ? OP.i32_lt_u : OP.i64_lt_u) : (w ? OP.i32_gt_u : OP.i64_gt_u);
      const old = w ? e.a0 : e.t1;
      const seen = w ? e.ok() : e.t2;
      f.get(e.a1).atomic(w ? ATOMIC.i32_load : ATOMIC.i64_load, al).set(old);
      const again = f.loop();
      f.get(e.a1).get(old);
      f.get(old);
      src();
      f.get(old);
      src();
      f.op(cmp).op(OP.select);
      f.atomic(w ? ATOMIC.i32_rmw_cmpxchg : ATOMIC.i64_rmw_cmpxchg, al).tee(seen);
      f.get(old).op(w ? OP.i32_ne : OP.i64_ne);
      f.if_();
      f.get(seen).set(old).br(again);
      f.end();
      f.end();
      f.get(old);
      result();
      break;
    }
    default: {
      const op = f5 === 0 ? (w ? ATOMIC.i32_rmw_add : ATOMIC.i64_rmw_add) : f5 === 1 ? (w ? ATOMIC.i32_rmw_xchg : ATOMIC.i64_rmw_xchg)
        : f5 === 4 ? (w ? ATOMIC.i32_rmw_xor : ATOMIC.i64_rmw_xor) : f5 === 8 ? (w ? ATOMIC.i32_rmw_or : ATOMIC.i64_rmw_or)
          : (w ? ATOMIC.i32_rmw_and : ATOMIC.i64_rmw_and);
      f.get(e.a1);
      src();
      f.atomic(op, al);
      result();
    }
  }
  f.else_();
  emitStep(e, ins, rest);
  f.end();
}

// ---- CSR accesses inline (privileged spec 12.1)
//
// A kernel saves, clears and restores sstatus.SIE around every spinlock and
// reads and writes sscratch, sepc, scause and stval on every trap; in place,
// each cost a call into the interpreter and its BigInt CSR path. These have no
// side effect beyond their slot as long as no interrupt gets enabled. (The
// hart has no H extension: with one, V=1 would redirect these accesses to the
// VS CSRs, and this path would have to check V.)

const SIE = MSTATUS.SIE;
/** sstatus as a view of mstatus (SIE, SPIE, SPP, FS, SUM, MXR, UXL, SD). */
const SSTATUS_LO = MSTATUS.SIE | MSTATUS.SPIE | MSTATUS.SPP | MSTATUS.FS | MSTATUS.SUM | MSTATUS.MXR;
const SSTATUS_HI = 3 | (1 << 31);
const TRAP_CSR_SLOT: Readonly<Record<number, number>> = {
  [CSR.sscratch]: SLOT.SSCRATCH, [CSR.sepc]: SLOT.SEPC, [CSR.scause]: SLOT.SCAUSE, [CSR.stval]: SLOT.STVAL,
};

/** CSR instructions emitCsr handles: set/clear (or read) of sstatus, any access to the S-mode trap CSRs. */
function csrFast(insn: number): boolean {
  const csr = insn >>> 20;
  const f3 = (insn >>> 12) & 7;
  if (csr === CSR.sstatus) return (f3 & 3) >= 2;
  return TRAP_CSR_SLOT[csr] !== undefined;
}

/**
 * Inline when the hart is in S-mode or above (these CSRs are S-level: from
 * U-mode they are illegal) and, for sstatus, when the operand touches SIE at
 * most and does not set it where it was clear (enabling interrupts may make
 * one deliverable: the interpreter checks, and ends the region if so).
 */
function emitCsr(e: Emitter, ins: Insn, rest: number): void {
  const f = e.f;
  const insn = ins.insn;
  const csr = insn >>> 20;
  const f3 = (insn >>> 12) & 7;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const op = f3 & 3;
  const writes = op === 1 || rs1 !== 0;
  // The operand in t2 first: rd may be rs1.
  if ((f3 & 4) !== 0) f.i64(rs1, 0);
  else e.x(rs1);
  f.set(e.t2);
  e.block();
  f.mem(OP.i32_load, 2, 8 * SLOT.PRIV).i32(PRIV_S).op(OP.i32_ge_u);
  if (csr === CSR.sstatus) {
    e.block();
    f.mem(OP.i64_load, 3, 8 * SLOT.MSTATUS).set(e.t1);
    if (writes) {
      // Only SIE in the operand, and (for a set) SIE already on or not being set.
      f.get(e.t2).i64(~SIE, -1).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_and);
      if (op === 2) f.get(e.t2).get(e.t1).i64(-1, -1).op(OP.i64_xor).op(OP.i64_and).op(OP.i64_eqz).op(OP.i32_and);
    }
    f.if_();
    if (writes && op === 3) {
      e.block();
      f.get(e.t1).get(e.t2).i64(-1, -1).op(OP.i64_xor).op(OP.i64_and).mem(OP.i64_store, 3, 8 * SLOT.MSTATUS);
    }
    // The value read: SD summarises FS = Dirty.
    f.get(e.t1);
    f.get(e.t1).i64(MSTATUS.FS, 0).op(OP.i64_and).i64(MSTATUS.FS, 0).op(OP.i64_eq).op(OP.i64_extend_i32_u).i64(63, 0).op(OP.i64_shl);
    f.op(OP.i64_or).i64(SSTATUS_LO, SSTATUS_HI).op(OP.i64_and);
    e.setX(rd);
  } else {
    const slot = 8 * TRAP_CSR_SLOT[csr]!;
    f.if_();
    e.block();
    f.mem(OP.i64_load, 3, slot).set(e.t1);
    if (writes) {
      e.block();
      if (op === 1) f.get(e.t2);
      else if (op === 2) f.get(e.t1).get(e.t2).op(OP.i64_or);
      else f.get(e.t1).get(e.t2).i64(-1, -1).op(OP.i64_xor).op(OP.i64_and);
      if (csr === CSR.sepc) f.i64(-2, -1).op(OP.i64_and); // IALIGN 16: sepc[0] is zero
      f.mem(OP.i64_store, 3, slot);
    }
    f.get(e.t1);
    e.setX(rd);
  }
  f.else_();
  emitStep(e, ins, rest);
  f.end();
}

// ---- FP arithmetic inline (unprivileged spec chapters 20-21)
//
// The common case runs natively: round to nearest even, operands and result
// ordinary numbers, and fflags.NX already set (a program's first inexact
// operation sets it and it stays set), so the only flag the operation could
// raise is one already raised. Anything else (other rounding modes, NaNs,
// infinities, results that overflow or underflow, NX clear, the FPU off) goes
// to the FP helper, which is the interpreter's FPU.
//
// Wasm's f64 and f32 arithmetic is IEEE 754 round-to-nearest-even. Single
// precision add, sub, mul, div and sqrt are done in f64 and rounded once more
// to f32, which is exact for these operations (53 >= 2*24 + 2). Fused
// multiply-adds use rounding to odd (Boldo and Melquiond, IEEE TC 57(4), 2008):
// for .S the f64 product is exact and the sum is rounded to odd before the f32
// rounding; for .D the product is split exactly (Dekker), the big parts are
// summed exactly (TwoSum), the small parts are added rounding to odd, and the
// final sum is rounded once.

/** cvt: FCVT.S/D from W, WU, L, LU (an x register; rs2 selects the integer type). */
type FpFastKind = 'add' | 'sub' | 'mul' | 'div' | 'sqrt' | 'fma' | 'cvt';
interface FpFast {
  readonly kind: FpFastKind;
  readonly double: boolean;
  /** Rounding mode field: 0 (RNE) or 7 (dynamic: fcsr.frm must be RNE). */
  readonly rm: number;
  readonly rd: number;
  readonly rs1: number;
  readonly rs2: number;
  readonly rs3: number;
  readonly negProd: boolean;
  readonly negC: boolean;
}

function fpFastOp(insn: number): FpFast | null {
  const op = insn & 0x7f;
  const rm = (insn >>> 12) & 7;
  if (rm !== 0 && rm !== 7) return null;
  const fmt = (insn >>> 25) & 3;
  if (fmt > 1) return null;
  const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31, rs3 = insn >>> 27;
  const base = { double: fmt === 1, rm, rd, rs1, rs2, rs3, negProd: false, negC: false };
  if (op === 0x53) {
    switch (insn >>> 27) {
      case 0: return { ...base, kind: 'add' };
      case 1: return { ...base, kind: 'sub' };
      case 2: return { ...base, kind: 'mul' };
      case 3: return { ...base, kind: 'div' };
      case 0xb: return rs2 === 0 ? { ...base, kind: 'sqrt' } : null;
      case 0x1a: return rs2 <= 3 ? { ...base, kind: 'cvt' } : null;
      default: return null;
    }
  }
  // FMADD a*b+c, FMSUB a*b-c, FNMSUB -(a*b)+c, FNMADD -(a*b)-c
  if (op === 0x43) return { ...base, kind: 'fma' };
  if (op === 0x47) return { ...base, kind: 'fma', negC: true };
  if (op === 0x4b) return { ...base, kind: 'fma', negProd: true };
  if (op === 0x4f) return { ...base, kind: 'fma', negProd: true, negC: true };
  return null;
}

const MIN_NORMAL_D = 2 ** -1022;
const MIN_NORMAL_S = 2 ** -126;
/** Veltkamp's splitting constant for binary64: 2^27 + 1. */
const SPLIT = 134217729;

/** Pushes 1 when the fast path ran (result written, FS dirty), else 0 with nothing changed. */
function emitFpFast(e: Emitter, op: FpFast): void {
  const f = e.f;
  const ok = e.ok();
  const [a, b, c, r] = [e.ft(0), e.ft(1), e.ft(2), e.ft(3)];
  const fslot = (n: number): number => 8 * (SLOT.F + n);
  const and = (): void => { f.op(OP.i32_and); };
  const finite = (l: number): void => { f.get(l).op(OP.f64_abs).f64(Infinity).op(OP.f64_lt); };
  const normal = (l: number, min: number): void => {
    f.get(l).op(OP.f64_abs).f64(min).op(OP.f64_ge);
    f.get(l).op(OP.f64_abs).f64(Infinity).op(OP.f64_lt);
    and();
  };
  const isZero = (l: number): void => { f.get(l).f64(0).op(OP.f64_eq); };
  const load = (n: number, l: number): void => {
    e.block();
    if (op.double) f.mem(OP.f64_load, 3, fslot(n));
    else f.mem(OP.f32_load, 2, fslot(n)).op(OP.f64_promote_f32);
    f.set(l);
  };
  const boxed = (n: number): void => { e.block(); f.mem(OP.i32_load, 2, fslot(n) + 4).i32(-1).op(OP.i32_eq); };
  // s = RO(x + y): the sum rounded to odd, via TwoSum's exact error.
  const addOdd = (x: number, y: number, s: number, t1: number, t2: number): void => {
    f.get(x).get(y).op(OP.f64_add).set(s);
    f.get(s).get(x).op(OP.f64_sub).set(t1); // bb = s - x
    f.get(x).get(s).get(t1).op(OP.f64_sub).op(OP.f64_sub); // x - (s - bb)
    f.get(y).get(t1).op(OP.f64_sub).op(OP.f64_add).set(t2); // err
    // If inexact and the significand is even, step one ulp toward the error.
    f.get(s).op(OP.i64_reinterpret_f64);
    f.i64(1, 0).i64(-1, -1);
    f.get(t2).f64(0).op(OP.f64_gt).get(s).f64(0).op(OP.f64_lt).op(OP.i32_xor);
    f.op(OP.select);
    f.i64(0, 0);
    f.get(t2).f64(0).op(OP.f64_ne);
    f.get(s).op(OP.i64_reinterpret_f64).i64(1, 0).op(OP.i64_and).op(OP.i64_eqz);
    and();
    f.op(OP.select);
    f.op(OP.i64_add).op(OP.f64_reinterpret_i64).set(s);
  };
  const expIn = (l: number, lo: number, hi: number): void => {
    f.get(l).op(OP.i64_reinterpret_f64).i64(52, 0).op(OP.i64_shr_u).op(OP.i32_wrap_i64).i32(0x7ff).op(OP.i32_and);
    f.i32(lo).op(OP.i32_sub).i32(hi - lo).op(OP.i32_le_u);
  };

  if (op.kind !== 'cvt') load(op.rs1, a);
  if (op.kind !== 'sqrt' && op.kind !== 'cvt') load(op.rs2, b);
  if (op.kind === 'fma') load(op.rs3, c);
  if (op.negProd) f.get(a).op(OP.f64_neg).set(a);
  if (op.negC) f.get(c).op(OP.f64_neg).set(c);

  // ok = FPU on, round to nearest even, NX already set (and boxed singles)
  e.fsOn();
  e.block();
  f.mem(OP.i32_load, 2, 8 * SLOT.FCSR).set(ok);
  // A 32-bit integer is exact in binary64: no flag at all, NX or not.
  const exact = op.kind === 'cvt' && op.double && op.rs2 < 2;
  if (!exact) { f.get(ok).i32(1).op(OP.i32_and); and(); }
  if (op.rm === 7) { f.get(ok).i32(0xe0).op(OP.i32_and).op(OP.i32_eqz); and(); }
  if (!op.double && op.kind !== 'cvt') {
    boxed(op.rs1);
    and();
    if (op.kind !== 'sqrt') { boxed(op.rs2); and(); }
    if (op.kind === 'fma') { boxed(op.rs3); and(); }
  }
  f.set(ok);

  const min = op.double ? MIN_NORMAL_D : MIN_NORMAL_S;
  // r = the result, rounded to the format (singles: the f32 value, held as f64)
  const round = (): void => { if (!op.double) f.op(OP.f32_demote_f64).op(OP.f64_promote_f32); };
  switch (op.kind) {
    case 'add': case 'sub':
      // A sum that is tiny is exact: no underflow.
      f.get(a).get(b).op(op.kind === 'add' ? OP.f64_add : OP.f64_sub);
      round();
      f.set(r);
      f.get(ok); finite(a); and(); finite(b); and(); finite(r); and(); f.set(ok);
      break;
    case 'mul': case 'div':
      f.get(a).get(b).op(op.kind === 'mul' ? OP.f64_mul : OP.f64_div);
      round();
      f.set(r);
      f.get(ok); finite(a); and(); finite(b); and();
      if (op.kind === 'div') { f.get(b).f64(0).op(OP.f64_ne); and(); }
      normal(r, min);
      isZero(a); f.op(OP.i32_or);
      if (op.kind === 'mul') { isZero(b); f.op(OP.i32_or); }
      and();
      f.set(ok);
      break;
    case 'cvt':
      // Wasm's conversions round to nearest even; an integer is always finite here.
      e.x(op.rs1);
      if (op.rs2 < 2) f.op(OP.i32_wrap_i64);
      if (op.double) f.op([OP.f64_convert_i32_s, OP.f64_convert_i32_u, OP.f64_convert_i64_s, OP.f64_convert_i64_u][op.rs2]!);
      else f.op([OP.f32_convert_i32_s, OP.f32_convert_i32_u, OP.f32_convert_i64_s, OP.f32_convert_i64_u][op.rs2]!).op(OP.f64_promote_f32);
      f.set(r);
      break;
    case 'sqrt':
      f.get(a).op(OP.f64_sqrt);
      round();
      f.set(r);
      f.get(ok); finite(a); and(); f.get(a).f64(0).op(OP.f64_ge); and(); f.set(ok);
      break;
    case 'fma':
      if (!op.double) {
        // The f64 product of two singles is exact; round the sum to odd, then to f32.
        const [p, t1, t2] = [e.ft(4), e.ft(5), e.ft(6)];
        f.get(a).get(b).op(OP.f64_mul).set(p);
        addOdd(p, c, r, t1, t2);
        f.get(r);
        round();
        f.set(r);
        f.get(ok); finite(a); and(); finite(b); and(); finite(c); and(); normal(r, min); and(); f.set(ok);
      } else if (e.src.fusedMadd === true) {
        // One rounding, by the host: the result is exact when it is a normal
        // number, and then no flag but NX (set already) can be raised.
        f.get(a).simd(SIMD.f64x2_splat).get(b).simd(SIMD.f64x2_splat).get(c).simd(SIMD.f64x2_splat);
        f.simd(SIMD.f64x2_relaxed_madd).simd(SIMD.f64x2_extract_lane, 0).set(r);
        f.get(ok); normal(r, min); and(); f.set(ok);
      } else {
        const [uh, ul, ah, al, bh, bl, th, tl, t1, t2] = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((n) => e.ft(n)) as [number, number, number, number, number, number, number, number, number, number];
        // Ranges where the splitting, the exact product and TwoSum neither overflow nor underflow.
        f.get(ok); expIn(a, 1023 - 450, 1023 + 450); and(); expIn(b, 1023 - 450, 1023 + 450); and();
        isZero(c); expIn(c, 1023 - 900, 1023 + 900); f.op(OP.i32_or); and(); f.set(ok);
        // uh + ul = a*b exactly (Dekker, with Veltkamp's splitting)
        const split = (x: number, hi: number, lo: number): void => {
          f.get(x).f64(SPLIT).op(OP.f64_mul).set(t1);
          f.get(t1).get(t1).get(x).op(OP.f64_sub).op(OP.f64_sub).set(hi);
          f.get(x).get(hi).op(OP.f64_sub).set(lo);
        };
        split(a, ah, al);
        split(b, bh, bl);
        f.get(a).get(b).op(OP.f64_mul).set(uh);
        f.get(ah).get(bh).op(OP.f64_mul).get(uh).op(OP.f64_sub);
        f.get(ah).get(bl).op(OP.f64_mul).op(OP.f64_add);
        f.get(al).get(bh).op(OP.f64_mul).op(OP.f64_add);
        f.get(al).get(bl).op(OP.f64_mul).op(OP.f64_add).set(ul);
        // th + tl = c + uh exactly (TwoSum)
        f.get(c).get(uh).op(OP.f64_add).set(th);
        f.get(th).get(c).op(OP.f64_sub).set(t1);
        f.get(c).get(th).get(t1).op(OP.f64_sub).op(OP.f64_sub);
        f.get(uh).get(t1).op(OP.f64_sub).op(OP.f64_add).set(tl);
        // v = RO(tl + ul); result = RN(th + v)
        addOdd(tl, ul, r, t1, t2);
        f.get(th).get(r).op(OP.f64_add).set(r);
        f.get(ok); normal(r, min); and(); f.set(ok);
      }
      break;
  }
  f.get(ok).if_();
  e.block();
  f.get(r);
  if (op.double) {
    f.mem(OP.f64_store, 3, fslot(op.rd));
  } else {
    f.op(OP.f32_demote_f64).mem(OP.f32_store, 2, fslot(op.rd));
    e.block();
    f.i32(-1).mem(OP.i32_store, 2, fslot(op.rd) + 4);
  }
  e.markFsDirty();
  f.end();
  f.get(ok);
}

/** Calls the interpreter for one instruction; leaves its result (non-zero: leave the region) on the stack. */
function emitStepCall(e: Emitter, ins: Insn, rest: number): void {
  e.f.i32(meta(ins.off, 0, 0, ins.len, rest)).get(e.left).call(W_STEP);
}

/** Emits one translated instruction; true when it ended the block (a jump or branch). */
function emitNative(e: Emitter, ins: Insn, rest: number, index: Map<number, number>): boolean {
  const f = e.f;
  const insn = ins.insn;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const immI = insn >> 20;
  const i64imm = (v: number): void => { f.i64(v, v >> 31); };
  switch (insn & 0x7f) {
    case 0x37: // LUI
      if (rd !== 0) { i64imm(insn & 0xfffff000); e.setX(rd); }
      return false;
    case 0x17: { // AUIPC: pc + imm, 64-bit
      if (rd === 0) return false;
      e.pc(ins.off);
      i64imm(insn & 0xfffff000);
      f.op(OP.i64_add);
      e.setX(rd);
      return false;
    }
    case 0x6f: { // JAL
      if (rd !== 0) { e.pc(ins.off + ins.len); e.setX(rd); }
      const t = ins.off + jalImm(insn);
      if (t >= 0 && t < 4096) goTo(e, t, index);
      else {
        e.leaveDeferred();
        e.pcPlus(t);
        f.set(e.npc).br(e.exitFar);
      }
      return true;
    }
    case 0x67: { // JALR: target first (rs1 may be rd)
      e.x(rs1);
      i64imm(immI);
      f.op(OP.i64_add).i64(-2, -1).op(OP.i64_and).set(e.npc);
      if (rd !== 0) { e.pc(ins.off + ins.len); e.setX(rd); }
      e.leaveDeferred();
      f.br(e.exitFar);
      return true;
    }
    case 0x63: { // BRANCH
      e.x(rs1);
      e.x(rs2);
      f.op([OP.i64_eq, OP.i64_ne, 0, 0, OP.i64_lt_s, OP.i64_ge_s, OP.i64_lt_u, OP.i64_ge_u][f3]!);
      f.if_();
      const t = ins.off + branchImm(insn);
      if (t >= 0 && t < 4096) goTo(e, t, index);
      else {
        e.leaveDeferred();
        e.pcPlus(t);
        f.set(e.npc).br(e.exitFar);
      }
      f.end();
      // Not taken: the caller continues with the fall-through.
      return false;
    }
    case 0x0f: // FENCE, FENCE.I
      return false;
    case 0x03: { // LOAD
      emitAddress(e, rs1, immI);
      const size = 1 << (f3 & 3);
      emitTlbHit(e, TLB_TAG_READ, size);
      f.if_(I64, HINT_LIKELY);
      emitHostAddress(e);
      const lop = [OP.i64_load8_s, OP.i64_load16_s, OP.i64_load32_s, OP.i64_load, OP.i64_load8_u, OP.i64_load16_u, OP.i64_load32_u][f3]!;
      f.mem(lop, f3 & 3, 0);
      f.else_();
      // The slow path: a trap or an exit leaves the region; the value is in the scratch slot.
      f.get(e.t0).i32(meta(ins.off, f3, rd, ins.len, rest)).call(W_LDW).brIf(e.exitR, HINT_UNLIKELY);
      e.block();
      f.mem(OP.i64_load, 3, 8 * SLOT.JIT_SCRATCH);
      f.end();
      e.setX(rd);
      return false;
    }
    case 0x23: { // STORE
      const imm = ((insn >> 25) << 5) | ((insn >>> 7) & 31);
      emitAddress(e, rs1, imm);
      const size = 1 << f3;
      emitTlbHit(e, TLB_TAG_WRITE, size);
      f.if_(undefined, HINT_LIKELY);
      emitHostAddress(e);
      e.x(rs2);
      f.mem([OP.i64_store8, OP.i64_store16, OP.i64_store32, OP.i64_store][f3]!, f3, 0);
      f.else_();
      // The slow path: a trap, an exit or a write to translated code leaves the region.
      f.get(e.t0);
      e.x(rs2);
      f.i32(meta(ins.off, f3, 0, ins.len, rest)).call(W_STW).brIf(e.exitR, HINT_UNLIKELY);
      f.end();
      return false;
    }
    case 0x13: { // OP-IMM
      if (rd === 0) return false;
      const sh = immI & 63;
      e.x(rs1);
      switch (f3) {
        case 0: i64imm(immI); f.op(OP.i64_add); break;
        case 1: f.i64(sh, 0).op(OP.i64_shl); break;
        case 2: i64imm(immI); f.op(OP.i64_lt_s).op(OP.i64_extend_i32_u); break;
        case 3: i64imm(immI); f.op(OP.i64_lt_u).op(OP.i64_extend_i32_u); break;
        case 4: i64imm(immI); f.op(OP.i64_xor); break;
        case 5: f.i64(sh, 0).op((insn >>> 26) === 0 ? OP.i64_shr_u : OP.i64_shr_s); break;
        case 6: i64imm(immI); f.op(OP.i64_or); break;
        default: i64imm(immI); f.op(OP.i64_and); break;
      }
      e.setX(rd);
      return false;
    }
    case 0x1b: { // OP-IMM-32
      if (rd === 0) return false;
      e.x(rs1);
      f.op(OP.i32_wrap_i64);
      switch (f3) {
        case 0: f.i32(immI).op(OP.i32_add); break;
        case 1: f.i32(immI & 31).op(OP.i32_shl); break;
        default: f.i32(immI & 31).op(f7 === 0 ? OP.i32_shr_u : OP.i32_shr_s); break;
      }
      f.op(OP.i64_extend_i32_s);
      e.setX(rd);
      return false;
    }
    case 0x33: { // OP
      if (rd === 0) return false;
      if (f7 === 1) {
        emitMulDiv64(e, f3, rs1, rs2);
        e.setX(rd);
        return false;
      }
      e.x(rs1);
      e.x(rs2);
      switch (f3) {
        case 0: f.op(f7 === 0x20 ? OP.i64_sub : OP.i64_add); break;
        case 1: f.op(OP.i64_shl); break;
        case 2: f.op(OP.i64_lt_s).op(OP.i64_extend_i32_u); break;
        case 3: f.op(OP.i64_lt_u).op(OP.i64_extend_i32_u); break;
        case 4: f.op(OP.i64_xor); break;
        case 5: f.op(f7 === 0x20 ? OP.i64_shr_s : OP.i64_shr_u); break;
        case 6: f.op(OP.i64_or); break;
        default: f.op(OP.i64_and); break;
      }
      e.setX(rd);
      return false;
    }
    case 0x3b: { // OP-32
      if (rd === 0) return false;
      if (f7 === 1) {
        emitMulDiv32(e, f3, rs1, rs2);
      } else {
        e.x(rs1); f.op(OP.i32_wrap_i64);
        e.x(rs2); f.op(OP.i32_wrap_i64);
        switch (f3) {
          case 0: f.op(f7 === 0x20 ? OP.i32_sub : OP.i32_add); break;
          case 1: f.op(OP.i32_shl); break;
          default: f.op(f7 === 0x20 ? OP.i32_shr_s : OP.i32_shr_u); break;
        }
      }
      f.op(OP.i64_extend_i32_s);
      e.setX(rd);
      return false;
    }
    default:
      throw new Error(`instruction ${insn >>> 0} classified native but not emitted`);
  }
}

/** t0 = x[rs1] + imm; a1 = its low word. */
function emitAddress(e: Emitter, rs1: number, imm: number): void {
  e.x(rs1);
  if (imm !== 0) e.f.i64(imm, imm >> 31).op(OP.i64_add);
  e.f.tee(e.t0).op(OP.i32_wrap_i64).set(e.a1);
}

/**
 * Leaves on the stack whether the soft TLB holds the page of t0/a1 for this access
 * and the access is aligned; a0 = the TLB entry. The tag compare also checks the
 * alignment: a tag is page aligned, so low address bits make it differ.
 */
function emitTlbHit(e: Emitter, tag: number, size: number): void {
  const f = e.f;
  // The entry's byte offset, ((a1 >>> 12) & TLB_MASK) * 32, in two operations.
  f.get(e.a1).i32(7).op(OP.i32_shr_u).i32(TLB_MASK << 5).op(OP.i32_and).get(e.dctx).op(OP.i32_add).tee(e.a0);
  f.mem(OP.i64_load, 3, 4 * tag).get(e.t0).i64(-4096 | (size - 1), -1).op(OP.i64_and).op(OP.i64_eq);
}

/** Pushes the machine address of a1 in the page of TLB entry a0. */
function emitHostAddress(e: Emitter): void {
  e.f.get(e.a0).mem(OP.i32_load, 2, 4 * TLB_MADDR).get(e.a1).i32(0xfff).op(OP.i32_and).op(OP.i32_add);
}

/** M extension, 64-bit (unprivileged spec 13.1-13.2): pushes the result. */
function emitMulDiv64(e: Emitter, f3: number, rs1: number, rs2: number): void {
  const f = e.f;
  const a = e.t0, b = e.t1, r = e.t2;
  e.x(rs1); f.set(a);
  e.x(rs2); f.set(b);
  switch (f3) {
    case 0: f.get(a).get(b).op(OP.i64_mul); return;
    case 1: case 2: case 3: {
      emitMulhu(e, a, b, r);
      // Signed corrections: mulh = mulhu - (a<0 ? b : 0) - (b<0 ? a : 0); mulhsu drops the second.
      if (f3 === 1 || f3 === 2) {
        f.get(r).get(b).i64(0, 0).get(a).i64(0, 0).op(OP.i64_lt_s).op(OP.select).op(OP.i64_sub).set(r);
      }
      if (f3 === 1) {
        f.get(r).get(a).i64(0, 0).get(b).i64(0, 0).op(OP.i64_lt_s).op(OP.select).op(OP.i64_sub).set(r);
      }
      f.get(r);
      return;
    }
    case 4: // DIV: /0 gives -1, overflow gives the dividend
      f.get(b).op(OP.i64_eqz).if_();
      f.i64(-1, -1).set(r);
      f.else_();
      f.get(a).i64(0, 0x80000000 | 0).op(OP.i64_eq).get(b).i64(-1, -1).op(OP.i64_eq).op(OP.i32_and).if_();
      f.get(a).set(r);
      f.else_();
      f.get(a).get(b).op(OP.i64_div_s).set(r);
      f.end();
      f.end();
      f.get(r);
      return;
    case 5: // DIVU
      f.get(b).op(OP.i64_eqz).if_();
      f.i64(-1, -1).set(r);
      f.else_();
      f.get(a).get(b).op(OP.i64_div_u).set(r);
      f.end();
      f.get(r);
      return;
    case 6: // REM: /0 gives the dividend; overflow gives 0 (i64.rem_s does not trap on it)
      f.get(b).op(OP.i64_eqz).if_();
      f.get(a).set(r);
      f.else_();
      f.get(a).get(b).op(OP.i64_rem_s).set(r);
      f.end();
      f.get(r);
      return;
    default: // REMU
      f.get(b).op(OP.i64_eqz).if_();
      f.get(a).set(r);
      f.else_();
      f.get(a).get(b).op(OP.i64_rem_u).set(r);
      f.end();
      f.get(r);
      return;
  }
}

/** r = high 64 bits of the unsigned 128-bit product a*b, from 32-bit limbs. */
function emitMulhu(e: Emitter, a: number, b: number, r: number): void {
  const f = e.f;
  const mid = e.t3;
  const lo32 = (x: number): void => { f.get(x).i64(-1, 0).op(OP.i64_and); };
  const hi32 = (x: number): void => { f.get(x).i64(32, 0).op(OP.i64_shr_u); };
  // mid = (al*bl >> 32) + lo(al*bh) + lo(ah*bl)
  lo32(a); lo32(b); f.op(OP.i64_mul).i64(32, 0).op(OP.i64_shr_u);
  lo32(a); hi32(b); f.op(OP.i64_mul).set(r); // r = al*bh
  f.get(r).i64(-1, 0).op(OP.i64_and).op(OP.i64_add);
  hi32(a); lo32(b); f.op(OP.i64_mul).tee(mid); // mid = ah*bl (temporarily)
  f.i64(-1, 0).op(OP.i64_and).op(OP.i64_add);
  // stack: midsum; hi = ah*bh + (al*bh >> 32) + (ah*bl >> 32) + (midsum >> 32)
  f.i64(32, 0).op(OP.i64_shr_u);
  f.get(r).i64(32, 0).op(OP.i64_shr_u).op(OP.i64_add);
  f.get(mid).i64(32, 0).op(OP.i64_shr_u).op(OP.i64_add);
  hi32(a); hi32(b); f.op(OP.i64_mul).op(OP.i64_add);
  f.set(r);
}

/** M extension, word forms: pushes the 32-bit result. */
function emitMulDiv32(e: Emitter, f3: number, rs1: number, rs2: number): void {
  const f = e.f;
  const a = e.a0, b = e.a1;
  e.x(rs1); f.op(OP.i32_wrap_i64).set(a);
  e.x(rs2); f.op(OP.i32_wrap_i64).set(b);
  switch (f3) {
    case 0: f.get(a).get(b).op(OP.i32_mul); return;
    case 4:
      f.get(b).op(OP.i32_eqz).if_();
      f.i32(-1).set(a);
      f.else_();
      f.get(a).i32(-0x80000000).op(OP.i32_eq).get(b).i32(-1).op(OP.i32_eq).op(OP.i32_and).op(OP.i32_eqz).if_();
      f.get(a).get(b).op(OP.i32_div_s).set(a);
      f.end();
      f.end();
      f.get(a);
      return;
    case 5:
      f.get(b).op(OP.i32_eqz).if_();
      f.i32(-1).set(a);
      f.else_();
      f.get(a).get(b).op(OP.i32_div_u).set(a);
      f.end();
      f.get(a);
      return;
    case 6:
      f.get(b).op(OP.i32_eqz).op(OP.i32_eqz).if_();
      f.get(a).get(b).op(OP.i32_rem_s).set(a);
      f.end();
      f.get(a);
      return;
    default:
      f.get(b).op(OP.i32_eqz).op(OP.i32_eqz).if_();
      f.get(a).get(b).op(OP.i32_rem_u).set(a);
      f.end();
      f.get(a);
      return;
  }
}

