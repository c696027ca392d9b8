import type { LayerRange } from '../core/vocabulary.ts'
import type { QuantizedTensor } from './quant/index.ts'

/**
 * The one model description every format maps onto and every engine reads: a typed config plus
 * named fp32 tensors with shapes. A `ModelSlice` holds only the parts one peer needs: the
 * embedding (client), a layer range (contributor), the final norm and classifier (client).
 */
export interface ModelConfig {
  architecture: 'llama'
  dim: number // width of the residual stream
  hiddenDim: number // width of the SwiGLU feed-forward layer
  nLayers: number
  nHeads: number // query heads
  nKvHeads: number // key/value heads (grouped-query attention when < nHeads)
  headSize: number // dim / nHeads
  kvDim: number // nKvHeads * headSize
  vocabSize: number
  seqLen: number // context window, in positions
  sharedClassifier: boolean // classifier weights are the token embedding
  ropeTheta: number
  normEps: number
  bosId: number
  eosId: number
  // Optional llama-family variations (GGUF and Hugging Face models); absent means llama2.c's behaviour.
  /** More ids that end a turn (Llama-3 instruct: <|end_of_text|>, <|eom_id|>, <|eot_id|>); eosId is the first. */
  eosIds?: number[]
  /** RoPE frequency scaling; absent means plain theta^(-2i/head_size). See ropeInverseFrequencies (engine/rope.ts). */
  ropeScaling?: RopeScaling
  /**
   * Qwen2-style bias on the q, k and v projections: tensors layers.<l>.bq (dim), bk and bv (kv_dim),
   * added after the matrix product (bq and bk already in the interleaved RoPE order).
   */
  attentionBias?: boolean
}

/** How a model stretches RoPE beyond its training context. */
export type RopeScaling =
  | { type: 'linear'; factor: number } // every frequency divided by factor
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }
  | { type: 'factors'; factors: number[] } // per-pair divisors (GGUF rope_freqs.weight), head_size / 2 of them

export interface Tensor {
  name: string
  shape: number[] // row-major; a weight matrix is (out, in)
  data: Float32Array
}

/** Per-layer bias tensors of models with attentionBias (Qwen2). */
export const LAYER_BIAS_TENSORS = ['bq', 'bk', 'bv'] as const
export type LayerBiasName = (typeof LAYER_BIAS_TENSORS)[number]

/** Which parts of a model to load. */
export interface SliceSpec {
  layers: LayerRange
  embedding: boolean // token embedding table, for embed()
  head: boolean // final norm and classifier, for head()
}

export interface ModelSlice {
  config: ModelConfig
  spec: SliceSpec
  tensors: Map<string, Tensor>
  /**
   * Weight matrices kept in their quantized blocks (only when a loader was asked to keep them);
   * a name is either here or in `tensors`, never both. See src/model/quant/.
   */
  quantized?: Map<string, QuantizedTensor>
}

/** Per-layer tensor names, in llama2.c file order. */
export const LAYER_TENSORS = ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3'] as const
export type LayerTensorName = (typeof LAYER_TENSORS)[number]

export const layerTensorName = (layer: number, name: LayerTensorName): string => `layers.${layer}.${name}`

/** Shape of one layer's tensor. */
export function layerTensorShape(c: ModelConfig, name: LayerTensorName): number[] {
  switch (name) {
    case 'attention_norm':
    case 'ffn_norm':
      return [c.dim]
    case 'wq':
    case 'wo':
      return [c.dim, c.dim]
    case 'wk':
    case 'wv':
      return [c.kvDim, c.dim]
    case 'w1':
    case 'w3':
      return [c.hiddenDim, c.dim]
    case 'w2':
      return [c.dim, c.hiddenDim]
  }
}

export const elementCount = (shape: number[]): number => shape.reduce((a, b) => a * b, 1)

export function fullSpec(config: ModelConfig): SliceSpec {
  return { layers: { start: 0, end: config.nLayers }, embedding: true, head: true }
}

/** Bytes of weights a slice holds in memory: fp32 tensors, and quantized matrices at their block size. */
export function heldWeightBytes(slice: ModelSlice): number {
  const seen = new Set<ArrayBufferView>() // a shared classifier is the embedding's own array
  let bytes = 0
  for (const t of slice.tensors.values()) if (!seen.has(t.data)) { seen.add(t.data); bytes += t.data.byteLength }
  for (const q of slice.quantized?.values() ?? []) bytes += q.blocks.byteLength
  return bytes
}

export function getTensor(slice: ModelSlice, name: string): Tensor {
  const t = slice.tensors.get(name)
  if (!t) throw new Error(`tensor ${name} is not in this slice (layers [${slice.spec.layers.start}, ${slice.spec.layers.end}), embedding ${slice.spec.embedding}, head ${slice.spec.head})`)
  return t
}
