/**
 * The WASM backend: onnxruntime-web running ONNX graphs built from a slice's weights
 * (llama-graph.ts), or this project's WASM SIMD kernels for slices with Q8_0 / Q4_0 matrices
 * (quant-engine.ts). The KV cache lives in JavaScript.
 */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-web'
import { TabmeshError } from '../../core/errors.ts'
import { checkLayerRange } from '../../model/formats/llama2c.ts'
import type { ModelSlice } from '../../model/model.ts'
import type { Engine } from '../engine.ts'
import { createEmbedder } from './embedding-rows.ts'
import { buildHeadGraph, buildLayerGraph, HEAD_GRAPH_INPUT, HEAD_GRAPH_OUTPUT, LAYER_GRAPH_INPUT, LAYER_GRAPH_OUTPUT } from './llama-graph.ts'
import type { BuiltModel } from './onnx-graph.ts'
import { loadOrt, type Ort, type OrtOptions } from './ort.ts'
import { createWasmQuantEngine } from './quant-engine.ts'

export { createWasmBatchEngine } from './quant-engine.ts'

export { loadOrt, ortThreads } from './ort.ts'

/** Rows per call, as for the reference engine. */
export const WASM_MAX_BATCH = 64

export interface WasmEngineOptions extends OrtOptions {
  /**
   * Let onnxruntime's idle threads spin between ops instead of sleeping (default false). Spinning
   * saves a wake-up per op on an idle machine; on a busy one (other tabs, other processes) spinning
   * threads burn the time slices the working thread needs: measured here under load, decode of
   * the 110M-shaped model took 2-3x longer with spinning.
   */
  spinning?: boolean
  /**
   * Expand a slice's Q8_0 / Q4_0 matrices to fp32 and run them on onnxruntime's Gemm (default
   * false: such slices run on this project's SIMD kernels, quant-engine.ts, reading the blocks).
   * Trades 4 bytes a weight (and onnxruntime's packed copy beside them) for nothing but comparison.
   */
  dequantize?: boolean
}

/** The Engine, plus release(): frees the onnxruntime sessions (their weights live in the wasm heap). */
export interface WasmEngine extends Engine {
  /** Bytes of weights handed to onnxruntime (both graphs), all fp32. */
  readonly weightBytes: number
  release(): Promise<void>
}

/**
 * The WASM backend: onnxruntime-web (wasm execution provider, SIMD, threads when cross-origin
 * isolated) running ONNX graphs built from the slice's weights (llama-graph.ts): fp32 matrices as
 * Gemm. The KV
 * cache lives here, in JavaScript; each forward feeds the slots [0, last position] in and writes
 * the new rows that come back into it. Embedding is a row copy (a dequantized row when the table
 * is held in blocks). Slices with Q8_0 / Q4_0 matrices run on the SIMD kernels instead, unless options.dequantize.
 */
