import { TabmeshError } from '../../core/errors.ts'
import { getTensor, layerTensorName, ropeInverseFrequencies, type LayerBiasName, type LayerTensorName, type ModelConfig, type ModelSlice } from '../../model/model.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, type QuantizedTensor, type QuantType } from '../../model/quant/quant.ts'
import type { Engine } from '../engine.ts'
import { requestWebGpuDevice, watchDevice, withErrorScopes } from './device.ts'
import { createKernels, encodeDispatches, KERNEL_LIMITS, type KernelDispatch, type Kernels, type LinearKernel } from './kernels.ts'
import { ropeTable } from '../../../testing/webgpu-twins.ts'

/**
 * The WebGPU engine: llama2.c's forward pass as WGSL kernels (shaders/). Weights, KV cache and scratch
 * live on the GPU for the engine's lifetime; every buffer and bind group is made here, once. A call
 * uploads its inputs, records every layer into one command encoder, submits it, and reads back only
 * its result (the hidden state, or the logits). One row is decode (matvec, attention_decode); more
 * rows are prefill (matmul, attention_prefill). Matrices the slice holds quantized (slice.quantized,
 * Q8_0 / Q4_0) stay in their blocks on the GPU and run through matvec_q8_0 / matvec_q4_0 (decode) and
 * matmul_q8_0 / matmul_q4_0 (prefill); no fp32 copy of them is made. Llama-family variations: RoPE
 * scaling lives in the cos/sin table (ropeInverseFrequencies, as the reference engine), Qwen2's q/k/v
 * biases are added by bias_add after their projections, before RoPE.
 */

export const WEBGPU_MAX_BATCH = 64
const DEFAULT_ATTENTION_CHUNK = 256

export interface WebGpuEngineOptions {
  /** The device to use; without one the engine requests its own (and destroys it with itself). */
  device?: GPUDevice
  /** Largest weight block per storage binding, in bytes; defaults to the device limits. Smaller splits weights (tests). */
  maxBindingBytes?: number
  /** Cached positions per attention workgroup (1..256); longer contexts are split into chunks and merged. */
  attentionChunk?: number
}

export interface WebGpuEngine extends Engine {
  readonly backend: 'webgpu'
  readonly device: GPUDevice
  /** Greedy pick on the GPU: final norm, classifier and argmax over the last row; reads back 4 bytes. */
  headArgmax(hidden: Float32Array): Promise<number>
  /** Bytes of GPU buffers holding weights (matrices, norms): quantized matrices count at their block size. */
  readonly weightBytes: number
  /** Frees every GPU buffer (and the device, when the engine made it). The engine is unusable after. */
  destroy(): void
}

/** A weight matrix, split by rows into blocks that each fit one storage binding. */
interface MatrixChunk {
  buffer: GPUBuffer // (rowCount, cols) fp32, or (rowCount, cols / 32) blocks when quant is set
  rowStart: number
  rowCount: number
  quant?: QuantType
}

interface LayerBuffers {
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
  keyCache: GPUBuffer // (seq_len, kv_dim)
  valueCache: GPUBuffer // (seq_len, kv_dim)
}

/** The dispatches of one layer: before the new keys and values are copied into the cache, and after. */
interface LayerPlan {
  beforeCache: KernelDispatch[]
  afterCache: KernelDispatch[]
}

const QUANT_KERNELS = {
  matvec: { q8_0: 'matvecQ8_0', q4_0: 'matvecQ4_0' },
  matmul: { q8_0: 'matmulQ8_0', q4_0: 'matmulQ4_0' },
} as const satisfies Record<'matvec' | 'matmul', Record<QuantType, LinearKernel>>

const linearKernel = (mode: 'matvec' | 'matmul', quant: QuantType | undefined): LinearKernel => (quant ? QUANT_KERNELS[mode][quant] : mode)

