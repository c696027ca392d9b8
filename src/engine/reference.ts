import { TabmeshError } from '../errors.ts'
import { getTensor, layerTensorName, ropeInverseFrequencies, type ModelConfig, type ModelSlice, type SliceSpec } from '../model/model.ts'
import { quantizedMatvec, type QuantizedTensor } from '../model/quant.ts'
import type { Engine } from './engine.ts'

/**
 * The reference forward pass: plain TypeScript, written for clarity after llama2.c's run.c.
 * It is the oracle every other backend is tested against. Config, weights, state; every buffer is
 * allocated once when the engine is made, nothing per token.
 */

/** A weight matrix (out, in): fp32 values, or Q8_0 / Q4_0 blocks when the slice keeps it quantized. */
export type Matrix = Float32Array | QuantizedTensor

interface LayerWeights {
  attentionNorm: Float32Array // (dim)
  wq: Matrix // (dim, dim)
  wk: Matrix // (kv_dim, dim)
  wv: Matrix // (kv_dim, dim)
  wo: Matrix // (dim, dim)
  ffnNorm: Float32Array // (dim)
  w1: Matrix // (hidden_dim, dim)
  w2: Matrix // (dim, hidden_dim)
  w3: Matrix // (hidden_dim, dim)
  bq?: Float32Array // (dim) Qwen2-style attention bias, when config.attentionBias
  bk?: Float32Array // (kv_dim)
  bv?: Float32Array // (kv_dim)
}

interface Weights {
  tokenEmbedding?: Float32Array // (vocab, dim)
  layers: LayerWeights[] // index l - spec.layers.start
  finalNorm?: Float32Array // (dim)
  classifier?: Matrix // (vocab, dim)
}

interface RunState {
  x: Float32Array // (max_batch, dim) hidden states being computed
  xb: Float32Array // (dim) normed input / attention output
  xb2: Float32Array // (dim)
  hb: Float32Array // (hidden_dim)
  hb2: Float32Array // (hidden_dim)
  q: Float32Array // (dim)
  att: Float32Array // (n_heads, seq_len) attention scores
  logits: Float32Array // (vocab)
  keyCache: Float32Array // (n_range_layers, seq_len, kv_dim)
  valueCache: Float32Array // (n_range_layers, seq_len, kv_dim)
  ropeCos: Float32Array // (seq_len, head_size / 2)
  ropeSin: Float32Array // (seq_len, head_size / 2)
}

export const REFERENCE_MAX_BATCH = 64

function rmsnorm(out: Float32Array, x: Float32Array, xOffset: number, weight: Float32Array, size: number, eps: number): void {
  let ss = 0
  for (let j = 0; j < size; j++) ss += x[xOffset + j] * x[xOffset + j]
  const scale = 1 / Math.sqrt(ss / size + eps)
  for (let j = 0; j < size; j++) out[j] = weight[j] * (scale * x[xOffset + j])
}

/** out (d) = W (d, n) @ x (n) */
export type Matvec = (out: Float32Array, x: Float32Array, w: Matrix, n: number, d: number) => void

export interface ReferenceEngineOptions {
  /** Every weight-matrix product (default: matvec below, fp32 loops and quantizedMatvec): where another backend plugs in its kernels. */
  matvec?: Matvec
}

/** out (d) = W (d, n) @ x (n) */
function matvec(out: Float32Array, x: Float32Array, w: Matrix, n: number, d: number): void {
  if (!(w instanceof Float32Array)) return quantizedMatvec(out, x, w)
  for (let i = 0; i < d; i++) {
    let sum = 0
    const row = i * n
    for (let j = 0; j < n; j++) sum += w[row + j] * x[j]
    out[i] = sum
  }
}

/** Rotates pairs (2i, 2i+1) of each head of vec (n_heads_of_vec * head_size) by the angle for `pos`. */
function rope(vec: Float32Array, vecOffset: number, size: number, headSize: number, pos: number, s: RunState): void {
  const half = headSize / 2
  for (let i = 0; i < size; i += 2) {
    const pair = (i % headSize) / 2
    const cos = s.ropeCos[pos * half + pair]
    const sin = s.ropeSin[pos * half + pair]
    const v0 = vec[vecOffset + i]
    const v1 = vec[vecOffset + i + 1]
    vec[vecOffset + i] = v0 * cos - v1 * sin
    vec[vecOffset + i + 1] = v0 * sin + v1 * cos
  }
}

