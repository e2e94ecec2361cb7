/**
 * The host's metrics in Prometheus' text exposition format (version 0.0.4):
 * per VM guest instructions, exits by reason, time slices, run and steal
 * time, memory; per host the machine-memory pool and the run tokens.
 */
import type { Hypervisor } from './host.js';
import { VM_STATES } from './vm.js';

type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

function escape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function family(out: string[], name: string, type: 'counter' | 'gauge', help: string, samples: readonly Sample[]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',');
    out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
}

export function renderMetrics(h: Hypervisor): string {
  const out: string[] = [];
  const vms = h.vms();
  const mem = h.memory();
  family(out, 'disco_pool_frames', 'gauge', 'Frames (4 KiB) in the machine-memory pool.', [[{}, mem.poolFrames]]);
  family(out, 'disco_pool_frames_free', 'gauge', 'Frames free in the machine-memory pool.', [[{}, mem.framesFree]]);
  family(out, 'disco_pool_frames_in_use', 'gauge', 'Frames handed out: guest pages, hart state and TLBs of every VM.', [[{}, mem.framesInUse]]);
  family(out, 'disco_run_tokens', 'gauge', 'Host threads that may run guest code at once.', [[{}, h.scheduler.tokens]]);
  family(out, 'disco_run_tokens_free', 'gauge', 'Run tokens no VM holds.', [[{}, h.scheduler.freeTokens]]);
  family(out, 'disco_vm_state', 'gauge', 'The VM\'s lifecycle state (1 for the current one).',
    vms.flatMap((v) => VM_STATES.map((s): Sample => [{ vm: v.id, state: s }, v.state === s ? 1 : 0])));
  family(out, 'disco_vm_instructions_total', 'counter', 'Guest instructions executed in the current or last run.',
    vms.map((v) => [{ vm: v.id }, v.counters.instructions]));
  family(out, 'disco_vm_exits_total', 'counter', 'Exits from the run loop to the hypervisor, by reason.',
    vms.flatMap((v) => Object.entries(v.counters.exits).map(([reason, n]): Sample => [{ vm: v.id, reason }, n])));
  const jit = vms.flatMap((v) => (v.counters.jit ? [[v, v.counters.jit] as const] : []));
  family(out, 'disco_vm_jit_regions', 'gauge', 'Translated regions in the VM\'s code caches.', jit.map(([v, j]) => [{ vm: v.id }, j.regions]));
  family(out, 'disco_vm_jit_compiled_total', 'counter', 'Regions the binary translator compiled.', jit.map(([v, j]) => [{ vm: v.id }, j.compiled]));
  family(out, 'disco_vm_jit_compile_seconds_total', 'counter', 'Host time spent translating and compiling guest code.', jit.map(([v, j]) => [{ vm: v.id }, j.compileMs / 1000]));
  family(out, 'disco_vm_jit_wasm_bytes_total', 'counter', 'WebAssembly generated for the VM.', jit.map(([v, j]) => [{ vm: v.id }, j.wasmBytes]));
  family(out, 'disco_vm_jit_evicted_total', 'counter', 'Regions evicted from a full code cache.', jit.map(([v, j]) => [{ vm: v.id }, j.evicted]));
  family(out, 'disco_vm_jit_invalidated_total', 'counter', 'Regions dropped because their guest code changed.', jit.map(([v, j]) => [{ vm: v.id }, j.invalidated]));
  family(out, 'disco_vm_jit_interpreted_instructions_total', 'counter', 'Guest instructions the interpreter ran rather than translated code.', jit.map(([v, j]) => [{ vm: v.id }, j.interpreted]));
  const sched = vms.map((v) => [v, v.schedStats()] as const);
  family(out, 'disco_vm_slices_total', 'counter', 'Time slices the VM ran.', sched.map(([v, s]) => [{ vm: v.id }, s?.slices ?? 0]));
  family(out, 'disco_vm_run_seconds_total', 'counter', 'Host time the VM held a run token.', sched.map(([v, s]) => [{ vm: v.id }, (s?.runMs ?? 0) / 1000]));
  family(out, 'disco_vm_steal_seconds_total', 'counter', 'Time the VM was runnable but waited for a run token (steal time).', sched.map(([v, s]) => [{ vm: v.id }, (s?.stealMs ?? 0) / 1000]));
  family(out, 'disco_vm_throttled_seconds_total', 'counter', 'Time the VM waited because it reached its CPU cap.', sched.map(([v, s]) => [{ vm: v.id }, (s?.throttledMs ?? 0) / 1000]));
  family(out, 'disco_vm_shares', 'gauge', 'The VM\'s CPU weight.', vms.map((v) => [{ vm: v.id }, v.config.machine_config.shares]));
  family(out, 'disco_vm_cap_percent', 'gauge', 'The VM\'s CPU cap in percent of one host thread (0: none).', vms.map((v) => [{ vm: v.id }, v.config.machine_config.cap_percent]));
  const memory = vms.map((v) => [v, v.memory()] as const);
  family(out, 'disco_vm_memory_bytes', 'gauge', 'Guest RAM size.', vms.map((v) => [{ vm: v.id }, v.config.machine_config.mem_size_mib * 1024 * 1024]));
  family(out, 'disco_vm_pages_touched', 'gauge', 'Guest pages touched since boot.', memory.map(([v, m]) => [{ vm: v.id }, m.pagesTouched]));
  family(out, 'disco_vm_frames_mapped', 'gauge', 'Machine frames the VM\'s pmap holds now.', memory.map(([v, m]) => [{ vm: v.id }, m.framesMapped]));
  family(out, 'disco_vm_frames_limit', 'gauge', 'Most guest frames the VM may hold.', memory.map(([v, m]) => [{ vm: v.id }, m.limitFrames]));
  family(out, 'disco_vm_console_bytes_total', 'counter', 'Console bytes the guest sent the host.', vms.map((v) => [{ vm: v.id }, v.counters.consoleBytes]));
  family(out, 'disco_vm_console_dropped_bytes_total', 'counter', 'Console bytes dropped over the rate limit.', vms.map((v) => [{ vm: v.id }, v.counters.consoleDropped]));
  return `${out.join('\n')}\n`;
}
