/**
 * A VM as the host's main thread sees it: its configuration, its lifecycle
 * state, the worker thread that runs it, the console's recent output, and
 * its counters. The main thread never runs guest code; everything it learns
 * about the guest comes as messages or from shared memory (the pmap's
 * counters, the scheduler's slot).
 */
import { Worker } from 'node:worker_threads';
import { MachineMemory, PAGE_SIZE } from '../memory/machine-memory.js';
import { Pmap } from '../memory/pmap.js';
import { runDir } from '../host/paths.js';
import { virtioSpecs, type VmConfig } from './config.js';
import type { HostToWorker, VmCounters, VmLaunch, VmOutcome, VmWorkerData, WorkerToHost } from './protocol.js';
import type { HostScheduler, SlotStats } from './scheduler.js';

export type VmState = 'created' | 'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'failed';

export const VM_STATES: readonly VmState[] = ['created', 'starting', 'running', 'paused', 'stopping', 'stopped', 'failed'];

/** Something the host tells its listeners (the events stream). */
export type VmEvent =
  | { readonly type: 'created'; readonly vm: string }
  | { readonly type: 'deleted'; readonly vm: string }
  | { readonly type: 'state'; readonly vm: string; readonly state: VmState; readonly reason: string | null }
  | { readonly type: 'exit'; readonly vm: string; readonly outcome: VmOutcome };

export class VmError extends Error {
  override readonly name = 'VmError';
  /** 409: the request does not fit the VM's state; 400: the configuration cannot boot. */
  constructor(readonly status: 400 | 409 | 503, message: string) { super(message); }
}

const CONSOLE_BACKLOG = 64 * 1024;
const KILL_GRACE_MS = 3000;
const START_TIMEOUT_MS = 120_000;
const EMPTY_COUNTERS: VmCounters = { instructions: 0, exits: {}, stealNs: [], consoleBytes: 0, consoleDropped: 0, jit: null, balloon: null };

export interface VmHostServices {
  readonly pool: MachineMemory;
  readonly scheduler: HostScheduler;
  readonly emit: (e: VmEvent) => void;
  readonly log: (line: string) => void;
  readonly consoleRateBytes: number;
}

export class Vm {
  state: VmState = 'created';
  /** Why the VM stopped or failed (null while it runs or never ran). */
  reason: string | null = null;
  counters: VmCounters = EMPTY_COUNTERS;
  /** Scheduler statistics of the last run, kept when the slot is given back. */
  private lastSched: SlotStats | null = null;
  private slot = -1;
  private worker: Worker | null = null;
  private pmap: Pmap | null = null;
  private hartFrames: readonly (readonly [number, number])[] = [];
  private lastPagesTouched = 0;
  private backlog: Buffer = Buffer.alloc(0);
  private readonly consoleListeners = new Set<(b: Uint8Array) => void>();
  private shutdownReply: ((accepted: boolean) => void) | null = null;
  private startWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private exited = false;
  private threadGone: (() => void)[] = [];
  boots = 0;
  /** Guest reboots that booted the VM again. */
  reboots = 0;
  /** The guest rebooted and the policy is 'restart': boot again once the thread is gone. */
  private restartPending = false;

  constructor(public config: VmConfig, private readonly host: VmHostServices) {}

  get id(): string { return this.config.id; }

  /** True while a worker thread exists for this VM. */
  get active(): boolean { return this.worker !== null; }

  private setState(state: VmState, reason: string | null = null): void {
    this.state = state;
    this.reason = reason;
    this.host.emit({ type: 'state', vm: this.id, state, reason });
  }

