/**
 * The hypervisor: the VMs of one host, one machine-memory pool they all draw
 * their frames from, and the vCPU scheduler that shares the host's threads
 * among them. Each VM runs on its own worker thread; this object lives on
 * the main thread with the API and never runs guest code.
 */
import { availableParallelism } from 'node:os';
import { MachineMemory, PAGE_SIZE } from '../memory/machine-memory.js';
import { checkConfig, type VmConfig } from './config.js';
import { HostScheduler, DEFAULT_SLICE_MS, MAX_VMS } from './scheduler.js';
import { Vm, VmError, type VmEvent } from './vm.js';

export interface HypervisorOptions {
  /** The machine-memory pool, in MiB (at most 4095: wasm32). */
  readonly poolMib: number;
  /** Host threads that run guest code at once (run tokens); default: the host's cores. */
  readonly threads?: number;
  readonly sliceMs?: number;
  /** Console bytes per second a VM may send before its output is dropped. */
  readonly consoleRateBytes?: number;
  readonly log?: (line: string) => void;
}

/** An event as the stream carries it. */
export type HostEvent = VmEvent & { readonly seq: number; readonly time: string };

export class Hypervisor {
  readonly pool: MachineMemory;
  readonly scheduler: HostScheduler;
  private readonly vmsById = new Map<string, Vm>();
  private readonly listeners = new Set<(e: HostEvent) => void>();
  private seq = 0;
  readonly log: (line: string) => void;
  readonly startedAt = Date.now();
  private readonly consoleRateBytes: number;

  constructor(opts: HypervisorOptions) {
    this.pool = MachineMemory.create(opts.poolMib * 1024 * 1024);
    this.scheduler = HostScheduler.createHost(opts.threads ?? availableParallelism(), opts.sliceMs ?? DEFAULT_SLICE_MS);
    this.log = opts.log ?? ((l) => { process.stderr.write(`disco: ${l}\n`); });
    this.consoleRateBytes = opts.consoleRateBytes ?? 1024 * 1024;
  }

  vms(): readonly Vm[] {
    return [...this.vmsById.values()];
  }

  vm(id: string): Vm | undefined {
    return this.vmsById.get(id);
  }

  create(config: VmConfig): Vm {
    if (this.vmsById.has(config.id)) throw new VmError(409, `a VM named '${config.id}' exists`);
    if (this.vmsById.size >= MAX_VMS) throw new VmError(503, `the host holds at most ${MAX_VMS} VMs`);
    checkConfig(config);
    const vm = new Vm(config, {
      pool: this.pool, scheduler: this.scheduler, emit: (e) => this.emit(e), log: this.log, consoleRateBytes: this.consoleRateBytes,
    });
    this.vmsById.set(config.id, vm);
    this.emit({ type: 'created', vm: config.id });
    return vm;
  }

  /** Replaces a VM's configuration (validated); only before it boots, or between runs. */
  reconfigure(vm: Vm, next: VmConfig): void {
    if (vm.active) throw new VmError(409, `VM '${vm.id}' is ${vm.state}; its devices and memory change only while it is stopped`);
    checkConfig(next);
    vm.config = next;
  }

  async remove(id: string): Promise<void> {
    const vm = this.vmsById.get(id);
    if (!vm) return;
    // A VM that stopped may still be ending its thread: that takes a moment.
    if (vm.state === 'stopped' || vm.state === 'failed') await vm.settled();
    if (vm.active) throw new VmError(409, `VM '${id}' is ${vm.state}; kill or shut it down first`);
    this.vmsById.delete(id);
    this.emit({ type: 'deleted', vm: id });
  }

  subscribe(listener: (e: HostEvent) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  private emit(e: VmEvent): void {
    const ev: HostEvent = { ...e, seq: ++this.seq, time: new Date().toISOString() };
    for (const l of this.listeners) {
      try { l(ev); } catch (err) { this.log(`event listener: ${(err as Error).message}`); }
    }
  }

  /** Memory of the whole host, in frames of 4 KiB. */
  memory(): { poolFrames: number; framesFree: number; framesInUse: number; pageSize: number } {
    return { poolFrames: this.pool.frames - 1, framesFree: this.pool.framesFree(), framesInUse: this.pool.framesInUse(), pageSize: PAGE_SIZE };
  }

  /** Kills every VM and waits for their threads to end (host shutdown). */
  async close(): Promise<void> {
    const active = this.vms().filter((v) => v.active);
    for (const v of active) {
      try { v.kill(); } catch { /* already stopping */ }
    }
    const deadline = Date.now() + 5000;
    while (this.vms().some((v) => v.active) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
}
