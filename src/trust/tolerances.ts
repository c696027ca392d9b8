/**
 * How far two honest executions of the same span may differ, as the largest row distance between
 * their fingerprints (fingerprint.ts), per pair of backends. Measured (`npm run bench:trust`
 * re-measures them and fails if one is exceeded): stories260K and a synthetic model, every span
 * shape, one side decoding row by row and the other re-running 32-row prefill chunks:
 *   same weights, ref vs wasm (F32 or Q8_0 blocks)    max 2.2e-6
 *   F32 against Q8_0 of the same model                  max 2.2e-2
 *   Q4_0 against F32 or Q8_0 (a cheaper model passed off as the real one)  p50 0.05-0.13, max 0.46
 * A tolerance is the honest maximum times a margin, so an honest pair is never accused and a
 * different model or quantization is. WebGPU reduces in another order (and a real GPU may fuse
 * multiply-adds): it gets a wider tolerance, still far below what any attack moves; on SwiftShader
 * the trust suite's honest swarm measured 1.4e-6 against wasm (no real GPU was at hand). Activations sent as f16 add their rounding (2^-11 relative) to both sides.
 */
import type { BackendName } from '../core/vocabulary.ts'
/** The wire format of activations (as src/swarm/frames.ts names it). */
export type WireDtype = 'f32' | 'f16'

/** Same weights, backends among ref and wasm: 2.2e-6 measured, x45 margin. */
export const TOLERANCE_CPU = 1e-4
/** Same weights, WebGPU on either side. */
export const TOLERANCE_WEBGPU = 1e-3
/** F32 against Q8_0 of one model: 2.2e-2 measured, x2.7 margin (Q4_0 passed off as either is over 0.05 on most rows). */
export const TOLERANCE_MIXED_QUANT = 6e-2
const F16_ROUNDING = 2e-3

export interface ExecutionKind {
  backend: BackendName | 'unknown'
  /** The weights' number format as the peer's model entry names it (same model id: same weights). */
  weights?: 'f32' | 'q8_0'
}

export function honestTolerance(a: ExecutionKind, b: ExecutionKind, dtype: WireDtype = 'f32'): number {
  let t = a.backend === 'webgpu' || b.backend === 'webgpu' || a.backend === 'unknown' || b.backend === 'unknown' ? TOLERANCE_WEBGPU : TOLERANCE_CPU
  if ((a.weights ?? 'f32') !== (b.weights ?? 'f32')) t = TOLERANCE_MIXED_QUANT
  return dtype === 'f16' ? t + F16_ROUNDING : t
}
