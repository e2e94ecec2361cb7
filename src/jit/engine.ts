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
import { INTERPRET_NO_IRQ, INTERPRET_STOP_AT_JUMP, type Hart, type HartAccelerator } from '../cpu/hart.js';
import type { Exit } from '../cpu/exit.js';
import { SLOT, TLB_ENTRIES, TLB_GPPN, TLB_MADDR, TLB_TAG_EXEC, TLB_TAG_HI } from '../cpu/layout.js';
import { rvcTable } from '../cpu/rvc.js';
import { PAGE_SIZE } from '../memory/machine-memory.js';
import { CODE_LOG_ENTRIES } from '../memory/pmap.js';
import { BLOCK_MAX, LOOKUP_BYTES, LOOKUP_ENTRIES, lookupIndex, translateRegion } from './translate.js';

export type JitMode = 'off' | 'on' | 'eager';

export interface JitOptions {
  /** Block entries seen before a region is translated ('eager': 0). */
  readonly threshold?: number;
  /** Most regions held at once; the oldest are evicted past it. */
  readonly capacity?: number;
}

export interface JitStats {
  regions: number;
  compiled: number;
  instructionsTranslated: number;
  compileMs: number;
  wasmBytes: number;
  evicted: number;
  invalidated: number;
  compileErrors: number;
}

/** Instructions between slice boundaries (interrupts, timers, pmap changes), as the interpreter. */
const SLICE = 2048;
const HOT_ENTRIES = 4096;

interface Region {
  readonly slot: number;
  readonly pcLo: number;
  readonly pcHi: number;
  readonly maddrPage: number;
  readonly fn: (left: number) => number;
}

const BUDGET_EXIT: Exit = { kind: 'budget' };