function softmax(x: Float32Array, offset: number, size: number): void {
  let max = x[offset]
  for (let i = 1; i < size; i++) if (x[offset + i] > max) max = x[offset + i]
  let sum = 0
  for (let i = 0; i < size; i++) {
    const e = Math.exp(x[offset + i] - max)
    x[offset + i] = e
    sum += e
  }
  for (let i = 0; i < size; i++) x[offset + i] /= sum
}

function collectWeights(slice: ModelSlice): Weights {
  const data = (name: string) => getTensor(slice, name).data
  const matrix = (name: string): Matrix => slice.quantized?.get(name) ?? data(name)
  const { start, end } = slice.spec.layers
  const layers: LayerWeights[] = []
  for (let l = start; l < end; l++) {
    const t = (n: Parameters<typeof layerTensorName>[1]) => data(layerTensorName(l, n))
    const m = (n: Parameters<typeof layerTensorName>[1]) => matrix(layerTensorName(l, n))
    const bias = (n: string) => (slice.config.attentionBias ? data(`layers.${l}.${n}`) : undefined)
    layers.push({
      attentionNorm: t('attention_norm'), wq: m('wq'), wk: m('wk'), wv: m('wv'), wo: m('wo'),
      ffnNorm: t('ffn_norm'), w1: m('w1'), w2: m('w2'), w3: m('w3'),
      bq: bias('bq'), bk: bias('bk'), bv: bias('bv'),
    })
  }
  return {
    tokenEmbedding: slice.spec.embedding ? data('token_embedding') : undefined,
    layers,
    finalNorm: slice.spec.head ? data('final_norm') : undefined,
    classifier: slice.spec.head ? matrix('classifier') : undefined,
  }
}

function createRunState(c: ModelConfig, spec: SliceSpec): RunState {
  const nRange = spec.layers.end - spec.layers.start
  const half = c.headSize / 2
  const ropeCos = new Float32Array(c.seqLen * half)
  const ropeSin = new Float32Array(c.seqLen * half)
  const inverseFrequency = ropeInverseFrequencies(c) // (head_size / 2), with the model's RoPE scaling
  for (let pos = 0; pos < c.seqLen; pos++) {
    for (let pair = 0; pair < half; pair++) {
      const angle = Math.fround(pos * inverseFrequency[pair])
      ropeCos[pos * half + pair] = Math.cos(angle)
      ropeSin[pos * half + pair] = Math.sin(angle)
    }
  }
  return {
    x: new Float32Array(REFERENCE_MAX_BATCH * c.dim),
    xb: new Float32Array(c.dim),
    xb2: new Float32Array(c.dim),
    hb: new Float32Array(c.hiddenDim),
    hb2: new Float32Array(c.hiddenDim),
    q: new Float32Array(c.dim),
    att: new Float32Array(c.nHeads * c.seqLen),
    logits: new Float32Array(spec.head ? c.vocabSize : 0),
    keyCache: new Float32Array(nRange * c.seqLen * c.kvDim),
    valueCache: new Float32Array(nRange * c.seqLen * c.kvDim),
    ropeCos, ropeSin,
  }
}

