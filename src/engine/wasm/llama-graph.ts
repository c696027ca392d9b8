import { getTensor, layerTensorName, type ModelConfig, type ModelSlice } from '../../model/model.ts'
import { createGraphBuilder, FLOAT, INT64, type BuiltModel } from './onnx-graph.ts'

/**
 * ONNX graphs for one slice of a llama model, in standard opset-23 ops (RMSNormalization,
 * RotaryEmbedding, Attention with grouped-query heads) plus Gemm on the weights as stored
 * ((out, in), transB) so nothing is transposed in JavaScript.
 *
 * Layer graph, for layers [start, end) (l = index within the range):
 *   inputs   x (n, dim); positions (1, n) int64; past_key_l, past_value_l (1, t, kv_dim), t = last
 *            position + 1: the cache slots [0, t), the slots of this call's rows included (stale)
 *   outputs  y (n, dim); new_kv (1, 2 * n_range * n, kv_dim): per layer the RoPE'd keys of the n
 *            rows, then their values, for the caller to write into its cache
 * Each row's keys and values are scattered into its slot before attention, and row r attends to
 * slots [0, positions[r]]: the reference's causal attention over its cache.
 *
 * Head graph: x (1, dim) -> final RMSNorm -> classifier -> logits (1, vocab).
 */
export const LAYER_GRAPH_INPUT = { hidden: 'x', positions: 'positions', pastKey: (l: number) => `past_key_${l}`, pastValue: (l: number) => `past_value_${l}` }
export const LAYER_GRAPH_OUTPUT = { hidden: 'y', newKv: 'new_kv' }
export const HEAD_GRAPH_INPUT = 'x'
export const HEAD_GRAPH_OUTPUT = 'logits'

/** RoPE angle tables, computed exactly as the reference engine does. */
export function ropeTables(c: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const half = c.headSize / 2
  const cos = new Float32Array(c.seqLen * half) // (seq_len, head_size / 2)
  const sin = new Float32Array(c.seqLen * half) // (seq_len, head_size / 2)
  for (let pos = 0; pos < c.seqLen; pos++) {
    for (let pair = 0; pair < half; pair++) {
      const freq = Math.fround(1 / Math.pow(c.ropeTheta, (2 * pair) / c.headSize))
      const angle = Math.fround(pos * freq)
      cos[pos * half + pair] = Math.cos(angle)
      sin[pos * half + pair] = Math.sin(angle)
    }
  }
  return { cos, sin }
}

