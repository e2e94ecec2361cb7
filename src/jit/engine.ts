/**
 * The translator's dispatcher and code cache for one hart.
 *
 * Cold code is interpreted a basic block at a time while a counter per entry pc
 * warms up; a hot entry is translated (translate.ts) into a Wasm function put
 * in the hart's function table. Regions find each other through a lookup table
 * in machine memory, the same one the generated code reads to chain.
 *
 * Translations are keyed by (virtual pc, machine page). A page holding
 * translations is marked PM_CODE in the VM's pmap: stores to it leave the soft
 * TLB's fast path, and any write (a hart, a device's DMA, the hypervisor) or
 * the frame's release drops the page's translations.
 */
import { INTERPRET_NO_FLUSH, INTERPRET_NO_IRQ, INTERPRET_STOP_AT_WATCHED, jumpWatchIndex, type Hart, type HartAccelerator } from '../cpu/hart.js';
import type { Exit } from '../cpu/exit.js';
import { SLOT, TLB_ENTRIES, TLB_GPPN, TLB_HI, TLB_MADDR, TLB_TAG_EXEC } from '../cpu/layout.js';
import { rvcTable } from '../cpu/rvc.js';
import { PAGE_SIZE } from '../memory/machine-memory.js';
import { CODE_LOG_ENTRIES, PM_FRAME_SHIFT } from '../memory/pmap.js';
import { CHECK_SPAN, chainModule, encodeRegions, HELPER_EXPORTS, helperModule, LOOKUP_BYTES, LOOKUP_ENTRIES, lookupSet, META_F3_SHIFT, META_LEN4, META_OFF_MASK, META_RD_SHIFT, META_REST_SHIFT, translateRegion } from './translate.js';
import type { FunctionBody } from './wasm.js';
import { DOUBLE_FIELD } from '../cpu/counter.js';
import { hostFusedMadd } from './fma.js';
import { tuneWasmTiering } from './v8-tiering.js';

export type JitMode = 'off' | 'on' | 'eager';

export interface JitOptions {
  /** Block entries seen before a region is translated ('eager': 0). */
  readonly threshold?: number;
  /** Most regions held at once; the oldest are evicted past it. */
  readonly capacity?: number;
  /** Hot entries translated together in one module. */
  readonly batch?: number;
  /** Use the host's fused multiply-add for FMADD.D and its kin (default: when hostFusedMadd() finds one). */
  readonly fusedMadd?: boolean;
}

export interface JitStats {
  /** Regions in the code cache now. */
  regions: number;
  /** Regions compiled so far (some since evicted or invalidated). */
  compiled: number;
  /** Guest instructions in the regions compiled. */
  instructionsTranslated: number;
  /** Host time spent translating, compiling and instantiating. */
  compileMs: number;
  /** Bytes of WebAssembly generated. */
  wasmBytes: number;
  /** Regions dropped to keep the code cache within its capacity. */
  evicted: number;
  /** Regions dropped because their code changed (stores, DMA, FENCE.I, remaps). */
  invalidated: number;
  compileErrors: number;
  /** Wasm modules instantiated (a batch of regions each). */
  modules: number;
  /** Guest instructions the interpreter ran (cold code, and what translated code cannot run). */
  interpreted: number;
  /** Entries from the dispatcher into translated code (each returns to it). */
  entries: number;
}

export function emptyJitStats(): JitStats {
  const d = DOUBLE_FIELD;
  const s: JitStats = { regions: d, compiled: d, instructionsTranslated: d, compileMs: d, wasmBytes: d, evicted: d, invalidated: d, compileErrors: d, modules: d, interpreted: d, entries: d };
  for (const k of Object.keys(s) as (keyof JitStats)[]) s[k] = 0;
  return s;
}

/** The counters of JitStats, in a fixed order (shared memory between a vCPU thread and its VM's thread). */
export const JIT_STAT_KEYS = Object.keys(emptyJitStats()) as readonly (keyof JitStats)[];

/** The translators of several harts as one. */
export function sumJitStats(all: readonly JitStats[]): JitStats {
  const out = emptyJitStats();
  for (const s of all) for (const k of JIT_STAT_KEYS) out[k] += s[k];
  return out;
}

