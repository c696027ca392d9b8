import { TabmeshError } from '../../core/errors.ts'
import { getTensor, layerTensorName, type LayerTensorName, type ModelConfig, type ModelSlice } from '../../model/model.ts'
import { dequantizeTensor } from '../../model/quant/index.ts'
import { ropeInverseFrequencies, ropeTable } from '../rope.ts'
import { createGraphBuilder, FLOAT, INT64, type BuiltModel, type GraphBuilder } from './onnx-graph.ts'

/**
 * ONNX graphs for one slice of a llama model, in standard opset-23 ops (RMSNormalization,
 * RotaryEmbedding, Attention with grouped-query heads) plus the weight products: Gemm on fp32
 * weights as stored ((out, in), transB) so nothing is transposed in JavaScript. Q8_0 / Q4_0
 * matrices are expanded to fp32 (createWasmEngine sends quantized slices to the SIMD kernels,
 * quant-engine.ts, unless asked to expand them).
 *
 * Layer graph, for layers [start, end) (l = index within the range):
 *   inputs   x (n, dim); positions (1, n) int64; past_key_l, past_value_l (1, t, kv_dim), t = last
 *            position + 1: the cache slots [0, t), the slots of this call's rows included (stale)
 *   outputs  y (n, dim); new_kv (1, 2 * n_range * n, kv_dim): per layer the RoPE'd keys of the n
 *            rows, then their values, for the caller to write into its cache
 * Each row's keys and values are scattered into its slot before attention, and row r attends to
 * slots [0, positions[r]]: the reference's causal attention over its cache. Models with
 * attentionBias add bq, bk, bv to the q, k, v products before RoPE.
 *
 * Head graph: x (1, dim) -> final RMSNorm -> classifier -> logits (1, vocab).
 */
export const LAYER_GRAPH_INPUT = { hidden: 'x', positions: 'positions', pastKey: (l: number) => `past_key_${l}`, pastValue: (l: number) => `past_value_${l}` }
export const LAYER_GRAPH_OUTPUT = { hidden: 'y', newKv: 'new_kv' }
export const HEAD_GRAPH_INPUT = 'x'
export const HEAD_GRAPH_OUTPUT = 'logits'

/**
 * RotaryEmbedding's cos and sin caches, (seq_len, head_size / 2) each: the columns of the one RoPE
 * table every backend uses (ropeTable, with the model's RoPE scaling), copied value for value.
 */
function ropeCaches(c: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const table = ropeTable(c.seqLen, ropeInverseFrequencies(c)) // (seq_len, head_size / 2, 2)
  const cos = new Float32Array(table.length / 2) // (seq_len, head_size / 2)
  const sin = new Float32Array(table.length / 2) // (seq_len, head_size / 2)
  for (let i = 0; i < cos.length; i++) {
    cos[i] = table[2 * i]
    sin[i] = table[2 * i + 1]
  }
  return { cos, sin }
}

