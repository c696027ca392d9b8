import { TabmeshError } from '../../core/errors.ts'
import { getTensor, layerTensorName, ropeInverseFrequencies, type LayerTensorName, type ModelConfig, type ModelSlice } from '../../model/model.ts'
import { dequantizeTensor, type QuantizedTensor } from '../../model/quant/quant.ts'
import { MATMUL_NBITS_BLOCK, packMatMulNBits } from './matmul-nbits.ts'
import { createGraphBuilder, FLOAT, INT64, type BuiltModel, type GraphBuilder } from './onnx-graph.ts'

/**
 * ONNX graphs for one slice of a llama model, in standard opset-23 ops (RMSNormalization,
 * RotaryEmbedding, Attention with grouped-query heads) plus the weight products: Gemm on fp32
 * weights as stored ((out, in), transB) so nothing is transposed in JavaScript, and
 * com.microsoft MatMulNBits on matrices the slice keeps as Q8_0 / Q4_0 blocks (matmul-nbits.ts),
 * so onnxruntime holds them at about their quantized size.
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

/** RoPE angle tables with the model's RoPE scaling, computed exactly as the reference engine does. */
export function ropeTables(c: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const half = c.headSize / 2
  const cos = new Float32Array(c.seqLen * half) // (seq_len, head_size / 2)
  const sin = new Float32Array(c.seqLen * half) // (seq_len, head_size / 2)
  const inverseFrequency = ropeInverseFrequencies(c) // (head_size / 2)
  for (let pos = 0; pos < c.seqLen; pos++) {
    for (let pair = 0; pair < half; pair++) {
      const angle = Math.fround(pos * inverseFrequency[pair])
      cos[pos * half + pair] = Math.cos(angle)
      sin[pos * half + pair] = Math.sin(angle)
    }
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

/** How the graphs hold the slice's quantized matrices. */
export interface GraphOptions {
  /**
   * Expand Q8_0 / Q4_0 matrices to fp32 Gemm weights (default false: MatMulNBits on the blocks).
   * onnxruntime-web 1.30's wasm build has no MatMulNBits kernel of its own: it dequantizes the
   * whole matrix into scratch on every call and runs its fp32 GEMM, which keeps weights at their
   * quantized size but makes products several times slower than Gemm on fp32 weights (decode of a
   * 110M-shaped model, 1 thread: about 6x). Expanding trades that memory (4 bytes a weight, and
   * onnxruntime's packed copy beside it) for Gemm's speed.
   */
  dequantize?: boolean
  /** Most weights per MatMulNBits node (default MATMUL_NBITS_MAX_WEIGHTS); smaller splits matrices into more nodes (tests). */
  matMulNBitsMaxWeights?: number
}

/** A weight matrix (out, in) as the slice holds it. */
type Matrix = { name: string; rows: number; cols: number } & ({ data: Float32Array } | { quantized: QuantizedTensor })

/**
 * The most weights one MatMulNBits node covers: onnxruntime dequantizes a node's whole matrix into
 * fp32 scratch, so bigger matrices are split by rows into several nodes and their scratch (16 MB
 * here, reused by every node) stays small beside the blocks.
 */
export const MATMUL_NBITS_MAX_WEIGHTS = 1 << 22

function sliceMatrix(slice: ModelSlice, name: string, rows: number, cols: number, options: GraphOptions): Matrix {
  const q = slice.quantized?.get(name)
  if (!q) {
    const data = getTensor(slice, name).data
    if (data.length !== rows * cols) throw new TabmeshError('model-mismatch', `${name}: ${data.length} values, expected (${rows}, ${cols})`)
    return { name, rows, cols, data }
  }
  if (q.shape[0] !== rows || q.shape[1] !== cols) throw new TabmeshError('model-mismatch', `${name}: quantized shape (${q.shape.join(', ')}) is not (${rows}, ${cols})`)
  if (options.dequantize) return { name, rows, cols, data: dequantizeTensor(q) }
  if (cols % MATMUL_NBITS_BLOCK !== 0) throw new TabmeshError('model-format', `${name}: ${cols} inputs do not fill blocks of ${MATMUL_NBITS_BLOCK}`)
  return { name, rows, cols, quantized: q }
}

/**
 * y (n, sum of rows) = x (n, cols) @ [parts stacked by rows]^T (+ bias (sum of rows)): one product
 * for the fused q/k/v and w1/w3 matrices. Consecutive parts held alike share a weight: fp32 rows
 * go to one Gemm (bias as its C), quantized rows of one type to MatMulNBits nodes (bias as input 5)
 * of at most MATMUL_NBITS_MAX_WEIGHTS weights each; several products are concatenated.
 */
function linear(g: GraphBuilder, label: string, x: string, parts: Matrix[], options: GraphOptions, bias?: Float32Array): string {
  const cols = parts[0].cols
  const kindOf = (m: Matrix) => ('quantized' in m ? m.quantized.type : 'f32')
  const outputs: string[] = []
  let row = 0 // first output row of the current group
  for (let first = 0; first < parts.length;) {
    let last = first + 1
    while (last < parts.length && kindOf(parts[last]) === kindOf(parts[first])) last++
    const group = parts.slice(first, last)
    const rows = group.reduce((n, m) => n + m.rows, 0)
    const name = `${label}${first === 0 && last === parts.length ? '' : `.${first}`}`
    const biasOf = (from: number, count: number) => (bias ? [g.weight(`${name}.bias${from}`, [count], bias.subarray(row + from, row + from + count))] : [])
    if (kindOf(group[0]) === 'f32') {
      const w = g.weight(name, [rows, cols], concatRows(group.map((m) => (m as { data: Float32Array }).data)))
      outputs.push(g.node('Gemm', [x, w, ...biasOf(0, rows)], 1, { transB: 1 })[0])
    } else {
      const packed = packMatMulNBits(group.map((m) => (m as { quantized: QuantizedTensor }).quantized), cols)
      const blocksPerRow = cols / MATMUL_NBITS_BLOCK
      const chunkRows = Math.max(1, Math.floor((options.matMulNBitsMaxWeights ?? MATMUL_NBITS_MAX_WEIGHTS) / cols))
      for (let r = 0; r < rows; r += chunkRows) {
        const n = Math.min(chunkRows, rows - r)
        const codes = g.weight(`${name}.q${r}`, [n, blocksPerRow, packed.blob], packed.codes.subarray(r * blocksPerRow * packed.blob, (r + n) * blocksPerRow * packed.blob))
        const scales = g.weight(`${name}.scales${r}`, [n * blocksPerRow], packed.scales.subarray(r * blocksPerRow, (r + n) * blocksPerRow))
        // inputs: A, B, scales, zero_points (absent: 2^(bits-1)), g_idx (absent), bias
        const inputs = bias ? [x, codes, scales, '', '', ...biasOf(r, n)] : [x, codes, scales]
        outputs.push(g.node('MatMulNBits', inputs, 1, { K: cols, N: n, bits: packed.bits, block_size: MATMUL_NBITS_BLOCK }, 'com.microsoft')[0])
      }
    }
    row += rows
    first = last
  }
  return outputs.length === 1 ? outputs[0] : g.node('Concat', outputs, 1, { axis: -1 })[0]
}

export function buildLayerGraph(slice: ModelSlice, options: GraphOptions = {}): BuiltModel {
  const c = slice.config
  const { start, end } = slice.spec.layers
  const g = createGraphBuilder()
  const w = (l: number, name: LayerTensorName) => getTensor(slice, layerTensorName(l, name)).data
  const matrix = (l: number, name: LayerTensorName, rows: number, cols: number) => sliceMatrix(slice, layerTensorName(l, name), rows, cols, options)
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
    const wqkv = [matrix(l, 'wq', c.dim, c.dim), matrix(l, 'wk', c.kvDim, c.dim), matrix(l, 'wv', c.kvDim, c.dim)]
    const qkv = linear(g, `l${l}.wqkv`, xn, wqkv, options, bias(l))
    const qkv3 = g.node('Unsqueeze', [qkv, axis0], 1)[0]
    const [q, k, v] = g.node('Split', [qkv3, qkvSplit], 3, { axis: 2 })
    const qRot = g.node('RotaryEmbedding', [q, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nHeads })[0]
    const kRot = g.node('RotaryEmbedding', [k, ropeCos, ropeSin, positions], 1, { interleaved: 1, num_heads: c.nKvHeads })[0]
    newKv.push(kRot, v)
    const keys = g.node('ScatterND', [pastKey, slotIndex, kRot], 1)[0]
    const values = g.node('ScatterND', [pastValue, slotIndex, v], 1)[0]
    const att3 = g.node('Attention', [qRot, keys, values, mask], 1, { q_num_heads: c.nHeads, kv_num_heads: c.nKvHeads })[0]
    const att = g.node('Squeeze', [att3, axis0], 1)[0]
    const o = linear(g, `l${l}.wo`, att, [matrix(l, 'wo', c.dim, c.dim)], options)
    x = g.node('Add', [x, o], 1)[0]

    // feed-forward: w2 (silu(w1 x) * w3 x); QuickGelu with alpha 1 is x * sigmoid(x)
    const xn2 = g.node('RMSNormalization', [x, g.weight(`l${l}.ffn_norm`, [c.dim], w(l, 'ffn_norm'))], 1, { axis: -1, epsilon: eps })[0]
    const h = linear(g, `l${l}.w13`, xn2, [matrix(l, 'w1', c.hiddenDim, c.dim), matrix(l, 'w3', c.hiddenDim, c.dim)], options)
    const [h1, h3] = g.node('Split', [h], 2, { axis: 1, num_outputs: 2 })
    const gate = g.node('QuickGelu', [h1], 1, { alpha: { float: 1 } }, 'com.microsoft')[0]
    const gated = g.node('Mul', [gate, h3], 1)[0]
    const ffn = linear(g, `l${l}.w2`, gated, [matrix(l, 'w2', c.dim, c.hiddenDim)], options)
    x = g.node('Add', [x, ffn], 1)[0]
  }
  g.node('Identity', [x], [LAYER_GRAPH_OUTPUT.hidden])
  g.output(LAYER_GRAPH_OUTPUT.hidden, FLOAT, ['n', c.dim])
  g.node('Concat', newKv, [LAYER_GRAPH_OUTPUT.newKv], { axis: 1 })
  g.output(LAYER_GRAPH_OUTPUT.newKv, FLOAT, [1, 'kv_rows', c.kvDim])
  return g.build(`llama_layers_${start}_${end}`)
}

export function buildHeadGraph(slice: ModelSlice, options: GraphOptions = {}): BuiltModel {
  const c = slice.config
  const g = createGraphBuilder()
  const x = g.input(HEAD_GRAPH_INPUT, FLOAT, [1, c.dim])
  const xn = g.node('RMSNormalization', [x, g.weight('final_norm', [c.dim], getTensor(slice, 'final_norm').data)], 1, { axis: -1, epsilon: { float: c.normEps } })[0]
  const logits = linear(g, 'classifier', xn, [sliceMatrix(slice, 'classifier', c.vocabSize, c.dim, options)], options)
  g.node('Identity', [logits], [HEAD_GRAPH_OUTPUT])
  g.output(HEAD_GRAPH_OUTPUT, FLOAT, [1, c.vocabSize])
  return g.build('llama_head')
}