const concatRows = (parts: Float32Array[]): Float32Array => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export function buildLayerGraph(slice: ModelSlice): BuiltModel {
  const c = slice.config
  const { start, end } = slice.spec.layers
  const g = createGraphBuilder()
  const w = (l: number, name: Parameters<typeof layerTensorName>[1]) => getTensor(slice, layerTensorName(l, name)).data
  const eps = { float: c.normEps }

  let x = g.input(LAYER_GRAPH_INPUT.hidden, FLOAT, ['n', c.dim])
  const positions = g.input(LAYER_GRAPH_INPUT.positions, INT64, [1, 'n'])
  const { cos, sin } = ropeTables(c)
  const ropeCos = g.weight('rope_cos', [c.seqLen, c.headSize / 2], cos)
  const ropeSin = g.weight('rope_sin', [c.seqLen, c.headSize / 2], sin)

  // shared by every layer: the causal mask (n, t), slot <= own position, and scatter indices
  // (1, n, 2) of [batch 0, position] for writing each row's key and value into its slot
  const positionColumn = g.node('Reshape', [positions, g.int64('shape_n1', [2], [-1, 1])], 1)[0]
  const pastKey0 = g.input(LAYER_GRAPH_INPUT.pastKey(0), FLOAT, [1, 't', c.kvDim])
  const t = g.node('Shape', [pastKey0], 1, { start: 1, end: 2 })[0]
  const tScalar = g.node('Squeeze', [t], 1)[0]
  const slots = g.node('Range', [g.int64('zero', [], [0]), tScalar, g.int64('one', [], [1])], 1)[0]
  const mask = g.node('LessOrEqual', [slots, positionColumn], 1)[0]
  const axis0 = g.int64('axis0', [1], [0])
  const positions3 = g.node('Unsqueeze', [positions, g.int64('axis2', [1], [2])], 1)[0]
  const batchZero = g.node('Sub', [positions3, positions3], 1)[0]
  const slotIndex = g.node('Concat', [batchZero, positions3], 1, { axis: 2 })[0]
  const qkvSplit = g.int64('qkv_split', [3], [c.dim, c.kvDim, c.kvDim])

  const newKv: string[] = []
  for (let l = start; l < end; l++) {
    const li = l - start
    const pastKey = li === 0 ? pastKey0 : g.input(LAYER_GRAPH_INPUT.pastKey(li), FLOAT, [1, 't', c.kvDim])
    const pastValue = g.input(LAYER_GRAPH_INPUT.pastValue(li), FLOAT, [1, 't', c.kvDim])

    // attention
    const xn = g.node('RMSNormalization', [x, g.weight(`l${l}.attention_norm`, [c.dim], w(l, 'attention_norm'))], 1, { axis: -1, epsilon: eps })[0]
    const wqkv = g.weight(`l${l}.wqkv`, [c.dim + 2 * c.kvDim, c.dim], concatRows([w(l, 'wq'), w(l, 'wk'), w(l, 'wv')]))
    const qkv = g.node('Gemm', [xn, wqkv], 1, { transB: 1 })[0]
    const qkv3 = g.node('Unsqueeze', [qkv, axis0], 1)[0]
    const [q, k, v] = g.node('Split', [qkv3, qkvSplit], 3, { axis: 2 })
    const qRot = g.node('RotaryEmbedding', [q, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nHeads })[0]
    const kRot = g.node('RotaryEmbedding', [k, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nKvHeads })[0]
    newKv.push(kRot, v)
    const keys = g.node('ScatterND', [pastKey, slotIndex, kRot], 1)[0]
    const values = g.node('ScatterND', [pastValue, slotIndex, v], 1)[0]
    const att3 = g.node('Attention', [qRot, keys, values, mask], 1, { q_num_heads: c.nHeads, kv_num_heads: c.nKvHeads })[0]
    const att = g.node('Squeeze', [att3, axis0], 1)[0]
    const wo = g.weight(`l${l}.wo`, [c.dim, c.dim], w(l, 'wo'))
    const o = g.node('Gemm', [att, wo], 1, { transB: 1 })[0]
    x = g.node('Add', [x, o], 1)[0]

    // feed-forward: w2 (silu(w1 x) * w3 x); QuickGelu with alpha 1 is x * sigmoid(x)
    const xn2 = g.node('RMSNormalization', [x, g.weight(`l${l}.ffn_norm`, [c.dim], w(l, 'ffn_norm'))], 1, { axis: -1, epsilon: eps })[0]
    const w13 = g.weight(`l${l}.w13`, [2 * c.hiddenDim, c.dim], concatRows([w(l, 'w1'), w(l, 'w3')]))
    const h = g.node('Gemm', [xn2, w13], 1, { transB: 1 })[0]
    const [h1, h3] = g.node('Split', [h], 2, { axis: 1, num_outputs: 2 })
    const gate = g.node('QuickGelu', [h1], 1, { alpha: { float: 1 } }, 'com.microsoft')[0]
    const gated = g.node('Mul', [gate, h3], 1)[0]
    const w2 = g.weight(`l${l}.w2`, [c.dim, c.hiddenDim], w(l, 'w2'))
    const ffn = g.node('Gemm', [gated, w2], 1, { transB: 1 })[0]
    x = g.node('Add', [x, ffn], 1)[0]
  }
  g.node('Identity', [x], [LAYER_GRAPH_OUTPUT.hidden])
  g.output(LAYER_GRAPH_OUTPUT.hidden, FLOAT, ['n', c.dim])
  g.node('Concat', newKv, [LAYER_GRAPH_OUTPUT.newKv], { axis: 1 })
  g.output(LAYER_GRAPH_OUTPUT.newKv, FLOAT, [1, 'kv_rows', c.kvDim])
  return g.build(`llama_layers_${start}_${end}`)
}

export function buildHeadGraph(slice: ModelSlice): BuiltModel {
  const c = slice.config
  const g = createGraphBuilder()
  const x = g.input(HEAD_GRAPH_INPUT, FLOAT, [1, c.dim])
  const xn = g.node('RMSNormalization', [x, g.weight('final_norm', [c.dim], getTensor(slice, 'final_norm').data)], 1, { axis: -1, epsilon: { float: c.normEps } })[0]
  const classifier = g.weight('classifier', [c.vocabSize, c.dim], getTensor(slice, 'classifier').data)
  g.node('Gemm', [xn, classifier], [HEAD_GRAPH_OUTPUT], { transB: 1 })
  g.output(HEAD_GRAPH_OUTPUT, FLOAT, [1, c.vocabSize])
  return g.build('llama_head')
}
