/**
 * Whether the host's WebAssembly has an exact fused multiply-add. Wasm's core
 * instruction set has none; relaxed SIMD's `f64x2.relaxed_madd` is either fused
 * or a multiply then an add, as the host's CPU allows (V8 emits the CPU's FMA
 * instruction where there is one). Only a fused one is exact, so the
 * translator uses it for FMADD.D and its kin where the probe finds it fused,
 * and Dekker's exact product otherwise (docs/architecture.md, "Floating point").
 */
import { setFlagsFromString } from 'node:v8';

/**
 * (module (func (export "f") (param f64 f64 f64) (result f64)
 *   (f64x2.extract_lane 0 (f64x2.relaxed_madd (f64x2.splat (local.get 0))
 *     (f64x2.splat (local.get 1)) (f64x2.splat (local.get 2))))))
 */
const PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7c, 0x7c, 0x7c, 0x01, 0x7c, // type: (f64 f64 f64) -> f64
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
  0x0a, 0x16, 0x01, 0x14, 0x00,
  0x20, 0x00, 0xfd, 0x14, 0x20, 0x01, 0xfd, 0x14, 0x20, 0x02, 0xfd, 0x14,
  0xfd, 0x87, 0x02, // f64x2.relaxed_madd
  0xfd, 0x21, 0x00, // f64x2.extract_lane 0
  0x0b,
]);

type Madd = (a: number, b: number, c: number) => number;

function compile(): Madd | null {
  try {
    return new WebAssembly.Instance(new WebAssembly.Module(PROBE)).exports['f'] as Madd;
  } catch {
    return null;
  }
}

let probed: boolean | undefined;

export function hostFusedMadd(): boolean {
  if (probed !== undefined) return probed;
  let f = compile();
  if (f === null) {
    // Node 20's V8 has relaxed SIMD behind a flag; it applies to modules compiled from now on.
    setFlagsFromString('--experimental-wasm-relaxed-simd');
    f = compile();
  }
  const e = 2 ** -52;
  // Cases where a multiply then an add rounds twice and loses what a fused one keeps.
  probed = f !== null && f(1 + e, 1 - e, -1) === -(2 ** -104) && f(0.1, 10, -1) === 5.551115123125783e-17
    && f(-(1 + e), 1 + e, 1 + 2 * e) === -(2 ** -104);
  return probed;
}
