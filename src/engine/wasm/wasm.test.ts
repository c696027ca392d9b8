import { watchedWasmMemories } from '../../../testing/heap-watch.ts' // first: before onnxruntime loads
import { describe, expect, it } from 'vitest'
import { createRng } from '../../core/rng.ts'
import { memorySource } from '../../model/source/byte-source.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import type { ModelSlice, SliceSpec } from '../../model/model.ts'
import { dequantizeSlice, type QuantizedTensor, quantizeSlice, quantizeTensor } from '../../model/quant/index.ts'
import { makeSyntheticLlama2c, SYNTHETIC_LLAMA3_SCALING, type SyntheticShape, withFamilyFeatures } from '../../model/formats/synthetic.ts'
import { GOLDEN_IDS, loadStories, loadSynthetic, storiesTokenizer } from '../../../testing/models.ts'
import type { Engine } from '../engine.ts'
import { createPipelineEngine } from '../../../testing/pipeline.ts'
import { createReferenceEngine } from '../reference/reference.ts'
import { ropeInverseFrequencies } from '../rope.ts'
import { createWasmEngine, WASM_MAX_BATCH } from './index.ts'
import { collectTokens, compareFullModel, relativeError } from '../../../testing/compare.ts'


/** Tolerance for hidden states: max |wasm - ref| over max |ref|. Both are fp32; they differ only in summation order. */
const HIDDEN_TOLERANCE = 1e-5

const greedy = { temperature: 0, topP: 0.9, seed: 1 }

const part = (m: ModelSlice, spec: SliceSpec): ModelSlice => ({ ...m, spec })

