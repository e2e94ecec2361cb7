/**
 * The binary translator (RISC-V → WebAssembly): attach it to a hart and the
 * hart's run() uses it. `--jit off|on|eager`; the environment variable
 * DISCO_JIT sets the default (tests force 'eager' to translate at first sight).
 */
import type { Hart } from '../cpu/hart.js';
import { Jit, type JitMode } from './engine.js';

export { Jit, type JitMode, type JitStats } from './engine.js';

export const JIT_MODES: readonly JitMode[] = ['off', 'on', 'eager'];

export function isJitMode(v: string): v is JitMode {
  return (JIT_MODES as readonly string[]).includes(v);
}

/** The mode from DISCO_JIT, else 'on'. An unknown value is an error, not a silent default. */
export function defaultJitMode(): JitMode {
  const v = process.env['DISCO_JIT'];
  if (v === undefined || v === '') return 'on';
  if (!isJitMode(v)) throw new RangeError(`DISCO_JIT must be off, on or eager, got '${v}'`);
  return v;
}

/** Attaches a translator to the hart unless the mode is 'off'. */
export function accelerate(hart: Hart, mode: JitMode = defaultJitMode()): Jit | null {
  if (mode === 'off') return null;
  const jit = new Jit(hart, mode === 'eager' ? { threshold: 0 } : {});
  hart.attachAccelerator(jit);
  return jit;
}
