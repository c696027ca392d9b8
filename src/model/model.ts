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
}

/** Layers [start, end) of a model. */
export interface LayerRange {
  start: number
  end: number
}

export interface Tensor {
  name: string
  shape: number[] // row-major; a weight matrix is (out, in)
  data: Float32Array
}

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

export function getTensor(slice: ModelSlice, name: string): Tensor {
  const t = slice.tensors.get(name)
  if (!t) throw new Error(`tensor ${name} is not in this slice (layers [${slice.spec.layers.start}, ${slice.spec.layers.end}), embedding ${slice.spec.embedding}, head ${slice.spec.head})`)
  return t
}
