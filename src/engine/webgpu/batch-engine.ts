import { TabmeshError } from '../../core/errors.ts'
import type { ModelSlice } from '../../model/model.ts'
import { checkBatch, type BatchEngine } from '../engine.ts'
import { createRuntime, WEBGPU_MAX_BATCH, type WebGpuEngineOptions } from './runtime.ts'

/**
 * The WebGPU batch engine: one copy of a slice's layers on the GPU serving up to `maxCaches`
 * sessions, each with its own KV cache slot (BatchEngine of ../engine.ts; the reference is
 * createReferenceBatchEngine). Every layer's key and value caches are one buffer each of
 * (maxCaches, seq_len, kv_dim), all made with the engine: a slot is always seq_len positions, so
 * opening one allocates nothing and cacheBytes() is what it really takes. forwardBatch runs the rows
 * of every session in one pass (runtime.ts: a row's new key and value are copied to
 * (slot * seq_len + position) of its layer's cache; attention reads from its slot's base on, which
 * the kernels find after the positions in the positions buffer): one row is decode (matvec),
 * rows of one slot are prefill (matmul, attention_prefill), rows of several slots are matmul and
 * attention_decode with a base per row. Quantized matrices (Q8_0, Q4_0) run through their kernels
 * in every case. Embedding and head are not a batch engine's: the slice's are not uploaded.
 */

export const WEBGPU_DEFAULT_MAX_CACHES = 8

export interface WebGpuBatchEngineOptions extends WebGpuEngineOptions {
  /** KV cache slots, all allocated when the engine is made (default 8). */
  maxCaches?: number
}

export interface WebGpuBatchEngine extends BatchEngine {
  readonly backend: 'webgpu'
  readonly device: GPUDevice
  /** KV cache slots (open or not); openCache refuses once all are open. */
  readonly maxCaches: number
  /** Bytes of GPU buffers holding weights (matrices, norms): quantized matrices count at their block size. */
  readonly weightBytes: number
  /** Frees every GPU buffer (and the device, when the engine made it). The engine is unusable after. */
  destroy(): void
}

export async function createWebGpuBatchEngine(slice: ModelSlice, options: WebGpuBatchEngineOptions = {}): Promise<WebGpuBatchEngine> {
  const c = slice.config
  const held = slice.spec.layers
  const nHeld = held.end - held.start
  const maxCaches = options.maxCaches ?? WEBGPU_DEFAULT_MAX_CACHES
  if (!(Number.isInteger(maxCaches) && maxCaches >= 1)) throw new TabmeshError('bad-argument', `maxCaches must be a whole number from 1, got ${maxCaches}`)
  const layersOnly: ModelSlice = { ...slice, spec: { ...slice.spec, embedding: false, head: false } }
  const rt = await createRuntime(layersOnly, options, maxCaches)
  const { device, state: s, layers, serial, checkUsable } = rt
  const slotBytes = c.seqLen * c.kvDim * 4 // one layer's keys (or values) of one slot

  const open = new Map<number, number>() // slot -> positions it was opened for
  const slotLength = (slot: number) => open.get(slot)

  const engine: WebGpuBatchEngine = {
    backend: 'webgpu',
    config: c,
    layers: held,
    maxRows: WEBGPU_MAX_BATCH,
    device,
    maxCaches,
    weightBytes: rt.weightBytes,
    // every slot is seq_len positions of every held layer, whatever it was opened for
    cacheBytes: () => 2 * nHeld * slotBytes,
    openCache: (maxLength) => serial(async () => {
      checkUsable()
      if (!(Number.isInteger(maxLength) && maxLength >= 1 && maxLength <= c.seqLen)) throw new TabmeshError('bad-argument', `a KV cache of ${maxLength} positions; 1..${c.seqLen}`)
      for (let slot = 0; slot < maxCaches; slot++) {
        if (open.has(slot)) continue
        open.set(slot, maxLength)
        return slot
      }
      throw new TabmeshError('refused', `all ${maxCaches} KV cache slots are in use`)
    }),
    closeCache: (slot) => serial(async () => {
      // nothing to clear: a row reads only positions at or below its own, which its session wrote
      open.delete(slot)
    }),
    copyCache: (from, to, length) => serial(async () => {
      checkUsable()
      const a = open.get(from)
      const b = open.get(to)
      if (a === undefined || b === undefined) throw new TabmeshError('bad-argument', `copyCache: slot ${a === undefined ? from : to} is not open`)
      if (!(Number.isInteger(length) && length >= 0 && length <= a && length <= b)) throw new TabmeshError('bad-argument', `copyCache: ${length} positions do not fit slots of ${a} and ${b}`)
      if (length === 0 || from === to) return
      // a buffer cannot be copied into itself: each layer's keys and values go through s.cacheCopy
      const bytes = length * c.kvDim * 4
      const encoder = device.createCommandEncoder()
      for (const lb of layers) {
        for (const cache of [lb.keyCache, lb.valueCache]) {
          encoder.copyBufferToBuffer(cache, from * slotBytes, s.cacheCopy!, 0, bytes)
          encoder.copyBufferToBuffer(s.cacheCopy!, 0, cache, to * slotBytes, bytes)
        }
      }
      device.queue.submit([encoder.finish()])
    }),
    forwardBatch: (hidden, caches, positions, range) => serial(async () => {
      checkUsable()
      const r = checkBatch(engine, hidden, caches, positions, range, slotLength)
      return rt.forwardRows(hidden, positions, caches, r.start - held.start, r.end - held.start)
    }),
    release: async () => rt.destroy(),
    destroy: rt.destroy,
  }
  return engine
}
