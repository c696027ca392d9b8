import { afterAll, describe, expect, it } from 'vitest'
import { createReferenceEngine } from '../../engine/reference/reference.ts'
import { generateTokens } from '../../engine/generate.ts'
import type { Engine } from '../../engine/engine.ts'
import { fileSource } from '../../nodejs/file-source.ts'
import { GOLDEN_IDS } from '../../../testing/models.ts'
import { memorySource, type ByteSource } from '../source/byte-source.ts'
import { llama2cModel, storiesGguf, tempFolder } from '../../../testing/format-fixtures.ts'
import { GGUF_MAGIC, ggufConfig, loadGguf, readGguf } from './gguf.ts'
import { modelToGguf, writeGguf } from './gguf-writer.ts'
import { LAYER_TENSORS, layerTensorName, type ModelSlice } from '../model.ts'
import { GGML_TYPE, dequantizeTensor } from '../quant/index.ts'
import { quantizedMatvec } from '../../engine/reference/quant-matvec.ts'

const folder = tempFolder()
afterAll(() => folder.remove())

async function greedy(engine: Engine, n: number): Promise<number[]> {
  const out = [1]
  for await (const t of generateTokens(engine, [1], { maxTokens: n, temperature: 0, topP: 0.9, seed: 1 })) out.push(t)
  return out
}

/** Every tensor of `b` equals the same tensor of `a`, bit for bit. */
function expectSameTensors(a: ModelSlice, b: ModelSlice) {
  expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort())
  for (const [name, t] of a.tensors) {
    expect(b.tensors.get(name)!.shape, name).toEqual(t.shape)
    expect(Buffer.from(b.tensors.get(name)!.data.buffer, b.tensors.get(name)!.data.byteOffset, t.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), name).toBe(true)
  }
}

/** A source that records every read, to prove which bytes a slice touched. */
function recordingSource(inner: ByteSource) {
  const reads: [number, number][] = []
  return {
    reads,
    source: {
      name: inner.name, size: () => inner.size(), get bytesRead() { return inner.bytesRead },
      read(offset: number, length: number) { reads.push([offset, length]); return inner.read(offset, length) },
    } satisfies ByteSource,
  }
}

describe('GGUF reader', () => {
  it('F32 stories260K written as GGUF (a file on disk) reproduces GOLDEN.md id for id', async () => {
    const path = folder.write('stories260K-f32.gguf', await storiesGguf({ type: 'F32' }))
    const model = await loadGguf(fileSource(path))
    expect(model.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true, bosId: 1, eosId: 2, ropeTheta: 10000, normEps: 1e-5 })
    expectSameTensors(await llama2cModel('stories260K'), model)
    expect(await greedy(createReferenceEngine(model), 64)).toEqual(GOLDEN_IDS)
  })

  it('F32 GGUF of synthetic models (separate classifier, plain multi-head) loads the same tensors as the llama2.c file', async () => {
    for (const name of ['separateClassifier', 'multiHead'] as const) {
      const original = await llama2cModel(name)
      const model = await loadGguf(memorySource(modelToGguf(original, { type: 'F32' })))
      expect(model.config.sharedClassifier).toBe(original.config.sharedClassifier)
      expectSameTensors(original, model)
    }
  })

  it('reads the qwen2 layout (half-split wq/wk rows, q/k/v biases) back into the interleaved order', async () => {
    const original = await llama2cModel('separateClassifier')
    const model = await loadGguf(memorySource(modelToGguf(original, { type: 'F32', architecture: 'qwen2' })))
    expect(model.config.attentionBias).toBe(true)
    expect(model.tensors.get('layers.0.bq')!.shape).toEqual([48])
    expect(model.tensors.get('layers.6.bk')!.shape).toEqual([16])
    for (const [name] of original.tensors) expect(model.tensors.get(name)!.data, name).toEqual(original.tensors.get(name)!.data)
  })

  it('F16 GGUF: every value is the fp16 rounding of the original', async () => {
    const original = await llama2cModel('stories260K')
    const model = await loadGguf(memorySource(modelToGguf(original, { type: 'F16' })))
    const wq = model.tensors.get('layers.2.wq')!.data
    const ref = original.tensors.get('layers.2.wq')!.data
    let maxRel = 0
    for (let i = 0; i < wq.length; i++) maxRel = Math.max(maxRel, Math.abs(wq[i] - ref[i]) / Math.max(Math.abs(ref[i]), 2 ** -14))
    expect(maxRel).toBeLessThanOrEqual(2 ** -11)
  })

  it('loading a layer range reads the header and then only that range\'s tensor bytes', async () => {
    const bytes = await storiesGguf({ type: 'Q8_0' })
    const file = await readGguf(memorySource(bytes))
    const rec = recordingSource(memorySource(bytes))
    const header = await readGguf(rec.source)
    const headerBytes = rec.source.bytesRead
    expect(headerBytes).toBe(header.headerBytesRead)
    rec.reads.length = 0
    const slice = await loadGguf(header, { layers: { start: 1, end: 3 }, embedding: false, head: false })
    expect([...slice.tensors.keys()].sort()).toEqual([1, 2].flatMap((l) => LAYER_TENSORS.map((t) => layerTensorName(l, t))).sort())
    const inRange = [...file.tensors.values()].filter((t) => /^blk\.[12]\./.test(t.name))
    const outside = [...file.tensors.values()].filter((t) => !/^blk\.[12]\./.test(t.name))
    const tensorBytes = inRange.reduce((s, t) => s + t.byteSize, 0)
    // every read lies inside the range's tensors (plus alignment padding between them), none touches another tensor
    for (const [offset, length] of rec.reads) {
      for (const t of outside) expect(offset + length <= t.offset || offset >= t.offset + t.byteSize, `read [${offset}, +${length}) overlaps ${t.name}`).toBe(true)
    }
    const sliceBytes = rec.source.bytesRead - headerBytes
    expect(sliceBytes).toBeGreaterThanOrEqual(tensorBytes)
    expect(sliceBytes).toBeLessThan(tensorBytes + inRange.length * file.alignment)
    console.log(`GGUF Q8_0 stories260K: header ${headerBytes} bytes, layers [1,3) ${sliceBytes} bytes (tensors ${tensorBytes}), whole file ${bytes.byteLength}`)
  })

  it('keeps Q8_0 and Q4_0 matrices as blocks when asked; the quantized matvec matches the dequantized one', async () => {
    for (const type of ['Q8_0', 'Q4_0'] as const) {
      const model = await loadGguf(memorySource(await storiesGguf({ type })), undefined, { keepQuantized: true })
      const wq = model.quantized!.get('layers.0.wq')!
      expect(wq.type).toBe(type.toLowerCase())
      expect(model.tensors.has('layers.0.wq')).toBe(false)
      expect(model.tensors.get('layers.0.w2')!.shape).toEqual([64, 172]) // 172 is not a whole number of blocks: kept f32
      expect(model.tensors.get('token_embedding')!.data.length).toBe(512 * 64) // lookups need fp32 rows
      const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i))
      const got = new Float32Array(64)
      quantizedMatvec(got, x, wq)
      const w = dequantizeTensor(wq)
      for (let r = 0; r < 64; r++) {
        let want = 0
        for (let j = 0; j < 64; j++) want += w[r * 64 + j] * x[j]
        expect(got[r]).toBeCloseTo(want, 5)
      }
    }
  })
})