/** Most instructions between slice boundaries (interrupts, timers, pmap changes); each reads the clock. */
const SLICE = 8192;
const HOT_ENTRIES = 65536;

/**
 * Tagged hot-counter values (entries whose jump-watch slot another translation
 * holds): translation failed, or queued (HOT_QUEUED - n: arrived n more times
 * while it waited for its batch).
 */
const HOT_QUEUED = -2;
const HOT_FAILED = -1;

/**
 * Entries before a region is hot. 400 since branch hints and lazier register
 * stores made translated code cheaper to have early: boots were faster in 9 of
 * 11 interleaved pairs against 1000, the shell loop in 8 of 11; 200 was slower
 * than 400 (docs/decisions.md, "Batches").
 */
const DEFAULT_THRESHOLD = 400;

/**
 * The jump watch (Hart.setJumpWatch): a counter per slot of target pcs, counted
 * up by the interpreter's taken jumps and by find(). It starts at -threshold; at
 * zero the entry is hot. A translated entry's slot holds WATCH_TRANSLATED (the
 * interpreter stops at jumps to it); a failed one WATCH_FAILED (counting from
 * there never gets back to zero in practice). A queued one counts again from
 * -QUEUED_WAIT x threshold: an entry that keeps running while it waits for its
 * batch (a hot loop) has the batch translated at once.
 */
const WATCH_ENTRIES = 1 << 16;
const WATCH_MASK = WATCH_ENTRIES - 1;
const WATCH_TRANSLATED = 1 << 29;
const WATCH_FAILED = -(1 << 30);
const QUEUED_WAIT = 4;
/** Slice boundaries a queued entry waits at most before its batch is translated. */
const BATCH_WAIT = 128;

interface Pending {
  readonly pcLo: number;
  readonly pcHi: number;
  readonly maddrPage: number;
  readonly gppn: number;
}

interface Region {
  readonly slot: number;
  readonly pcLo: number;
  readonly pcHi: number;
  readonly maddrPage: number;
  readonly fn: (left: number) => number;
  /** Low words of the other pcs the region is entered at (translate.ts, Translation.entries). */
  readonly also: readonly number[];
}

/** Whether the region is entered at pc. */
function entersAt(r: Region, pcLo: number, pcHi: number): boolean {
  return r.pcHi === pcHi && (r.pcLo === pcLo || r.also.includes(pcLo));
}

const BUDGET_EXIT: Exit = { kind: 'budget' };

export class Jit implements HartAccelerator {
  readonly stats: JitStats = emptyJitStats();
  private readonly threshold: number;
  private readonly capacity: number;
  private readonly batch: number;
  private readonly fusedMadd: boolean;
  private pending: Pending[] = [];
  private pendingAge = 0;
  private readonly i32: Int32Array;
  private readonly u16: Uint16Array;
  private readonly blockW: number;
  private readonly lookupAddr: number;
  private readonly lookupW: number;
  private readonly table: WebAssembly.Table;
  private readonly imports: WebAssembly.Imports;
  /** The chaining loop (translate.ts, chainModule). */
  private readonly chain: (left: number) => number;
  private readonly rvc: Int32Array;
  private readonly hot = new Int32Array(HOT_ENTRIES);
  private readonly watch = new Int32Array(WATCH_ENTRIES);
  /** The pc (low word) each hot counter belongs to. */
  private readonly hotTag = new Int32Array(HOT_ENTRIES).fill(1);
  /** Regions by table slot. */
  private readonly slots: (Region | null)[] = [];
  private readonly freeSlots: number[] = [];
  /** Regions by machine page. */
  private readonly pages = new Map<number, Region[]>();
  /** Slots in the order they were filled (eviction is first in, first out). */
  private readonly order: number[] = [];
  private orderHead = 0;
  private readonly unlisten: () => void;

  // Accounting of one call into translated code.
  private leftIn = 0;
  private credited = 0;

