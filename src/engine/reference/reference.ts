import { TabmeshError } from '../../core/errors.ts'
import type { BackendName } from '../../core/vocabulary.ts'
import { getTensor, layerTensorName, type ModelConfig, type ModelSlice, type SliceSpec } from '../../model/model.ts'
import type { QuantizedTensor } from '../../model/quant/index.ts'
import { quantizedMatvec } from './quant-matvec.ts'
import { checkBatch, type BatchEngine, type Engine } from '../engine.ts'
import { ropeInverseFrequencies, ropeTable } from '../rope.ts'

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
  xb: Float32Array // (max_batch, dim) normed input / attention output
  xb2: Float32Array // (max_batch, dim) projection output before the residual add
  hb: Float32Array // (max_batch, hidden_dim)
  hb2: Float32Array // (max_batch, hidden_dim)
  q: Float32Array // (max_batch, dim)
  k: Float32Array // (max_batch, kv_dim) new keys, before they go to the cache
  v: Float32Array // (max_batch, kv_dim) new values
  att: Float32Array // (n_heads, seq_len) attention scores
  logits: Float32Array // (vocab)
  rows: KvCache[] // (max_batch) the KV cache of each row of the call
  rope: Float32Array // (seq_len, head_size / 2, 2) cos, sin of each (position, pair): ropeTable
}

export const REFERENCE_MAX_BATCH = 64

/** One session's KV cache slot: keys and values of every held layer. */
interface KvCache {
  keys: Float32Array // (n_range_layers, length, kv_dim)
  values: Float32Array // (n_range_layers, length, kv_dim)
  length: number // positions per layer
}

function rmsnorm(out: Float32Array, outOffset: number, x: Float32Array, xOffset: number, weight: Float32Array, size: number, eps: number): void {
  let ss = 0
  for (let j = 0; j < size; j++) ss += x[xOffset + j] * x[xOffset + j]
  const scale = 1 / Math.sqrt(ss / size + eps)
  for (let j = 0; j < size; j++) out[outOffset + j] = weight[j] * (scale * x[xOffset + j])
}

/**
 * out (rows, d) = x (rows, n) @ W^T for W (d, n): every weight-matrix product of the forward pass,
 * the rows of one call together (a kernel may read the weights once for all of them). x and out
 * may be longer than rows x n and rows x d; the first values are used.
 */
export type Matmul = (out: Float32Array, x: Float32Array, w: Matrix, n: number, d: number, rows: number) => void

export interface ReferenceEngineOptions {
  /** Where another backend plugs in its kernels (default: matmul below, fp32 loops and quantizedMatvec, a row at a time). */
  matmul?: Matmul
}

function matmul(out: Float32Array, x: Float32Array, w: Matrix, n: number, d: number, rows: number): void {
  for (let r = 0; r < rows; r++) {
    if (!(w instanceof Float32Array)) {
      quantizedMatvec(out, x, w, r * d, r * n)
      continue
    }
  }
  if (!(w instanceof Float32Array)) return
  // each weight row is read once for every row of the call
  for (let i = 0; i < d; i++) {
    const row = i * n
    for (let r = 0; r < rows; r++) {
      let sum = 0
      const xr = r * n
      for (let j = 0; j < n; j++) sum += w[row + j] * x[xr + j]
      out[r * d + i] = sum
    }
  }
}

