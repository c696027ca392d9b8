import { TabmeshError } from '../../core/errors.ts'
import type { ModelConfig, ModelSlice } from '../../model/model.ts'
import type { Engine } from '../engine.ts'
import { createRuntime, WEBGPU_MAX_BATCH, type WebGpuEngineOptions } from './runtime.ts'

export { WEBGPU_MAX_BATCH, type WebGpuEngineOptions } from './runtime.ts'

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
 * are added by bias_add after their projections, before RoPE. The device, buffers, plans and the
 * layer loop are the runtime's (runtime.ts), shared with the batch engine (batch-engine.ts); this
 * engine is its one KV cache slot.
 */

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

export async function createWebGpuEngine(slice: ModelSlice, options: WebGpuEngineOptions = {}): Promise<WebGpuEngine> {
  const c: ModelConfig = slice.config
  const spec = slice.spec
  const rt = await createRuntime(slice, options)
  const { device, k, state: s, layers, embedPlan, headPlan, argmaxPlan, weightBytes, hiddenOut, serial, checkUsable, resize, runPass, submitAndRead } = rt
  const B = WEBGPU_MAX_BATCH
  const { dim } = c

  const tokensU32 = new Uint32Array(B) // (64)
  const logitsOut = new Float32Array(spec.head ? c.vocabSize : 0) // (vocab)
  const checkRows = (n: number, what: string) => {
    if (!Number.isInteger(n) || n < 1 || n > B) throw new TabmeshError('bad-argument', `${what}: ${n} rows; between 1 and ${B} per call`)
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
      for (let r = 0; r < n; r++) {
        const pos = positions[r]
        if (!(pos >= 0 && pos < c.seqLen)) throw new TabmeshError('context-window', `position ${pos} is outside the context window of ${c.seqLen}`)
      }
      return rt.forwardRows(hidden, positions, undefined, 0, layers.length)
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
    destroy: rt.destroy,
  }

  function prepareHead(hidden: Float32Array): void {
    if (!spec.head) throw new TabmeshError('bad-argument', 'this engine holds no classifier')
    if (hidden.length === 0 || hidden.length % dim !== 0) throw new TabmeshError('bad-argument', `head: hidden has ${hidden.length} values, not a multiple of ${dim}`)
    // the last row goes to row 0 of x, where the head's rmsnorm reads
    device.queue.writeBuffer(s.x, 0, hidden.buffer, hidden.byteOffset + (hidden.length - dim) * 4, dim * 4)
  }

  return engine
}
