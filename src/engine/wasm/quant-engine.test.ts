import { describe, expect, it } from 'vitest'
import { createRng } from '../../core/rng.ts'
import { memorySource } from '../../model/source/byte-source.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import { heldWeightBytes, type ModelSlice, type SliceSpec } from '../../model/model.ts'
import { dequantizeTensor, quantizeSlice, quantizeTensor } from '../../model/quant/index.ts'
import { makeSyntheticLlama2c, SYNTHETIC_LLAMA3_SCALING, type SyntheticShape, withFamilyFeatures } from '../../model/formats/synthetic.ts'
import { loadStories } from '../../../testing/models.ts'
import type { Engine } from '../engine.ts'
import { createReferenceEngine } from '../reference/reference.ts'
import { createWasmEngine } from './index.ts'
import { loadQuantKernels } from './quant-kernels.ts'
import { collectTokens, compareFullModel, relativeError } from '../../../testing/compare.ts'

/**
 * Tolerance against the reference engine on the same quantized slice (its products are
 * quantizedMatvec, the kernels' twin), as max |wasm - ref| over max |ref| of hidden states and
 * logits: the same numbers summed in float32 lanes instead of float64, through every layer.
 */
const TOLERANCE = 1e-5

/** Every dimension a multiple of 32, so every matrix (and the classifier) can be kept as blocks. */
const BLOCKABLE_SHAPE: SyntheticShape = { dim: 64, hiddenDim: 160, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 320, seqLen: 64, sharedClassifier: false }
const loadBlockable = () => loadLlama2c(memorySource(makeSyntheticLlama2c(BLOCKABLE_SHAPE, 99)))


const part = (m: ModelSlice, spec: SliceSpec): ModelSlice => ({ ...m, spec })
const greedy = { temperature: 0, topP: 0.9, seed: 1 }

/** The largest of compareFullModel's errors; its decode steps must all pick the reference's ids. */
async function fullModelError(engine: Engine, ref: Engine, prompt: number[], steps: number): Promise<number> {
  const r = await compareFullModel(engine, ref, prompt, steps)
  expect(r.argmaxMismatches).toBe(0)
  return Math.max(r.prefill, r.logits)
}