/** Rotates pairs (2i, 2i+1) of each head of vec (n_heads_of_vec * head_size) by the angle for `pos`. */
function rope(vec: Float32Array, vecOffset: number, size: number, headSize: number, pos: number, s: RunState): void {
  const half = headSize / 2
  for (let i = 0; i < size; i += 2) {
    const pair = (i % headSize) / 2
    const cos = s.rope[(pos * half + pair) * 2]
    const sin = s.rope[(pos * half + pair) * 2 + 1]
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
  return {
    x: new Float32Array(REFERENCE_MAX_BATCH * c.dim),
    xb: new Float32Array(REFERENCE_MAX_BATCH * c.dim),
    xb2: new Float32Array(REFERENCE_MAX_BATCH * c.dim),
    hb: new Float32Array(REFERENCE_MAX_BATCH * c.hiddenDim),
    hb2: new Float32Array(REFERENCE_MAX_BATCH * c.hiddenDim),
    q: new Float32Array(REFERENCE_MAX_BATCH * c.dim),
    k: new Float32Array(REFERENCE_MAX_BATCH * c.kvDim),
    v: new Float32Array(REFERENCE_MAX_BATCH * c.kvDim),
    att: new Float32Array(c.nHeads * c.seqLen),
    logits: new Float32Array(spec.head ? c.vocabSize : 0),
    rows: new Array<KvCache>(REFERENCE_MAX_BATCH),
    rope: ropeTable(c.seqLen, ropeInverseFrequencies(c)), // with the model's RoPE scaling
  }
}

/** Adds bias (size) to every one of `rows` rows of v (rows, size). */
function addBias(v: Float32Array, bias: Float32Array | undefined, size: number, rows: number): void {
  if (!bias) return
  for (let r = 0; r < rows; r++) for (let i = 0; i < size; i++) v[r * size + i] += bias[i]
}

/**
 * One transformer layer (index `li` within the held range) over the first `rows` rows of s.x, at
 * `positions`, row r in KV cache s.rows[r]. The matrix products take all rows at once (one read of
 * the weights); each row then writes its key and value into its cache and attends, in row order, so
 * a row sees the positions the rows of its cache before it wrote.
 */
function layer(c: ModelConfig, w: LayerWeights, li: number, s: RunState, positions: Int32Array, rows: number, mm: Matmul): void {
  const { dim, kvDim, headSize, hiddenDim, seqLen } = c
  const x = s.x
  const kvMul = c.nHeads / c.nKvHeads // query heads per key/value head

  // attention: q, k, v of every row
  for (let r = 0; r < rows; r++) rmsnorm(s.xb, r * dim, x, r * dim, w.attentionNorm, dim, c.normEps)
  mm(s.q, s.xb, w.wq, dim, dim, rows)
  addBias(s.q, w.bq, dim, rows)
  mm(s.k, s.xb, w.wk, dim, kvDim, rows)
  addBias(s.k, w.bk, kvDim, rows)
  mm(s.v, s.xb, w.wv, dim, kvDim, rows)
  addBias(s.v, w.bv, kvDim, rows)

  const scale = 1 / Math.sqrt(headSize)
  for (let r = 0; r < rows; r++) {
    const pos = positions[r]
    const { keys, values, length } = s.rows[r]
    const layerCache = li * length * kvDim
    const cacheOffset = layerCache + pos * kvDim
    const qo = r * dim
    for (let i = 0; i < kvDim; i++) {
      keys[cacheOffset + i] = s.k[r * kvDim + i]
      values[cacheOffset + i] = s.v[r * kvDim + i]
    }
    rope(s.q, qo, dim, headSize, pos, s)
    rope(keys, cacheOffset, kvDim, headSize, pos, s)
    for (let h = 0; h < c.nHeads; h++) {
      const kvHead = Math.floor(h / kvMul)
      const att = h * seqLen
      for (let t = 0; t <= pos; t++) {
        const k = layerCache + t * kvDim + kvHead * headSize
        let score = 0
        for (let i = 0; i < headSize; i++) score += s.q[qo + h * headSize + i] * keys[k + i]
        s.att[att + t] = score * scale
      }
      softmax(s.att, att, pos + 1)
      const out = qo + h * headSize // the row's attention output goes to its row of xb
      s.xb.fill(0, out, out + headSize)
      for (let t = 0; t <= pos; t++) {
        const v = layerCache + t * kvDim + kvHead * headSize
        const a = s.att[att + t]
        for (let i = 0; i < headSize; i++) s.xb[out + i] += a * values[v + i]
      }
    }
  }
  mm(s.xb2, s.xb, w.wo, dim, dim, rows)
  for (let i = 0; i < rows * dim; i++) x[i] += s.xb2[i]

  // feed-forward: w2 (silu(w1 x) * w3 x)
  for (let r = 0; r < rows; r++) rmsnorm(s.xb, r * dim, x, r * dim, w.ffnNorm, dim, c.normEps)
  mm(s.hb, s.xb, w.w1, dim, hiddenDim, rows)
  mm(s.hb2, s.xb, w.w3, dim, hiddenDim, rows)
  for (let i = 0; i < rows * hiddenDim; i++) {
    const v = s.hb[i]
    s.hb[i] = (v / (1 + Math.exp(-v))) * s.hb2[i]
  }
  mm(s.xb2, s.hb, w.w2, hiddenDim, dim, rows)
  for (let i = 0; i < rows * dim; i++) x[i] += s.xb2[i]
}

export interface ReferenceBatchEngine extends BatchEngine {
  /** Token ids (n) -> hidden (n, dim), when the slice holds the embedding. */
  embed(tokens: Int32Array): Float32Array
  /** Final norm and classifier on the last row of hidden, when the slice holds the head. */
  head(hidden: Float32Array): Float32Array
}

/**
 * The reference forward pass over many sessions: every row of a call goes through each weight
 * matrix together, each row attends over its own session's KV cache slot. Slots are allocated when
 * opened (per session, never per token) and the weights are the slice's, shared by every slot.
 */
export function createReferenceBatchEngine(slice: ModelSlice, options: ReferenceEngineOptions & { maxCaches?: number; backend?: BackendName } = {}): ReferenceBatchEngine {
  const c = slice.config
  const mm = options.matmul ?? matmul
  const spec = slice.spec
  const held = spec.layers
  const nRange = held.end - held.start
  const maxCaches = options.maxCaches ?? 256
  const w = collectWeights(slice)
  const s = createRunState(c, spec)
  const slots = new Map<number, KvCache>()
  let nextSlot = 0

  const checkRows = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < 1 || n > REFERENCE_MAX_BATCH) throw new TabmeshError('bad-argument', `${what}: ${n} rows; between 1 and ${REFERENCE_MAX_BATCH} per call`)
  }
  const engine: ReferenceBatchEngine = {
    backend: options.backend ?? 'ref',
    config: c,
    layers: held,
    maxRows: REFERENCE_MAX_BATCH,
    cacheBytes: (maxLength) => 2 * nRange * maxLength * c.kvDim * 4,
    async openCache(maxLength) {
      if (!(Number.isInteger(maxLength) && maxLength >= 1 && maxLength <= c.seqLen)) throw new TabmeshError('bad-argument', `a KV cache of ${maxLength} positions; 1..${c.seqLen}`)
      if (slots.size >= maxCaches) throw new TabmeshError('refused', `all ${maxCaches} KV cache slots are in use`)
      while (slots.has(nextSlot)) nextSlot = (nextSlot + 1) % maxCaches
      const size = nRange * maxLength * c.kvDim
      slots.set(nextSlot, { keys: new Float32Array(size), values: new Float32Array(size), length: maxLength })
      return nextSlot
    },
    async closeCache(slot) {
      slots.delete(slot)
    },
    async copyCache(from, to, length) {
      const a = slots.get(from)
      const b = slots.get(to)
      if (!a || !b) throw new TabmeshError('bad-argument', `copyCache: slot ${a ? to : from} is not open`)
      if (!(length >= 0 && length <= a.length && length <= b.length)) throw new TabmeshError('bad-argument', `copyCache: ${length} positions do not fit slots of ${a.length} and ${b.length}`)
      for (let li = 0; li < nRange; li++) {
        b.keys.set(a.keys.subarray(li * a.length * c.kvDim, (li * a.length + length) * c.kvDim), li * b.length * c.kvDim)
        b.values.set(a.values.subarray(li * a.length * c.kvDim, (li * a.length + length) * c.kvDim), li * b.length * c.kvDim)
      }
    },
    async forwardBatch(hidden, caches, positions, range) {
      const r = checkBatch(engine, hidden, caches, positions, range, (slot) => slots.get(slot)?.length)
      const n = positions.length
      for (let i = 0; i < n; i++) s.rows[i] = slots.get(caches[i])!
      if (hidden.buffer !== s.x.buffer || hidden.byteOffset !== 0) s.x.set(hidden)
      for (let li = r.start - held.start; li < r.end - held.start; li++) layer(c, w.layers[li], li, s, positions, n, mm)
      return s.x.subarray(0, n * c.dim)
    },
    embed(tokens) {
      if (!w.tokenEmbedding) throw new TabmeshError('bad-argument', 'this engine holds no token embedding')
      checkRows(tokens.length, 'embed')
      for (let r = 0; r < tokens.length; r++) {
        const t = tokens[r]
        if (!(t >= 0 && t < c.vocabSize)) throw new TabmeshError('bad-argument', `token id ${t} is outside the vocabulary`)
        s.x.set(w.tokenEmbedding.subarray(t * c.dim, (t + 1) * c.dim), r * c.dim)
      }
      return s.x.subarray(0, tokens.length * c.dim)
    },
    head(hidden) {
      if (!w.finalNorm || !w.classifier) throw new TabmeshError('bad-argument', 'this engine holds no classifier')
      if (hidden.length === 0 || hidden.length % c.dim !== 0) throw new TabmeshError('bad-argument', `head: hidden has ${hidden.length} values, not a multiple of ${c.dim}`)
      rmsnorm(s.xb, 0, hidden, hidden.length - c.dim, w.finalNorm, c.dim, c.normEps)
      mm(s.logits, s.xb, w.classifier, c.dim, c.vocabSize, 1)
      return s.logits
    },
  }
  return engine
}

