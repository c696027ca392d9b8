import type { Engine } from '../../src/engine/engine.ts'
import { createPipelineEngine } from '../../testing/pipeline.ts'
import { createReferenceEngine } from '../../src/engine/reference/reference.ts'
import { argmax } from '../../src/engine/sampler.ts'
import { createWebGpuBatchEngine, createWebGpuEngine, probeWebGpu, requestWebGpuDevice, type WebGpuEngineOptions } from '../../src/engine/webgpu/index.ts'
import type { LayerRange } from '../../src/core/vocabulary.ts'
import { TabmeshError } from '../../src/core/errors.ts'
import { memorySource } from '../../src/model/source/byte-source.ts'
import { loadLlama2c } from '../../src/model/formats/llama2c.ts'
import type { ModelSlice, SliceSpec } from '../../src/model/model.ts'
import { quantizeTensor } from '../../src/model/quant/index.ts'
import { makeSyntheticLlama2c, SYNTHETIC_SHAPES } from '../../src/model/formats/synthetic.ts'
import { greedyIds, teacherForced } from './engine-compare.ts'
import { benchKernels } from './webgpu-bench.ts'
import { runBatch } from './webgpu-batch-checks.ts'
import { familyModel, runFamily, type FamilyOptions } from './webgpu-family-checks.ts'
import { checkKernel, type KernelShape } from './webgpu-kernel-checks.ts'
import { benchQuantKernels } from './webgpu-quant-bench.ts'
import { checkQuantKernel, runQuantizedEngine, type QuantKernelKind, type QuantShape } from './webgpu-quant-checks.ts'

/**
 * window.webgpuLab: what e2e/webgpu.spec.ts and bench/kernels.ts drive. Each function builds what it
 * needs from scratch (models from the server's registry files or synthetic bytes) and returns plain data.
 */

type ModelName = 'stories260K' | 'separateClassifier'

async function modelBytes(name: ModelName): Promise<Uint8Array> {
  if (name === 'separateClassifier') return makeSyntheticLlama2c(SYNTHETIC_SHAPES.separateClassifier, 1234)
  const res = await fetch('/models/stories260K/stories260K.bin')
  if (!res.ok) throw new Error(`stories260K.bin: HTTP ${res.status}`)
  return new Uint8Array(await res.arrayBuffer())
}

async function loadModel(name: ModelName): Promise<ModelSlice> {
  return loadLlama2c(memorySource(await modelBytes(name)))
}

const part = (m: ModelSlice, spec: SliceSpec): ModelSlice => ({ config: m.config, spec, tensors: m.tensors })

let sharedDevice: Promise<GPUDevice> | undefined
const device = () => (sharedDevice ??= requestWebGpuDevice())

const errorInfo = (err: unknown) => ({ name: (err as Error).name, code: err instanceof TabmeshError ? err.code : undefined, message: (err as Error).message })

