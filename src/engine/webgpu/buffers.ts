import { TabmeshError } from '../../core/errors.ts'
import { getTensor, layerTensorName, type LayerBiasName, type LayerTensorName, type ModelSlice } from '../../model/model.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, type QuantizedTensor, type QuantType } from '../../model/quant/index.ts'
import { ropeInverseFrequencies, ropeTable } from '../rope.ts'
import { KERNEL_LIMITS } from './kernels.ts'

/**
 * The WebGPU engine's GPU memory, made once with the engine (engine.ts): the weights (matrices
 * split by rows into blocks that each fit one storage binding; Q8_0 / Q4_0 matrices kept as their
 * blocks, no fp32 copy), each layer's KV cache (one or several slots of seq_len positions), the
 * scratch one call works in, the RoPE cos/sin table and the read-back buffer. Every buffer made is
 * pushed onto the caller's list, which frees them (also when making them fails half way).
 */

/** A weight matrix, split by rows into blocks that each fit one storage binding. */
export interface MatrixChunk {
  buffer: GPUBuffer // (rowCount, cols) fp32, or (rowCount, cols / 32) blocks when quant is set
  rowStart: number
  rowCount: number
  quant?: QuantType
}

export interface LayerBuffers {
  attentionNorm: GPUBuffer // (dim)
  wq: MatrixChunk[] // (dim, dim)
  wk: MatrixChunk[] // (kv_dim, dim)
  wv: MatrixChunk[] // (kv_dim, dim)
  wo: MatrixChunk[] // (dim, dim)
  ffnNorm: GPUBuffer // (dim)
  w1: MatrixChunk[] // (hidden_dim, dim)
  w2: MatrixChunk[] // (dim, hidden_dim)
  w3: MatrixChunk[] // (hidden_dim, dim)
  bias?: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer } // (dim), (kv_dim), (kv_dim) when config.attentionBias
  keyCache: GPUBuffer // (cache_slots, seq_len, kv_dim)
  valueCache: GPUBuffer // (cache_slots, seq_len, kv_dim)
}

export interface BufferSizes {
  /** Rows per call (WEBGPU_MAX_BATCH): the scratch holds this many. */
  maxBatch: number
  /** Attention chunks per head at the full context (ceil(seq_len / attentionChunk)). */
  maxChunks: number
  /** Largest weight block per storage binding, in bytes. */
  maxBindingBytes: number
  /**
   * KV cache slots of seq_len positions per layer (default 1). With more than one, the positions
   * buffer also holds each row's cache base (slot * seq_len) after its maxBatch positions.
   */
  cacheSlots?: number
}

/** Every buffer of the engine, and the bytes of those holding weights. */
export type EngineBuffers = ReturnType<typeof createEngineBuffers>

