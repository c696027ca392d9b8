import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import type { Engine } from '../../engine/engine.ts'
import { generateTokens } from '../../engine/generate.ts'
import { createReferenceEngine } from '../../engine/reference/reference.ts'
import { fileSource } from '../../nodejs/file-source.ts'
import { GOLDEN_IDS } from '../../../testing/models.ts'
import { memorySource } from '../source/byte-source.ts'
import { llama2cModel, storiesHfFiles, tempFolder } from '../../../testing/format-fixtures.ts'
import { loadGguf, readGguf } from './gguf.ts'
import { modelToGguf } from './gguf-writer.ts'
import { LAYER_TENSORS, layerTensorName, type ModelConfig, type ModelSlice } from '../model.ts'
import { ropeInverseFrequencies } from '../../engine/rope.ts'
import { dequantize } from '../quant/index.ts'
import { hfConfig, loadSafetensors, openSafetensors, readSafetensors, SAFETENSORS_DTYPES } from './safetensors.ts'
import { modelToSafetensors, writeSafetensors } from './safetensors-writer.ts'

const folder = tempFolder()
afterAll(() => folder.remove())

async function greedy(engine: Engine, n: number): Promise<number[]> {
  const out = [1]
  for await (const t of generateTokens(engine, [1], { maxTokens: n, temperature: 0, topP: 0.9, seed: 1 })) out.push(t)
  return out
}

describe('safetensors + config.json reader', () => {
  it('F32 stories260K as a Hugging Face folder on disk reproduces GOLDEN.md id for id', async () => {
    const files = await storiesHfFiles('F32')
    for (const [name, data] of Object.entries(files)) folder.write(name, data)
    const model = await openSafetensors(JSON.parse(readFileSync(`${folder.dir}/config.json`, 'utf8')), [fileSource(`${folder.dir}/model.safetensors`)])
    const slice = await loadSafetensors(model)
    const original = await llama2cModel('stories260K')
    expect(slice.config).toEqual(original.config)
    for (const [name, t] of original.tensors) expect(slice.tensors.get(name)!.data, name).toEqual(t.data)
    expect(await greedy(createReferenceEngine(slice), 64)).toEqual(GOLDEN_IDS)
  })

  it('BF16 and F16 weights load as their rounded values', async () => {
    const original = await llama2cModel('multiHead')
    for (const dtype of ['F16', 'BF16'] as const) {
      const { safetensors, config } = modelToSafetensors(original, { dtype })
      const slice = await loadSafetensors(await openSafetensors(config, [memorySource(safetensors)]))
      const a = original.tensors.get('layers.1.w2')!.data
      const b = slice.tensors.get('layers.1.w2')!.data
      const ulp = dtype === 'F16' ? 2 ** -11 : 2 ** -8
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(Math.abs(a[i]) * ulp + 2 ** -24)
    }
  })

  it('reads a model split over several files, and a layer range from them reads only its tensors', async () => {
    const original = await llama2cModel('separateClassifier')
    const { safetensors, config } = modelToSafetensors(original)
    // re-split the single file into two shards: embedding + layers 0-3, the rest
    const whole = await readSafetensors(memorySource(safetensors))
    const shard = (keep: (name: string) => boolean) => writeSafetensors([...whole.tensors.values()].filter((t) => keep(t.name)).map((t) => ({
      name: t.name, dtype: t.dtype as 'F32', shape: t.shape, data: safetensors.subarray(t.offset, t.offset + t.byteSize),
    })))
    const first = (n: string) => n === 'model.embed_tokens.weight' || /^model\.layers\.[0-3]\./.test(n)
    const shards = [memorySource(shard(first), 'model-00001-of-00002.safetensors'), memorySource(shard((n) => !first(n)), 'model-00002-of-00002.safetensors')]
    const model = await openSafetensors(config, shards)
    const headerBytes = shards.map((s) => s.bytesRead)
    const slice = await loadSafetensors(model, { layers: { start: 4, end: 6 }, embedding: false, head: false })
    expect([...slice.tensors.keys()].sort()).toEqual([4, 5].flatMap((l) => LAYER_TENSORS.map((t) => layerTensorName(l, t))).sort())
    for (const [name, t] of slice.tensors) expect(t.data, name).toEqual(original.tensors.get(name)!.data)
    const tensorBytes = [...model.tensors.values()].filter((t) => /^model\.layers\.[45]\./.test(t.name)).reduce((s, t) => s + t.byteSize, 0)
    expect(shards[0].bytesRead).toBe(headerBytes[0]) // the first shard holds none of layers 4-5
    expect(shards[1].bytesRead - headerBytes[1]).toBe(tensorBytes) // safetensors packs tensors without padding: exact
  })

  it('maps config.json differences: rope theta and llama3 scaling, tied embeddings, GQA, head_dim, eps, several EOS ids, qwen2 biases', () => {
    const base = {
      model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
      num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
      rope_theta: 500000, tie_word_embeddings: true, hidden_act: 'silu', bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    } // Llama-3.2-1B-Instruct's config.json
    const c = hfConfig(base, false, { maxSeqLen: 4096 })
    expect(c).toMatchObject({ dim: 2048, nKvHeads: 8, headSize: 64, kvDim: 512, seqLen: 4096, ropeTheta: 500000, sharedClassifier: true, bosId: 128000, eosId: 128001, eosIds: [128001, 128008, 128009] })
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 })
    const freqs = ropeInverseFrequencies(c)
    expect(freqs[0]).toBe(1) // high frequencies are kept
    expect(freqs[31]).toBeCloseTo(Math.fround(1 / Math.pow(500000, 62 / 64)) / 32, 12) // low frequencies divided by the factor
    const qwen = hfConfig({ ...base, model_type: 'qwen2', rope_scaling: null, tie_word_embeddings: false, eos_token_id: 151645, bos_token_id: null }, true)
    expect(qwen).toMatchObject({ attentionBias: true, sharedClassifier: false, bosId: -1, eosId: 151645 })
    expect(qwen.eosIds).toBeUndefined()
    expect(() => hfConfig({ ...base, model_type: 'gemma' }, true)).toThrow(/model_type "gemma" is not a llama-family model/)
    expect(() => hfConfig({ ...base, hidden_size: undefined }, true)).toThrow(/config.json: field hidden_size/)
    expect(() => hfConfig({ ...base, head_dim: 128 }, true)).toThrow(/head size 128 times 32 heads is not the model width 2048/)
    expect(() => hfConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } }, true)).toThrow(/rope_scaling type "yarn" is not supported/)
    expect(() => hfConfig({ ...base, tie_word_embeddings: false }, false)).toThrow(/no lm_head.weight/)
  })

  it('a qwen2-layout safetensors model (with q/k/v biases) loads back into tabmesh order', async () => {
    const original = await llama2cModel('separateClassifier')
    const { safetensors, config } = modelToSafetensors(original, { modelType: 'qwen2' })
    const slice = await loadSafetensors(await openSafetensors(config, [memorySource(safetensors)]))
    expect(slice.config.attentionBias).toBe(true)
    expect(slice.tensors.get('layers.3.bv')!.data).toEqual(new Float32Array(16))
    for (const [name, t] of original.tensors) expect(slice.tensors.get(name)!.data, name).toEqual(t.data)
  })
})

