/**
 * The bare-metal machine of `disco run --bios FILE.elf`: RAM at 0x80000000, a
 * CLINT, and HTIF through the ELF's `tohost` symbol (the riscv-tests
 * convention). Every hart starts in M-mode at the ELF entry with a0 = hart id.
 * One hart runs on the calling thread; several run on worker threads.
 */
import { Worker } from 'node:worker_threads';
import { Clock, type ClockMode, type ClockShared } from '../cpu/clock.js';
import { Hart } from '../cpu/hart.js';
import { accelerate, defaultJitMode, type JitMode } from '../jit/index.js';
import { HartIrqPort } from '../cpu/irq-port.js';
import { Clint } from '../devices/clint.js';
import { MachineMemory, type MachineMemoryShared } from '../memory/machine-memory.js';
import { PM_WATCH, Pmap, type PmapShared } from '../memory/pmap.js';
import { MmioBus } from './bus.js';
import { ElfError, parseElf } from './elf.js';
import { runHart, type HartOutcome } from './hart-loop.js';

export const DRAM_BASE = 0x8000_0000;
export const CLINT_BASE = 0x200_0000;
export const MAX_CPUS = 8;

export interface BareMetalConfig {
  readonly ramBytes: number;
  readonly cpus: number;
  readonly clock: ClockMode;
  readonly maxInstructions: number;
  /** Binary translation (default: DISCO_JIT, else on). */
  readonly jit?: JitMode;
}

/** What a worker needs to attach to the machine. */
export interface HartWorkerData {
  readonly mem: MachineMemoryShared;
  readonly pmap: PmapShared;
  readonly clock: ClockShared;
  readonly blocks: readonly number[];
  readonly tlbs: readonly number[];
  readonly index: number;
  readonly tohost: number;
  readonly maxInstructions: number;
  readonly stop: SharedArrayBuffer;
  readonly jit: JitMode;
}

/** Devices of the bare-metal machine, as seen from any thread. */
export function bareMetalBus(mem: MachineMemory, clock: Clock, blocks: readonly number[]): MmioBus {
  const bus = new MmioBus();
  bus.add(new Clint(CLINT_BASE, blocks.map((b) => new HartIrqPort(mem, b)), clock));
  return bus;
}

/** A loaded bare-metal machine, ready to run. */
export interface BareMetal {
  readonly mem: MachineMemory;
  readonly pmap: Pmap;
  readonly clock: Clock;
  readonly harts: readonly Hart[];
  readonly bus: MmioBus;
  readonly tohost: number;
}

export function createBareMetal(image: Uint8Array, cfg: Omit<BareMetalConfig, 'maxInstructions'>): BareMetal {
  const elf = parseElf(image);
  const ramEnd = DRAM_BASE + cfg.ramBytes;
  for (const s of elf.segments) {
    if (s.memsz === 0) continue;
    if (s.paddr < DRAM_BASE || s.paddr + s.memsz > ramEnd) {
      throw new ElfError(`segment at 0x${s.paddr.toString(16)} (${s.memsz} bytes) is outside RAM 0x${DRAM_BASE.toString(16)}-0x${ramEnd.toString(16)}`);
    }
  }
  const mem = MachineMemory.create(cfg.ramBytes + 16 * 1024 * 1024);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM_BASE, size: cfg.ramBytes }]);
  // Frames come zeroed, so the part of memsz beyond the file data needs nothing.
  for (const s of elf.segments) pmap.write(s.paddr, s.data);
  const tohost = elf.symbols.get('tohost') ?? -1;
  if (tohost >= 0) {
    if (tohost < DRAM_BASE || tohost + 8 > ramEnd) throw new ElfError('tohost symbol is outside RAM');
    pmap.setFlags(tohost, PM_WATCH, 0);
  }
  const clock = Clock.create(cfg.clock);
  const harts: Hart[] = [];
  for (let id = 0; id < cfg.cpus; id++) {
    const h = new Hart({ mem, pmap, clock, hartId: id, tohost });
    if (cfg.cpus === 1) accelerate(h, cfg.jit ?? defaultJitMode());
    h.reset(BigInt(elf.entry));
    h.setX(10, BigInt(id));
    harts.push(h);
  }
  const bus = bareMetalBus(mem, clock, harts.map((h) => h.blockOffset));
  return { mem, pmap, clock, harts, bus, tohost };
}

export async function runBareMetal(image: Uint8Array, cfg: BareMetalConfig): Promise<HartOutcome> {
  const m = createBareMetal(image, cfg);
  if (cfg.cpus === 1) return runHart(m.harts[0]!, m.bus, { maxInstructions: cfg.maxInstructions }, 1);
  return runOnWorkers(m.mem, m.pmap, m.clock, m.harts, m.tohost, cfg);
}

function runOnWorkers(mem: MachineMemory, pmap: Pmap, clock: Clock, harts: readonly Hart[], tohost: number, cfg: BareMetalConfig): Promise<HartOutcome> {
  const stop = new SharedArrayBuffer(4);
  const workers: Worker[] = [];
  return new Promise<HartOutcome>((resolve) => {
    let done = false;
    let finished = 0;
    const finish = (o: HartOutcome): void => {
      if (done) return;
      done = true;
      Atomics.store(new Int32Array(stop), 0, 1);
      for (const h of harts) h.port.wake();
      for (const w of workers) void w.terminate();
      resolve(o);
    };
    harts.forEach((_h, index) => {
      const data: HartWorkerData = {
        mem: mem.share(), pmap: pmap.share(), clock: clock.shared,
        blocks: harts.map((x) => x.blockOffset), tlbs: harts.map((x) => x.tlbOffset),
        index, tohost, maxInstructions: cfg.maxInstructions, stop, jit: cfg.jit ?? defaultJitMode(),
      };
      const w = new Worker(new URL('./hart-worker.js', import.meta.url), { workerData: data });
      workers.push(w);
      w.on('message', (o: HartOutcome) => {
        // A hart that hits its instruction limit stops; the run ends when all have.
        if (o.kind === 'limit') {
          if (++finished === harts.length) finish(o);
          return;
        }
        finish(o);
      });
      w.on('error', (e: Error) => finish({ kind: 'halt', reason: `hart ${index}: ${e.message}` }));
    });
  });
}
