import { createRng } from '../../core/rng.ts'
import { writeLlama2c } from './llama2c.ts'
import { LAYER_BIAS_TENSORS, type ModelConfig, type ModelSlice, type RopeScaling } from '../model.ts'

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

/** A llama3 RoPE scaling whose three frequency bands all occur at synthetic models' small head sizes. */
export const SYNTHETIC_LLAMA3_SCALING: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 32 }

/**
 * `slice` as another llama-family member, for engine tests: seeded random Qwen2-style q/k/v biases
 * in [-0.5, 0.5) (config.attentionBias; they move the logits by units) when biasSeed is given, and
 * the RoPE scaling given.
 */
export function withFamilyFeatures(slice: ModelSlice, o: { biasSeed?: number; ropeScaling?: RopeScaling }): ModelSlice {
  const config: ModelConfig = { ...slice.config, attentionBias: o.biasSeed !== undefined || undefined, ropeScaling: o.ropeScaling }
  const tensors = new Map(slice.tensors)
  if (o.biasSeed !== undefined) {
    const rng = createRng(o.biasSeed)
    for (let l = 0; l < config.nLayers; l++) {
      for (const b of LAYER_BIAS_TENSORS) {
        const name = `layers.${l}.${b}`
        const size = b === 'bq' ? config.dim : config.kvDim
        tensors.set(name, { name, shape: [size], data: Float32Array.from({ length: size }, () => rng.nextF32() - 0.5) })
      }
    }
  }
  return { ...slice, config, tensors }
}