describe('GGUF bad input', () => {
  const expectError = async (bytes: Uint8Array, pattern: RegExp) => {
    const err = await loadGguf(memorySource(bytes, 'bad.gguf')).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'TabmeshError' })
    expect((err as Error).message).toMatch(pattern)
    expect((err as Error).message).toContain('bad.gguf')
  }
  it('refuses bad magic, unknown versions, truncation, unknown types, misalignment and shape mismatches', async () => {
    const good = await storiesGguf({ type: 'Q8_0' })
    const file = await readGguf(memorySource(good))

    const magic = good.slice()
    magic.set([0x47, 0x47, 0x4d, 0x4c]) // "GGML", the pre-GGUF format
    await expectError(magic, /bad magic "GGML"/)

    const version = good.slice()
    new DataView(version.buffer).setUint32(4, 1, true)
    await expectError(version, /GGUF version 1 is not supported/)

    await expectError(good.slice(0, file.dataOffset + 1000), /tensor .* run past the end of the file .* truncated/)
    await expectError(good.slice(0, 100), /cut short/)

    // the first tensor's type field sits right after its name, n_dims and dims; find it by re-encoding
    const oneTensor = (type: number, dims = [64]) => writeGguf([['general.architecture', { type: 'string', value: 'llama' }]], [{ name: 'x', shape: dims, type, data: new Uint8Array(256) }])
    const unknownType = oneTensor(GGML_TYPE.F32)
    const dv = new DataView(unknownType.buffer)
    // locate the u32 type field: after "x" (u64 len + 1 byte), u32 n_dims, u64 dim
    const nameAt = findBytes(unknownType, [1, 0, 0, 0, 0, 0, 0, 0, 0x78]) // u64 length 1, "x"
    dv.setUint32(nameAt + 9 + 4 + 8, 99, true)
    await expectError(unknownType, /GGML tensor type 99 is not supported/)
    const misaligned = oneTensor(GGML_TYPE.F32)
    new DataView(misaligned.buffer).setUint32(nameAt + 9 + 4 + 8 + 4, 4, true)
    await expectError(misaligned, /data offset 4 is not aligned to 32 bytes/)

    const mismatched = modelToGguf(await llama2cModel('stories260K'), { type: 'F32' })
    // claim a wider feed-forward layer than the tensors have
    const key = findBytes(mismatched, [...new TextEncoder().encode('llama.feed_forward_length')])
    new DataView(mismatched.buffer).setUint32(key + 'llama.feed_forward_length'.length + 4, 176, true)
    await expectError(mismatched, /tensor blk\.0\.ffn_gate\.weight has shape \[172,64\] but the config needs \[176,64\]/)

    const wrongArch = await storiesGguf()
    const archAt = findBytes(wrongArch, [...new TextEncoder().encode('llama')])
    wrongArch.set(new TextEncoder().encode('gemma'), archAt)
    await expectError(wrongArch, /general.architecture "gemma" is not a llama-family architecture/)
  })

  it('checks that the config holds together', async () => {
    const bytes = await storiesGguf()
    const file = await readGguf(memorySource(bytes))
    file.metadata.set('llama.attention.head_count_kv', 3)
    await expect(ggufConfig(file)).rejects.toThrow(/8 query heads are not a multiple of 3 key\/value heads/)
    file.metadata.delete('llama.attention.head_count_kv')
    file.metadata.delete('llama.embedding_length')
    await expect(ggufConfig(file)).rejects.toThrow(/metadata llama.embedding_length is missing/)
  })

  it('writes the GGUF magic', () => {
    const bytes = writeGguf([], [])
    expect(new DataView(bytes.buffer).getUint32(0, true)).toBe(GGUF_MAGIC)
  })
})

function findBytes(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  throw new Error('not found')
}