const concatRows = (parts: Float32Array[]): Float32Array => {
  if (parts.length === 1) return parts[0]
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** A weight matrix (out, in) in fp32. */
type Matrix = { name: string; rows: number; cols: number; data: Float32Array }

/** A matrix of the slice in fp32: Q8_0 / Q4_0 blocks are expanded (the graphs hold fp32 weights only). */
function sliceMatrix(slice: ModelSlice, name: string, rows: number, cols: number): Matrix {
  const q = slice.quantized?.get(name)
  if (!q) {
    const data = getTensor(slice, name).data
    if (data.length !== rows * cols) throw new TabmeshError('model-mismatch', `${name}: ${data.length} values, expected (${rows}, ${cols})`)
    return { name, rows, cols, data }
  }
  if (q.shape[0] !== rows || q.shape[1] !== cols) throw new TabmeshError('model-mismatch', `${name}: quantized shape (${q.shape.join(', ')}) is not (${rows}, ${cols})`)
  return { name, rows, cols, data: dequantizeTensor(q) }
}

/**
 * y (n, sum of rows) = x (n, cols) @ [parts stacked by rows]^T (+ bias (sum of rows)): one Gemm for
 * the fused q/k/v and w1/w3 matrices (bias as its C).
 */
function linear(g: GraphBuilder, label: string, x: string, parts: Matrix[], bias?: Float32Array): string {
  const cols = parts[0].cols
  const rows = parts.reduce((n, m) => n + m.rows, 0)
  const w = g.weight(label, [rows, cols], concatRows(parts.map((m) => m.data)))
  const c = bias ? [g.weight(`${label}.bias0`, [rows], bias.subarray(0, rows))] : []
  return g.node('Gemm', [x, w, ...c], 1, { transB: 1 })[0]
}

export function buildLayerGraph(slice: ModelSlice): BuiltModel {
  const c = slice.config
  const { start, end } = slice.spec.layers
  const g = createGraphBuilder()
  const w = (l: number, name: LayerTensorName) => getTensor(slice, layerTensorName(l, name)).data
  const matrix = (l: number, name: LayerTensorName, rows: number, cols: number) => sliceMatrix(slice, layerTensorName(l, name), rows, cols)
  const bias = (l: number) => {
    if (!c.attentionBias) return undefined
    const parts = ([['bq', c.dim], ['bk', c.kvDim], ['bv', c.kvDim]] as const).map(([b, size]) => {
      const data = getTensor(slice, `layers.${l}.${b}`).data
      if (data.length !== size) throw new TabmeshError('model-mismatch', `layers.${l}.${b}: ${data.length} values, expected ${size}`)
      return data
    })
    return concatRows(parts) // (dim + 2 kv_dim)
  }
  const eps = { float: c.normEps }

  let x = g.input(LAYER_GRAPH_INPUT.hidden, FLOAT, ['n', c.dim])
  const positions = g.input(LAYER_GRAPH_INPUT.positions, INT64, [1, 'n'])
  const { cos, sin } = ropeCaches(c)
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
    const wqkv = [matrix(l, 'wq', c.dim, c.dim), matrix(l, 'wk', c.kvDim, c.dim), matrix(l, 'wv', c.kvDim, c.dim)]
    const qkv = linear(g, `l${l}.wqkv`, xn, wqkv, bias(l))
    const qkv3 = g.node('Unsqueeze', [qkv, axis0], 1)[0]
    const [q, k, v] = g.node('Split', [qkv3, qkvSplit], 3, { axis: 2 })
    const qRot = g.node('RotaryEmbedding', [q, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nHeads })[0]
    const kRot = g.node('RotaryEmbedding', [k, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nKvHeads })[0]
    newKv.push(kRot, v)
    const keys = g.node('ScatterND', [pastKey, slotIndex, kRot], 1)[0]
    const values = g.node('ScatterND', [pastValue, slotIndex, v], 1)[0]
    const att3 = g.node('Attention', [qRot, keys, values, mask], 1, { q_num_heads: c.nHeads, kv_num_heads: c.nKvHeads })[0]
    const att = g.node('Squeeze', [att3, axis0], 1)[0]
    const o = linear(g, `l${l}.wo`, att, [matrix(l, 'wo', c.dim, c.dim)])
    x = g.node('Add', [x, o], 1)[0]

    // feed-forward: w2 (silu(w1 x) * w3 x); QuickGelu with alpha 1 is x * sigmoid(x)
    const xn2 = g.node('RMSNormalization', [x, g.weight(`l${l}.ffn_norm`, [c.dim], w(l, 'ffn_norm'))], 1, { axis: -1, epsilon: eps })[0]
    const h = linear(g, `l${l}.w13`, xn2, [matrix(l, 'w1', c.hiddenDim, c.dim), matrix(l, 'w3', c.hiddenDim, c.dim)])
    const [h1, h3] = g.node('Split', [h], 2, { axis: 1, num_outputs: 2 })
    const gate = g.node('QuickGelu', [h1], 1, { alpha: { float: 1 } }, 'com.microsoft')[0]
    const gated = g.node('Mul', [gate, h3], 1)[0]
    const ffn = linear(g, `l${l}.w2`, gated, [matrix(l, 'w2', c.dim, c.hiddenDim)])
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
  const logits = linear(g, 'classifier', xn, [sliceMatrix(slice, 'classifier', c.vocabSize, c.dim)])
  g.node('Identity', [logits], [HEAD_GRAPH_OUTPUT])
  g.output(HEAD_GRAPH_OUTPUT, FLOAT, [1, c.vocabSize])
  return g.build('llama_head')
}