  constructor(readonly hart: Hart, opts: JitOptions = {}) {
    this.threshold = opts.threshold ?? DEFAULT_THRESHOLD;
    this.capacity = opts.capacity ?? 32768;
    this.batch = opts.batch ?? 64;
    this.fusedMadd = opts.fusedMadd ?? hostFusedMadd();
    tuneWasmTiering();
    this.watch.fill(-this.threshold);
    hart.setJumpWatch(this.watch);
    const mem = hart.mem;
    this.i32 = new Int32Array(mem.buffer, 0, mem.buffer.byteLength >>> 2);
    this.u16 = new Uint16Array(mem.buffer, 0, mem.buffer.byteLength >>> 1);
    this.blockW = hart.blockOffset >>> 2;
    const frames = LOOKUP_BYTES / PAGE_SIZE;
    const f = mem.allocContiguous(frames);
    if (f < 0) throw new RangeError('machine memory exhausted (translator lookup table)');
    this.lookupAddr = f * PAGE_SIZE;
    this.lookupW = this.lookupAddr >>> 2;
    // An odd pc low word never matches: every entry starts empty.
    for (let i = 0; i < LOOKUP_ENTRIES; i++) this.i32[this.lookupW + 4 * i] = 1;
    this.table = new WebAssembly.Table({ element: 'anyfunc', initial: 64 });
    this.rvc = rvcTable();
    const chain = new WebAssembly.Instance(new WebAssembly.Module(chainModule(hart.blockOffset, this.lookupAddr)), {
      m: { mem: mem.memory, tab: this.table },
    });
    this.chain = chain.exports['f0'] as (left: number) => number;
    const R = this.i32;
    const pageW = this.blockW + 2 * SLOT.JIT_PAGE;
    const refundW = this.blockW + 2 * SLOT.JIT_REFUND;
    const slowPaths = {
      m: { mem: mem.memory },
      h: {
        ld: (lo: number, hi: number, m: number): number => {
          const len = (m & META_LEN4) !== 0 ? 4 : 2;
          const op = ((m >>> META_F3_SHIFT) & 7) | (((m >>> META_RD_SHIFT) & 31) << 3) | (len << 8);
          const r = hart.jitLoad(lo, hi, op, R[pageW]! | (m & META_OFF_MASK), R[pageW + 1]!);
          if (r !== 0) R[refundW] = m >>> META_REST_SHIFT;
          return r;
        },
        st: (lo: number, hi: number, vlo: number, vhi: number, m: number): number => {
          const len = (m & META_LEN4) !== 0 ? 4 : 2;
          const pcLo = R[pageW]! | (m & META_OFF_MASK);
          const pcHi = R[pageW + 1]!;
          const r = hart.jitStore(lo, hi, vlo, vhi, ((m >>> META_F3_SHIFT) & 7) | (len << 8), pcLo, pcHi);
          if (r === 0) return 0;
          if (r === 1) {
            // The store wrote translated code: it is done, the region leaves at the next instruction.
            const s = (pcLo >>> 0) + len;
            R[this.blockW + 2 * SLOT.PC] = s | 0;
            R[this.blockW + 2 * SLOT.PC + 1] = (pcHi + (s > 0xffffffff ? 1 : 0)) | 0;
          }
          R[refundW] = m >>> META_REST_SHIFT;
          return 1;
        },
        step: (m: number, left: number): number => {
          const rest = m >>> META_REST_SHIFT;
          const r = this.step(R[pageW]! | (m & META_OFF_MASK), R[pageW + 1]!, (m & META_LEN4) !== 0 ? 4 : 2, left + rest + 1);
          if (r !== 0) R[refundW] = rest;
          return r;
        },
        fp: (insn: number): number => hart.jitFp(insn),
      },
    };
    const helpers = new WebAssembly.Instance(new WebAssembly.Module(helperModule()), slowPaths).exports;
    const hlp = new WebAssembly.Table({ element: 'anyfunc', initial: HELPER_EXPORTS.length });
    HELPER_EXPORTS.forEach((name, i) => hlp.set(i, helpers[name] as Function));
    this.imports = { m: { mem: mem.memory, hlp } };
    this.codeGen = hart.pmap.codeGeneration();
    this.unlisten = hart.pmap.onCode((event, frameAddr) => {
      if (event === 'mark') hart.dropWriteTags(frameAddr);
      else this.invalidatePage(frameAddr);
    });
  }

