import { TabmeshError } from '../../core/errors.ts'
import type { ModelConfig, ModelSlice } from '../../model/model.ts'
import { QUANT_BLOCK_SIZE } from '../../model/quant/index.ts'
import { ropeInverseFrequencies } from '../rope.ts'
import { createEngineBuffers } from './buffers.ts'
import { requestWebGpuDevice, watchDevice, withErrorScopes } from './device.ts'
import { createKernels, encodeDispatches, KERNEL_LIMITS, type KernelDispatch } from './kernels.ts'
import { createPlans, type LayerPlan } from './plans.ts'

/**
 * What the single-session engine (engine.ts) and the batch engine (batch-engine.ts) share: the
 * device, every buffer (buffers.ts) and bind group (plans.ts), made once when the engine is made;
 * calls run one at a time (serial) and `forwardRows` runs layers over rows that each write into and
 * read from a KV cache slot. The cache of each layer holds `cacheSlots` slots of seq_len positions
 * (one for the single-session engine); slot s starts at position s * seq_len of the layer's buffer,
 * and with several slots the attention kernels read each row's base from the positions buffer, after
 * its maxBatch positions (buffers.ts, cacheBases). RoPE and attention's causal bound keep using a
 * row's true position.
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

export type Runtime = Awaited<ReturnType<typeof createRuntime>>

/** Makes the device (unless given), buffers and plans for `slice` with `cacheSlots` KV cache slots per layer. */
export async function createRuntime(slice: ModelSlice, options: WebGpuEngineOptions, cacheSlots = 1) {
  const c: ModelConfig = slice.config
  const spec = slice.spec
  const chunk = options.attentionChunk ?? DEFAULT_ATTENTION_CHUNK
  checkSupported(slice, chunk)
  if (!Number.isInteger(cacheSlots) || cacheSlots < 1) throw new TabmeshError('bad-argument', `KV cache slots must be a whole number from 1, got ${cacheSlots}`)
  const device = options.device ?? (await requestWebGpuDevice())
  const ownDevice = !options.device
  const fail = (err: TabmeshError) => {
    if (ownDevice) device.destroy()
    return err
  }
  if (device.limits.maxComputeWorkgroupStorageSize < 16384 || device.limits.maxStorageBuffersPerShaderStage < 6) {
    throw fail(new TabmeshError('webgpu-unavailable', 'this WebGPU device is below the limits the kernels need (16 KiB workgroup storage, 6 storage buffers per stage)'))
  }
  const deviceBindingBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)
  const cacheBytes = cacheSlots * c.seqLen * c.kvDim * 4 // one layer's keys (or values) of every slot: one binding
  if (cacheSlots > 1 && cacheBytes > deviceBindingBytes) {
    const fits = Math.floor(deviceBindingBytes / (c.seqLen * c.kvDim * 4))
    throw fail(new TabmeshError('out-of-memory', `${cacheSlots} KV cache slots of ${c.seqLen} positions take ${cacheBytes} bytes per layer, above this device's ${deviceBindingBytes}-byte storage binding; at most ${fits} fit`))
  }
  const watch = watchDevice(device)
  const maxBindingBytes = Math.min(deviceBindingBytes, options.maxBindingBytes ?? Infinity)

  const allBuffers: GPUBuffer[] = []
  let kernels: ReturnType<typeof createKernels> | undefined
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
      const { state, layers, embedding, head, weightBytes, cacheBases } = createEngineBuffers(device, slice, { maxBatch: B, maxChunks, maxBindingBytes, cacheSlots }, allBuffers)
      const { plans, embedPlan, headPlan, argmaxPlan } = createPlans(k, c, { state, layers, embedding, head, cacheBases }, chunk, maxChunks, { mixed: cacheSlots > 1 })
      k.arena.flush()
      return { k, state, layers, plans, embedPlan, headPlan, argmaxPlan, weightBytes, cacheBases }
    } catch (err) {
      if (err instanceof RangeError) throw new TabmeshError('out-of-memory', `the GPU cannot map the model's buffers: ${err.message}`)
      throw err
    }
  }
  const built = await withErrorScopes(device, `layers [${spec.layers.start}, ${spec.layers.end}) of this model${cacheSlots > 1 ? ` with ${cacheSlots} KV cache slots` : ''}`, build, destroyAll)
  const { k, state: s, layers, plans, cacheBases } = built

  const positionsU32 = new Uint32Array(2 * B) // (64) positions, then (64) cache bases when there are several slots
  const hiddenOut = new Float32Array(B * dim) // (64, dim) returned views point here
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

  /**
   * Runs held layers [from, to) (indices into the held range) on hidden (n, dim): row r at
   * positions[r] of KV cache slot slots[r] (slot 0 for every row without `slots`). Positions and
   * slots are checked by the caller. One row runs the decode plan; rows of one slot the prefill
   * plan (attention_prefill reads row 0's base); rows of several slots the mixed plan (matmul and
   * attention_decode, which reads each row's base). Returns hidden (n, dim), a view valid until the next call.
   */
  const forwardRows = async (hidden: Float32Array, positions: Int32Array, slots: Int32Array | undefined, from: number, to: number): Promise<Float32Array> => {
    const n = positions.length
    if (from === to) {
      hiddenOut.set(hidden)
      return hiddenOut.subarray(0, n * dim)
    }
    let maxPos = 0
    let oneSlot = true
    for (let r = 0; r < n; r++) {
      const pos = positions[r]
      positionsU32[r] = pos
      if (pos > maxPos) maxPos = pos
      if (slots) {
        if (!(slots[r] >= 0 && slots[r] < cacheSlots)) throw new TabmeshError('bad-argument', `KV cache slot ${slots[r]} is not one of this engine's ${cacheSlots}`)
        positionsU32[B + r] = slots[r] * c.seqLen
        if (slots[r] !== slots[0]) oneSlot = false
      }
    }
    // the positions, and the rows' cache bases after maxBatch of them
    device.queue.writeBuffer(s.positions, 0, positionsU32, 0, cacheBases ? B + n : n)
    device.queue.writeBuffer(s.x, 0, hidden.buffer, hidden.byteOffset, n * dim * 4)
    const plan: LayerPlan[] = n === 1 ? plans.decode : oneSlot ? plans.prefill : plans.mixed
    for (let li = from; li < to; li++) {
      resize(plan[li].beforeCache, n, maxPos)
      resize(plan[li].afterCache, n, maxPos)
    }
    k.arena.flush()
    const encoder = device.createCommandEncoder()
    const rowBytes = kvDim * 4
    for (let li = from; li < to; li++) {
      runPass(encoder, plan[li].beforeCache)
      // the new keys and values go to their slots at their positions, one copy per run of rows of
      // one slot at consecutive positions
      for (let r0 = 0; r0 < n; ) {
        let r1 = r0 + 1
        while (r1 < n && positions[r1] === positions[r1 - 1] + 1 && (!slots || slots[r1] === slots[r0])) r1++
        const at = ((slots ? slots[r0] * c.seqLen : 0) + positions[r0]) * rowBytes
        encoder.copyBufferToBuffer(s.k, r0 * rowBytes, layers[li].keyCache, at, (r1 - r0) * rowBytes)
        encoder.copyBufferToBuffer(s.v, r0 * rowBytes, layers[li].valueCache, at, (r1 - r0) * rowBytes)
        r0 = r1
      }
      runPass(encoder, plan[li].afterCache)
    }
    hiddenOut.set(new Float32Array(await submitAndRead(encoder, s.x, n * dim * 4)))
    s.readback.unmap()
    return hiddenOut.subarray(0, n * dim)
  }

  return {
    ...built,
    device,
    /** (64, dim) where the hidden states read back go; returned views point here. */
    hiddenOut,
    serial,
    checkUsable,
    resize,
    runPass,
    submitAndRead,
    forwardRows,
    destroy() {
      if (destroyed) return
      destroyed = true
      destroyAll()
    },
  }
}