/**
 * The RoPE convention, proved independently of the loaders: attention scores computed the
 * Hugging Face way (rotate_half over the halves of each head) on the raw stored weights equal
 * the scores computed tabmesh's way (interleaved pairs) on the loaded weights.
 */
describe('RoPE layout of stored q/k weights', () => {
  function rotateHalfRope(v: Float32Array, headSize: number, pos: number, invFreq: Float32Array): Float32Array {
    const out = new Float32Array(v.length)
    const half = headSize / 2
    for (let h = 0; h < v.length / headSize; h++) {
      for (let j = 0; j < headSize; j++) {
        const angle = pos * invFreq[j % half]
        const rotated = j < half ? -v[h * headSize + j + half] : v[h * headSize + j - half] // rotate_half(x) = cat(-x2, x1)
        out[h * headSize + j] = v[h * headSize + j] * Math.cos(angle) + rotated * Math.sin(angle)
      }
    }
    return out
  }
  function interleavedRope(v: Float32Array, headSize: number, pos: number, invFreq: Float32Array): Float32Array {
    const out = new Float32Array(v.length)
    for (let i = 0; i < v.length; i += 2) {
      const angle = pos * invFreq[(i % headSize) / 2]
      out[i] = v[i] * Math.cos(angle) - v[i + 1] * Math.sin(angle)
      out[i + 1] = v[i] * Math.sin(angle) + v[i + 1] * Math.cos(angle)
    }
    return out
  }
  const matvec = (w: Float32Array, x: Float32Array, rows: number) => Float32Array.from({ length: rows }, (_, r) => x.reduce((s, xv, j) => s + w[r * x.length + j] * xv, 0))
  /** q (pos 7) . k (pos 3) for every query head (GQA: head h uses kv head h / (nHeads / nKvHeads)). */
  function scores(c: ModelConfig, wq: Float32Array, wk: Float32Array, rope: typeof interleavedRope): number[] {
    const x = Float32Array.from({ length: c.dim }, (_, i) => Math.cos(i * 1.7))
    const inv = ropeInverseFrequencies(c)
    const q = rope(matvec(wq, x, c.dim), c.headSize, 7, inv)
    const k = rope(matvec(wk, x, c.kvDim), c.headSize, 3, inv)
    return Array.from({ length: c.nHeads }, (_, h) => {
      const kh = Math.floor(h / (c.nHeads / c.nKvHeads))
      let s = 0
      for (let i = 0; i < c.headSize; i++) s += q[h * c.headSize + i] * k[kh * c.headSize + i]
      return s
    })
  }
  const rawF32 = (bytes: Uint8Array, count: number) => { const out = new Float32Array(count); dequantize(0, bytes, count, out); return out }

  async function check(loaded: ModelSlice, rawWq: Float32Array, rawWk: Float32Array) {
    const c = loaded.config
    const ours = scores(c, loaded.tensors.get('layers.1.wq')!.data, loaded.tensors.get('layers.1.wk')!.data, interleavedRope)
    const theirs = scores(c, rawWq, rawWk, rotateHalfRope)
    for (let h = 0; h < c.nHeads; h++) expect(ours[h]).toBeCloseTo(theirs[h], 4)
    // and the two conventions really differ on these weights (the test can fail)
    const wrong = scores(c, rawWq, rawWk, interleavedRope)
    expect(wrong.some((s, h) => Math.abs(s - theirs[h]) > 1e-3)).toBe(true)
  }

  it('safetensors: rotate_half on the stored rows == interleaved pairs on the loaded rows', async () => {
    const original = await llama2cModel('separateClassifier')
    const { safetensors, config } = modelToSafetensors(original)
    const model = await openSafetensors(config, [memorySource(safetensors)])
    const raw = (n: string) => { const t = model.tensors.get(n)!; return rawF32(safetensors.subarray(t.offset, t.offset + t.byteSize), t.byteSize / 4) }
    await check(await loadSafetensors(model), raw('model.layers.1.self_attn.q_proj.weight'), raw('model.layers.1.self_attn.k_proj.weight'))
  })

  it('GGUF qwen2 (NEOX): rotate_half on the stored rows == interleaved pairs on the loaded rows', async () => {
    const bytes = modelToGguf(await llama2cModel('separateClassifier'), { architecture: 'qwen2' })
    const file = await readGguf(memorySource(bytes))
    const raw = (n: string) => { const t = file.tensors.get(n)!; return rawF32(bytes.subarray(t.offset, t.offset + t.byteSize), t.byteSize / 4) }
    await check(await loadGguf(file), raw('blk.1.attn_q.weight'), raw('blk.1.attn_k.weight'))
  })
})