  /** Drops every translation, stops listening to the pmap and frees the lookup table; the hart interprets again. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    for (const page of [...this.pages.keys()]) this.invalidatePage(page);
    this.pending = [];
    this.hart.attachAccelerator(null);
    this.hart.setJumpWatch(null);
    const first = this.lookupAddr / PAGE_SIZE;
    for (let f = 0; f < LOOKUP_BYTES / PAGE_SIZE; f++) this.hart.mem.freeFrame(first + f);
  }
  private closed = false;

  run(budget: number): Exit {
    const h = this.hart;
    const R = this.i32;
    const pcW = this.blockW + 2 * SLOT.PC;
    let n = 0;
    let since = SLICE;
    for (;;) {
      if (n >= budget) {
        h.settleRetired();
        return BUDGET_EXIT;
      }
      if (since >= SLICE || h.boundaryDue) {
        h.boundary();
        this.readCodeLog();
        if (this.pending.length > 0 && ++this.pendingAge >= BATCH_WAIT) this.flush();
        since = 0;
      }
      const chunk = Math.min(budget - n, SLICE - since);
      {
        this.leftIn = chunk;
        this.credited = 0;
        // The chaining loop's first lookup, done here: cold code then costs no call into Wasm.
        let r = chunk;
        if (this.lookup(R[pcW]!, R[pcW + 1]!) >= 0) {
          this.stats.entries++;
          r = this.chain(chunk);
        }
        if (r === chunk && chunk >= CHECK_SPAN) {
          // Nothing ran: translate the entry if it is hot (or find it under another mapping).
          const region = this.find(R[pcW]!, R[pcW + 1]!);
          if (region !== null) {
            this.stats.entries++;
            r = region.fn(chunk);
          }
        }
        if (r !== chunk) {
          const left = r < 0 ? ~r : r;
          const consumed = chunk - left;
          const rest = consumed - this.credited;
          const nonRetired = h.jitNonRetired;
          h.jitNonRetired = 0;
          h.creditRetired(rest - nonRetired, rest);
          n += consumed;
          since += consumed;
          const exit = h.takePendingExit();
          if (exit !== null) {
            h.settleRetired();
            return exit;
          }
          if (consumed > 0) continue;
        }
        // A slice's last few instructions: rather than interpreting them, end the
        // slice early (a boundary never comes later than SLICE instructions).
        // Only the end of the caller's budget is reached exactly, by the interpreter.
        if (chunk < CHECK_SPAN && budget - n > chunk) {
          since = SLICE;
          continue;
        }
      }
      const before = h.steps;
      const exit = h.interpret(chunk, INTERPRET_STOP_AT_WATCHED | INTERPRET_NO_IRQ | INTERPRET_NO_FLUSH);
      const done = h.steps - before;
      this.stats.interpreted += done;
      n += done;
      since += done;
      if (exit.kind !== 'budget') {
        h.settleRetired();
        return exit;
      }
    }
  }

  /** The helper for instructions interpreted in place: accounts what the region ran so far first. */
  private step(pcLo: number, pcHi: number, len: number, leftAt: number): number {
    const consumed = this.leftIn - leftAt;
    const native = consumed - this.credited;
    this.hart.creditRetired(native, native);
    this.credited = consumed + 1;
    return this.hart.jitStep(pcLo, pcHi, len);
  }

