import { describe, expect, it } from 'vitest'
import { memorySource } from '../source/byte-source.ts'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { LLAMA2C_HEADER_BYTES, LLAMA2C_VERSIONED_HEADER_BYTES, llama2cLayout, loadLlama2c, readLlama2cConfig, writeLlama2cVersioned } from './llama2c.ts'
import { LAYER_TENSORS, elementCount, layerTensorName, layerTensorShape } from '../model.ts'
import { GOLDEN_IDS, loadStories, stories260K, storiesTokenizer, syntheticBytes } from '../../../testing/models.ts'
import { generateTokens } from '../../engine/generate.ts'
import { createReferenceEngine } from '../../engine/reference/reference.ts'

describe('llama2.c checkpoint loader', () => {
  it('reads the stories260K header', async () => {
    const c = await readLlama2cConfig(memorySource(stories260K.weights))
    expect(c).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, headSize: 8, kvDim: 32, sharedClassifier: true })
    expect(llama2cLayout(c).fileBytes).toBe(1_056_540)
  })

  it('names every tensor with its shape and shares the classifier with the embedding', async () => {
    const m = await loadStories()
    expect(m.tensors.get('layers.4.wk')!.shape).toEqual([32, 64])
    expect(m.tensors.get('layers.0.w2')!.shape).toEqual([64, 172])
    expect(m.tensors.get('classifier')!.data).toBe(m.tensors.get('token_embedding')!.data)
  })

  it('puts each tensor at the offset the format gives (first and last floats of every layer tensor)', async () => {
    const m = await loadStories()
    const layout = llama2cLayout(m.config)
    const view = new DataView(stories260K.weights.buffer, stories260K.weights.byteOffset)
    for (const t of LAYER_TENSORS) {
      const n = elementCount(layerTensorShape(m.config, t))
      for (let l = 0; l < 5; l++) {
        const data = m.tensors.get(layerTensorName(l, t))!.data
        expect(data[0]).toBe(view.getFloat32(layout.layer[t] + l * n * 4, true))
        expect(data[n - 1]).toBe(view.getFloat32(layout.layer[t] + (l * n + n - 1) * 4, true))
      }
    }
  })

  it('loads a layer range by reading only that range (no embedding, no head)', async () => {
    const src = memorySource(stories260K.weights)
    const slice = await loadLlama2c(src, { layers: { start: 2, end: 4 }, embedding: false, head: false })
    const c = slice.config
    const perLayer = LAYER_TENSORS.reduce((sum, t) => sum + elementCount(layerTensorShape(c, t)) * 4, 0)
    expect(src.bytesRead).toBe(LLAMA2C_HEADER_BYTES + 2 * perLayer)
    expect([...slice.tensors.keys()].every((k) => k.startsWith('layers.2.') || k.startsWith('layers.3.'))).toBe(true)
    expect(slice.tensors.size).toBe(2 * LAYER_TENSORS.length)
  })

  it('loads head only: final norm and the (shared) classifier', async () => {
    const src = memorySource(stories260K.weights)
    const slice = await loadLlama2c(src, { layers: { start: 0, end: 0 }, embedding: false, head: true })
    expect([...slice.tensors.keys()].sort()).toEqual(['classifier', 'final_norm'])
    expect(src.bytesRead).toBe(LLAMA2C_HEADER_BYTES + (512 * 64 + 64) * 4)
  })

  it('reads a separate classifier after the unused RoPE tables', async () => {
    const bytes = syntheticBytes('separateClassifier')
    const m = await loadLlama2c(memorySource(bytes))
    expect(m.config.sharedClassifier).toBe(false)
    expect(m.tensors.get('classifier')!.data).not.toBe(m.tensors.get('token_embedding')!.data)
    const last = new DataView(bytes.buffer).getFloat32(bytes.byteLength - 4, true)
    expect(m.tensors.get('classifier')!.data.at(-1)).toBe(last)
  })

  it('refuses a truncated file', async () => {
    await expect(loadLlama2c(memorySource(stories260K.weights.subarray(0, 500_000)))).rejects.toThrow(/describes a 1056540-byte file but it has 500000 bytes \(truncated\)/)
  })

  it('refuses a header whose sizes do not match the file', async () => {
    const bytes = stories260K.weights.slice()
    new DataView(bytes.buffer).setInt32(8, 6, true) // n_layers 5 -> 6
    await expect(loadLlama2c(memorySource(bytes))).rejects.toThrow(/header describes a \d+-byte file but it has 1056540 bytes/)
  })

  it('refuses a garbage header', async () => {
    const bytes = stories260K.weights.slice()
    new DataView(bytes.buffer).setInt32(0, -7, true)
    await expect(loadLlama2c(memorySource(bytes))).rejects.toThrow(/header field dim = -7/)
    await expect(loadLlama2c(memorySource(new Uint8Array(10)))).rejects.toThrow(/too short/)
  })

  it('refuses NaN weights, naming the tensor', async () => {
    const bytes = stories260K.weights.slice()
    const c = await readLlama2cConfig(memorySource(bytes))
    new DataView(bytes.buffer).setFloat32(llama2cLayout(c).layer.w3 + 4 * 100, NaN, true)
    await expect(loadLlama2c(memorySource(bytes))).rejects.toThrow(/tensor w3\[0:5\] holds a non-finite value \(NaN\)/)
  })

  it('refuses a layer range outside the model', async () => {
    await expect(loadStories({ layers: { start: 3, end: 6 }, embedding: false, head: false })).rejects.toThrow(/\[3, 6\) is not inside the model's 5 layers/)
  })
})

