import { watchedWasmMemories } from './heap-watch.ts' // first: before onnxruntime loads
import { describe, expect, it } from 'vitest'
import { createRng } from '../../lib/rng.ts'
import type { ModelSlice, SliceSpec } from '../../model/model.ts'
import { GOLDEN_IDS, loadStories, loadSynthetic, storiesTokenizer } from '../../test/models.ts'
import type { Engine } from '../engine.ts'
import { generateTokens, type GenerateOptions } from '../generate.ts'
import { createPipelineEngine } from '../pipeline.ts'
import { createReferenceEngine } from '../reference.ts'
import { createWasmEngine, WASM_MAX_BATCH } from './index.ts'


/** Tolerance for hidden states: max |wasm - ref| over max |ref|. Both are fp32; they differ only in summation order. */
const HIDDEN_TOLERANCE = 1e-5

async function collect(engine: Engine, prompt: number[], options: GenerateOptions): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, prompt, options)) out.push(t)
  return out
}

const greedy = { temperature: 0, topP: 0.9, seed: 1 }

function relativeError(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length)
  let diff = 0
  let scale = 0
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]))
    scale = Math.max(scale, Math.abs(expected[i]))
  }
  return diff / scale
}

const part = (m: ModelSlice, spec: SliceSpec): ModelSlice => ({ config: m.config, spec, tensors: m.tensors })

describe('wasm engine (onnxruntime-web)', () => {
  it('reproduces GOLDEN.md id for id on stories260K', async () => {
    const engine = await createWasmEngine(await loadStories())
    expect(engine.backend).toBe('wasm')
    expect([1, ...await collect(engine, [1], { maxTokens: 64, ...greedy })]).toEqual(GOLDEN_IDS)
  })

  it('generates what the reference does on the synthetic model with a separate classifier and 3:1 grouped-query heads', async () => {
    const model = await loadSynthetic('separateClassifier')
    const prompt = [1, 40, 7, 300, 12]
    const expected = await collect(createReferenceEngine(model), prompt, { maxTokens: 80, ...greedy })
    expect(expected.length).toBeGreaterThan(40)
    expect(await collect(await createWasmEngine(model), prompt, { maxTokens: 80, ...greedy })).toEqual(expected)
  })

  it('generates what the reference does on the multi-head synthetic model', async () => {
    const model = await loadSynthetic('multiHead')
    const expected = await collect(createReferenceEngine(model), [1, 5], { maxTokens: 60, ...greedy })
    expect(await collect(await createWasmEngine(model), [1, 5], { maxTokens: 60, ...greedy })).toEqual(expected)
  })

  it('composes with the reference: layers [0, 2) on wasm, [2, 5) on the reference, equal to the reference', async () => {
    const model = await loadStories()
    const mixed = createPipelineEngine([
      await createWasmEngine(part(model, { layers: { start: 0, end: 2 }, embedding: true, head: false })),
      createReferenceEngine(part(model, { layers: { start: 2, end: 5 }, embedding: false, head: true })),
    ])
    const prompt = storiesTokenizer().encode('Once upon a time, Lily')
    const options = { maxTokens: 100, ...greedy }
    expect(await collect(mixed, prompt, options)).toEqual(await collect(createReferenceEngine(model), prompt, options))
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
    expect((await collect(engine, [1], options)).length).toBe(200) // warm-up: the arena grows to its largest cache prefix
    const heap = watchedWasmMemories().find((m) => m.buffer.byteLength > 0)!
    const wasmBefore = heap.buffer.byteLength
    gc()
    const jsBefore = process.memoryUsage().heapUsed
    await collect(engine, [1], options)
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
