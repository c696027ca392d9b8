import { watchedWasmMemories } from '../../testing/heap-watch.ts' // first: before onnxruntime loads
import type { Engine } from '../../src/engine/engine.ts'
import { generateTokens } from '../../src/engine/generate.ts'
import { createPipelineEngine } from '../../testing/pipeline.ts'
import { createReferenceEngine } from '../../src/engine/reference/reference.ts'
import { createWasmEngine, loadOrt, ortThreads } from '../../src/engine/wasm/index.ts'
import { loadQuantKernels } from '../../src/engine/wasm/quant-kernels.ts'
import { createRng } from '../../src/core/rng.ts'
import { memorySource } from '../../src/model/source/byte-source.ts'
import { loadLlama2c } from '../../src/model/formats/llama2c.ts'
import { getTensor, layerTensorName, LAYER_TENSORS, type ModelSlice, type SliceSpec } from '../../src/model/model.ts'
import { quantizeSlice, type QuantType } from '../../src/model/quant/index.ts'
import { fetchRegistry, loadRemoteSlice } from '../../src/model/source/remote.ts'
import { makeSyntheticLlama2c, SYNTHETIC_SHAPES, type SyntheticShape } from '../../src/model/formats/synthetic.ts'
import { measureStreamRead, type BandwidthResult } from './stream-read.ts'
import { argmax } from '../../src/engine/sampler.ts'
import { relativeError } from '../../testing/compare.ts'

const ortHeapBytes = () => watchedWasmMemories().find((m) => m.buffer.byteLength > 0 && m !== undefined)?.buffer.byteLength ?? 0

/** Shapes made at bench time, beside the test shapes: the sizes of stories110M and stories15M. */
const BENCH_SHAPES = {
  llama110M: { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 256, sharedClassifier: true },
  llama15M: { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256, sharedClassifier: true },
} satisfies Record<string, SyntheticShape>
const SHAPES: Record<string, SyntheticShape> = { ...SYNTHETIC_SHAPES, ...BENCH_SHAPES }

export type LabBackend = 'ref' | 'wasm' | 'webgpu' | 'wasm+ref' | 'wasm+webgpu'

// the webgpu engine is another module that may not exist yet; the lab uses it when it does
const webgpuModules = import.meta.glob<{ createWebGpuEngine?: (slice: ModelSlice) => Promise<Engine> }>('../../src/engine/webgpu/index.ts')
async function webgpuFactory() {
  const load = Object.values(webgpuModules)[0]
  const create = load ? (await load()).createWebGpuEngine : undefined
  if (!create) throw new Error('this build has no webgpu engine (src/engine/webgpu/index.ts exporting createWebGpuEngine)')
  return create
}

const models = new Map<string, Promise<ModelSlice>>()
const engines = new Map<string, Promise<Engine>>()

function model(name: string): Promise<ModelSlice> {
  let m = models.get(name)
  if (!m) {
    m = (async () => {
      const q = /^(.*)-(q8_0|q4_0)$/.exec(name)
      if (q) return quantizeSlice(await model(q[1]), q[2] as QuantType)
      if (SHAPES[name]) return loadLlama2c(memorySource(makeSyntheticLlama2c(SHAPES[name], 1234)))
      const registry = await fetchRegistry(new URL('/', location.href).href)
      const entry = registry.models.find((e) => e.id === name)
      if (!entry) throw new Error(`no model ${name} in the registry`)
      return loadRemoteSlice(new URL('/', location.href).href, entry)
    })()
    models.set(name, m)
  }
  return m
}

const part = (m: ModelSlice, spec: SliceSpec): ModelSlice => ({ ...m, spec })

async function makeEngine(name: string, backend: LabBackend): Promise<Engine> {
  const m = await model(name)
  const L = m.config.nLayers
  const first = { layers: { start: 0, end: 2 }, embedding: true, head: false }
  const rest = { layers: { start: 2, end: L }, embedding: false, head: true }
  switch (backend) {
    case 'ref': return createReferenceEngine(m)
    case 'wasm': return createWasmEngine(m)
    case 'webgpu': return (await webgpuFactory())(m)
    case 'wasm+ref': return createPipelineEngine([await createWasmEngine(part(m, first)), createReferenceEngine(part(m, rest))])
    case 'wasm+webgpu': return createPipelineEngine([await createWasmEngine(part(m, first)), await (await webgpuFactory())(part(m, rest))])
  }
}

