import { describe, expect, it } from 'vitest'
import generateFixtures from '../../../testing/fixtures/runc-generate.json'
import syntheticFixtures from '../../../testing/fixtures/runc-synthetic.json'
import type { ModelSlice, SliceSpec } from '../../model/model.ts'
import { GOLDEN_IDS, loadStories, loadSynthetic, storiesTokenizer, type SyntheticName } from '../../../testing/models.ts'
import type { Engine } from '../engine.ts'
import { createPipelineEngine } from '../../../testing/pipeline.ts'
import { createReferenceEngine } from './reference.ts'
import { collectTokens } from '../../../testing/compare.ts'

/** run.c generates steps + 1 - prompt tokens unless it stops on BOS; tabmesh also stops on EOS. */
function expectedFromRunc(f: { steps: number; promptIds: number[]; genIds: number[] }) {
  const eos = f.genIds.indexOf(2)
  return { maxTokens: Math.min(f.steps, 512) + 1 - f.promptIds.length, ids: eos < 0 ? f.genIds : f.genIds.slice(0, eos) }
}

const split = (m: ModelSlice, cuts: number[]): Promise<Engine[]> => {
  const bounds = [0, ...cuts, m.config.nLayers]
  return Promise.all(bounds.slice(1).map(async (end, i) => {
    const spec: SliceSpec = { layers: { start: bounds[i], end }, embedding: i === 0, head: end === m.config.nLayers }
    const part: ModelSlice = { config: m.config, spec, tensors: m.tensors }
    return createReferenceEngine(part)
  }))
}

