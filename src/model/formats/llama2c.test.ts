import { describe, expect, it } from 'vitest'
import { memorySource } from '../source/byte-source.ts'
import { LLAMA2C_HEADER_BYTES, llama2cLayout, loadLlama2c, readLlama2cConfig } from './llama2c.ts'
import { LAYER_TENSORS, elementCount, layerTensorName, layerTensorShape } from '../model.ts'
import { loadStories, stories260K, syntheticBytes } from '../../../testing/models.ts'

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