function engine(name: string, backend: LabBackend): Promise<Engine> {
  const key = `${name}/${backend}`
  let e = engines.get(key)
  if (!e) {
    e = makeEngine(name, backend)
    e.catch(() => engines.delete(key))
    engines.set(key, e)
  }
  return e
}

/** Bytes a decode step streams: every layer's weights, the final norm and the classifier, as held (fp32 or blocks). */
function weightBytesPerToken(m: ModelSlice): number {
  const bytes = (name: string) => m.quantized?.get(name)?.blocks.byteLength ?? getTensor(m, name).data.byteLength
  let total = bytes('final_norm') + bytes('classifier')
  for (let l = 0; l < m.config.nLayers; l++) for (const t of LAYER_TENSORS) total += bytes(layerTensorName(l, t))
  return total
}

const jsHeap = () => (performance as Performance & { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? NaN
const collectGarbage = () => (globalThis as { gc?: () => void }).gc?.()
const crossOriginIsolated = globalThis.crossOriginIsolated

/**
 * The lab's operations, the same in the page and in its worker (wasm-lab.worker.ts): the page runs
 * the checks, the worker runs engines where the product does (off the main thread) for speed.
 */
export function createLab() {
  return lab
}

const lab = {
  /** Starts onnxruntime-web (threads default to every core when cross-origin isolated). */
  async init(numThreads?: number) {
    await loadOrt(numThreads === undefined ? {} : { numThreads })
    return lab.info()
  },
  info() {
    return { crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, ortThreads: ortThreads(), simd: WebAssembly.validate(Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11)) }
  },
  async hasWebGpu() {
    try {
      await webgpuFactory()
      return !!(await navigator.gpu?.requestAdapter())
    } catch {
      return false
    }
  },
  async generate(name: string, backend: LabBackend, prompt: number[], maxTokens: number, prefillChunk = 32): Promise<number[]> {
    const e = await engine(name, backend)
    const out: number[] = []
    for await (const t of generateTokens(e, prompt, { maxTokens, temperature: 0, topP: 0.9, seed: 1, prefillChunk })) out.push(t)
    return out
  },
  /** Largest relative difference of wasm from the reference, over random hidden states and prompt lengths. */
  async hiddenError(name: string, trials: number, seed: number): Promise<{ hidden: number; logits: number }> {
    const m = await model(name)
    const [wasm, ref] = await Promise.all([engine(name, 'wasm'), engine(name, 'ref')])
    const rng = createRng(seed)
    let hidden = 0
    let logits = 0
    for (let trial = 0; trial < trials; trial++) {
      await wasm.reset()
      await ref.reset()
      let pos = 0
      for (const n of [1 + Math.floor(rng.nextF32() * 64), 1, 1 + Math.floor(rng.nextF32() * 16)]) {
        const x = Float32Array.from({ length: n * m.config.dim }, () => (rng.nextF32() * 2 - 1) * 3)
        const positions = Int32Array.from({ length: n }, (_, i) => pos + i)
        pos += n
        const expected = Float32Array.from(await ref.forward(x.slice(), positions))
        const actual = Float32Array.from(await wasm.forward(x.slice(), positions))
        hidden = Math.max(hidden, relativeError(actual, expected))
        logits = Math.max(logits, relativeError(Float32Array.from(await wasm.head(actual)), await ref.head(expected)))
      }
    }
    return { hidden, logits }
  },
  /** Relative difference between a prompt read in one call and one position at a time. */
  async batchedVsStepwise(name: string, prompt: number[]): Promise<number> {
    const m = await model(name)
    const e = await engine(name, 'wasm')
    const tokens = Int32Array.from(prompt)
    const positions = Int32Array.from(prompt, (_, i) => i)
    await e.reset()
    const batched = Float32Array.from(await e.forward(Float32Array.from(await e.embed(tokens)), positions))
    await e.reset()
    const stepwise = new Float32Array(batched.length)
    for (let i = 0; i < tokens.length; i++) {
      stepwise.set(await e.forward(Float32Array.from(await e.embed(tokens.subarray(i, i + 1))), positions.subarray(i, i + 1)), i * m.config.dim)
    }
    return relativeError(batched, stepwise)
  },
  /** JS and onnxruntime heap sizes around a second run of `tokens` tokens (the first warms the arena). */
  async heapOverTokens(name: string, tokens: number) {
    const e = await engine(name, 'wasm')
    const run = async () => {
      let n = 0
      for await (const _ of generateTokens(e, [1], { maxTokens: tokens, temperature: 0.9, topP: 0.9, seed: 5 })) n++
      return n
    }
    await run()
    collectGarbage()
    const before = { js: jsHeap(), wasm: ortHeapBytes() }
    const generated = await run()
    collectGarbage()
    return { generated, jsBefore: before.js, jsAfter: jsHeap(), wasmBefore: before.wasm, wasmAfter: ortHeapBytes() }
  },
  /** Greedy decode speed: `tokens` steps of head + argmax + embed + forward after `warmup` steps. */
  async decode(name: string, backend: LabBackend, tokens: number, warmup = 3) {
    const e = await engine(name, backend)
    const c = e.config
    if (warmup + tokens >= c.seqLen) throw new Error(`${warmup + tokens} steps do not fit in ${c.seqLen} positions`)
    await e.reset()
    const token = new Int32Array(1)
    const position = new Int32Array(1)
    let hidden = await e.forward(await e.embed(Int32Array.of(c.bosId)), Int32Array.of(0))
    let t0 = performance.now()
    for (let step = 1; step <= warmup + tokens; step++) {
      if (step === warmup + 1) t0 = performance.now()
      token[0] = argmax(await e.head(hidden))
      position[0] = step
      hidden = await e.forward(await e.embed(token), position)
    }
    const msPerToken = (performance.now() - t0) / tokens
    const engineWeightBytes = (e as Engine & { weightBytes?: number }).weightBytes // the webgpu engine's GPU weight buffers
    return { backend, model: name, tokens, msPerToken, tokensPerSecond: 1000 / msPerToken, weightBytesPerToken: weightBytesPerToken(await model(name)), wasmHeapBytes: ortHeapBytes(), engineWeightBytes }
  },
  /**
   * The SIMD kernels' threads here, and greedy decode of `tokens` steps on the wasm engine with
   * products split over all of them and on one thread: the logits of every step, compared bit for bit.
   */
  async kernelThreads(name: string, tokens: number) {
    const kernels = await loadQuantKernels()
    const e = await engine(name, 'wasm')
    const threads = kernels.threads
    const decode = async (n: number) => {
      kernels.setThreads(n)
      await e.reset()
      const logits: number[] = []
      const ids: number[] = []
      let hidden = await e.forward(await e.embed(Int32Array.of(e.config.bosId)), Int32Array.of(0))
      const t0 = performance.now()
      for (let step = 1; step <= tokens; step++) {
        const l = await e.head(hidden)
        logits.push(...l)
        ids.push(argmax(l))
        hidden = await e.forward(await e.embed(Int32Array.of(ids[ids.length - 1])), Int32Array.of(step))
      }
      return { logits, ids, msPerToken: (performance.now() - t0) / tokens }
    }
    const all = await decode(threads)
    const one = await decode(1)
    kernels.setThreads(threads)
    const identical = all.logits.length === one.logits.length && all.logits.every((v, i) => Object.is(v, one.logits[i]))
    return { threads, hardwareConcurrency: navigator.hardwareConcurrency, identical, ids: all.ids, msPerToken: { all: all.msPerToken, one: one.msPerToken } }
  },
  bandwidth(threads: number, megabytes = 512): Promise<BandwidthResult> {
    return measureStreamRead(threads, megabytes)
  },
  /** Frees a model and its engines (the 110M-shaped one holds about 2 GB across copies). */
  drop(name: string) {
    models.delete(name)
    for (const key of [...engines.keys()]) if (key.startsWith(`${name}/`)) engines.delete(key)
  },
}

export type Lab = typeof lab
