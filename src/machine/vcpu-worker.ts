/**
 * One hart of an SMP virt machine on its own thread (a vCPU thread): it runs
 * the hart, handles the exits it can itself (SBI calls, WFI) and hands MMIO
 * to the VM's device thread through the channel's mailbox. See vcpu-threads.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Clock, type ClockShared } from '../cpu/clock.js';
import { MIP_SSIP, PRIV_S } from '../cpu/csr-numbers.js';
import { Hart } from '../cpu/hart.js';
import { HartIrqPort } from '../cpu/irq-port.js';
import { REQ_FENCE_I, REQ_FLUSH_TLB } from '../cpu/layout.js';
import { accelerate, type JitMode } from '../jit/index.js';
import { MachineMemory, type MachineMemoryShared } from '../memory/machine-memory.js';
import { Pmap, type PmapShared } from '../memory/pmap.js';
import type { RunGate, RunGateFactory, RunGateSpec } from './run-gate.js';
import { HSM_START_PENDING, HSM_STOPPED, serveSbi, SRST_SHUTDOWN, type SbiPlatform } from './sbi.js';
import { StealTime } from './steal-time.js';
import { enterSupervisor } from './supervisor.js';
import { VcpuChannel, type VcpuChannelShared } from './vcpu-channel.js';
import { warmInterpreter } from '../cpu/warmup.js';

export interface VcpuWorkerData {
  readonly mem: MachineMemoryShared;
  readonly pmap: PmapShared;
  readonly clock: ClockShared;
  readonly channel: VcpuChannelShared;
  readonly hartId: number;
  /** State blocks of every hart (IPIs and remote fences reach them there). */
  readonly blocks: readonly number[];
  readonly tlb: number;
  /** Disco's SBI is the firmware: S-mode ECALLs and M-mode traps exit. */
  readonly sbi: boolean;
  readonly jit: JitMode;
  readonly slice: number;
  readonly gate: RunGateSpec | null;
}

/** What a vCPU thread tells the device thread (MMIO goes through the channel instead). */
export type VcpuMessage =
  | { readonly type: 'console'; readonly bytes: Uint8Array }
  | { readonly type: 'power'; readonly event: 'poweroff' | 'reset' }
  | { readonly type: 'fail'; readonly reason: string }
  | { readonly type: 'done' };

/** What the device thread tells a vCPU thread. */
export type VcpuCommand = { readonly type: 'stop' };

/** Longest sleep in WFI or a stopped HSM state before looking at the stop word again (ms). */
const SLEEP_MAX_MS = 50;

const d = workerData as VcpuWorkerData;
const port = parentPort!;
const post = (m: VcpuMessage): void => port.postMessage(m);
const mem = MachineMemory.attach(d.mem);
const pmap = Pmap.attach(mem, d.pmap);
const clock = Clock.attach(d.clock);
const ch = VcpuChannel.attach(d.channel);
const id = d.hartId;
warmInterpreter();
const hart = new Hart({
  mem, pmap, clock, hartId: id, block: d.blocks[id]!, tlb: d.tlb,
  ecallExitMask: d.sbi ? 1 << PRIV_S : 0, machineTrapExit: d.sbi,
});
const jit = accelerate(hart, d.jit);
const ports = d.blocks.map((b) => new HartIrqPort(mem, b));
const stealTime = new StealTime(pmap, d.blocks.length);

let gate: RunGate | null = null;
if (d.gate) {
  const mod = (await import(d.gate.module)) as { createRunGate?: RunGateFactory };
  if (typeof mod.createRunGate !== 'function') throw new Error(`${d.gate.module} has no createRunGate`);
  gate = mod.createRunGate(d.gate.data, {
    steal: (ms) => {
      stealTime.add(id, ms * 1e6);
      ch.setStealNs(id, stealTime.total(id));
    },
  });
}

port.on('message', (c: VcpuCommand) => {
  if (c.type === 'stop') gate?.close?.();
});