describe("export.py's versioned files: version 1 (fp32) and version 2 (int8 groups, runq.c)", () => {
  const fixture = JSON.parse(readFileSync(new URL('../../../testing/fixtures/runq-v2.json', import.meta.url), 'utf8')) as { fileSha256: string; runs: { prompt: string; steps: number; stdoutText: string }[] }
  const tensorsOf = async () => { const m = await loadLlama2c(memorySource(stories260K.weights)); return { m, t: (name: string) => m.tensors.get(name)!.data } }
  const greedy = async (slice: Awaited<ReturnType<typeof loadLlama2c>>, prompt: number[], maxTokens: number) => {
    const ids: number[] = []
    for await (const id of generateTokens(createReferenceEngine(slice), prompt, { maxTokens, temperature: 0, topP: 0.9, seed: 1 })) ids.push(id)
    return ids
  }

  it('version 1 holds the same fp32 weights: every tensor equal, run.c\'s greedy ids (GOLDEN.md), a layer range reads only its bytes', async () => {
    const { m, t } = await tensorsOf()
    const bytes = writeLlama2cVersioned(m.config, t, 1)
    const v1 = await loadLlama2c(memorySource(bytes))
    expect(v1.config).toEqual(m.config)
    for (const [name, tensor] of m.tensors) expect(v1.tensors.get(name)!.data, name).toEqual(tensor.data)
    expect([1, ...await greedy(v1, [1], 64)]).toEqual(GOLDEN_IDS.slice(0, 65))
    const src = memorySource(bytes)
    const part = await loadLlama2c(src, { layers: { start: 2, end: 4 }, embedding: false, head: false })
    expect(part.tensors.get('layers.2.wq')!.data).toEqual(m.tensors.get('layers.2.wq')!.data)
    const perLayer = LAYER_TENSORS.reduce((n, x) => n + m.tensors.get(`layers.0.${x}`)!.data.length * 4, 0)
    expect(src.bytesRead).toBe(LLAMA2C_HEADER_BYTES + LLAMA2C_VERSIONED_HEADER_BYTES + 2 * perLayer) // the first 28 bytes say it is versioned
  })

  it('version 2 (group size 4) loads the int8 weights runq.c multiplies with and gives runq.c\'s greedy text', async () => {
    const { m, t } = await tensorsOf()
    const bytes = writeLlama2cVersioned(m.config, t, 2, 4)
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(fixture.fileSha256) // the file runq.c ran on
    const v2 = await loadLlama2c(memorySource(bytes))
    const tok = storiesTokenizer()
    for (const run of fixture.runs) {
      const prompt = tok.encode(run.prompt)
      const ids = await greedy(v2, prompt, run.steps + 1 - prompt.length + 1)
      // run.c's printing: pieces after the prompt, the leading space after BOS dropped, byte tokens as bytes
      const text = (run.prompt ? run.prompt : '') + tok.decode(ids, prompt[prompt.length - 1])
      expect(text.replace(/^ /, '').slice(0, run.stdoutText.length)).toBe(run.stdoutText)
    }
    // a layer range of version 2 reads its layers' int8 values and scales only
    const src = memorySource(bytes)
    const part = await loadLlama2c(src, { layers: { start: 1, end: 2 }, embedding: false, head: false })
    expect(part.tensors.get('layers.1.w1')!.data).toEqual(v2.tensors.get('layers.1.w1')!.data)
    expect(src.bytesRead).toBeLessThan(bytes.length / 4)
  })

  it('refuses a versioned header it cannot read, with typed errors', async () => {
    const { m, t } = await tensorsOf()
    const bytes = writeLlama2cVersioned(m.config, t, 2, 4)
    const bad = (edit: (v: DataView) => void) => { const b = bytes.slice(); edit(new DataView(b.buffer)); return loadLlama2c(memorySource(b)) }
    await expect(bad((v) => v.setInt32(4, 3, true))).rejects.toThrow(/export version 3/)
    await expect(bad((v) => v.setInt32(37, 64, true))).rejects.toThrow(/hidden_dim 172 is not a multiple of the group size 64/)
    await expect(bad((v) => v.setUint8(36, 7))).rejects.toThrow(/shared_classifier flag 7/)
    await expect(bad((v) => v.setFloat32(bytes.length - 4, Number.NaN, true))).rejects.toThrow(/non-finite scale/)
    await expect(loadLlama2c(memorySource(bytes.subarray(0, bytes.length - 1)))).rejects.toThrow(/truncated/)
  })
})
