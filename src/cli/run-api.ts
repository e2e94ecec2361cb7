/**
 * The API of a `disco run` process: one VM, served on `${runDir}/NAME.sock`
 * with the same paths as the multi-VM host, so `disco vm ...` drives both.
 * A guest reboot starts a new machine; the API follows it.
 */
import { translatorInfo, type ApiHost, type ApiVm, type BalloonControl, type VmAction, type VmInfo } from '../api/types.js';
import { PAGE_SIZE } from '../memory/machine-memory.js';
import type { VirtMachine } from '../machine/virt.js';

const MiB = 1024 * 1024;
const PAGES_PER_MIB = MiB / PAGE_SIZE;

export class RunHost implements ApiHost, ApiVm {
  machine: VirtMachine | null = null;
  constructor(readonly id: string, private readonly onAction: (a: VmAction) => void) {}

  vms(): readonly ApiVm[] { return [this]; }
  vm(id: string): ApiVm | undefined { return id === this.id ? this : undefined; }

  info(): VmInfo {
    const m = this.machine;
    const memBytes = m ? m.cfg.memoryBytes : 0;
    return {
      id: this.id,
      state: m ? 'running' : 'stopped',
      machine_config: { vcpu_count: m ? m.cfg.cpus : 0, mem_size_mib: memBytes / MiB },
      memory: {
        mem_size_mib: memBytes / MiB,
        pages_touched: m ? m.pmap.pagesTouched() : 0,
        frames_mapped: m ? m.pmap.framesMapped() : 0,
        pool_frames_free: m ? m.mem.framesFree() : 0,
        pool_frames_in_use: m ? m.mem.framesInUse() : 0,
      },
      cpu: {
        instructions: m ? m.instructions() : 0,
        exits: m ? Object.fromEntries(m.exits()) : {},
        translator: translatorInfo(m ? m.jitStats() : null),
      },
      devices: m ? m.cfg.virtio.map((d) => d.kind) : [],
    };
  }

  balloon(): BalloonControl | null {
    const m = this.machine;
    const b = m?.balloon();
    if (!m || !b) return null;
    const spec = m.cfg.virtio.find((d) => d.kind === 'balloon');
    return {
      info: () => ({
        amount_mib: b.target() / PAGES_PER_MIB,
        actual_mib: b.actual() / PAGES_PER_MIB,
        deflate_on_oom: spec?.kind === 'balloon' && spec.deflateOnOom,
        free_page_reporting: spec?.kind === 'balloon' && spec.freePageReporting,
        stats_polling_interval_s: spec?.kind === 'balloon' ? spec.statsIntervalS : 0,
      }),
      setTargetMib: (mib) => b.setTarget(mib * PAGES_PER_MIB),
      statistics: () => b.stats(),
    };
  }

  action(a: VmAction): void {
    this.onAction(a);
  }
}