/** Makes and uploads every buffer the engine uses for `slice`; each one is pushed onto allBuffers. */
export function createEngineBuffers(device: GPUDevice, slice: ModelSlice, sizes: BufferSizes, allBuffers: GPUBuffer[]) {
  const c = slice.config
  const spec = slice.spec
  const { maxChunks, maxBindingBytes } = sizes
  const cacheSlots = sizes.cacheSlots ?? 1

  const S = GPUBufferUsage.STORAGE
  let weightBytes = 0
  const buffer = (label: string, bytes: number, usage: number) => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage })
    allBuffers.push(b)
    return b
  }
  const upload = (label: string, data: Float32Array | Uint8Array) => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage: S, mappedAtCreation: true })
    allBuffers.push(b)
    new (data.constructor as typeof Uint8Array)(b.getMappedRange()).set(data as Uint8Array)
    b.unmap()
    return b
  }
  const uploadWeight = (label: string, data: Float32Array | Uint8Array) => {
    const b = upload(label, data)
    weightBytes += b.size
    return b
  }
  // a shared classifier is the embedding's own Float32Array: upload it once
  const uploaded = new Map<Float32Array | Uint8Array, MatrixChunk[]>()
  const uploadMatrix = (label: string, data: Float32Array | QuantizedTensor, rows: number, cols: number): MatrixChunk[] => {
    const quant = data instanceof Float32Array ? undefined : data
    const values = quant ? quant.blocks : (data as Float32Array) // (rows, row bytes) as bytes or floats
    const known = uploaded.get(values)
    if (known) return known
    if (quant && (quant.shape[0] !== rows || quant.shape[1] !== cols)) {
      throw new TabmeshError('model-format', `${label}: quantized shape (${quant.shape.join(', ')}) is not (${rows}, ${cols})`)
    }
    const rowBytes = quant ? (cols / QUANT_BLOCK_SIZE) * QUANT_BLOCK_BYTES[quant.type] : cols * 4
    const perRow = quant ? rowBytes : cols // elements of `values` per row
    const rowsPerChunk = Math.min(Math.floor(maxBindingBytes / rowBytes), KERNEL_LIMITS.matvecOutputsPerWorkgroup * KERNEL_LIMITS.maxWorkgroupsPerDimension)
    if (rowsPerChunk < 1) throw new TabmeshError('backend', `one row of ${label} (${rowBytes} bytes) is larger than a storage binding (${maxBindingBytes} bytes)`)
    const chunks: MatrixChunk[] = []
    for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
      const rowCount = Math.min(rowsPerChunk, rows - rowStart)
      const buffer = uploadWeight(`${label}[${rowStart}..]`, values.subarray(rowStart * perRow, (rowStart + rowCount) * perRow))
      chunks.push({ buffer, rowStart, rowCount, quant: quant?.type })
    }
    uploaded.set(values, chunks)
    return chunks
  }
  /** A matrix of the slice: its blocks when the slice holds it quantized, else its fp32 values. */
  const matrix = (name: string): Float32Array | QuantizedTensor => slice.quantized?.get(name) ?? getTensor(slice, name).data

  const B = sizes.maxBatch
  const { dim, kvDim, hiddenDim, headSize, nHeads } = c
  const io = GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC
  const state = {
    x: buffer('x', B * dim * 4, S | io), // (64, dim) the residual stream
    xb: buffer('xb', B * dim * 4, S), // (64, dim) normed input / attention output
    xb2: buffer('xb2', B * dim * 4, S), // (64, dim) projection output before the residual add
    q: buffer('q', B * dim * 4, S), // (64, dim)
    k: buffer('k', B * kvDim * 4, S | io), // (64, kv_dim) new keys, copied into the cache
    v: buffer('v', B * kvDim * 4, S | io), // (64, kv_dim) new values
    hb: buffer('hb', B * hiddenDim * 4, S), // (64, hidden_dim)
    hb2: buffer('hb2', B * hiddenDim * 4, S), // (64, hidden_dim)
    partO: buffer('attention partial outputs', B * nHeads * maxChunks * headSize * 4, S), // (64, n_heads, max_chunks, head_size)
    partML: buffer('attention partial max/sum', B * nHeads * maxChunks * 2 * 4, S), // (64, n_heads, max_chunks, 2)
    positions: buffer('positions', (cacheSlots > 1 ? 2 * B : B) * 4, S | GPUBufferUsage.COPY_DST), // (64) u32, then (64) u32 cache bases with several slots
    tokens: buffer('tokens', B * 4, S | GPUBufferUsage.COPY_DST), // (64) u32
    cosSin: upload('rope cos/sin', ropeTable(c.seqLen, ropeInverseFrequencies(c))), // (seq_len, head_size / 2, 2)
    logits: buffer('logits', (spec.head ? c.vocabSize : 1) * 4, S | GPUBufferUsage.COPY_SRC), // (vocab)
    best: buffer('argmax', 4, S | GPUBufferUsage.COPY_SRC), // (1) u32
    // (seq_len, kv_dim) one layer's keys or values of one slot on their way to another (a buffer cannot be copied into itself)
    cacheCopy: cacheSlots > 1 ? buffer('kv cache copy', c.seqLen * kvDim * 4, io) : undefined,
    readback: buffer('readback', Math.max(B * dim, spec.head ? c.vocabSize : 0) * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
  }
  const layers: LayerBuffers[] = []
  for (let l = spec.layers.start; l < spec.layers.end; l++) {
    const t = (n: LayerTensorName) => getTensor(slice, layerTensorName(l, n)).data
    const m = (n: LayerTensorName, rows: number, cols: number) => uploadMatrix(`layers.${l}.${n}`, matrix(layerTensorName(l, n)), rows, cols)
    const bias = (n: LayerBiasName, width: number) => {
      const name = `layers.${l}.${n}`
      const data = slice.tensors.get(name)?.data
      if (data?.length !== width) throw new TabmeshError('model-format', `${name} ${data ? `has ${data.length} values` : 'is missing'}; config.attentionBias needs ${width}`)
      return uploadWeight(name, data)
    }
    layers.push({
      attentionNorm: uploadWeight(`layers.${l}.attention_norm`, t('attention_norm')),
      wq: m('wq', dim, dim), wk: m('wk', kvDim, dim), wv: m('wv', kvDim, dim), wo: m('wo', dim, dim),
      ffnNorm: uploadWeight(`layers.${l}.ffn_norm`, t('ffn_norm')),
      w1: m('w1', hiddenDim, dim), w2: m('w2', dim, hiddenDim), w3: m('w3', hiddenDim, dim),
      bias: c.attentionBias ? { q: bias('bq', dim), k: bias('bk', kvDim), v: bias('bv', kvDim) } : undefined,
      keyCache: buffer(`layers.${l}.key_cache`, cacheSlots * c.seqLen * kvDim * 4, S | io),
      valueCache: buffer(`layers.${l}.value_cache`, cacheSlots * c.seqLen * kvDim * 4, S | io),
    })
  }
  const embedding = spec.embedding ? uploadMatrix('token_embedding', getTensor(slice, 'token_embedding').data, c.vocabSize, dim) : []
  const head = spec.head
    ? { finalNorm: uploadWeight('final_norm', getTensor(slice, 'final_norm').data), classifier: uploadMatrix('classifier', matrix('classifier'), c.vocabSize, dim) }
    : undefined
  // where the attention kernels find the rows' cache bases in state.positions (0: none, one slot)
  const cacheBases = cacheSlots > 1 ? B : 0
  return { state, layers, embedding, head, weightBytes, cacheBases }
}
