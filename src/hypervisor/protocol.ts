/**
 * Messages between the host's main thread and a VM's worker thread. Plain
 * structured-cloneable data; every union is switched on exhaustively.
 */
import type { MachineMemoryShared } from '../memory/machine-memory.js';
import type { PmapShared } from '../memory/pmap.js';
import type { VirtioDeviceSpec } from '../machine/virtio-spec.js';
import type { SchedulerShared } from './scheduler.js';
import type { JitStats } from '../jit/engine.js';

/** What a worker needs to build and boot its VM. */
export interface VmLaunch {
  readonly name: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  /** Most machine frames the VM may hold. */
  readonly limitFrames: number;
  /** null: Debian's kernel from the image cache. */
  readonly kernelPath: string | null;
  /** null: Disco's default initramfs (only with the default kernel or an explicit one). */
  readonly initrdPath: string | null;
  /** null: the default command line for the boot source. */
  readonly bootArgs: string | null;
  readonly virtio: readonly VirtioDeviceSpec[];
  /** Balloon target to set once the guest runs, in MiB (0: none). */
  readonly balloonTargetMib: number;
  /** Console bytes per second the VM may send the host before output is dropped. */
  readonly consoleRateBytes: number;
}

export interface VmWorkerData {
  readonly launch: VmLaunch;
  readonly pool: MachineMemoryShared;
  readonly scheduler: SchedulerShared;
  readonly slot: number;
}

export interface BalloonReport {
  readonly targetPages: number;
  readonly actualPages: number;
  readonly deflateOnOom: boolean;
  readonly freePageReporting: boolean;
  readonly statsIntervalS: number;
  readonly statistics: Readonly<Record<string, number>> | null;
}

export interface VmCounters {
  readonly instructions: number;
  readonly exits: Readonly<Record<string, number>>;
  /** Steal time published to the guest (SBI STA), per hart, in ns. */
  readonly stealNs: readonly number[];
  readonly consoleBytes: number;
  readonly consoleDropped: number;
  /** The binary translator's counters (all vCPUs); null with it off. */
  readonly jit: JitStats | null;
  readonly balloon: BalloonReport | null;
}

/** The end of a VM's run. */
export type VmOutcome =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'fail'; readonly code: number }
  | { readonly kind: 'error'; readonly reason: string };

export type WorkerToHost =
  /** The machine exists: its pmap and the machine frames of its hart state (freed by the host when the VM ends). */
  | { readonly type: 'ready'; readonly pmap: PmapShared; readonly hartFrames: readonly (readonly [number, number])[] }
  /** The guest's first instruction is about to run. */
  | { readonly type: 'running' }
  | { readonly type: 'output'; readonly bytes: Uint8Array }
  | { readonly type: 'counters'; readonly counters: VmCounters }
  | { readonly type: 'log'; readonly line: string }
  /** Answer to a shutdown request: whether the guest could take it (a driver for its power button). */
  | { readonly type: 'shutdown'; readonly accepted: boolean }
  | { readonly type: 'exit'; readonly outcome: VmOutcome; readonly counters: VmCounters };

export type HostToWorker =
  | { readonly type: 'input'; readonly bytes: Uint8Array }
  | { readonly type: 'shutdown' }
  | { readonly type: 'kill' }
  | { readonly type: 'balloon'; readonly targetMib: number };