const lab = {
  probe: probeWebGpu,

  async checkKernel(kernel: string, shape: KernelShape, seed: number) {
    return checkKernel(await device(), kernel, shape, seed)
  },

  /** matvec_q8_0 / matvec_q4_0 / matmul_q8_0 / matmul_q4_0 against quantizedMatvec (e2e/webgpu-quant.spec.ts). */
  async checkQuantKernel(type: 'q8_0' | 'q4_0', shape: QuantShape, seed: number, kernel?: QuantKernelKind) {
    return checkQuantKernel(await device(), type, shape, seed, kernel)
  },

  /**
   * The webgpu engine on a Q8_0 / Q4_0 GGUF of `model` (kept quantized) against the reference engine
   * on the same weights dequantized; 'quantSynthetic' is a synthetic model whose every matrix,
   * classifier included, has rows of whole blocks.
   */
  async quantizedEngine(o: { model: 'stories260K' | 'quantSynthetic'; type: 'Q8_0' | 'Q4_0'; prompt: number[]; maxTokens: number; rowsPerCall: number[]; seed: number; engine?: Omit<WebGpuEngineOptions, 'device'> }) {
    const f32 = o.model === 'quantSynthetic'
      ? await loadLlama2c(memorySource(makeSyntheticLlama2c({ dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 64, sharedClassifier: false }, 77)))
      : await loadModel(o.model)
    return runQuantizedEngine(requestWebGpuDevice, createWebGpuEngine, f32, o.type, o)
  },

  /** Biases, RoPE scaling and quantized matrices: the webgpu engine against the reference (lab/pages/webgpu-family-checks.ts). */
  async family(o: FamilyOptions) {
    return runFamily(await device(), createWebGpuEngine, o)
  },

  /**
   * The webgpu batch engine against the reference batch engine over a script of interleaved sessions
   * (lab/pages/webgpu-batch-checks.ts). quant: a synthetic slice whose every layer matrix is kept in
   * Q8_0 / Q4_0 blocks (FAMILY_SHAPE), the reference on the same blocks dequantized.
   */
  async batch(o: { model: ModelName | 'quant'; quant?: 'q8_0' | 'q4_0'; layers?: LayerRange; maxCaches: number; seed: number; engine?: Omit<WebGpuEngineOptions, 'device'> }) {
    const { gpu, reference } = o.model === 'quant'
      ? await familyModel({ bias: false, quant: o.quant ?? 'q8_0', seed: o.seed })
      : await loadModel(o.model).then((m) => ({ gpu: m, reference: m }))
    return runBatch(await device(), createWebGpuBatchEngine, { gpu, reference, layers: o.layers, seed: o.seed, maxCaches: o.maxCaches, engine: o.engine })
  },

  /** Greedy ids of the reference engine and of the webgpu engine on the same model and prompt. */
  async greedy(o: { model: ModelName; prompt: number[]; maxTokens: number; prefillChunk?: number; engine?: Omit<WebGpuEngineOptions, 'device'> }) {
    const m = await loadModel(o.model)
    const gpu = await createWebGpuEngine(m, { ...o.engine, device: await device() })
    try {
      const chunk = o.prefillChunk ?? 32
      return { reference: await greedyIds(createReferenceEngine(m), o.prompt, o.maxTokens, chunk), webgpu: await greedyIds(gpu, o.prompt, o.maxTokens, chunk) }
    } finally {
      gpu.destroy()
    }
  },

  /**
   * Teacher-forced run over the whole context: the same seeded random tokens through the reference
   * and the webgpu engine in calls of `rowsPerCall` rows (cycled), comparing the last row's logits
   * after every call. Reaches the last position of the context.
   */
  async teacherForced(o: { model: ModelName; rowsPerCall: number[]; seed: number; engine?: Omit<WebGpuEngineOptions, 'device'> }) {
    const m = await loadModel(o.model)
    const gpu = await createWebGpuEngine(m, { ...o.engine, device: await device() })
    try {
      return await teacherForced(createReferenceEngine(m), gpu, o.rowsPerCall, o.seed)
    } finally {
      gpu.destroy()
    }
  },

  /**
   * stories260K as layers [0, 2) on the reference engine and [2, 5) on webgpu (with the head), against
   * the reference alone: greedy ids, and the largest logit difference after a 16-token prefill.
   */
  async mixed(o: { prompt: number[]; maxTokens: number }) {
    const m = await loadModel('stories260K')
    const n = m.config.nLayers
    const gpu = await createWebGpuEngine(part(m, { layers: { start: 2, end: n }, embedding: false, head: true }), { device: await device() })
    try {
      const mixed = createPipelineEngine([createReferenceEngine(part(m, { layers: { start: 0, end: 2 }, embedding: true, head: false })), gpu])
      const reference = createReferenceEngine(m)
      const logitsAfterPrefill = async (e: Engine) => {
        await e.reset()
        const tokens = Int32Array.from(o.prompt.slice(0, 16))
        return (await e.head(await e.forward(await e.embed(tokens), tokens.map((_, i) => i)))).slice()
      }
      const a = await logitsAfterPrefill(reference), b = await logitsAfterPrefill(mixed)
      let maxLogitDiff = 0
      for (let i = 0; i < a.length; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(a[i] - b[i]))
      return {
        reference: await greedyIds(reference, o.prompt, o.maxTokens, 8),
        mixed: await greedyIds(mixed, o.prompt, o.maxTokens, 8),
        maxLogitDiff,
      }
    } finally {
      gpu.destroy()
    }
  },

  /**
   * GPU buffers and bind groups created (counted at the device) while a webgpu engine reads an
   * 8-token prompt and then decodes `tokens` tokens one at a time (embed, forward, head, argmax).
   */
  async allocationsOverDecode(tokens: number) {
    const d = await requestWebGpuDevice()
    const counts = { buffers: 0, bindGroups: 0 }
    const createBuffer = d.createBuffer.bind(d), createBindGroup = d.createBindGroup.bind(d)
    d.createBuffer = (desc) => { counts.buffers++; return createBuffer(desc) }
    d.createBindGroup = (desc) => { counts.bindGroups++; return createBindGroup(desc) }
    const engine = await createWebGpuEngine(await loadModel('stories260K'), { device: d })
    const snapshot = () => ({ ...counts })
    const afterCreate = snapshot()
    const prompt = Int32Array.from([1, 403, 407, 261, 378, 432, 383, 286])
    let hidden = await engine.forward(await engine.embed(prompt), prompt.map((_, i) => i))
    let token = argmax(await engine.head(hidden))
    const afterPrefill = snapshot()
    const ids: number[] = []
    const one = new Int32Array(1), pos = new Int32Array(1)
    let afterFirstToken = afterPrefill
    for (let i = 0; i < tokens; i++) {
      one[0] = token
      pos[0] = prompt.length + i
      hidden = await engine.forward(await engine.embed(one), pos)
      token = argmax(await engine.head(hidden))
      ids.push(token)
      if (i === 0) afterFirstToken = snapshot()
    }
    const afterAll = snapshot()
    engine.destroy()
    d.destroy()
    return { afterCreate, afterPrefill, afterFirstToken, afterAll, tokens: ids.length }
  },

  /** headArgmax (argmax on the GPU) against argmax of head's logits, over a short greedy run. */
  async headArgmaxAgrees(steps: number) {
    const m = await loadModel('separateClassifier')
    const gpu = await createWebGpuEngine(m, { device: await device() })
    try {
      let token = m.config.bosId
      const mismatches: number[] = []
      const one = new Int32Array(1), pos = new Int32Array(1)
      for (let i = 0; i < steps; i++) {
        one[0] = token
        pos[0] = i
        const hidden = (await gpu.forward(await gpu.embed(one), pos)).slice()
        const onGpu = await gpu.headArgmax(hidden)
        token = argmax(await gpu.head(hidden))
        if (onGpu !== token) mismatches.push(i)
      }
      return { steps, mismatches }
    } finally {
      gpu.destroy()
    }
  },

  /** Destroys the engine's device mid-session: the next call must fail with a typed error; a new engine on a new device works. */
  async deviceLoss() {
    const m = await loadModel('stories260K')
    const d = await requestWebGpuDevice()
    const engine = await createWebGpuEngine(m, { device: d })
    const tokens = Int32Array.of(1)
    await engine.forward(await engine.embed(tokens), Int32Array.of(0))
    d.destroy()
    let afterLoss: ReturnType<typeof errorInfo> | undefined
    try {
      await engine.forward(new Float32Array(m.config.dim), Int32Array.of(1))
    } catch (err) {
      afterLoss = errorInfo(err)
    }
    let laterCall: ReturnType<typeof errorInfo> | undefined
    try {
      await engine.embed(tokens)
    } catch (err) {
      laterCall = errorInfo(err)
    }
    const fresh = await createWebGpuEngine(m)
    const logits = await fresh.head(await fresh.forward(await fresh.embed(tokens), Int32Array.of(0)))
    const recoveredToken = argmax(logits)
    fresh.destroy()
    return { afterLoss, laterCall, recoveredToken }
  },

  /** Bad input gets typed errors, not hangs. */
  async badInput() {
    const m = await loadModel('stories260K')
    const engine = await createWebGpuEngine(part(m, { layers: { start: 1, end: 3 }, embedding: false, head: false }), { device: await device() })
    const attempt = async (f: () => Promise<unknown>) => {
      try {
        await f()
        return undefined
      } catch (err) {
        return errorInfo(err)
      }
    }
    const dim = m.config.dim
    const result = {
      noEmbedding: await attempt(() => engine.embed(Int32Array.of(1))),
      noHead: await attempt(() => engine.head(new Float32Array(dim))),
      tooManyRows: await attempt(() => engine.forward(new Float32Array(65 * dim), new Int32Array(65))),
      wrongWidth: await attempt(() => engine.forward(new Float32Array(dim + 1), Int32Array.of(0))),
      pastContext: await attempt(() => engine.forward(new Float32Array(dim), Int32Array.of(m.config.seqLen))),
      badChunk: await attempt(() => createWebGpuEngine(m, { device: engine.device, attentionChunk: 1000 })),
      missingBias: await attempt(() => createWebGpuEngine({ ...m, config: { ...m.config, attentionBias: true } }, { device: engine.device })),
      shortRopeFactors: await attempt(() => createWebGpuEngine({ ...m, config: { ...m.config, ropeScaling: { type: 'factors', factors: [1, 2] } } }, { device: engine.device })),
      // w2's rows of hidden_dim 172 inputs are not whole blocks of 32 (the matrix as a whole is)
      partialBlocks: await attempt(() => createWebGpuEngine({ ...m, quantized: new Map([['layers.1.w2', quantizeTensor('layers.1.w2', [dim, m.config.hiddenDim], m.tensors.get('layers.1.w2')!.data, 'q8_0')]]) }, { device: engine.device })),
      stillWorks: (await engine.forward(new Float32Array(dim).fill(0.1), Int32Array.of(0))).length === dim,
    }
    engine.destroy()
    return result
  },

  benchKernels: async (o?: { quick?: boolean }) => benchKernels(await device(), o?.quick ?? false),
  benchQuantKernels: async (o?: { quick?: boolean }) => benchQuantKernels(await device(), o?.quick ?? false),
}

declare global {
  interface Window {
    webgpuLab: typeof lab
  }
}

window.webgpuLab = lab