  /** Boots the VM on a new worker; resolves once its first instruction is about to run. */
  start(): Promise<void> {
    if (this.worker) throw new VmError(409, `VM '${this.id}' is ${this.state}; it must be stopped to start`);
    if (this.state !== 'created' && this.state !== 'stopped' && this.state !== 'failed') throw new VmError(409, `VM '${this.id}' is ${this.state}`);
    const mc = this.config.machine_config;
    const virtio = virtioSpecs(this.config, runDir);
    const slot = this.host.scheduler.allocate(mc.shares, mc.cap_percent);
    if (slot < 0) throw new VmError(503, 'the host runs as many VMs as its scheduler has slots');
    const ramPages = (mc.mem_size_mib * 1024 * 1024) / PAGE_SIZE;
    // The pmap also backs the boot ROM (15 pages).
    const limitFrames = (mc.mem_limit_mib === 0 ? ramPages : (mc.mem_limit_mib * 1024 * 1024) / PAGE_SIZE) + 16;
    const launch: VmLaunch = {
      name: this.id, memoryBytes: mc.mem_size_mib * 1024 * 1024, cpus: mc.vcpu_count, limitFrames,
      kernelPath: this.config.boot_source.kernel_image_path, initrdPath: this.config.boot_source.initrd_path,
      bootArgs: this.config.boot_source.boot_args, virtio,
      balloonTargetMib: this.config.balloon?.amount_mib ?? 0, consoleRateBytes: this.host.consoleRateBytes,
    };
    const data: VmWorkerData = { launch, pool: this.host.pool.share(), scheduler: this.host.scheduler.shared, slot };
    this.slot = slot;
    this.exited = false;
    this.counters = EMPTY_COUNTERS;
    this.lastSched = null;
    this.pmap = null;
    this.hartFrames = [];
    this.boots++;
    const w = new Worker(new URL('./vm-worker.js', import.meta.url), {
      workerData: data,
      // A host bug that leaks in one VM's thread ends that VM, not the host.
      resourceLimits: { maxOldGenerationSizeMb: 768 },
      stdout: false, stderr: false,
    });
    this.worker = w;
    this.setState('starting');
    w.on('message', (m: WorkerToHost) => this.onMessage(m));
    w.on('error', (e: Error) => this.finish({ kind: 'error', reason: `VM thread failed: ${e.message}` }));
    w.on('exit', (code) => this.onThreadExit(w, code));
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { this.startWaiter = null; resolve(); }, START_TIMEOUT_MS);
      this.startWaiter = {
        resolve: () => { clearTimeout(t); resolve(); },
        reject: (e) => { clearTimeout(t); reject(e); },
      };
    });
  }

  private post(m: HostToWorker): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: WorkerToHost): void {
    switch (m.type) {
      case 'ready':
        this.pmap = Pmap.attach(this.host.pool, m.pmap);
        this.hartFrames = m.hartFrames;
        return;
      case 'running':
        if (this.state === 'starting') this.setState('running');
        this.startWaiter?.resolve();
        this.startWaiter = null;
        return;
      case 'output': this.output(m.bytes); return;
      case 'counters': this.counters = m.counters; return;
      case 'log': this.host.log(`${this.id}: ${m.line}`); return;
      case 'shutdown':
        this.shutdownReply?.(m.accepted);
        this.shutdownReply = null;
        return;
      case 'exit':
        this.counters = m.counters;
        this.finish(m.outcome);
        return;
      default: {
        const never: never = m;
        this.host.log(`${this.id}: unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  /** The run ended (outcome from the worker, an exception, or a kill). */
  private finish(outcome: VmOutcome): void {
    if (this.exited) return;
    this.exited = true;
    this.host.emit({ type: 'exit', vm: this.id, outcome });
    switch (outcome.kind) {
      case 'poweroff': this.setState('stopped', 'the guest powered off'); break;
      case 'reset':
        if (this.config.machine_config.on_reboot === 'restart') {
          this.restartPending = true;
          this.setState('stopped', 'the guest rebooted; booting again');
        } else {
          this.setState('stopped', 'the guest rebooted (on_reboot is stop: start it again to boot)');
        }
        break;
      case 'fail': this.setState('failed', `the guest reported failure (code ${outcome.code})`); break;
      case 'error': this.setState('failed', outcome.reason); break;
      default: {
        const never: never = outcome;
        this.setState('failed', `unknown outcome ${JSON.stringify(never)}`);
      }
    }
    const waiter = this.startWaiter;
    this.startWaiter = null;
    if (waiter) {
      if (outcome.kind === 'error') waiter.reject(new VmError(400, outcome.reason));
      else waiter.resolve();
    }
    // The worker closes its port and ends; one that does not is ended.
    const w = this.worker;
    if (w) this.killTimer = setTimeout(() => { void w.terminate(); }, KILL_GRACE_MS);
  }

  /** The thread is gone: its token, its frames and its slot go back to the host. */
  private onThreadExit(w: Worker, code: number): void {
    if (this.worker !== w) return;
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = null;
    if (!this.exited) this.finish({ kind: 'error', reason: `VM thread ended unexpectedly (exit code ${code})` });
    this.lastSched = this.host.scheduler.stats(this.slot);
    this.host.scheduler.release(this.slot);
    this.slot = -1;
    if (this.pmap) {
      this.lastPagesTouched = this.pmap.pagesTouched();
      this.pmap.releaseAll();
    }
    for (const [first, count] of this.hartFrames) for (let f = first; f < first + count; f++) this.host.pool.freeFrame(f);
    this.hartFrames = [];
    this.worker = null;
    for (const r of this.threadGone.splice(0)) r();
    if (this.restartPending) {
      this.restartPending = false;
      this.reboots++;
      // A fresh machine with the same configuration; its frames were just returned to the pool.
      try {
        this.start().catch((e: unknown) => this.host.log(`${this.id}: reboot failed: ${e instanceof Error ? e.message : String(e)}`));
      } catch (e) {
        this.setState('failed', `reboot failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Resolves once the VM's thread (if any) has ended and its frames are back in the pool. */
  settled(): Promise<void> {
    if (!this.worker) return Promise.resolve();
    return new Promise((resolve) => this.threadGone.push(resolve));
  }

  pause(): void {
    if (this.state !== 'running') throw new VmError(409, `VM '${this.id}' is ${this.state}; only a running VM pauses`);
    this.host.scheduler.setPaused(this.slot, true);
    this.setState('paused');
  }

  resume(): void {
    if (this.state !== 'paused') throw new VmError(409, `VM '${this.id}' is ${this.state}; only a paused VM resumes`);
    this.host.scheduler.setPaused(this.slot, false);
    this.setState('running');
  }

  /** Presses the power button; refuses (409) when the guest has no driver for it yet. */
  async shutdown(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'stopping' && this.state !== 'paused') throw new VmError(409, `VM '${this.id}' is ${this.state}; only a running VM shuts down`);
    const accepted = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => { this.shutdownReply = null; resolve(false); }, 5000);
      this.shutdownReply = (a) => { clearTimeout(t); resolve(a); };
      this.post({ type: 'shutdown' });
    });
    if (!accepted) throw new VmError(409, `the guest in '${this.id}' cannot take a shutdown request yet (no driver for its power button); Kill powers it off`);
    if (this.state === 'running') this.setState('stopping', 'shutdown requested');
  }

  /** Powers off at once; a thread that does not stop within a grace period is terminated. */
  kill(): void {
    const w = this.worker;
    if (!w) throw new VmError(409, `VM '${this.id}' is ${this.state}; nothing to kill`);
    this.restartPending = false;
    this.post({ type: 'kill' });
    if (this.slot >= 0) {
      this.host.scheduler.setPaused(this.slot, false);
      this.host.scheduler.wake(this.slot);
    }
    setTimeout(() => {
      if (this.worker === w) {
        this.finish({ kind: 'error', reason: 'killed: the VM thread did not stop in time' });
        void w.terminate();
      }
    }, KILL_GRACE_MS).unref();
  }

  input(bytes: Uint8Array): void {
    if (this.worker) this.post({ type: 'input', bytes });
  }

  setBalloon(mib: number): void {
    if (!this.worker) throw new VmError(409, `VM '${this.id}' is ${this.state}`);
    this.post({ type: 'balloon', targetMib: mib });
  }

  /** Applies new shares / cap to the running VM. */
  reschedule(): void {
    if (this.slot >= 0) this.host.scheduler.configure(this.slot, this.config.machine_config.shares, this.config.machine_config.cap_percent);
  }

  private output(bytes: Uint8Array): void {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.backlog = this.backlog.length + b.length > CONSOLE_BACKLOG
      ? Buffer.concat([this.backlog, b]).subarray(-CONSOLE_BACKLOG)
      : Buffer.concat([this.backlog, b]);
    for (const l of this.consoleListeners) l(bytes);
  }

  /** Follows the console: the recent output first, then what comes. Returns the unsubscribe function. */
  attachConsole(listener: (b: Uint8Array) => void, backlog = true): () => void {
    if (backlog && this.backlog.length > 0) listener(new Uint8Array(this.backlog));
    this.consoleListeners.add(listener);
    return () => { this.consoleListeners.delete(listener); };
  }

  consoleBacklog(): Buffer {
    return this.backlog;
  }

  schedStats(): SlotStats | null {
    return this.slot >= 0 ? this.host.scheduler.stats(this.slot) : this.lastSched;
  }

  memory(): { pagesTouched: number; framesMapped: number; framesDeferred: number; limitFrames: number } {
    const p = this.pmap;
    const mc = this.config.machine_config;
    const limitMib = mc.mem_limit_mib === 0 ? mc.mem_size_mib : mc.mem_limit_mib;
    return {
      pagesTouched: p ? p.pagesTouched() : this.lastPagesTouched,
      framesMapped: p && this.worker ? p.framesMapped() : 0,
      framesDeferred: p && this.worker ? p.framesDeferred() : 0,
      limitFrames: (limitMib * 1024 * 1024) / PAGE_SIZE,
    };
  }

  /** Frames the VM holds beyond its guest pages: hart state blocks and soft TLBs. */
  hartFramesHeld(): number {
    return this.hartFrames.reduce((n, [, c]) => n + c, 0);
  }
}
