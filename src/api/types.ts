/**
 * The API's resources, shaped like Firecracker's (snake_case JSON), and what a
 * host must provide for each VM it serves. `disco run` serves one VM on its own
 * socket; the multi-VM host serves many on one socket, with the same paths.
 */
import type { JitStats } from '../jit/engine.js';

export type VmState = 'running' | 'stopped';

export interface MemoryInfo {
  /** Guest RAM size. */
  readonly mem_size_mib: number;
  /** Guest pages touched since boot (frames ever given to the VM). */
  readonly pages_touched: number;
  /** Machine frames the VM holds now (4 KiB each). */
  readonly frames_mapped: number;
  /** Frames free in the host's machine-memory pool. */
  readonly pool_frames_free: number;
  /** Frames in use in the host's machine-memory pool, by every VM and hart state. */
  readonly pool_frames_in_use: number;
}

export interface VmInfo {
  readonly id: string;
  readonly state: VmState;
  readonly machine_config: { readonly vcpu_count: number; readonly mem_size_mib: number };
  readonly memory: MemoryInfo;
  readonly cpu: CpuInfo;
  readonly devices: readonly string[];
}

export interface CpuInfo {
  readonly instructions: number;
  readonly exits: Readonly<Record<string, number>>;
  readonly translator: TranslatorInfo | null;
}

export type TranslatorInfo = Readonly<Record<string, number>>;

/** The binary translator's counters as the API shows them (null: the VM runs with it off). */
export function translatorInfo(j: JitStats | null): TranslatorInfo | null {
  if (j === null) return null;
  return {
    regions: j.regions,
    regions_compiled: j.compiled,
    instructions_translated: j.instructionsTranslated,
    compile_ms: Math.round(j.compileMs),
    wasm_bytes: j.wasmBytes,
    modules: j.modules,
    evicted: j.evicted,
    invalidated: j.invalidated,
    compile_errors: j.compileErrors,
    instructions_interpreted: j.interpreted,
    entries: j.entries,
  };
}

export interface BalloonInfo {
  /** The target: memory the balloon should hold, in MiB. */
  readonly amount_mib: number;
  /** What the guest's driver reports it holds, in MiB. */
  readonly actual_mib: number;
  readonly deflate_on_oom: boolean;
  readonly free_page_reporting: boolean;
  readonly stats_polling_interval_s: number;
}

/** The guest's memory statistics (virtio 1.2, 5.5.6.3), in bytes or counts; absent ones are left out. */
export type BalloonStatistics = Readonly<Record<string, number>>;

export interface BalloonControl {
  info(): BalloonInfo;
  /** Sets the target; the guest inflates or deflates to it. */
  setTargetMib(mib: number): void;
  statistics(): BalloonStatistics | null;
}

/** PUT /vms/{id}/actions: Shutdown asks the guest (power button), Kill powers off at once. */
export type VmAction = 'Shutdown' | 'Kill';

export interface ApiVm {
  readonly id: string;
  info(): VmInfo;
  balloon(): BalloonControl | null;
  action(action: VmAction): void;
}

export interface ApiHost {
  vms(): readonly ApiVm[];
  vm(id: string): ApiVm | undefined;
}
