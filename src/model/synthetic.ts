import { createRng } from '../lib/rng.ts'
import { writeLlama2c } from './llama2c.ts'
import type { ModelConfig } from './model.ts'

/**
 * Synthetic llama2.c checkpoints with seeded random weights, for tests and benchmarks that need
 * shapes the real model lacks (separate classifier, more layers, n_kv_heads == n_heads, 110M-sized).
 * Same seed, same bytes. Matrices are uniform in ±1/sqrt(fan_in) so activations stay in range;
 * norm weights are near 1.
 */
export interface SyntheticShape {
  dim: number
  hiddenDim: number
  nLayers: number
  nHeads: number
  nKvHeads: number
  vocabSize: number
  seqLen: number
  sharedClassifier: boolean
}

export function syntheticConfig(shape: SyntheticShape): ModelConfig {
  const headSize = shape.dim / shape.nHeads
  return {
    architecture: 'llama', ...shape, headSize, kvDim: shape.nKvHeads * headSize,
    ropeTheta: 10000, normEps: 1e-5, bosId: 1, eosId: 2,
  }
}

export function makeSyntheticLlama2c(shape: SyntheticShape, seed: number): Uint8Array {
  const rng = createRng(seed)
  return writeLlama2c(syntheticConfig(shape), (name, dims) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1))
    if (dims.length === 1) {
      for (let i = 0; i < data.length; i++) data[i] = 1 + (rng.nextF32() - 0.5) * 0.2
    } else {
      const bound = name === 'token_embedding' ? 0.1 : Math.sqrt(3 / dims[1])
      for (let i = 0; i < data.length; i++) data[i] = (rng.nextF32() * 2 - 1) * bound
    }
    return data
  })
}

/** Shapes the tests use; the names say what each one exercises. */
export const SYNTHETIC_SHAPES = {
  /** separate classifier, more layers than stories260K, grouped-query attention 3:1 */
  separateClassifier: { dim: 48, hiddenDim: 100, nLayers: 7, nHeads: 6, nKvHeads: 2, vocabSize: 512, seqLen: 96, sharedClassifier: false },
  /** plain multi-head attention (n_kv_heads == n_heads), shared classifier */
  multiHead: { dim: 32, hiddenDim: 64, nLayers: 3, nHeads: 4, nKvHeads: 4, vocabSize: 512, seqLen: 64, sharedClassifier: true },
} satisfies Record<string, SyntheticShape>