function checkSupported(slice: ModelSlice, chunk: number): void {
  const c = slice.config
  const unsupported = (why: string) => new TabmeshError('backend', `the webgpu engine cannot run this model: ${why}`)
  if (c.dim % 4 || c.hiddenDim % 4 || c.headSize % 4) throw unsupported(`dim (${c.dim}), hidden_dim (${c.hiddenDim}) and head size (${c.headSize}) must be multiples of 4 (vec4 kernels)`)
  if (c.headSize > KERNEL_LIMITS.maxPrefillHeadSize) throw unsupported(`head size ${c.headSize} is above ${KERNEL_LIMITS.maxPrefillHeadSize}`)
  if (c.nHeads % c.nKvHeads) throw unsupported(`n_heads ${c.nHeads} is not a multiple of n_kv_heads ${c.nKvHeads}`)
  if (!ropeInverseFrequencies(c).every(Number.isFinite)) throw new TabmeshError('model-format', `the RoPE scaling ${JSON.stringify(c.ropeScaling)} gives non-finite frequencies for head size ${c.headSize}`)
  for (const [name, q] of slice.quantized ?? []) {
    if (name === 'token_embedding') throw unsupported('a quantized token embedding is not implemented (the embedding kernel reads fp32)')
    if (q.type !== 'q8_0' && q.type !== 'q4_0') throw unsupported(`${name} is ${String(q.type)}; the quantized kernels read Q8_0 and Q4_0`)
    if (q.shape[1] % QUANT_BLOCK_SIZE) throw new TabmeshError('model-format', `${name}: rows of ${q.shape[1]} inputs are not whole blocks of ${QUANT_BLOCK_SIZE}`)
  }
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > KERNEL_LIMITS.maxAttentionChunk) throw new TabmeshError('bad-argument', `attentionChunk must be 1..${KERNEL_LIMITS.maxAttentionChunk}, got ${chunk}`)
}

