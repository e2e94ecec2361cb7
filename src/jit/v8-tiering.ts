/**
 * V8 compiles every Wasm function twice: at once with its baseline compiler
 * (Liftoff), and again with its optimizing one (TurboFan) once the function
 * has spent its "tiering budget". The translator's regions are large
 * straight-line functions and thousands of them get hot during a Linux boot;
 * with V8's default budget nearly every one is recompiled, and those
 * recompilations cost several seconds of host CPU that the vCPU threads
 * compete with on a small machine, while most regions run too few times
 * afterwards to repay it. A larger budget sends only the regions that keep
 * running to TurboFan (docs/benchmarks.md, "Where the rest goes";
 * docs/decisions.md).
 */
import { setFlagsFromString } from 'node:v8';

/** Budget units a function spends before TurboFan recompiles it (V8 11's default is 1,800,000). */
export const WASM_TIERING_BUDGET = 30_000_000;

let applied = false;

/**
 * Set once per process before the first region is compiled: V8 reads the flags when it compiles and
 * instantiates a module. Branch hints (an experimental feature in V8 11) let TurboFan move a region's
 * slow paths (soft-TLB misses, helper exits, budget exits) out of line.
 */
export function tuneWasmTiering(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString(`--wasm-tiering-budget=${WASM_TIERING_BUDGET}`);
  setFlagsFromString('--experimental-wasm-branch-hinting');
}