describe('wasm engine (onnxruntime-web)', () => {
  it('reproduces GOLDEN.md id for id on stories260K', async () => {
    const engine = await createWasmEngine(await loadStories())
    expect(engine.backend).toBe('wasm')
    expect([1, ...await collectTokens(engine, [1], { maxTokens: 64, ...greedy })]).toEqual(GOLDEN_IDS)
  })

  it('generates what the reference does on the synthetic model with a separate classifier and 3:1 grouped-query heads', async () => {
    const model = await loadSynthetic('separateClassifier')
    const prompt = [1, 40, 7, 300, 12]
    const expected = await collectTokens(createReferenceEngine(model), prompt, { maxTokens: 80, ...greedy })
    expect(expected.length).toBeGreaterThan(40)
    expect(await collectTokens(await createWasmEngine(model), prompt, { maxTokens: 80, ...greedy })).toEqual(expected)
  })

  it('generates what the reference does on the multi-head synthetic model', async () => {
    const model = await loadSynthetic('multiHead')
    const expected = await collectTokens(createReferenceEngine(model), [1, 5], { maxTokens: 60, ...greedy })
    expect(await collectTokens(await createWasmEngine(model), [1, 5], { maxTokens: 60, ...greedy })).toEqual(expected)
  })

  it('composes with the reference: layers [0, 2) on wasm, [2, 5) on the reference, equal to the reference', async () => {
    const model = await loadStories()
    const mixed = createPipelineEngine([
      await createWasmEngine(part(model, { layers: { start: 0, end: 2 }, embedding: true, head: false })),
      createReferenceEngine(part(model, { layers: { start: 2, end: 5 }, embedding: false, head: true })),
    ])
    const prompt = storiesTokenizer().encode('Once upon a time, Lily')
    const options = { maxTokens: 100, ...greedy }
    expect(await collectTokens(mixed, prompt, options)).toEqual(await collectTokens(createReferenceEngine(model), prompt, options))
  })

  it(`keeps hidden states within ${HIDDEN_TOLERANCE} (relative) of the reference on random prompts, for every slice shape`, async () => {
    const model = await loadStories()
    const rng = createRng(42)
    const slices: SliceSpec[] = [
      { layers: { start: 0, end: 5 }, embedding: true, head: true },
      { layers: { start: 1, end: 4 }, embedding: false, head: false },
      { layers: { start: 4, end: 5 }, embedding: false, head: true },
      { layers: { start: 2, end: 2 }, embedding: true, head: false },
    ]
    for (const spec of slices) {
      const wasm = await createWasmEngine(part(model, spec))
      const ref = createReferenceEngine(part(model, spec))
      for (let trial = 0; trial < 3; trial++) {
        await wasm.reset()
        await ref.reset()
        let pos = 0
        for (const n of [1 + Math.floor(rng.nextF32() * WASM_MAX_BATCH), 1, 1 + Math.floor(rng.nextF32() * 20)]) {
          const hidden = Float32Array.from({ length: n * model.config.dim }, () => (rng.nextF32() * 2 - 1) * 3)
          const positions = Int32Array.from({ length: n }, (_, i) => pos + i)
          pos += n
          const expected = Float32Array.from(await ref.forward(hidden.slice(), positions))
          const actual = Float32Array.from(await wasm.forward(hidden.slice(), positions))
          if (spec.layers.start === spec.layers.end) expect(actual).toEqual(hidden)
          else expect(relativeError(actual, expected)).toBeLessThan(HIDDEN_TOLERANCE)
          if (spec.head) expect(relativeError(await wasm.head(actual), await ref.head(expected))).toBeLessThan(HIDDEN_TOLERANCE)
        }
      }
      if (spec.embedding) {
        const tokens = Int32Array.of(0, 1, 511, 7)
        expect(await wasm.embed(tokens)).toEqual(await ref.embed(tokens))
      }
    }
  })

  it('reads a prompt in one batch as it does one position at a time', async () => {
    const model = await loadStories()
    const engine = await createWasmEngine(model)
    const prompt = Int32Array.from(storiesTokenizer().encode('Lily and Tom went to the park. They saw a big dog and a little cat. The dog was'))
    expect(prompt.length).toBeLessThanOrEqual(WASM_MAX_BATCH)
    const positions = Int32Array.from(prompt, (_, i) => i)
    await engine.reset()
    const batched = Float32Array.from(await engine.forward(Float32Array.from(await engine.embed(prompt)), positions))
    await engine.reset()
    const stepwise = new Float32Array(batched.length)
    for (let i = 0; i < prompt.length; i++) {
      const h = await engine.forward(Float32Array.from(await engine.embed(prompt.subarray(i, i + 1))), positions.subarray(i, i + 1))
      stepwise.set(h, i * model.config.dim)
    }
    expect(relativeError(batched, stepwise)).toBeLessThan(HIDDEN_TOLERANCE)
    // and the cache each way leaves the next token with the same logits
    const next = Int32Array.of(prompt.length)
    const after = await engine.head(await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(42))), next))
    const afterStepwise = Float32Array.from(after)
    await engine.reset()
    await engine.forward(Float32Array.from(await engine.embed(prompt)), positions)
    const afterBatched = await engine.head(await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(42))), next))
    expect(relativeError(afterBatched, afterStepwise)).toBeLessThan(HIDDEN_TOLERANCE)
  })

  it('allocates nothing per token: heap sizes stay flat over 200 tokens', async () => {
    const { setFlagsFromString } = await import('node:v8')
    const { runInNewContext } = await import('node:vm')
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const engine = await createWasmEngine(await loadStories())
    const options = { maxTokens: 200, temperature: 0.9, topP: 0.9, seed: 3 }
    expect((await collectTokens(engine, [1], options)).length).toBe(200) // warm-up: the arena grows to its largest cache prefix
    const heap = watchedWasmMemories().find((m) => m.buffer.byteLength > 0)!
    const wasmBefore = heap.buffer.byteLength
    gc()
    const jsBefore = process.memoryUsage().heapUsed
    await collectTokens(engine, [1], options)
    gc()
    const jsGrowth = process.memoryUsage().heapUsed - jsBefore
    expect(heap.buffer.byteLength).toBe(wasmBefore)
    expect(jsGrowth).toBeLessThan(1 << 20)
  })

  it('refuses calls it cannot serve with typed errors', async () => {
    const m = await loadStories()
    const middle = await createWasmEngine(part(m, { layers: { start: 1, end: 3 }, embedding: false, head: false }))
    await expect(middle.embed(Int32Array.of(1))).rejects.toMatchObject({ code: 'bad-argument', message: expect.stringMatching(/no token embedding/) })
    await expect(middle.head(new Float32Array(64))).rejects.toMatchObject({ code: 'bad-argument', message: expect.stringMatching(/no classifier/) })
    await expect(middle.forward(new Float32Array(63), Int32Array.of(0))).rejects.toThrow(/expected 1 x 64/)
    await expect(middle.forward(new Float32Array(64), Int32Array.of(512))).rejects.toMatchObject({ code: 'context-window' })
    await expect(middle.forward(new Float32Array(65 * 64), Int32Array.from({ length: 65 }, (_, i) => i))).rejects.toThrow(/between 1 and 64/)
    await expect(middle.forward(new Float32Array(128), Int32Array.of(3, 3))).rejects.toThrow(/must increase/)
    await expect(createWasmEngine(part(m, { layers: { start: 3, end: 9 }, embedding: false, head: false }))).rejects.toMatchObject({ code: 'bad-argument' })
    await expect(createWasmEngine(m, { numThreads: 0 })).rejects.toMatchObject({ code: 'bad-argument' })
    // a slice missing its weights is refused before onnxruntime sees it
    await expect(createWasmEngine({ ...m, tensors: new Map() })).rejects.toThrow(/tensor layers\.0\.attention_norm is not in this slice/)
    // the engine still works after refusing
    const h = await middle.forward(new Float32Array(64).fill(0.5), Int32Array.of(0))
    expect(h.length).toBe(64)
  })
})