/** One transformer layer (index `li` within the range) for the row of s.x at `row`, position `pos`. */
function layerStep(c: ModelConfig, w: LayerWeights, li: number, s: RunState, row: number, pos: number, mv: Matvec): void {
  const { dim, kvDim, headSize, hiddenDim, seqLen } = c
  const x = s.x
  const xo = row * dim
  const kvMul = c.nHeads / c.nKvHeads // query heads per key/value head
  const cacheOffset = li * seqLen * kvDim + pos * kvDim

  // attention: q, k, v for this position; k and v go straight into the cache
  rmsnorm(s.xb, x, xo, w.attentionNorm, dim, c.normEps)
  mv(s.q, s.xb, w.wq, dim, dim)
  if (w.bq) for (let i = 0; i < dim; i++) s.q[i] += w.bq[i]
  mv(s.xb2, s.xb, w.wk, dim, kvDim)
  if (w.bk) for (let i = 0; i < kvDim; i++) s.xb2[i] += w.bk[i]
  s.keyCache.set(s.xb2.subarray(0, kvDim), cacheOffset)
  mv(s.xb2, s.xb, w.wv, dim, kvDim)
  if (w.bv) for (let i = 0; i < kvDim; i++) s.xb2[i] += w.bv[i]
  s.valueCache.set(s.xb2.subarray(0, kvDim), cacheOffset)
  rope(s.q, 0, dim, headSize, pos, s)
  rope(s.keyCache, cacheOffset, kvDim, headSize, pos, s)

  const layerCache = li * seqLen * kvDim
  const scale = 1 / Math.sqrt(headSize)
  for (let h = 0; h < c.nHeads; h++) {
    const kvHead = Math.floor(h / kvMul)
    const att = h * seqLen
    for (let t = 0; t <= pos; t++) {
      const k = layerCache + t * kvDim + kvHead * headSize
      let score = 0
      for (let i = 0; i < headSize; i++) score += s.q[h * headSize + i] * s.keyCache[k + i]
      s.att[att + t] = score * scale
    }
    softmax(s.att, att, pos + 1)
    const out = h * headSize
    s.xb.fill(0, out, out + headSize)
    for (let t = 0; t <= pos; t++) {
      const v = layerCache + t * kvDim + kvHead * headSize
      const a = s.att[att + t]
      for (let i = 0; i < headSize; i++) s.xb[out + i] += a * s.valueCache[v + i]
    }
  }
  mv(s.xb2, s.xb, w.wo, dim, dim)
  for (let i = 0; i < dim; i++) x[xo + i] += s.xb2[i]

  // feed-forward: w2 (silu(w1 x) * w3 x)
  rmsnorm(s.xb, x, xo, w.ffnNorm, dim, c.normEps)
  mv(s.hb, s.xb, w.w1, dim, hiddenDim)
  mv(s.hb2, s.xb, w.w3, dim, hiddenDim)
  for (let i = 0; i < hiddenDim; i++) {
    const v = s.hb[i]
    s.hb[i] = (v / (1 + Math.exp(-v))) * s.hb2[i]
  }
  mv(s.xb2, s.hb, w.w2, hiddenDim, dim)
  for (let i = 0; i < dim; i++) x[xo + i] += s.xb2[i]
}

export function createReferenceEngine(slice: ModelSlice, options: ReferenceEngineOptions = {}): Engine {
  const c = slice.config
  const mv = options.matvec ?? matvec
  const spec = slice.spec
  const w = collectWeights(slice)
  const s = createRunState(c, spec)

  const checkRows = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < 1 || n > REFERENCE_MAX_BATCH) throw new TabmeshError('bad-argument', `${what}: ${n} rows; between 1 and ${REFERENCE_MAX_BATCH} per call`)
  }

  return {
    backend: 'ref',
    config: c,
    spec,
    async embed(tokens) {
      if (!w.tokenEmbedding) throw new TabmeshError('bad-argument', 'this engine holds no token embedding')
      checkRows(tokens.length, 'embed')
      for (let r = 0; r < tokens.length; r++) {
        const t = tokens[r]
        if (!(t >= 0 && t < c.vocabSize)) throw new TabmeshError('bad-argument', `token id ${t} is outside the vocabulary`)
        s.x.set(w.tokenEmbedding.subarray(t * c.dim, (t + 1) * c.dim), r * c.dim)
      }
      return s.x.subarray(0, tokens.length * c.dim)
    },
    async forward(hidden, positions) {
      const n = positions.length
      checkRows(n, 'forward')
      if (hidden.length !== n * c.dim) throw new TabmeshError('bad-argument', `forward: hidden has ${hidden.length} values, expected ${n} x ${c.dim}`)
      for (const pos of positions) {
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
      }
      if (hidden.buffer !== s.x.buffer || hidden.byteOffset !== 0) s.x.set(hidden)
      // layer by layer over all rows: each row writes its own cache slot before later rows read it
      for (let li = 0; li < w.layers.length; li++) {
        for (let r = 0; r < n; r++) layerStep(c, w.layers[li], li, s, r, positions[r], mv)
      }
      return s.x.subarray(0, n * c.dim)
    },
    async head(hidden) {
      if (!w.finalNorm || !w.classifier) throw new TabmeshError('bad-argument', 'this engine holds no classifier')
      if (hidden.length === 0 || hidden.length % c.dim !== 0) throw new TabmeshError('bad-argument', `head: hidden has ${hidden.length} values, not a multiple of ${c.dim}`)
      rmsnorm(s.xb, hidden, hidden.length - c.dim, w.finalNorm, c.dim, c.normEps)
      mv(s.logits, s.xb, w.classifier, c.dim, c.vocabSize)
      return s.logits
    },
    async reset() {
      s.keyCache.fill(0)
      s.valueCache.fill(0)
    },
  }
}