export async function createWebGpuEngine(slice: ModelSlice, options: WebGpuEngineOptions = {}): Promise<WebGpuEngine> {
  const c: ModelConfig = slice.config
  const spec = slice.spec
  const chunk = options.attentionChunk ?? DEFAULT_ATTENTION_CHUNK
  checkSupported(slice, chunk)
  const device = options.device ?? (await requestWebGpuDevice())
  const ownDevice = !options.device
  if (device.limits.maxComputeWorkgroupStorageSize < 16384 || device.limits.maxStorageBuffersPerShaderStage < 6) {
    throw new TabmeshError('webgpu-unavailable', 'this WebGPU device is below the limits the kernels need (16 KiB workgroup storage, 6 storage buffers per stage)')
  }
  const watch = watchDevice(device)
  const maxBindingBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, options.maxBindingBytes ?? Infinity)

  const allBuffers: GPUBuffer[] = []
  let kernels: Kernels | undefined
  const destroyAll = () => {
    for (const b of allBuffers) b.destroy()
    kernels?.arena.destroy()
    if (ownDevice) device.destroy()
  }

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

  const B = WEBGPU_MAX_BATCH
  const maxChunks = Math.ceil(c.seqLen / chunk)
  const { dim, kvDim, hiddenDim, headSize, nHeads } = c

  const build = () => {
    try {
      const k = createKernels(device)
      kernels = k
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
        positions: buffer('positions', B * 4, S | GPUBufferUsage.COPY_DST), // (64) u32
        tokens: buffer('tokens', B * 4, S | GPUBufferUsage.COPY_DST), // (64) u32
        cosSin: upload('rope cos/sin', ropeTable(c.seqLen, ropeInverseFrequencies(c))), // (seq_len, head_size / 2, 2)
        logits: buffer('logits', (spec.head ? c.vocabSize : 1) * 4, S | GPUBufferUsage.COPY_SRC), // (vocab)
        best: buffer('argmax', 4, S | GPUBufferUsage.COPY_SRC), // (1) u32
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
          keyCache: buffer(`layers.${l}.key_cache`, c.seqLen * kvDim * 4, S | GPUBufferUsage.COPY_DST),
          valueCache: buffer(`layers.${l}.value_cache`, c.seqLen * kvDim * 4, S | GPUBufferUsage.COPY_DST),
        })
      }
      const embedding = spec.embedding ? uploadMatrix('token_embedding', getTensor(slice, 'token_embedding').data, c.vocabSize, dim) : []
      const head = spec.head
        ? { finalNorm: uploadWeight('final_norm', getTensor(slice, 'final_norm').data), classifier: uploadMatrix('classifier', matrix('classifier'), c.vocabSize, dim) }
        : undefined

      // dispatch plans, bound once
      // each chunk picks the kernel for its format: decode (matvec) or prefill (matmul), fp32 or blocks
      const linear = (mode: 'matvec' | 'matmul', w: MatrixChunk[], x: GPUBuffer, y: GPUBuffer, kIn: number, yStride: number) =>
        w.map((ch) => k[linearKernel(mode, ch.quant)]({ w: ch.buffer, x, y, n: ch.rowCount, k: kIn, rowOffset: ch.rowStart, yStride }))
      // the q, k, v projections, each followed by its bias when the model has them
      const projection = (mode: 'matvec' | 'matmul', w: MatrixChunk[], bias: GPUBuffer | undefined, y: GPUBuffer, width: number) =>
        [...linear(mode, w, state.xb, y, dim, width), ...(bias ? [k.biasAdd({ x: y, bias, width })] : [])]
      const layerPlan = (lb: LayerBuffers, decode: boolean): LayerPlan => {
        const mode = decode ? 'matvec' : 'matmul'
        const s = state
        const attention = { positions: s.positions, q: s.q, keys: lb.keyCache, values: lb.valueCache, partO: s.partO, partML: s.partML, nHeads, nKvHeads: c.nKvHeads, headSize, qStride: dim, chunk, maxChunks }
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
            decode ? k.attentionDecode(attention) : k.attentionPrefill(attention),
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
      const plans = { decode: layers.map((lb) => layerPlan(lb, true)), prefill: layers.map((lb) => layerPlan(lb, false)) }
      const embedPlan = embedding.map((ch) => k.embedding({ tokens: state.tokens, table: ch.buffer, out: state.x, dim, rowStart: ch.rowStart, rowCount: ch.rowCount }))
      const headPlan = head
        ? [k.rmsnorm({ x: state.x, weight: head.finalNorm, out: state.xb, dim, eps: c.normEps }), ...linear('matvec', head.classifier, state.xb, state.logits, dim, c.vocabSize)]
        : []
      const argmaxPlan = head ? [k.argmax({ values: state.logits, result: state.best, count: c.vocabSize })] : []
      for (const d of [...headPlan, ...argmaxPlan]) d.resize(1, 0)
      k.arena.flush()
      return { k, state, layers, plans, embedPlan, headPlan, argmaxPlan }
    } catch (err) {
      if (err instanceof RangeError) throw new TabmeshError('out-of-memory', `the GPU cannot map the model's buffers: ${err.message}`)
      throw err
    }
  }
  const { k, state: s, layers, plans, embedPlan, headPlan, argmaxPlan } = await withErrorScopes(device, `layers [${spec.layers.start}, ${spec.layers.end}) of this model`, build, destroyAll)

  const positionsU32 = new Uint32Array(B) // (64)
  const tokensU32 = new Uint32Array(B) // (64)
  const hiddenOut = new Float32Array(B * dim) // (64, dim) returned views point here
  const logitsOut = new Float32Array(spec.head ? c.vocabSize : 0) // (vocab)
  let destroyed = false

  // calls share scratch and the read-back buffer: run them one at a time, in order
  let tail: Promise<unknown> = Promise.resolve()
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work)
    tail = run.catch(() => undefined)
    return run
  }
  const checkUsable = () => {
    if (destroyed) throw new TabmeshError('bad-argument', 'this webgpu engine was destroyed')
    watch.check()
  }
  const checkRows = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < 1 || n > B) throw new TabmeshError('bad-argument', `${what}: ${n} rows; between 1 and ${B} per call`)
  }
  const resize = (dispatches: readonly KernelDispatch[], rows: number, maxPos: number) => {
    for (const d of dispatches) d.resize(rows, maxPos)
  }
  const runPass = (encoder: GPUCommandEncoder, dispatches: readonly KernelDispatch[]) => {
    const pass = encoder.beginComputePass()
    encodeDispatches(pass, dispatches)
    pass.end()
  }
  /** Submits `encoder` after copying `bytes` of `from` to the read-back buffer, and waits for them. */
  const submitAndRead = async (encoder: GPUCommandEncoder, from: GPUBuffer, bytes: number): Promise<ArrayBuffer> => {
    encoder.copyBufferToBuffer(from, 0, s.readback, 0, bytes)
    device.queue.submit([encoder.finish()])
    try {
      await s.readback.mapAsync(GPUMapMode.READ, 0, bytes)
    } catch (err) {
      await Promise.race([device.lost, new Promise((r) => setTimeout(r, 50))])
      watch.check()
      throw new TabmeshError(watch.lost ? 'device-lost' : 'backend', `reading results back from the GPU failed: ${(err as Error).message}`)
    }
    watch.check()
    return s.readback.getMappedRange(0, bytes)
  }

  const engine: WebGpuEngine = {
    backend: 'webgpu',
    config: c,
    spec,
    device,
    weightBytes,
    embed: (tokens) => serial(async () => {
      checkUsable()
      if (!spec.embedding) throw new TabmeshError('bad-argument', 'this engine holds no token embedding')
      const n = tokens.length
      checkRows(n, 'embed')
      for (let r = 0; r < n; r++) {
        const t = tokens[r]
        if (!(t >= 0 && t < c.vocabSize)) throw new TabmeshError('bad-argument', `token id ${t} is outside the vocabulary`)
        tokensU32[r] = t
      }
      device.queue.writeBuffer(s.tokens, 0, tokensU32, 0, n)
      resize(embedPlan, n, 0)
      k.arena.flush()
      const encoder = device.createCommandEncoder()
      runPass(encoder, embedPlan)
      hiddenOut.set(new Float32Array(await submitAndRead(encoder, s.x, n * dim * 4)))
      s.readback.unmap()
      return hiddenOut.subarray(0, n * dim)
    }),
    forward: (hidden, positions) => serial(async () => {
      checkUsable()
      const n = positions.length
      checkRows(n, 'forward')
      if (hidden.length !== n * dim) throw new TabmeshError('bad-argument', `forward: hidden has ${hidden.length} values, expected ${n} x ${dim}`)
      let maxPos = 0
      for (let r = 0; r < n; r++) {
        const pos = positions[r]
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
        positionsU32[r] = pos
        if (pos > maxPos) maxPos = pos
      }
      device.queue.writeBuffer(s.positions, 0, positionsU32, 0, n)
      device.queue.writeBuffer(s.x, 0, hidden.buffer, hidden.byteOffset, n * dim * 4)
      const plan = n === 1 ? plans.decode : plans.prefill
      for (const lp of plan) {
        resize(lp.beforeCache, n, maxPos)
        resize(lp.afterCache, n, maxPos)
      }
      k.arena.flush()
      const encoder = device.createCommandEncoder()
      const rowBytes = kvDim * 4
      for (let li = 0; li < plan.length; li++) {
        runPass(encoder, plan[li].beforeCache)
        // the new keys and values go to the cache at their positions, one copy per run of consecutive positions
        for (let r0 = 0; r0 < n; ) {
          let r1 = r0 + 1
          while (r1 < n && positions[r1] === positions[r1 - 1] + 1) r1++
          encoder.copyBufferToBuffer(s.k, r0 * rowBytes, layers[li].keyCache, positions[r0] * rowBytes, (r1 - r0) * rowBytes)
          encoder.copyBufferToBuffer(s.v, r0 * rowBytes, layers[li].valueCache, positions[r0] * rowBytes, (r1 - r0) * rowBytes)
          r0 = r1
        }
        runPass(encoder, plan[li].afterCache)
      }
      hiddenOut.set(new Float32Array(await submitAndRead(encoder, s.x, n * dim * 4)))
      s.readback.unmap()
      return hiddenOut.subarray(0, n * dim)
    }),
    head: (hidden) => serial(async () => {
      checkUsable()
      prepareHead(hidden)
      const encoder = device.createCommandEncoder()
      runPass(encoder, headPlan)
      logitsOut.set(new Float32Array(await submitAndRead(encoder, s.logits, c.vocabSize * 4)))
      s.readback.unmap()
      return logitsOut
    }),
    headArgmax: (hidden) => serial(async () => {
      checkUsable()
      prepareHead(hidden)
      const encoder = device.createCommandEncoder()
      runPass(encoder, headPlan)
      runPass(encoder, argmaxPlan)
      const best = new Uint32Array(await submitAndRead(encoder, s.best, 4))[0]
      s.readback.unmap()
      return best
    }),
    reset: () => serial(async () => {
      checkUsable()
      const encoder = device.createCommandEncoder()
      for (const lb of layers) {
        encoder.clearBuffer(lb.keyCache)
        encoder.clearBuffer(lb.valueCache)
      }
      device.queue.submit([encoder.finish()])
    }),
    destroy() {
      if (destroyed) return
      destroyed = true
      destroyAll()
    },
  }

  function prepareHead(hidden: Float32Array): void {
    if (!spec.head) throw new TabmeshError('bad-argument', 'this engine holds no classifier')
    if (hidden.length === 0 || hidden.length % dim !== 0) throw new TabmeshError('bad-argument', `head: hidden has ${hidden.length} values, not a multiple of ${dim}`)
    // the last row goes to row 0 of x, where the head's rmsnorm reads
    device.queue.writeBuffer(s.x, 0, hidden.buffer, hidden.byteOffset + (hidden.length - dim) * 4, dim * 4)
  }

  return engine
}
