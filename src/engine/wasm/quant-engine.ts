import { TabmeshError } from '../../core/errors.ts'
import { checkLayerRange } from '../../model/formats/llama2c.ts'
import { getTensor, layerTensorName, type LayerTensorName, type ModelSlice } from '../../model/model.ts'
import type { BatchEngine, Engine } from '../engine.ts'
import { createReferenceBatchEngine, createReferenceEngine, REFERENCE_MAX_BATCH, type Matmul, type Matrix } from '../reference/reference.ts'
import { createEmbedder } from './embedding-rows.ts'
import { loadQuantKernels, type KernelMatrix } from './quant-kernels.ts'

/** The Engine of the SIMD path: weightBytes are the blocks and fp32 tensors it computes with. */
export interface WasmQuantEngine extends Engine {
  readonly weightBytes: number
  release(): Promise<void>
}

/**
 * The WASM backend for slices that keep Q8_0 / Q4_0 matrices: the reference forward pass
 * (reference.ts: RMSNorm, RoPE, attention, SwiGLU in TypeScript) with every weight-matrix product
 * run by the SIMD kernels (quant-kernels.ts): quantized matrices straight from their blocks, fp32
 * ones (a classifier tied to the embedding table, rows that do not fill blocks) by the fp32
 * kernel. Weights stay at their quantized size: each matrix is copied once into the kernels'
 * memory, which every engine of the realm shares. A quantized token embedding is read a row at a
 * time.
 */
export async function createWasmQuantEngine(slice: ModelSlice): Promise<WasmQuantEngine> {
  const c = slice.config
  const spec = slice.spec
  const { matmul, weightBytes, matrices } = await kernelMatmul(slice)
  // the reference holds no embedding table: a quantized one is not its to read
  const ref = createReferenceEngine({ ...slice, spec: { ...spec, embedding: false } }, { matmul })
  const embed = createEmbedder(slice, REFERENCE_MAX_BATCH)

  return {
    backend: 'wasm',
    config: c,
    spec,
    weightBytes,
    embed: async (tokens) => embed(tokens),
    async forward(hidden, positions) {
      // as the onnxruntime path: rows of one call take rising cache slots
      for (let r = 1; r < positions.length; r++) {
        if (positions[r] <= positions[r - 1]) throw new TabmeshError('bad-argument', `forward: positions must increase within a call (${positions[r - 1]} then ${positions[r]})`)
      }
      return ref.forward(hidden, positions)
    },
    head: (hidden) => ref.head(hidden),
    reset: () => ref.reset(),
    async release() {
      // the blocks stay in the realm's kernel memory while the slice's tensors live (other engines may share them)
      matrices.clear()
    },
  }
}

/** The slice's matrices copied into the kernels' memory, and the Matmul that runs them. */
async function kernelMatmul(slice: ModelSlice): Promise<{ matmul: Matmul; weightBytes: number; matrices: Map<Matrix, KernelMatrix> }> {
  checkLayerRange(slice.config, slice.spec.layers, 'bad-argument')
  const { weights, bytes: weightBytes } = checkWeights(slice)
  const kernels = await loadQuantKernels()
  const matrices = new Map<Matrix, KernelMatrix>() // the reference's matrix objects -> their copies in kernel memory
  for (const m of weights) {
    matrices.set(m.matrix, m.matrix instanceof Float32Array ? kernels.uploadF32(m.name, m.matrix, m.rows, m.cols) : kernels.upload(m.matrix))
  }
  // a call's rows go to the kernel together: each weight row is read once for all of them
  const matmul: Matmul = (out, x, w, _n, _d, rows) => kernels.matvec(matrices.get(w)!, x, rows, out)
  return { matmul, weightBytes, matrices }
}

/**
 * The WASM backend of a host: the reference forward pass over many sessions' KV caches
 * (createReferenceBatchEngine) with every matrix product on the SIMD kernels, fp32 or blocks: one
 * read of each weight matrix for the rows of every session in the call.
 */
export async function createWasmBatchEngine(slice: ModelSlice, options: { maxCaches?: number } = {}): Promise<BatchEngine & { readonly weightBytes: number }> {
  const { matmul, weightBytes } = await kernelMatmul(slice)
  const ref = createReferenceBatchEngine({ ...slice, spec: { ...slice.spec, embedding: false, head: false } }, { matmul, maxCaches: options.maxCaches, backend: 'wasm' })
  return Object.assign(ref, { weightBytes })
}

const LAYER_MATRICES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const satisfies readonly LayerTensorName[]

/**
 * Checks the shape of every matrix and bias the slice computes with (the reference does not), and
 * returns the matrices with their bytes as held: blocks for quantized matrices, 4 per value for
 * fp32 ones.
 */
function checkWeights(slice: ModelSlice): { weights: { name: string; rows: number; cols: number; matrix: Matrix }[]; bytes: number } {
  const c = slice.config
  const { start, end } = slice.spec.layers
  const shapes: Record<(typeof LAYER_MATRICES)[number], [number, number]> = {
    wq: [c.dim, c.dim], wk: [c.kvDim, c.dim], wv: [c.kvDim, c.dim], wo: [c.dim, c.dim],
    w1: [c.hiddenDim, c.dim], w2: [c.dim, c.hiddenDim], w3: [c.hiddenDim, c.dim],
  }
  let bytes = 0
  const weights: { name: string; rows: number; cols: number; matrix: Matrix }[] = []
  const matrix = (name: string, [rows, cols]: [number, number]) => {
    const q = slice.quantized?.get(name)
    if (q) {
      if (q.shape[0] !== rows || q.shape[1] !== cols) throw new TabmeshError('model-mismatch', `${name}: quantized shape (${q.shape.join(', ')}) is not (${rows}, ${cols})`)
      bytes += q.blocks.byteLength
      weights.push({ name, rows, cols, matrix: q })
      return
    }
    const data = getTensor(slice, name).data
    if (data.length !== rows * cols) throw new TabmeshError('model-mismatch', `${name}: ${data.length} values, expected (${rows}, ${cols})`)
    bytes += data.byteLength
    weights.push({ name, rows, cols, matrix: data })
  }
  const vector = (name: string, size: number) => {
    const data = getTensor(slice, name).data
    if (data.length !== size) throw new TabmeshError('model-mismatch', `${name}: ${data.length} values, expected ${size}`)
    bytes += data.byteLength
  }
  for (let l = start; l < end; l++) {
    vector(layerTensorName(l, 'attention_norm'), c.dim)
    vector(layerTensorName(l, 'ffn_norm'), c.dim)
    for (const m of LAYER_MATRICES) matrix(layerTensorName(l, m), shapes[m])
    if (c.attentionBias) for (const [b, size] of [['bq', c.dim], ['bk', c.kvDim], ['bv', c.kvDim]] as const) vector(`layers.${l}.${b}`, size)
  }
  if (slice.spec.head) {
    vector('final_norm', c.dim)
    matrix('classifier', [c.vocabSize, c.dim])
  }
  if (slice.spec.embedding && !slice.quantized?.has('token_embedding')) {
    const table = getTensor(slice, 'token_embedding').data
    if (table.length !== c.vocabSize * c.dim) throw new TabmeshError('model-mismatch', `token_embedding: ${table.length} values, expected (${c.vocabSize}, ${c.dim})`)
  }
  return { weights, bytes }
}
