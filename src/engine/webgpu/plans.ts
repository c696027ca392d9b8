import type { ModelConfig } from '../../model/model.ts'
import type { QuantType } from '../../model/quant/index.ts'
import type { EngineBuffers, LayerBuffers, MatrixChunk } from './buffers.ts'
import type { KernelDispatch, Kernels, LinearKernel } from './kernels.ts'

/**
 * The WebGPU engine's dispatch plans, bound once to its buffers (buffers.ts): every layer twice,
 * for decode (one row: matvec, attention_decode) and prefill (matmul, attention_prefill), each
 * split around the copy of the new keys and values into the cache; with `mixed`, a third time for
 * rows of several KV cache slots (matmul, attention_decode, which reads each row's own slot); the
 * embedding lookup; the head (final norm, classifier) and the GPU argmax. A call resizes a plan to
 * its rows and records it (runtime.ts).
 */

/** The dispatches of one layer: before the new keys and values are copied into the cache, and after. */
export interface LayerPlan {
  beforeCache: KernelDispatch[]
  afterCache: KernelDispatch[]
}

const QUANT_KERNELS = {
  matvec: { q8_0: 'matvecQ8_0', q4_0: 'matvecQ4_0' },
  matmul: { q8_0: 'matmulQ8_0', q4_0: 'matmulQ4_0' },
} as const satisfies Record<'matvec' | 'matmul', Record<QuantType, LinearKernel>>

const linearKernel = (mode: 'matvec' | 'matmul', quant: QuantType | undefined): LinearKernel => (quant ? QUANT_KERNELS[mode][quant] : mode)

/** The dispatches of every call kind over `buffers`; the head and argmax plans are sized for their one row. */
export function createPlans(k: Kernels, c: ModelConfig, buffers: Omit<EngineBuffers, 'weightBytes'>, chunk: number, maxChunks: number, options: { mixed?: boolean } = {}) {
  const { state, layers, embedding, head, cacheBases } = buffers
  const { dim, kvDim, hiddenDim, headSize, nHeads } = c
  // each chunk picks the kernel for its format: decode (matvec) or prefill (matmul), fp32 or blocks
  const linear = (mode: 'matvec' | 'matmul', w: MatrixChunk[], x: GPUBuffer, y: GPUBuffer, kIn: number, yStride: number) =>
    w.map((ch) => k[linearKernel(mode, ch.quant)]({ w: ch.buffer, x, y, n: ch.rowCount, k: kIn, rowOffset: ch.rowStart, yStride }))
  // the q, k, v projections, each followed by its bias when the model has them
  const projection = (mode: 'matvec' | 'matmul', w: MatrixChunk[], bias: GPUBuffer | undefined, y: GPUBuffer, width: number) =>
    [...linear(mode, w, state.xb, y, dim, width), ...(bias ? [k.biasAdd({ x: y, bias, width })] : [])]
  /** mode: the projections' kernels; decodeAttention: attention_decode (rows each in its own slot) or attention_prefill (rows of one slot). */
  const layerPlan = (lb: LayerBuffers, mode: 'matvec' | 'matmul', decodeAttention: boolean): LayerPlan => {
    const s = state
    const attention = { positions: s.positions, q: s.q, keys: lb.keyCache, values: lb.valueCache, partO: s.partO, partML: s.partML, nHeads, nKvHeads: c.nKvHeads, headSize, qStride: dim, chunk, maxChunks, cacheBases }
    return {
      beforeCache: [
        k.rmsnorm({ x: s.x, weight: lb.attentionNorm, out: s.xb, dim, eps: c.normEps }),
        ...projection(mode, lb.wq, lb.bias?.q, s.q, dim),
        ...projection(mode, lb.wk, lb.bias?.k, s.k, kvDim),
        ...projection(mode, lb.wv, lb.bias?.v, s.v, kvDim),
        k.rope({ positions: s.positions, cosSin: s.cosSin, v: s.q, width: dim, headSize }),
        k.rope({ positions: s.positions, cosSin: s.cosSin, v: s.k, width: kvDim, headSize }),
      ],
      afterCache: [
        decodeAttention ? k.attentionDecode(attention) : k.attentionPrefill(attention),
        k.attentionMerge({ positions: s.positions, partO: s.partO, partML: s.partML, out: s.xb, nHeads, headSize, outStride: dim, chunk, maxChunks }),
        ...linear(mode, lb.wo, s.xb, s.xb2, dim, dim),
        k.residualAdd({ x: s.x, delta: s.xb2, width: dim }),
        k.rmsnorm({ x: s.x, weight: lb.ffnNorm, out: s.xb, dim, eps: c.normEps }),
        ...linear(mode, lb.w1, s.xb, s.hb, dim, hiddenDim),
        ...linear(mode, lb.w3, s.xb, s.hb2, dim, hiddenDim),
        k.swiglu({ gate: s.hb, up: s.hb2, width: hiddenDim }),
        ...linear(mode, lb.w2, s.hb, s.xb2, hiddenDim, dim),
        k.residualAdd({ x: s.x, delta: s.xb2, width: dim }),
      ],
    }
  }
  const plans = {
    decode: layers.map((lb) => layerPlan(lb, 'matvec', true)),
    prefill: layers.map((lb) => layerPlan(lb, 'matmul', false)),
    mixed: options.mixed ? layers.map((lb) => layerPlan(lb, 'matmul', true)) : [],
  }
  const embedPlan = embedding.map((ch) => k.embedding({ tokens: state.tokens, table: ch.buffer, out: state.x, dim, rowStart: ch.rowStart, rowCount: ch.rowCount }))
  const headPlan = head
    ? [k.rmsnorm({ x: state.x, weight: head.finalNorm, out: state.xb, dim, eps: c.normEps }), ...linear('matvec', head.classifier, state.xb, state.logits, dim, c.vocabSize)]
    : []
  const argmaxPlan = head ? [k.argmax({ values: state.logits, result: state.best, count: c.vocabSize })] : []
  for (const d of [...headPlan, ...argmaxPlan]) d.resize(1, 0)
  return { plans, embedPlan, headPlan, argmaxPlan }
}
