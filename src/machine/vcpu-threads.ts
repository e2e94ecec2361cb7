/**
 * The device thread's side of an SMP virt machine whose harts run on threads
 * of their own (vcpu-worker.ts): starts them, completes their MMIO exits on
 * the machine's bus, and takes their messages (SBI console output, power
 * events, failures). The thread that owns the devices never runs guest code,
 * so device back ends and the VM's host I/O never wait for a vCPU's time slice.
 */
import { Worker } from 'node:worker_threads';
import type { Hart } from '../cpu/hart.js';
import type { JitMode } from '../jit/index.js';
import type { Clock } from '../cpu/clock.js';
import type { MachineMemory } from '../memory/machine-memory.js';
import type { Pmap } from '../memory/pmap.js';
import type { MmioBus } from './bus.js';
import type { RunGateSpec } from './run-gate.js';
import { VcpuChannel } from './vcpu-channel.js';
import type { VcpuCommand, VcpuMessage, VcpuWorkerData } from './vcpu-worker.js';

export interface VcpuThreadsConfig {
  readonly mem: MachineMemory;
  readonly pmap: Pmap;
  readonly clock: Clock;
  readonly harts: readonly Hart[];
  readonly sbi: boolean;
  readonly jit: JitMode;
  readonly slice: number;
  readonly gates: readonly (RunGateSpec | null)[];
}

export interface VcpuEvents {
  console(bytes: Uint8Array): void;
  power(event: 'poweroff' | 'reset'): void;
  fail(reason: string): void;
}

/** How long a stopping machine waits for its vCPU threads to leave before ending them (ms). */
const STOP_GRACE_MS = 5000;

export class VcpuThreads {
  readonly channel: VcpuChannel;
  private readonly workers: Worker[] = [];
  private readonly exited: Promise<void>[] = [];

  constructor(private readonly cfg: VcpuThreadsConfig) {
    this.channel = VcpuChannel.create(cfg.harts.length);
  }

  /** Starts one thread per hart; `events` hears from them until stop(). */
  start(events: VcpuEvents): void {
    const { cfg } = this;
    const blocks = cfg.harts.map((h) => h.blockOffset);
    cfg.harts.forEach((h, i) => {
      const data: VcpuWorkerData = {
        mem: cfg.mem.share(), pmap: cfg.pmap.share(), clock: cfg.clock.shared, channel: this.channel.shared,
        hartId: h.hartId, blocks, tlb: h.tlbOffset, sbi: cfg.sbi, jit: cfg.jit, slice: cfg.slice, gate: cfg.gates[i] ?? null,
      };
      const w = new Worker(new URL('./vcpu-worker.js', import.meta.url), { workerData: data });
      this.workers.push(w);
      w.on('message', (m: VcpuMessage) => {
        switch (m.type) {
          case 'console': events.console(m.bytes); return;
          case 'power': events.power(m.event); return;
          case 'fail': events.fail(m.reason); return;
          case 'done': return;
          default: {
            const never: never = m;
            events.fail(`hart ${i}: unknown message ${JSON.stringify(never)}`);
          }
        }
      });
      w.on('error', (e: Error) => events.fail(`hart ${i}: host error: ${e.message}`));
      this.exited.push(new Promise((resolve) => w.once('exit', () => resolve())));
    });
  }

  /** Completes every MMIO access a hart waits for; returns how many. */
  serve(bus: MmioBus): number {
    const ch = this.channel;
    let served = 0;
    for (let h = 0; h < ch.harts; h++) {
      const r = ch.pendingMmio(h);
      if (r === null) continue;
      served++;
      if (r.gpa < 0) ch.reply(h, null);
      else if (r.write) ch.reply(h, bus.write(r.gpa, r.size, r.value) ? 0n : null);
      else ch.reply(h, bus.read(r.gpa, r.size));
    }
    return served;
  }

  /** Stops every vCPU thread and waits for them to leave (ending any that do not). */
  async stop(): Promise<void> {
    this.channel.stop();
    for (const h of this.cfg.harts) h.port.wake();
    const stop: VcpuCommand = { type: 'stop' };
    for (const w of this.workers) w.postMessage(stop);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), STOP_GRACE_MS); });
    const r = await Promise.race([Promise.all(this.exited), grace]);
    clearTimeout(timer);
    if (r === 'late') await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