describe('reference engine', () => {
  it('reproduces GOLDEN.md id for id', async () => {
    const engine = createReferenceEngine(await loadStories())
    expect([1, ...await collectTokens(engine, [1], { maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 })]).toEqual(GOLDEN_IDS)
  })

  it.each(generateFixtures.map((f) => [f.prompt, f.temperature, f.topp, f.seed, f] as const))(
    'matches run.c for prompt %j, temperature %s, top-p %s, seed %s', async (prompt, temperature, topP, seed, f) => {
      const tok = storiesTokenizer()
      expect(tok.encode(prompt)).toEqual(f.promptIds)
      const { maxTokens, ids } = expectedFromRunc(f)
      const engine = createReferenceEngine(await loadStories())
      expect(await collectTokens(engine, f.promptIds, { maxTokens, temperature, topP, seed })).toEqual(ids)
    })

  it.each(syntheticFixtures.map((f) => [f.model, f.prompt, f.temperature, f] as const))(
    'matches run.c on synthetic model %s, prompt %j, temperature %s', async (model, _prompt, temperature, f) => {
      const { maxTokens, ids } = expectedFromRunc(f)
      const engine = createReferenceEngine(await loadSynthetic(model as SyntheticName))
      expect(await collectTokens(engine, f.promptIds, { maxTokens, temperature, topP: f.topp, seed: f.seed })).toEqual(ids)
    })

  it.each([
    ['stories260K', [2]], ['stories260K', [1, 3]], ['stories260K', [1, 2, 3, 4]],
    ['separateClassifier', [3]], ['separateClassifier', [2, 5]], ['multiHead', [1]],
  ] as const)('%s split at %j computes exactly what the whole model does', async (name, cuts) => {
    const model = name === 'stories260K' ? await loadStories() : await loadSynthetic(name)
    const whole = createReferenceEngine(model)
    const pipeline = createPipelineEngine(await split(model, [...cuts]))
    const prompt = storiesTokenizer().encode('Once upon a time')
    for (const e of [whole, pipeline]) await e.reset()
    let hWhole = await whole.forward(await whole.embed(Int32Array.from(prompt)), Int32Array.from(prompt, (_, i) => i))
    let hPipe = await pipeline.forward(await pipeline.embed(Int32Array.from(prompt)), Int32Array.from(prompt, (_, i) => i))
    for (let pos = prompt.length; pos < 40; pos++) {
      const a = Float32Array.from(await whole.head(hWhole))
      const b = Float32Array.from(await pipeline.head(hPipe))
      expect(b).toEqual(a) // bit-exact
      let next = 0
      for (let i = 1; i < a.length; i++) if (a[i] > a[next]) next = i
      hWhole = await whole.forward(await whole.embed(Int32Array.of(next)), Int32Array.of(pos))
      hPipe = await pipeline.forward(await pipeline.embed(Int32Array.of(next)), Int32Array.of(pos))
    }
  })

  it('gives the same tokens whether the prompt is read in one batch or one position at a time', async () => {
    const engine = createReferenceEngine(await loadStories())
    const prompt = storiesTokenizer().encode('Lily and Tom went to the park. They saw a big dog and a little cat.')
    const options = { maxTokens: 40, temperature: 0.8, topP: 0.9, seed: 9 }
    const batched = await collectTokens(engine, prompt, { ...options, prefillChunk: 64 })
    const stepwise = await collectTokens(engine, prompt, { ...options, prefillChunk: 1 })
    expect(stepwise).toEqual(batched)
    expect(batched.length).toBe(40)
  })

  it('refuses a prompt plus tokens past the context window before doing any work', async () => {
    const engine = createReferenceEngine(await loadStories())
    await expect(collectTokens(engine, [1, 2, 3], { maxTokens: 511, temperature: 0, topP: 0.9, seed: 1 })).rejects.toThrow(/needs 513 positions, but the model's context window is 512/)
    expect((await collectTokens(engine, [1, 2, 3], { maxTokens: 510, temperature: 0, topP: 0.9, seed: 1 })).length).toBeGreaterThan(0)
  })

  it('refuses engine calls it cannot serve', async () => {
    const m = await loadStories()
    const middle = createReferenceEngine({ ...m, spec: { layers: { start: 1, end: 3 }, embedding: false, head: false } })
    await expect(middle.embed(Int32Array.of(1))).rejects.toThrow(/no token embedding/)
    await expect(middle.head(new Float32Array(64))).rejects.toThrow(/no classifier/)
    await expect(middle.forward(new Float32Array(63), Int32Array.of(0))).rejects.toThrow(/expected 1 x 64/)
    await expect(middle.forward(new Float32Array(64), Int32Array.of(512))).rejects.toThrow(/outside the context window/)
  })
})

describe('reference engine on weights kept quantized', () => {
  // stories260K in Q8_0 / Q4_0 blocks (w2 is 172 wide, not whole blocks: it stays fp32), run from the
  // blocks by quantizedMatvec, against the same engine on the dequantized fp32 values: the numbers
  // are the same weights, only the summation order differs
  it.each(['q8_0', 'q4_0'] as const)('%s: logits within 1e-4 of the dequantized weights, identical greedy ids', async (type) => {
    const { dequantizeSlice, quantizeSlice } = await import('../../model/quant/index.ts')
    const { integrityParts } = await import('../../model/source/integrity.ts')
    const m = await loadStories()
    const kept = quantizeSlice(m, type)
    expect(kept.quantized!.size).toBe(6 * m.config.nLayers + 1) // wq wk wv wo w1 w3 per layer, and the classifier
    const plain = dequantizeSlice(kept)
    expect(await integrityParts(kept)).toEqual(await integrityParts(plain)) // part hashes do not depend on the kept form
    const a = createReferenceEngine(kept)
    const b = createReferenceEngine(plain)
    const prompt = Int32Array.from([1, 403, 407, 261])
    const la = await a.head(await a.forward(await a.embed(prompt), Int32Array.from([0, 1, 2, 3])))
    const lb = (await b.head(await b.forward(await b.embed(prompt), Int32Array.from([0, 1, 2, 3])))).slice()
    let worst = 0
    for (let i = 0; i < la.length; i++) worst = Math.max(worst, Math.abs(la[i] - lb[i]))
    expect(worst).toBeLessThan(1e-4)
    await a.reset()
    await b.reset()
    const options = { maxTokens: 40, temperature: 0, topP: 0.9, seed: 1 }
    expect(await collectTokens(a, [1], options)).toEqual(await collectTokens(b, [1], options))
  })
})