export class Jit implements HartAccelerator {
  readonly stats: JitStats = { regions: 0, compiled: 0, instructionsTranslated: 0, compileMs: 0, wasmBytes: 0, evicted: 0, invalidated: 0, compileErrors: 0 };
  private readonly threshold: number;
  private readonly capacity: number;
  private readonly i32: Int32Array;
  private readonly u16: Uint16Array;
  private readonly blockW: number;
  private readonly lookupAddr: number;
  private readonly lookupW: number;
  private readonly table: WebAssembly.Table;
  private readonly imports: WebAssembly.Imports;
  private readonly rvc: Int32Array;
  private readonly hot = new Int32Array(HOT_ENTRIES);
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
    this.threshold = opts.threshold ?? 16;
    this.capacity = opts.capacity ?? 8192;
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
    this.imports = {
      m: { mem: mem.memory, tab: this.table },
      h: {
        ld: (lo: number, hi: number, op: number, pcLo: number, pcHi: number): number => hart.jitLoad(lo, hi, op, pcLo, pcHi),
        st: (lo: number, hi: number, vlo: number, vhi: number, op: number, pcLo: number, pcHi: number): number =>
          hart.jitStore(lo, hi, vlo, vhi, op, pcLo, pcHi),
        step: (pcLo: number, pcHi: number, len: number, leftAt: number): number => this.step(pcLo, pcHi, len, leftAt),
      },
    };
    this.codeGen = hart.pmap.codeGeneration();
    this.unlisten = hart.pmap.onCode((event, frameAddr) => {
      if (event === 'mark') hart.dropWriteTags(frameAddr);
      else this.invalidatePage(frameAddr);
    });
  }

  /** Drops every translation (and stops listening to the pmap). */
  close(): void {
    this.unlisten();
    for (const page of [...this.pages.keys()]) this.invalidatePage(page);
  }

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
        since = 0;
      }
      const chunk = Math.min(budget - n, SLICE - since);
      if (chunk >= BLOCK_MAX) {
        const region = this.find(R[pcW]!, R[pcW + 1]!);
        if (region !== null) {
          this.leftIn = chunk;
          this.credited = 0;
          const left = region.fn(chunk);
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
      }
      const before = h.steps;
      const exit = h.interpret(chunk, INTERPRET_STOP_AT_JUMP | INTERPRET_NO_IRQ);
      const done = h.steps - before;
      n += done;
      since += done;
      if (exit.kind !== 'budget') return exit;
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
    // What the fetch TLB maps the pc to (no entry: interpret, which fills it).
    const te = (R[this.blockW + 2 * SLOT.JIT_FETCH_TLB]! >>> 2) + ((pcLo >>> 12) & (TLB_ENTRIES - 1)) * 8;
    if (R[te + TLB_TAG_EXEC] !== (pcLo & -4096) || R[te + TLB_TAG_HI] !== pcHi) {
      if (!this.hart.jitFetchProbe(pcLo, pcHi)) return null;
    }
    const maddrPage = R[te + TLB_MADDR]! >>> 0;
    const li = this.lookupW + lookupIndex(pcLo) * 4;
    if (R[li] === pcLo && R[li + 1] === pcHi && (R[li + 3]! >>> 0) === maddrPage) {
      const r = this.slots[R[li + 2]!];
      if (r) return r;
    }
    const onPage = this.pages.get(maddrPage);
    if (onPage) {
      for (const r of onPage) {
        if (r.pcLo === pcLo && r.pcHi === pcHi) {
          this.install(r);
          return r;
        }
      }
    }
    const hi = (pcLo >>> 1) & (HOT_ENTRIES - 1);
    const c = this.hot[hi]!;
    if (c < 0) return null; // failed to translate before
    if (c < this.threshold) {
      this.hot[hi] = c + 1;
      return null;
    }
    this.hot[hi] = 0;
    return this.compile(pcLo, pcHi, maddrPage, R[te + TLB_GPPN]! >>> 0);
  }

  private install(r: Region): void {
    const li = this.lookupW + lookupIndex(r.pcLo) * 4;
    const R = this.i32;
    R[li] = r.pcLo;
    R[li + 1] = r.pcHi;
    R[li + 2] = r.slot;
    R[li + 3] = r.maddrPage;
  }

  private compile(pcLo: number, pcHi: number, maddrPage: number, gppn: number): Region | null {
    const t0 = performance.now();
    let fn: (left: number) => number;
    let instructions: number;
    let bytes: number;
    try {
      const tr = translateRegion({
        u16: this.u16, maddrPage, pcLo, pcHi, blockAddr: this.hart.blockOffset, lookupAddr: this.lookupAddr, rvc: this.rvc,
      });
      if (tr === null) return null;
      const inst = new WebAssembly.Instance(new WebAssembly.Module(tr.bytes), this.imports);
      fn = inst.exports['f'] as (left: number) => number;
      instructions = tr.instructions;
      bytes = tr.bytes.length;
    } catch (e) {
      // A translator bug must not take the guest down: this entry stays interpreted.
      this.stats.compileErrors++;
      this.hot[(pcLo >>> 1) & (HOT_ENTRIES - 1)] = -1;
      if (process.env['DISCO_JIT_DEBUG']) throw e;
      return null;
    }
    const slot = this.allocSlot();
    this.table.set(slot, fn as unknown as Function);
    const r: Region = { slot, pcLo, pcHi, maddrPage, fn };
    this.slots[slot] = r;
    this.order.push(slot);
    let list = this.pages.get(maddrPage);
    if (!list) {
      list = [];
      this.pages.set(maddrPage, list);
      // From now on, writes to the page must drop its translations.
      const idx = this.hart.pmap.indexOf(gppn * PAGE_SIZE);
      if (idx >= 0) this.hart.pmap.markCode(idx);
    }
    list.push(r);
    this.install(r);
    this.stats.regions++;
    this.stats.compiled++;
    this.stats.instructionsTranslated += instructions;
    this.stats.wasmBytes += bytes;
    this.stats.compileMs += performance.now() - t0;
    return r;
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
    const li = this.lookupW + lookupIndex(r.pcLo) * 4;
    if (R[li + 2] === r.slot && R[li] === r.pcLo && R[li + 1] === r.pcHi) {
      R[li] = 1; // never a pc (odd)
      R[li + 1] = 0;
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