/**
 * One session over a batch engine: its own KV cache slot (seq_len positions), forward() a batch of
 * one session's rows. `embed` and `head` come from whoever holds them.
 */
export async function sessionOverBatch(batch: BatchEngine, spec: SliceSpec, parts: Pick<Engine, 'embed' | 'head'>): Promise<Engine & { close(): void }> {
  const c = batch.config
  const slot = spec.layers.end > spec.layers.start ? await batch.openCache(c.seqLen) : -1
  let caches = new Int32Array(0)
  return {
    backend: batch.backend,
    config: c,
    spec,
    embed: parts.embed,
    async forward(hidden, positions) {
      const n = positions.length
      if (slot < 0) {
        if (hidden.length !== n * c.dim) throw new TabmeshError('bad-argument', `forward: hidden has ${hidden.length} values, expected ${n} x ${c.dim}`)
        return hidden
      }
      if (caches.length !== n) caches = new Int32Array(n).fill(slot) // one per row count in use, not per token
      for (let i = 1; i < n; i++) {
        if (positions[i] <= positions[i - 1]) throw new TabmeshError('bad-argument', `forward: positions must increase within a call (${positions[i - 1]} then ${positions[i]})`)
      }
      for (const pos of positions) {
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
      }
      return batch.forwardBatch(hidden, caches, positions, spec.layers)
    },
    head: parts.head,
    async reset() {
      // nothing to clear: a row reads only positions at or below its own, which its session wrote
    },
    close() {
      if (slot >= 0) void batch.closeCache(slot)
    },
  }
}

export function createReferenceEngine(slice: ModelSlice, options: ReferenceEngineOptions = {}): Engine {
  const batch = createReferenceBatchEngine(slice, { ...options, maxCaches: 1 })
  const c = slice.config
  const spec = slice.spec
  let session: Engine | undefined
  return {
    backend: 'ref',
    config: c,
    spec,
    embed: async (tokens) => batch.embed(tokens),
    async forward(hidden, positions) {
      const n = positions.length
      if (!Number.isInteger(n) || n < 1 || n > REFERENCE_MAX_BATCH) throw new TabmeshError('bad-argument', `forward: ${n} rows; between 1 and ${REFERENCE_MAX_BATCH} per call`)
      if (hidden.length !== n * c.dim) throw new TabmeshError('bad-argument', `forward: hidden has ${hidden.length} values, expected ${n} x ${c.dim}`)
      for (const pos of positions) {
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
      }
      session ??= await sessionOverBatch(batch, spec, { embed: async () => new Float32Array(0), head: async () => new Float32Array(0) })
      return session.forward(hidden, positions)
    },
    head: async (hidden) => batch.head(hidden),
    async reset() {},
  }
}