export async function createWasmEngine(slice: ModelSlice, options: WasmEngineOptions = {}): Promise<WasmEngine> {
  const quantizedMatrices = [...(slice.quantized?.keys() ?? [])].some((name) => name !== 'token_embedding')
  if (quantizedMatrices && !options.dequantize) return createWasmQuantEngine(slice)
  const c = slice.config
  const spec = slice.spec
  const { start, end } = spec.layers
  checkLayerRange(c, spec.layers, 'bad-argument')
  const nRange = end - start
  const ort = await loadOrt(options)
  const spinning = options.spinning ?? false
  let weightBytes = 0
  const session = async (build: () => BuiltModel, what: string) => {
    const model = build()
    weightBytes += model.externalData.reduce((n, d) => n + d.data.byteLength, 0)
    return createSession(ort, model, what, spinning)
  }
  const layerSession = nRange > 0 ? await session(() => buildLayerGraph(slice), `layers [${start}, ${end})`) : undefined
  let headSession: InferenceSession | undefined
  try {
    headSession = spec.head ? await session(() => buildHeadGraph(slice), 'head') : undefined
  } catch (err) {
    await layerSession?.release()
    throw err
  }
  const embed = createEmbedder(slice, WASM_MAX_BATCH)

  // state, allocated once
  const positions64 = new BigInt64Array(WASM_MAX_BATCH) // (max_batch) positions fed to the graph
  const kvCache = new Float32Array(nRange * 2 * c.seqLen * c.kvDim) // (n_range, 2 (key, value), seq_len, kv_dim)
  const cacheView = (li: number, kv: 0 | 1) => kvCache.subarray((2 * li + kv) * c.seqLen * c.kvDim, (2 * li + kv + 1) * c.seqLen * c.kvDim)
  const caches = Array.from({ length: nRange }, (_, li) => [cacheView(li, 0), cacheView(li, 1)] as const)
  // input tensors made on first use and reused: positions per row count, cache prefixes per length
  const positionTensors: OrtTensor[] = []
  const pastTensors: OrtTensor[][] = [] // [t][2 * li + kv]
  const feeds: Record<string, OrtTensor> = {}

  const positionsTensor = (n: number) => (positionTensors[n] ??= new ort.Tensor('int64', positions64.subarray(0, n), [1, n]))
  const pastTensorsFor = (t: number) => (pastTensors[t] ??= caches.flatMap(([k, v]) => [
    new ort.Tensor('float32', k.subarray(0, t * c.kvDim), [1, t, c.kvDim]),
    new ort.Tensor('float32', v.subarray(0, t * c.kvDim), [1, t, c.kvDim]),
  ]))

  const checkRows = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < 1 || n > WASM_MAX_BATCH) throw new TabmeshError('bad-argument', `${what}: ${n} rows; between 1 and ${WASM_MAX_BATCH} per call`)
  }

  const run = async (session: InferenceSession, input: InferenceSession.FeedsType, what: string) => {
    try {
      return await session.run(input)
    } catch (err) {
      throw new TabmeshError('backend', `onnxruntime-web failed running ${what}: ${(err as Error).message}`)
    }
  }

  return {
    backend: 'wasm',
    config: c,
    spec,
    weightBytes,
    embed: async (tokens) => embed(tokens),
    async forward(hidden, positions) {
      const n = positions.length
      checkRows(n, 'forward')
      if (hidden.length !== n * c.dim) throw new TabmeshError('bad-argument', `forward: hidden has ${hidden.length} values, expected ${n} x ${c.dim}`)
      for (let r = 0; r < n; r++) {
        const pos = positions[r]
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
        // rows of one call see each other's keys by slot, so slots must rise as the reference reads them
        if (r > 0 && pos <= positions[r - 1]) throw new TabmeshError('bad-argument', `forward: positions must increase within a call (${positions[r - 1]} then ${pos})`)
      }
      if (!layerSession) return hidden
      for (let r = 0; r < n; r++) positions64[r] = BigInt(positions[r])
      const t = positions[n - 1] + 1
      feeds[LAYER_GRAPH_INPUT.hidden] = new ort.Tensor('float32', hidden, [n, c.dim])
      feeds[LAYER_GRAPH_INPUT.positions] = positionsTensor(n)
      const past = pastTensorsFor(t)
      for (let li = 0; li < nRange; li++) {
        feeds[LAYER_GRAPH_INPUT.pastKey(li)] = past[2 * li]
        feeds[LAYER_GRAPH_INPUT.pastValue(li)] = past[2 * li + 1]
      }
      const out = await run(layerSession, feeds, `layers [${start}, ${end})`)
      // new_kv (1, 2 * n_range * n, kv_dim): per layer n key rows then n value rows
      const newKv = out[LAYER_GRAPH_OUTPUT.newKv].data as Float32Array
      for (let li = 0; li < nRange; li++) {
        for (let kv = 0; kv < 2; kv++) {
          const cache = caches[li][kv]
          const rows = (2 * li + kv) * n
          for (let r = 0; r < n; r++) cache.set(newKv.subarray((rows + r) * c.kvDim, (rows + r + 1) * c.kvDim), positions[r] * c.kvDim)
        }
      }
      return out[LAYER_GRAPH_OUTPUT.hidden].data as Float32Array
    },
    async head(hidden) {
      if (!headSession) throw new TabmeshError('bad-argument', 'this engine holds no classifier')
      if (hidden.length === 0 || hidden.length % c.dim !== 0) throw new TabmeshError('bad-argument', `head: hidden has ${hidden.length} values, not a multiple of ${c.dim}`)
      const last = new ort.Tensor('float32', hidden.subarray(hidden.length - c.dim), [1, c.dim])
      const out = await run(headSession, { [HEAD_GRAPH_INPUT]: last }, 'head')
      return out[HEAD_GRAPH_OUTPUT].data as Float32Array
    },
    async reset() {
      kvCache.fill(0)
    },
    async release() {
      await layerSession?.release()
      await headSession?.release()
    },
  }
}

async function createSession(ort: Ort, model: BuiltModel, what: string, spinning: boolean): Promise<InferenceSession> {
  try {
    return await ort.InferenceSession.create(model.bytes, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      externalData: model.externalData,
      extra: { session: { 'intra_op.allow_spinning': spinning ? '1' : '0' } },
    })
  } catch (err) {
    const message = (err as Error).message
    const oom = /memory|alloc|bad_alloc/i.test(message)
    throw new TabmeshError('backend', `onnxruntime-web could not build the ${what} graph${oom ? ' (out of memory)' : ''}: ${message}`)
  }
}
