import { describe, expect, it } from 'vitest'
import { linearRef } from '../../../testing/webgpu-twins.ts'
import { createRng } from '../../core/rng.ts'
import { quantizeTensor } from '../../model/quant/index.ts'
import { quantizedMatvec } from './quant-matvec.ts'

/**
 * How far the quantized matvec twin (the contract of matvec_q8_0 / matvec_q4_0) lands from the fp32
 * matvec on the original weights: a per-output bound derived from the block steps, and the relative
 * RMS error over all outputs.
 */

const [N, K] = [300, 512] // (out, in): 16 blocks per row

function setup(seed: number) {
  const rng = createRng(seed)
  const rand = (count: number, scale: number) => Float32Array.from({ length: count }, () => scale * (2 * rng.nextF32() - 1))
  // rows of different magnitudes, so per-block scales differ
  const w = rand(N * K, 1)
  for (let o = 0; o < N; o++) for (let j = 0; j < K; j++) w[o * K + j] *= 1 + (o % 5)
  return { w, x: rand(K, 2) }
}

/** For each output: sum over blocks of (amax_b * stepFraction) * sum_{j in b} |x_j|. */
function stepBound(w: Float32Array, x: Float32Array, stepFraction: number): Float32Array {
  const bound = new Float32Array(N) // (N)
  for (let o = 0; o < N; o++) {
    for (let b = 0; b < K / 32; b++) {
      let amax = 0, absX = 0
      for (let j = b * 32; j < b * 32 + 32; j++) { amax = Math.max(amax, Math.abs(w[o * K + j])); absX += Math.abs(x[j]) }
      bound[o] += amax * stepFraction * absX
    }
  }
  return bound
}

function errors(type: 'q8_0' | 'q4_0', seed: number) {
  const { w, x } = setup(seed)
  const exact = new Float32Array(N) // (N) fp32 matvec on the original weights
  linearRef(exact, w, x, 1, N, K, 0, N)
  const quantized = new Float32Array(N) // (N)
  quantizedMatvec(quantized, x, quantizeTensor('w', [N, K], w, type))
  let sq = 0, sqExact = 0
  const diff = new Float32Array(N) // (N)
  for (let o = 0; o < N; o++) {
    diff[o] = Math.abs(quantized[o] - exact[o])
    sq += diff[o] ** 2
    sqExact += exact[o] ** 2
  }
  return { w, x, diff, relativeRms: Math.sqrt(sq / sqExact) }
}

describe('quantizedMatvec against the fp32 matvec', () => {
  it('Q8_0: every output within half a step per weight (plus fp16 scale rounding), relative RMS error under 1%', () => {
    for (const seed of [1, 2, 3]) {
      const { w, x, diff, relativeRms } = errors('q8_0', seed)
      // each weight moves at most half a step (amax / 254); the fp16 scale adds at most 127 * d * 2^-11 = amax * 2^-11
      const bound = stepBound(w, x, 1 / 254 + 2 ** -11)
      for (let o = 0; o < N; o++) expect(diff[o], `seed ${seed} output ${o}`).toBeLessThanOrEqual(bound[o] * (1 + 1e-4) + 1e-5)
      expect(relativeRms).toBeLessThan(0.01) // measured about 0.003 (uniform weights: (1/127) / sqrt(12) / (1 / sqrt(3)))
      expect(relativeRms).toBeGreaterThan(0) // the weights really were quantized
    }
  })

  it('Q4_0: every output within one step per weight, relative RMS error under 10%', () => {
    for (const seed of [4, 5]) {
      const { w, x, diff, relativeRms } = errors('q4_0', seed)
      // the largest magnitude maps to -8 and the other side clamps at +7: at most one step (amax / 8), plus fp16 scale rounding
      const bound = stepBound(w, x, 1 / 8 + 2 ** -10)
      for (let o = 0; o < N; o++) expect(diff[o], `seed ${seed} output ${o}`).toBeLessThanOrEqual(bound[o] * (1 + 1e-4) + 1e-5)
      expect(relativeRms).toBeLessThan(0.1) // measured about 0.06
    }
  })
})
