/**
 * One VM on its own worker thread: its devices with their back ends, and
 * its harts (one hart runs on this thread; an SMP VM's harts run on vCPU
 * threads of their own, machine/vcpu-threads.ts). Guest frames come from the
 * host's shared machine-memory pool; when the harts run is the scheduler's
 * say (a run token, see scheduler.ts). Anything that goes wrong here ends
 * this VM only: the outcome (or the exception) goes to the host, which frees
 * the VM's frames.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { HART_BLOCK_BYTES, TLB_BYTES } from '../cpu/layout.js';
import { BASE_MODULES, defaultInitramfs, fetchImages, INITRAMFS_CMDLINE } from '../image/index.js';
import { MachineMemory, PAGE_SIZE } from '../memory/machine-memory.js';
import { VirtMachine } from '../machine/virt.js';
import type { HostToWorker, VmCounters, VmOutcome, VmWorkerData, WorkerToHost } from './protocol.js';
import type { RunGateSpec } from '../machine/run-gate.js';
import { VcpuGate, type VcpuGateData } from './scheduler.js';

/** Where a vCPU thread finds createRunGate. */
const SCHEDULER_MODULE = new URL('./scheduler.js', import.meta.url).href;

const data = workerData as VmWorkerData;
const port = parentPort!;
const post = (m: WorkerToHost): void => port.postMessage(m);
const L = data.launch;
const MiB = 1024 * 1024;
const PAGES_PER_MIB = MiB / PAGE_SIZE;

/** Console output: batched, and limited to a byte rate so a flooding guest costs the host little. */
class ConsoleRelay {
  private chunks: Uint8Array[] = [];
  private size = 0;
  private budget: number;
  private lastRefill = performance.now();
  bytes = 0;
  dropped = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly rate: number) {
    this.budget = rate;
  }

  push(b: Uint8Array): void {
    const now = performance.now();
    this.budget = Math.min(this.rate, this.budget + ((now - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = now;
    let take = b;
    if (take.length > this.budget) {
      const keep = Math.max(0, Math.floor(this.budget));
      this.dropped += take.length - keep;
      take = take.subarray(0, keep);
    }
    if (take.length === 0) return;
    this.budget -= take.length;
    this.bytes += take.length;
    this.chunks.push(take.slice());
    this.size += take.length;
    if (this.size >= 64 * 1024) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), 15);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.size === 0) return;
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    this.chunks = [];
    this.size = 0;
    post({ type: 'output', bytes: out });
  }
}

async function main(): Promise<void> {
  const mem = MachineMemory.attach(data.pool);
  let kernel: Uint8Array;
  let initrd: Uint8Array | null = L.initrdPath !== null ? readFileSync(L.initrdPath) : null;
  let append = L.bootArgs ?? 'console=ttyS0';
  if (L.kernelPath !== null) {
    kernel = readFileSync(L.kernelPath);
  } else {
    const images = await fetchImages({ log: (l) => post({ type: 'log', line: l }) });
    kernel = readFileSync(images.kernel);
    if (!initrd) {
      initrd = await defaultInitramfs(images, { modules: BASE_MODULES });
      if (L.bootArgs === null) append = INITRAMFS_CMDLINE;
    }
  }
  const relay = new ConsoleRelay(L.consoleRateBytes);
  let machine: VirtMachine | null = null;
  const gate = new VcpuGate(data.scheduler, data.slot, {
    steal: (ms) => {
      const m = machine;
      if (!m) return;
      // The VM's harts share its thread: each runnable one waited as long (stopped harts registered no area).
      for (const h of m.harts) m.stealTime.add(h.hartId, ms * 1e6);
    },
  });
  machine = new VirtMachine({
    memoryBytes: L.memoryBytes, cpus: L.cpus, clock: 'host', boot: { kind: 'sbi' }, kernel, initrd, append,
    output: (b) => relay.push(b), name: L.name, virtio: L.virtio,
    log: (line) => post({ type: 'log', line }),
    pool: mem, limitFrames: L.limitFrames, gate,
    // An SMP VM's harts run on threads of their own, each an entity of the VM's slot.
    vcpuGates: L.cpus > 1 ? Array.from({ length: L.cpus }, (_, i): RunGateSpec => {
      const gateData: VcpuGateData = { shared: data.scheduler, slot: data.slot, entity: i };
      return { module: SCHEDULER_MODULE, data: gateData };
    }) : undefined,
  });
  const m = machine;
  const hartFrames: [number, number][] = [];
  for (const h of m.harts) {
    hartFrames.push([h.blockOffset / PAGE_SIZE, Math.ceil(HART_BLOCK_BYTES / PAGE_SIZE)]);
    hartFrames.push([h.tlbOffset / PAGE_SIZE, Math.ceil(TLB_BYTES / PAGE_SIZE)]);
  }
  post({ type: 'ready', pmap: m.pmap.share(), hartFrames });

  port.on('message', (msg: HostToWorker) => {
    switch (msg.type) {
      case 'input': m.input(msg.bytes); return;
      case 'shutdown': post({ type: 'shutdown', accepted: m.requestShutdown() }); return;
      case 'kill':
        m.stop({ kind: 'poweroff' });
        gate.close();
        return;
      case 'balloon': m.balloon()?.setTarget(msg.targetMib * PAGES_PER_MIB); return;
      default: {
        const never: never = msg;
        post({ type: 'log', line: `unknown message ${JSON.stringify(never)}` });
      }
    }
  });

  const counters = (): VmCounters => {
    const b = m.balloon();
    const spec = L.virtio.find((d) => d.kind === 'balloon');
    return {
      instructions: m.instructions(),
      exits: Object.fromEntries(m.exits()),
      stealNs: m.stealNs(),
      consoleBytes: relay.bytes,
      consoleDropped: relay.dropped,
      jit: m.jitStats(),
      balloon: b && spec?.kind === 'balloon' ? {
        targetPages: b.target(), actualPages: b.actual(), deflateOnOom: spec.deflateOnOom,
        freePageReporting: spec.freePageReporting, statsIntervalS: spec.statsIntervalS,
        statistics: b.stats() as Readonly<Record<string, number>> | null,
      } : null,
    };
  };
  const ticker = setInterval(() => post({ type: 'counters', counters: counters() }), 500);
  if (L.balloonTargetMib > 0) m.balloon()?.setTarget(L.balloonTargetMib * PAGES_PER_MIB);
  post({ type: 'running' });
  let outcome: VmOutcome;
  try {
    outcome = await m.run();
  } catch (e) {
    outcome = { kind: 'error', reason: `host error in the VM: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    gate.close();
    clearInterval(ticker);
    relay.flush();
  }
  await m.close();
  post({ type: 'exit', outcome, counters: counters() });
  port.close();
}

main().catch((e: unknown) => {
  let reason = e instanceof Error ? e.message : String(e);
  // Loading the kernel or initrd into a pool with no frame left reads as "not RAM" to the pmap.
  const pool = MachineMemory.attach(data.pool);
  if (pool.framesFree() === 0) reason = `the host's machine-memory pool is exhausted (${reason})`;
  post({
    type: 'exit', outcome: { kind: 'error', reason },
    counters: { instructions: 0, exits: {}, stealNs: [], consoleBytes: 0, consoleDropped: 0, jit: null, balloon: null },
  });
  port.close();
});