const platform: SbiPlatform = {
  hartCount: ch.harts,
  hartState: (h) => ch.hsm(h),
  hartStart: (h, addr, opaque) => {
    if (ch.requestStart(h, addr, opaque)) ports[h]!.wake();
  },
  hartStop: (h) => ch.setHsm(h, HSM_STOPPED),
  sendIpi: (h) => ports[h]!.setIrqLine(MIP_SSIP, true),
  remoteFence: (h, kind) => ports[h]!.request(kind === 'i' ? REQ_FENCE_I : REQ_FLUSH_TLB),
  systemReset: (type) => post({ type: 'power', event: type === SRST_SHUTDOWN ? 'poweroff' : 'reset' }),
  consoleWrite: (bytes) => post({ type: 'console', bytes }),
  consoleRead: () => new Uint8Array(0),
  stealTimeSetShmem: (h, lo, hi, flags) => stealTime.setShmem(h, lo, hi, flags),
  readGuest: (gpa, length) => {
    try { return pmap.read(gpa, length); } catch { return null; }
  },
  writeGuest: (gpa, data) => {
    try { pmap.write(gpa, data); return true; } catch { return false; }
  },
};

const hex = (n: number): string => n.toString(16);

/** Runs the hart until the VM stops or the hart fails; returns why it failed, or null. */
async function loop(): Promise<string | null> {
  let idle = false;
  while (!ch.stopped()) {
    const seen = hart.port.wakeCount();
    const state = ch.hsm(id);
    if (state === HSM_START_PENDING) {
      const start = ch.takeStart(id);
      if (start) {
        enterSupervisor(hart, start.addr, start.opaque);
        ch.started(id);
        idle = false;
      } else {
        hart.port.sleep(seen, 1);
      }
      continue;
    }
    if (state === HSM_STOPPED) {
      gate?.idle();
      hart.port.sleep(seen, SLEEP_MAX_MS);
      continue;
    }
    if (idle) {
      if (!hart.interruptPendingForWfi()) {
        gate?.idle();
        const ms = clock.msUntil(hart.nextTimerDeadline());
        if (ms > 0) hart.port.sleep(seen, Math.min(ms, SLEEP_MAX_MS));
        continue;
      }
      idle = false;
    }
    const wait = gate?.enter();
    if (wait) {
      await wait;
      continue;
    }
    pmap.enterRun(id);
    const exit = hart.run(d.slice);
    pmap.leaveRun(id);
    ch.setSteps(id, hart.steps);
    if (jit) ch.setJitStats(id, jit.stats);
    ch.countExit(id, exit.kind);
    switch (exit.kind) {
      case 'budget': break;
      case 'wfi': idle = true; break;
      case 'mmio': {
        const r = ch.mmio(id, exit.write, exit.gpa, exit.size, exit.value);
        if (r === 'stopped') return null;
        if (r === null) hart.accessFault();
        else if (!exit.write) hart.completeLoad(r);
        break;
      }
      case 'ecall': {
        const r = serveSbi(hart, platform);
        // After a reset request the device thread stops the VM; the hart runs no further.
        if (r.kind === 'reset') return null;
        break;
      }
      case 'trap':
        return `exception ${exit.cause} (tval 0x${exit.tval.toString(16)}) at pc 0x${exit.epc.toString(16)} with no firmware to take it`;
      case 'readonly': return `write to read-only guest page 0x${hex(exit.gpa)}`;
      case 'nomem': return `out of memory backing guest page 0x${hex(exit.gpa)}`;
      case 'htif': break;
      case 'halt': return exit.reason;
      default: {
        const never: never = exit;
        return `unknown exit ${JSON.stringify(never)}`;
      }
    }
  }
  return null;
}

try {
  const failed = await loop();
  if (failed !== null) post({ type: 'fail', reason: `hart ${id}: ${failed}` });
} finally {
  gate?.close?.();
  // The translator's lookup table goes back to the pool.
  jit?.close();
  ch.setSteps(id, hart.steps);
  if (jit) ch.setJitStats(id, jit.stats);
  post({ type: 'done' });
}