describe('wasm engine on Q8_0 / Q4_0 weights with the SIMD kernels', () => {
  const prompt = [1, 40, 7, 300, 12, 99, 5, 211, 63, 17, 280, 3]

  for (const type of ['q8_0', 'q4_0'] as const) {
    for (const [name, load, matrices] of [
      ['the blockable synthetic model', loadBlockable, 4 * 7 + 1],
      // hidden_dim 172 does not fill blocks: w2 stays fp32 (computed as the reference does) and the shared classifier is quantized
      ['stories260K', loadStories, 5 * 6 + 1],
    ] as const) {
      it(`${type} on ${name}: prefill rows, logits and decode within ${TOLERANCE} of the reference on the same blocks, same greedy ids over 48 tokens`, async () => {
        const model = await load()
        const q = quantizeSlice(model, type)
        expect(q.quantized!.size).toBe(matrices)
        const kernels = await loadQuantKernels()
        const held = kernels.weightBytes
        const wasm = await createWasmEngine(q)
        expect(wasm.backend).toBe('wasm')
        // the blocks (and fp32 matrices: w2 of stories260K) went to the kernels (this file's first engine on these tensors), once
        const blockBytes = [...q.quantized!.values()].reduce((n, m) => n + m.blocks.byteLength, 0)
        const f32MatrixBytes = [...q.tensors].reduce((n, [name, t]) => n + (t.shape.length === 2 && name !== 'token_embedding' ? t.data.byteLength : 0), 0)
        expect(f32MatrixBytes).toBe(name === 'stories260K' ? 5 * 4 * 64 * 172 : 0)
        expect(kernels.weightBytes - held).toBe(blockBytes + f32MatrixBytes)
        // weightBytes: what it computes with (blocks as blocks): all the slice holds but the fp32 embedding table
        expect(wasm.weightBytes).toBe(heldWeightBytes(q) - 4 * model.config.vocabSize * model.config.dim)
        const ref = createReferenceEngine(q)
        expect(await fullModelError(wasm, ref, prompt.map((t) => t % model.config.vocabSize), 12)).toBeLessThan(TOLERANCE)
        const options = { maxTokens: 48, ...greedy }
        const expected = await collectTokens(ref, [1, 5, 9], options)
        expect(expected.length).toBe(48)
        expect(await collectTokens(wasm, [1, 5, 9], options)).toEqual(expected)
        // a second engine on the same tensors (another session of the engine worker) shares the blocks
        const before = kernels.weightBytes
        await createWasmEngine(q)
        expect(kernels.weightBytes).toBe(before)
      })
    }
  }

  it('runs an fp32 classifier tied to the embedding table (as the GGUF loader keeps one) on the fp32 kernel, as the reference does', async () => {
    const model = await loadStories()
    expect(model.config.sharedClassifier).toBe(true)
    const q = quantizeSlice(model, 'q8_0')
    const quantized = new Map(q.quantized)
    quantized.delete('classifier')
    const tied: ModelSlice = { ...q, quantized, tensors: new Map([...q.tensors, ['classifier', model.tensors.get('classifier')!]]) }
    expect(tied.tensors.get('classifier')!.data).toBe(tied.tensors.get('token_embedding')!.data)
    const wasm = await createWasmEngine(tied)
    const ref = createReferenceEngine(tied)
    expect(await fullModelError(wasm, ref, prompt, 12)).toBeLessThan(TOLERANCE)
    const options = { maxTokens: 48, ...greedy }
    expect(await collectTokens(wasm, [1, 5, 9], options)).toEqual(await collectTokens(ref, [1, 5, 9], options))
  })

  it('reads a prompt in one batch as it does one position at a time, and random hidden states of any row count as the reference does', async () => {
    const model = quantizeSlice(await loadStories(), 'q4_0')
    const engine = await createWasmEngine(model)
    const ref = createReferenceEngine(model)
    const rng = createRng(42)
    let pos = 0
    for (const n of [64, 1, 17, 3]) {
      const hidden = Float32Array.from({ length: n * model.config.dim }, () => (rng.nextF32() * 2 - 1) * 3)
      const positions = Int32Array.from({ length: n }, (_, i) => pos + i)
      pos += n
      const expected = Float32Array.from(await ref.forward(hidden.slice(), positions))
      const actual = Float32Array.from(await engine.forward(hidden.slice(), positions))
      expect(relativeError(actual, expected)).toBeLessThan(TOLERANCE)
      expect(relativeError(Float32Array.from(await engine.head(actual)), await ref.head(expected))).toBeLessThan(TOLERANCE)
    }
    const tokens = Int32Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 512)
    const positions = Int32Array.from(tokens, (_, i) => i)
    await engine.reset()
    const batched = Float32Array.from(await engine.forward(Float32Array.from(await engine.embed(tokens)), positions))
    await engine.reset()
    const stepwise = new Float32Array(batched.length)
    for (let i = 0; i < tokens.length; i++) {
      stepwise.set(await engine.forward(Float32Array.from(await engine.embed(tokens.subarray(i, i + 1))), positions.subarray(i, i + 1)), i * model.config.dim)
    }
    expect(relativeError(batched, stepwise)).toBeLessThan(TOLERANCE)
  })

  it('adds the attention bias and scales RoPE (llama3) as the reference does, and reads a quantized token embedding', async () => {
    const model = quantizeSlice(withFamilyFeatures(await loadBlockable(), { biasSeed: 11, ropeScaling: SYNTHETIC_LLAMA3_SCALING }), 'q4_0')
    const wasm = await createWasmEngine(model)
    const ref = createReferenceEngine(model)
    expect(await fullModelError(wasm, ref, prompt, 12)).toBeLessThan(TOLERANCE)
    const options = { maxTokens: 48, ...greedy }
    expect(await collectTokens(wasm, [1, 5, 9], options)).toEqual(await collectTokens(ref, [1, 5, 9], options))
    // the embedding table as Q8_0 blocks: rows dequantized one at a time
    const table = model.tensors.get('token_embedding')!
    const embedding = quantizeTensor('token_embedding', [table.shape[0], table.shape[1]], table.data, 'q8_0')
    const withoutTable = new Map(model.tensors)
    withoutTable.delete('token_embedding')
    const blockEmbedding = await createWasmEngine({ ...model, tensors: withoutTable, quantized: new Map([...model.quantized!, ['token_embedding', embedding]]) })
    const tokens = Int32Array.of(0, 319, 5, 5)
    const rows = await blockEmbedding.embed(tokens)
    const dequantized = createReferenceEngine({ ...model, tensors: new Map([...model.tensors, ['token_embedding', { name: 'token_embedding', shape: table.shape, data: dequantizeTensor(embedding) }]]) })
    expect(rows).toEqual(await dequantized.embed(tokens))
  })

  it('allocates nothing per token: kernel memory and the JS heap stay flat over 200 tokens', async () => {
    const { setFlagsFromString } = await import('node:v8')
    const { runInNewContext } = await import('node:vm')
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const engine = await createWasmEngine(quantizeSlice(await loadStories(), 'q8_0'))
    const options = { maxTokens: 200, temperature: 0.9, topP: 0.9, seed: 3 }
    expect((await collectTokens(engine, [1], options)).length).toBe(200) // warm-up: scratch grows to its largest call
    const memory = (await loadQuantKernels()).memory
    const before = memory.buffer.byteLength
    gc()
    const jsBefore = process.memoryUsage().heapUsed
    await collectTokens(engine, [1], options)
    gc()
    expect(memory.buffer.byteLength).toBe(before)
    expect(process.memoryUsage().heapUsed - jsBefore).toBeLessThan(1 << 20)
  })

  it('refuses calls it cannot serve with typed errors', async () => {
    const m = quantizeSlice(await loadBlockable(), 'q8_0')
    const middle = await createWasmEngine(part(m, { layers: { start: 1, end: 3 }, embedding: false, head: false }))
    await expect(middle.embed(Int32Array.of(1))).rejects.toMatchObject({ code: 'bad-argument', message: expect.stringMatching(/no token embedding/) })
    await expect(middle.head(new Float32Array(64))).rejects.toMatchObject({ code: 'bad-argument', message: expect.stringMatching(/no classifier/) })
    await expect(middle.forward(new Float32Array(63), Int32Array.of(0))).rejects.toThrow(/expected 1 x 64/)
    await expect(middle.forward(new Float32Array(64), Int32Array.of(64))).rejects.toMatchObject({ code: 'context-window' })
    await expect(middle.forward(new Float32Array(65 * 64), Int32Array.from({ length: 65 }, (_, i) => i))).rejects.toThrow(/between 1 and 64/)
    await expect(middle.forward(new Float32Array(128), Int32Array.of(3, 3))).rejects.toThrow(/must increase/)
    await expect(createWasmEngine(part(m, { layers: { start: 3, end: 9 }, embedding: false, head: false }))).rejects.toMatchObject({ code: 'bad-argument' })
    const noBias = await createWasmEngine(m) // a model without attention bias needs none
    expect(noBias.backend).toBe('wasm')
    const h = await middle.forward(new Float32Array(64).fill(0.5), Int32Array.of(0))
    expect(h.length).toBe(64)
  })
})