// ---- quantized weights, attention bias, scaled RoPE ----

/**
 * Tolerance against the reference on the dequantized weights, as above: the SIMD kernels and
 * dequantizeTensor expand the blocks to the very same fp32 values (an integer code times the f16
 * scale is exact in fp32), so only the summation order differs.
 */
const QUANT_TOLERANCE = 1e-5

/** Every dimension a multiple of 32, so every matrix (and the classifier) can be kept as blocks. */
const BLOCKABLE_SHAPE: SyntheticShape = { dim: 64, hiddenDim: 160, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 320, seqLen: 64, sharedClassifier: false }
const loadBlockable = (spec?: SliceSpec) => loadLlama2c(memorySource(makeSyntheticLlama2c(BLOCKABLE_SHAPE, 99)), spec)


/** compareFullModel, whose decode steps must all pick the reference's ids. */
async function fullModelErrors(engine: Engine, ref: Engine, prompt: number[], steps: number): Promise<{ prefill: number; logits: number }> {
  const r = await compareFullModel(engine, ref, prompt, steps)
  expect(r.argmaxMismatches).toBe(0)
  return r
}

describe('wasm engine on quantized weights (SIMD kernels), attention bias and scaled RoPE', () => {
  const prompt = [1, 40, 7, 300, 12, 99, 5, 211, 63, 17, 280, 3]

  it.each(['q4_0', 'q8_0'] as const)('runs a %s layer range [1, 3) without head or embedding, and a pipeline of quantized ranges, as the reference does', async (type) => {
    const model = quantizeSlice(await loadBlockable(), type)
    const middle = part(model, { layers: { start: 1, end: 3 }, embedding: false, head: false })
    const wasm = await createWasmEngine(middle)
    const ref = createReferenceEngine(dequantizeSlice(middle))
    const rng = createRng(7)
    let pos = 0
    for (const n of [9, 1, 1, 5]) {
      const hidden = Float32Array.from({ length: n * model.config.dim }, () => (rng.nextF32() * 2 - 1) * 3)
      const positions = Int32Array.from({ length: n }, (_, i) => pos + i)
      pos += n
      const expected = Float32Array.from(await ref.forward(hidden.slice(), positions))
      expect(relativeError(Float32Array.from(await wasm.forward(hidden.slice(), positions)), expected)).toBeLessThan(QUANT_TOLERANCE)
    }
    const pipeline = createPipelineEngine([
      await createWasmEngine(part(model, { layers: { start: 0, end: 1 }, embedding: true, head: false })),
      wasm,
      await createWasmEngine(part(model, { layers: { start: 3, end: 4 }, embedding: false, head: true })),
    ])
    await wasm.reset()
    const options = { maxTokens: 40, ...greedy }
    expect(await collectTokens(pipeline, [1, 77], options)).toEqual(await collectTokens(createReferenceEngine(dequantizeSlice(model)), [1, 77], options))
  })

  /** The blockable model as a Qwen2-style one: seeded q/k/v biases and llama3 RoPE scaling. */
  const loadBiasedScaled = async () => withFamilyFeatures(await loadBlockable(), { biasSeed: 11, ropeScaling: SYNTHETIC_LLAMA3_SCALING })

  it('adds the attention bias and scales RoPE (llama3) as the reference does, on fp32 and quantized weights', async () => {
    const model = await loadBiasedScaled()
    // the scaling really moves frequencies: some pairs keep theirs, some are divided by 8, one is blended
    const plain = ropeInverseFrequencies({ ...model.config, ropeScaling: undefined })
    const scaled = ropeInverseFrequencies(model.config)
    expect(scaled.filter((f, i) => f !== plain[i]).length).toBeGreaterThanOrEqual(2)
    expect(scaled[0]).toBe(plain[0])
    for (const slice of [model, quantizeSlice(model, 'q8_0'), quantizeSlice(model, 'q4_0')]) {
      const wasm = await createWasmEngine(slice) // fp32: onnxruntime's graphs; quantized: the SIMD kernels
      const ref = createReferenceEngine(dequantizeSlice(slice))
      const err = await fullModelErrors(wasm, ref, prompt, 12)
      expect(err.prefill).toBeLessThan(QUANT_TOLERANCE)
      expect(err.logits).toBeLessThan(QUANT_TOLERANCE)
      const options = { maxTokens: 48, ...greedy }
      expect(await collectTokens(wasm, [1, 5, 9], options)).toEqual(await collectTokens(ref, [1, 5, 9], options))
      await wasm.release()
    }
  })

  it('with dequantize: true runs the blocks as fp32 Gemm weights, same numbers', async () => {
    const model = quantizeSlice(await loadBiasedScaled(), 'q4_0')
    const expanded = await createWasmEngine(model, { dequantize: true })
    expect(expanded.weightBytes).toBe((await createWasmEngine(dequantizeSlice(model))).weightBytes)
    const err = await fullModelErrors(expanded, createReferenceEngine(dequantizeSlice(model)), prompt, 6)
    expect(Math.max(err.prefill, err.logits)).toBeLessThan(QUANT_TOLERANCE)
  })

  it('dequantizes rows of a quantized token embedding', async () => {
    const model = await loadBlockable()
    const table = model.tensors.get('token_embedding')!
    for (const type of ['q8_0', 'q4_0'] as const) {
      const q = quantizeTensor('token_embedding', [table.shape[0], table.shape[1]], table.data, type)
      const tensors = new Map(model.tensors)
      tensors.delete('token_embedding')
      const engine = await createWasmEngine({ ...model, tensors, quantized: new Map([['token_embedding', q]]) })
      const tokens = Int32Array.of(0, 319, 5, 5)
      const expected = await createReferenceEngine(dequantizeSlice({ ...model, tensors, quantized: new Map([['token_embedding', q]]) })).embed(tokens)
      expect(await engine.embed(tokens)).toEqual(expected)
      expect(relativeError(await engine.embed(tokens), await createReferenceEngine(model).embed(tokens))).toBeGreaterThan(0)
    }
  })

  it('refuses quantized matrices that do not fit the model with typed errors', async () => {
    const model = quantizeSlice(await loadBlockable(), 'q8_0')
    const wrongShape = new Map(model.quantized)
    const wk = wrongShape.get('layers.0.wk')!
    wrongShape.set('layers.0.wk', { ...wk, shape: [wk.shape[1], wk.shape[0]] })
    const truncated = new Map(model.quantized)
    truncated.set('layers.1.w2', { ...truncated.get('layers.1.w2')!, blocks: new Uint8Array(34) })
    await expect(createWasmEngine({ ...model, quantized: wrongShape })).rejects.toMatchObject({ code: 'model-mismatch', message: expect.stringMatching(/layers\.0\.wk/) })
    await expect(createWasmEngine({ ...model, quantized: truncated })).rejects.toMatchObject({ code: 'model-format', message: expect.stringMatching(/layers\.1\.w2/) })
    const biased = await loadBiasedScaled()
    const shortBias = new Map(biased.tensors)
    shortBias.set('layers.2.bk', { name: 'layers.2.bk', shape: [3], data: new Float32Array(3) })
    await expect(createWasmEngine({ ...biased, tensors: shortBias })).rejects.toMatchObject({ code: 'model-mismatch', message: expect.stringMatching(/layers\.2\.bk/) })
  })
})
