/**
 * The loop around one hart's run(): handles its exits until the guest ends, as a
 * KVM user-space VMM does around KVM_RUN.
 */
import type { Hart } from '../cpu/hart.js';
import type { MmioBus } from './bus.js';

export type HartOutcome =
  | { readonly kind: 'htif'; readonly value: string }
  | { readonly kind: 'limit'; readonly instructions: number }
  | { readonly kind: 'halt'; readonly reason: string };

export interface HartLoopOptions {
  /** Stop after this many instructions (Infinity: no limit). */
  readonly maxInstructions: number;
  /** Another thread asks the loop to stop: checked between run() calls. */
  readonly stopped?: () => boolean;
}

/** Instructions per run() call; between calls the loop may yield to the event loop. */
const BATCH = 1_000_000;
/** Longest sleep in WFI before re-checking for a stop request (ms). */
const WFI_MAX_SLEEP_MS = 50;

export async function runHart(hart: Hart, bus: MmioBus, opts: HartLoopOptions, yieldEvery = 0): Promise<HartOutcome> {
  let batches = 0;
  for (;;) {
    if (opts.stopped?.()) return { kind: 'halt', reason: 'stopped' };
    const left = opts.maxInstructions - hart.steps;
    if (left <= 0) return { kind: 'limit', instructions: hart.steps };
    const seen = hart.port.wakeCount();
    const exit = hart.run(Math.min(BATCH, left));
    switch (exit.kind) {
      case 'budget':
        if (yieldEvery > 0 && ++batches % yieldEvery === 0) await new Promise((r) => setImmediate(r));
        break;
      case 'wfi': {
        if (hart.interruptPendingForWfi()) break;
        const ms = hart.clock.msUntil(hart.nextTimerDeadline());
        if (ms === Infinity && hart.clock.shared.mode === 'instructions') {
          // Time only moves when instructions retire: a sleeping hart would wait forever
          // unless another hart wakes it, so let the clock jump to the deadline.
          const d = hart.nextTimerDeadline();
          if (d !== Infinity) hart.clock.set(d);
          else hart.port.sleep(seen, WFI_MAX_SLEEP_MS);
        } else if (ms > 0) {
          hart.port.sleep(seen, Math.min(ms, WFI_MAX_SLEEP_MS));
        }
        if (yieldEvery > 0) await new Promise((r) => setImmediate(r));
        break;
      }
      case 'mmio': {
        if (exit.write) {
          if (!bus.write(exit.gpa, exit.size, exit.value)) hart.accessFault();
        } else {
          const v = bus.read(exit.gpa, exit.size);
          if (v === null) hart.accessFault();
          else hart.completeLoad(v);
        }
        break;
      }
      case 'htif':
        return { kind: 'htif', value: exit.value.toString() };
      case 'ecall':
        return { kind: 'halt', reason: `unexpected ECALL exit from privilege ${exit.priv}` };
      case 'readonly':
        return { kind: 'halt', reason: `write to read-only guest page 0x${exit.gpa.toString(16)}` };
      case 'nomem':
        return { kind: 'halt', reason: `out of machine memory backing guest page 0x${exit.gpa.toString(16)}` };
      case 'halt':
        return { kind: 'halt', reason: exit.reason };
      case 'trap':
        return { kind: 'halt', reason: `unhandled trap to M-mode: cause ${exit.cause} at pc 0x${exit.epc.toString(16)}` };
      default: {
        const never: never = exit;
        return { kind: 'halt', reason: `unknown exit ${String(never)}` };
      }
    }
  }
}