  /** The region for pc in the current address space, translating it when hot; null to interpret. */
  private find(pcLo: number, pcHi: number): Region | null {
    const R = this.i32;
    // Cold code only counts, as the interpreter does at the jumps it takes.
    const wk = jumpWatchIndex(pcLo, WATCH_MASK);
    let w = this.watch[wk]!;
    if (w < 0) {
      this.watch[wk] = ++w;
      if (w < 0) return null;
    }
    // What the fetch TLB maps the pc to (no entry: interpret, which fills it).
    const te = (R[this.blockW + 2 * SLOT.JIT_FETCH_TLB]! >>> 2) + ((pcLo >>> 12) & (TLB_ENTRIES - 1)) * 8;
    if (R[te + TLB_TAG_EXEC] !== (pcLo & -4096) || R[te + TLB_TAG_EXEC + TLB_HI] !== pcHi) {
      if (!this.hart.jitFetchProbe(pcLo, pcHi)) return null;
    }
    const maddrPage = R[te + TLB_MADDR]! >>> 0;
    const li = this.lookup(pcLo, pcHi);
    if (li >= 0 && (R[li + 3]! >>> 0) === maddrPage) {
      const r = this.slots[R[li + 2]!];
      if (r) return r;
    }
    const onPage = this.pages.get(maddrPage);
    if (onPage) {
      for (const r of onPage) {
        if (entersAt(r, pcLo, pcHi)) {
          this.install(r, pcLo);
          this.watch[wk] = WATCH_TRANSLATED;
          return r;
        }
      }
    }
    if (w >= WATCH_TRANSLATED) {
      // The slot belongs to a translated entry (another pc, or this pc in another
      // address space): count this one in the tagged table instead.
      const hi = (pcLo >>> 1) & (HOT_ENTRIES - 1);
      if (this.hotTag[hi] !== pcLo) {
        this.hotTag[hi] = pcLo;
        this.hot[hi] = 0;
      }
      const c = this.hot[hi]!;
      if (c === HOT_FAILED) return null;
      if (c <= HOT_QUEUED) {
        // Queued, and running while it waits (a hot loop): as with the jump watch,
        // another QUEUED_WAIT x threshold arrivals translate the batch now.
        if (!this.pending.some((p) => p.pcLo === pcLo && p.pcHi === pcHi)) {
          this.hot[hi] = 0; // no longer waiting (cannot happen: a batch resets its entries' counts): count again
          return null;
        }
        if (HOT_QUEUED - c < QUEUED_WAIT * this.threshold) {
          this.hot[hi] = c - 1;
          return null;
        }
        return this.translateNow(maddrPage, pcLo, pcHi);
      }
      if (c < this.threshold) {
        this.hot[hi] = c + 1;
        return null;
      }
      this.hot[hi] = HOT_QUEUED;
    } else {
      if (this.pending.some((p) => p.pcLo === pcLo && p.pcHi === pcHi)) {
        // Hot while it waits: translate the batch now.
        return this.translateNow(maddrPage, pcLo, pcHi);
      }
      this.watch[wk] = this.threshold > 0 ? -QUEUED_WAIT * this.threshold : WATCH_FAILED;
    }
    this.pending.push({ pcLo, pcHi, maddrPage, gppn: R[te + TLB_GPPN]! >>> 0 });
    if (this.pending.length < this.batch) return null;
    return this.translateNow(maddrPage, pcLo, pcHi);
  }

  /** Translates the queued batch and returns its region for pc (null if it could not be translated). */
  private translateNow(maddrPage: number, pcLo: number, pcHi: number): Region | null {
    this.flush();
    return this.pages.get(maddrPage)?.find((r) => entersAt(r, pcLo, pcHi)) ?? null;
  }

  /** The word index of pc's lookup entry, or -1. */
  private lookup(pcLo: number, pcHi: number): number {
    const R = this.i32;
    const li = this.lookupW + lookupSet(pcLo);
    if (R[li] === pcLo && R[li + 1] === pcHi) return li;
    if (R[li + 4] === pcLo && R[li + 5] === pcHi) return li + 4;
    return -1;
  }

  /** Puts the region at pc first in its set; the entry there moves second (the second's is dropped). */
  private install(r: Region, pcLo: number): void {
    const li = this.lookupW + lookupSet(pcLo);
    const R = this.i32;
    if (!(R[li] === pcLo && R[li + 1] === r.pcHi)) {
      for (let k = 0; k < 4; k++) R[li + 4 + k] = R[li + k]!;
    }
    R[li] = pcLo;
    R[li + 1] = r.pcHi;
    R[li + 2] = r.slot;
    R[li + 3] = r.maddrPage;
  }

