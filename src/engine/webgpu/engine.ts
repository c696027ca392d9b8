import { TabmeshError } from '../../core/errors.ts'
import type { ModelConfig, ModelSlice } from '../../model/model.ts'
import { QUANT_BLOCK_SIZE } from '../../model/quant/index.ts'
import type { Engine } from '../engine.ts'
import { ropeInverseFrequencies } from '../rope.ts'
import { createEngineBuffers } from './buffers.ts'
import { requestWebGpuDevice, watchDevice, withErrorScopes } from './device.ts'
import { createKernels, encodeDispatches, KERNEL_LIMITS, type KernelDispatch, type Kernels } from './kernels.ts'
import { createPlans } from './plans.ts'

/**
 * The WebGPU engine: llama2.c's forward pass as WGSL kernels (shaders/). Weights, KV cache and
 * scratch live on the GPU for the engine's lifetime; every buffer (buffers.ts) and bind group
 * (plans.ts) is made once, when the engine is made. A call uploads its inputs, records every layer
 * into one command encoder, submits it, and reads back only its result (the hidden state, or the
 * logits). One row is decode (matvec, attention_decode); more rows are prefill (matmul,
 * attention_prefill). Matrices the slice holds quantized (slice.quantized, Q8_0 / Q4_0) stay in
 * their blocks on the GPU and run through matvec_q8_0 / matvec_q4_0 (decode) and matmul_q8_0 /
 * matmul_q4_0 (prefill); no fp32 copy of them is made. Llama-family variations: RoPE scaling lives
 * in the cos/sin table (ropeTable of ../rope.ts, the one every backend uses), Qwen2's q/k/v biases
 * are added by bias_add after their projections, before RoPE.
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

  const B = WEBGPU_MAX_BATCH
  const maxChunks = Math.ceil(c.seqLen / chunk)
  const { dim, kvDim } = c

  // weights, KV cache and scratch (buffers.ts), then the dispatch plans bound to them (plans.ts)
  const build = () => {
    try {
      const k = createKernels(device)
      kernels = k
      const { state, layers, embedding, head, weightBytes } = createEngineBuffers(device, slice, { maxBatch: B, maxChunks, maxBindingBytes }, allBuffers)
      const { plans, embedPlan, headPlan, argmaxPlan } = createPlans(k, c, { state, layers, embedding, head }, chunk, maxChunks)
      k.arena.flush()
      return { k, state, layers, plans, embedPlan, headPlan, argmaxPlan, weightBytes }
    } catch (err) {
      if (err instanceof RangeError) throw new TabmeshError('out-of-memory', `the GPU cannot map the model's buffers: ${err.message}`)
      throw err
    }
  }
  const { k, state: s, layers, plans, embedPlan, headPlan, argmaxPlan, weightBytes } = await withErrorScopes(device, `layers [${spec.layers.start}, ${spec.layers.end}) of this model`, build, destroyAll)

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