describe('safetensors bad input', () => {
  const open = async (bytes: Uint8Array, config?: unknown) => {
    const cfg = config ?? modelToSafetensors(await llama2cModel('multiHead')).config
    return openSafetensors(cfg, [memorySource(bytes, 'bad.safetensors')]).then((m) => loadSafetensors(m))
  }
  it('refuses impossible header lengths, broken JSON, unknown dtypes, truncation and shapes that contradict config.json', async () => {
    const original = await llama2cModel('multiHead')
    const { safetensors, config } = modelToSafetensors(original)
    const headerLength = Number(new DataView(safetensors.buffer).getBigUint64(0, true))

    const huge = safetensors.slice()
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true)
    await expect(open(huge)).rejects.toThrow(/bad.safetensors: header length \d+ is impossible/)

    const broken = safetensors.slice()
    broken[8] = 0x5b // "[" instead of "{"
    await expect(open(broken)).rejects.toThrow(/bad.safetensors: the safetensors header is not valid JSON/)

    const header = new TextDecoder().decode(safetensors.subarray(8, 8 + headerLength))
    const withHeader = (h: string) => {
      const hb = new TextEncoder().encode(h.padEnd(headerLength))
      const out = safetensors.slice()
      out.set(hb, 8)
      return out
    }
    await expect(open(withHeader(header.replace('"F32"', '"I8" ')))).rejects.toThrow(/bad.safetensors: tensor model.embed_tokens.weight has dtype I8, which tabmesh does not read/)
    await expect(open(safetensors.subarray(0, safetensors.byteLength - 100))).rejects.toThrow(/ends at byte \d+, past the end of the file .* truncated/)
    await expect(open(safetensors, { ...config, intermediate_size: 65 })).rejects.toThrow(/bad.safetensors: tensor model.layers.0.mlp.gate_proj.weight has shape \[64,32\] but the config needs \[65,32\]/)
    expect(Object.keys(SAFETENSORS_DTYPES)).toEqual(['F32', 'F16', 'BF16'])
  })
})