  /**
   * Translates the queued entries into one module: V8's cost per module (~0.25 ms)
   * dwarfs the cost per function, so hot entries wait for company (a few slices at most).
   */
  private flush(): void {
    const queue = this.pending;
    this.pending = [];
    this.pendingAge = 0;
    const t0 = performance.now();
    const pmap = this.hart.pmap;
    const bodies: FunctionBody[] = [];
    const entries: (readonly number[])[] = [];
    const metas: Pending[] = [];
    let instructions = 0;
    /** Entries of the regions built so far in this batch: pc low words, by machine page (a stop is only ever an early exit, so an alias with another pcHi costs speed, not correctness). */
    const batch = new Map<number, number[]>();
    for (const p of queue) {
      const hi = (p.pcLo >>> 1) & (HOT_ENTRIES - 1);
      if (this.hotTag[hi] === p.pcLo) this.hot[hi] = 0;
      const wk = jumpWatchIndex(p.pcLo, WATCH_MASK);
      if (this.watch[wk]! < 0) this.watch[wk] = -this.threshold;
      // The frame must still be the guest page's (a balloon or remap may have moved it).
      const idx = pmap.indexOf(p.gppn * PAGE_SIZE);
      if (idx < 0 || ((pmap.entries[idx]! >>> PM_FRAME_SHIFT) * PAGE_SIZE) !== p.maddrPage) continue;
      if (this.pages.get(p.maddrPage)?.some((r) => entersAt(r, p.pcLo, p.pcHi))) continue;
      if (batch.get(p.maddrPage)?.includes(p.pcLo)) continue;
      // Mark first: from here on, a write to the page drops what is built from it.
      pmap.markCode(idx);
      try {
        // A region of this batch stops where an earlier one of the batch is entered: entries hot
        // together are mostly one function's (its start, its loop heads, the code after each call),
        // and each region would otherwise hold the rest of the function again (a boot translated
        // 2.1 instructions per distinct instruction, 1.5 with this). Stopping at the entries of
        // regions built before made ash's code slower: a path the region followed became a
        // chained exit.
        const page = p.pcLo & -4096;
        const others = batch.get(p.maddrPage) ?? [];
        batch.set(p.maddrPage, others);
        const tr = translateRegion({
          u16: this.u16, maddrPage: p.maddrPage, pcLo: p.pcLo, pcHi: p.pcHi,
          blockAddr: this.hart.blockOffset, lookupAddr: this.lookupAddr, rvc: this.rvc, fusedMadd: this.fusedMadd,
          entered: (off) => others.includes(page | off),
        });
        if (tr === null) continue;
        others.push(p.pcLo, ...tr.entries.map((off) => page | off));
        this.heat(p, tr.falls, queue);
        bodies.push(tr.body);
        entries.push(tr.entries);
        metas.push(p);
        instructions += tr.instructions;
      } catch (e) {
        this.failed(p, e);
      }
    }
    if (bodies.length === 0) return;
    let exports: WebAssembly.Exports;
    let bytes: Uint8Array;
    try {
      bytes = encodeRegions(bodies);
      exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), this.imports).exports;
    } catch (e) {
      for (const p of metas) this.failed(p, e);
      return;
    }
    metas.forEach((p, i) => {
      const fn = exports[`f${i}`] as (left: number) => number;
      const slot = this.allocSlot();
      this.table.set(slot, fn as unknown as Function);
      const page = p.pcLo & -4096;
      const r: Region = { slot, pcLo: p.pcLo, pcHi: p.pcHi, maddrPage: p.maddrPage, fn, also: entries[i]!.map((off) => page | off) };
      this.slots[slot] = r;
      this.order.push(slot);
      let list = this.pages.get(p.maddrPage);
      if (!list) {
        list = [];
        this.pages.set(p.maddrPage, list);
      }
      list.push(r);
      for (const pc of [r.pcLo, ...r.also]) {
        this.install(r, pc);
        this.watch[jumpWatchIndex(pc, WATCH_MASK)] = WATCH_TRANSLATED;
      }
      this.stats.regions++;
    });
    this.stats.compiled += metas.length;
    this.stats.modules++;
    this.stats.instructionsTranslated += instructions;
    this.stats.wasmBytes += bytes.length;
    this.stats.compileMs += performance.now() - t0;
  }

  /**
   * The places a hot region falls through to are hot too: those on its page go
   * into the batch being translated, those on the next page (whose mapping is
   * known only when the guest gets there) become hot at their next arrival.
   */
  private heat(p: Pending, falls: readonly number[], queue: Pending[]): void {
    const page = (p.pcLo & -4096) >>> 0;
    for (const off of falls) {
      // Halves: a 64-bit address is not exact in a double.
      const lo = page + off;
      const pcLo = lo | 0;
      const pcHi = (p.pcHi + (lo > 0xffffffff ? 1 : 0)) | 0;
      if (off < PAGE_SIZE) {
        if (!queue.some((q) => q.pcLo === pcLo && q.pcHi === pcHi)) queue.push({ pcLo, pcHi, maddrPage: p.maddrPage, gppn: p.gppn });
        continue;
      }
      const wk = jumpWatchIndex(pcLo, WATCH_MASK);
      const w = this.watch[wk]!;
      if (w < -1 && w !== WATCH_FAILED) this.watch[wk] = -1;
    }
  }

  /** A translator bug must not take the guest down: the entry stays interpreted. */
  private failed(p: Pending, e: unknown): void {
    this.stats.compileErrors++;
    const hi = (p.pcLo >>> 1) & (HOT_ENTRIES - 1);
    if (this.hotTag[hi] === p.pcLo) this.hot[hi] = HOT_FAILED;
    const wk = jumpWatchIndex(p.pcLo, WATCH_MASK);
    if (this.watch[wk]! < WATCH_TRANSLATED) this.watch[wk] = WATCH_FAILED;
    if (process.env['DISCO_JIT_DEBUG']) throw e;
  }

  private allocSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if (this.stats.regions >= this.capacity) {
      // Evict the oldest regions still present until a slot frees.
      while (this.orderHead < this.order.length) {
        const s = this.order[this.orderHead++]!;
        const r = this.slots[s];
        if (r) {
          this.remove(r);
          this.stats.evicted++;
          break;
        }
      }
      if (this.orderHead > 4096) {
        this.order.splice(0, this.orderHead);
        this.orderHead = 0;
      }
      const s = this.freeSlots.pop();
      if (s !== undefined) return s;
    }
    const slot = this.slots.length;
    if (slot >= this.table.length) this.table.grow(Math.max(64, this.table.length));
    this.slots.push(null);
    return slot;
  }

  private remove(r: Region): void {
    const R = this.i32;
    for (const pc of [r.pcLo, ...r.also]) {
      for (const li of [this.lookupW + lookupSet(pc), this.lookupW + lookupSet(pc) + 4]) {
        if (R[li + 2] === r.slot && R[li] === pc && R[li + 1] === r.pcHi) {
          R[li] = 1; // never a pc (odd)
          R[li + 1] = 0;
        }
      }
      this.watch[jumpWatchIndex(pc, WATCH_MASK)] = -this.threshold;
    }
    const list = this.pages.get(r.maddrPage);
    if (list) {
      const i = list.indexOf(r);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.pages.delete(r.maddrPage);
    }
    this.slots[r.slot] = null;
    this.table.set(r.slot, null);
    this.freeSlots.push(r.slot);
    this.stats.regions--;
  }

  /** Pages written by other threads since the last look (their harts have their own listeners). */
  private readCodeLog(): void {
    const pmap = this.hart.pmap;
    const gen = pmap.codeGeneration();
    if (gen === this.codeGen) return;
    if (gen - this.codeGen > CODE_LOG_ENTRIES) {
      for (const page of [...this.pages.keys()]) this.invalidatePage(page);
    } else {
      for (let g = this.codeGen; g < gen; g++) this.invalidatePage(pmap.codeLogEntry(g));
    }
    this.codeGen = gen;
  }
  private codeGen = 0;

  /** The machine page at frameAddr was written or released: its translations go. */
  private invalidatePage(frameAddr: number): void {
    const list = this.pages.get(frameAddr);
    if (!list) return;
    for (const r of [...list]) {
      this.remove(r);
      this.stats.invalidated++;
    }
  }
}
