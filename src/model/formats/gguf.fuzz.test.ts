/**
 * Fuzzing the GGUF reader and what reads its metadata (config, tokenizer, chat template): the
 * project's fixtures with bytes flipped (mostly in the header), cut short or extended; headers
 * built field by field whose counts, string lengths, array lengths and dimensions claim gigabytes;
 * and well-formed files whose metadata values and tensor shapes are random. Bytes either load as
 * a usable slice and tokenizer or are refused with a typed TabmeshError naming the file, fast,
 * and nothing near what a lying header claims is allocated.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { llama2cModel, storiesVocab } from '../../../testing/format-fixtures.ts'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { arrayBufferBytes, guardAllocations, outcomeAsync } from '../../../testing/fuzz-checks.ts'
import { expectSaneSlice, sliceSpec } from '../../../testing/fuzz-models.ts'
import { byteMutation, concat, mutateBytes } from '../../../testing/fuzz-mutations.ts'
import { compileChatTemplate } from '../template/chat-template.ts'
import { ggufChatTemplate, ggufTokenizer } from '../tokenizer/gguf-tokenizer.ts'
import { memorySource } from '../source/byte-source.ts'
import { withFamilyFeatures } from './synthetic.ts'
import { GGUF_MAGIC, loadGguf, readGguf } from './gguf.ts'
import { modelToGguf, writeGguf, type GgufMetaValue, type GgufTensorOut } from './gguf-writer.ts'
import type { SliceSpec } from '../model.ts'
import { GGML_TYPE } from '../quant/index.ts'

const NAME = 'fuzz.gguf'
const CODES = ['model-format', 'model-mismatch', 'tokenizer-format', 'bad-argument'] as const

/** Everything a tab does with a GGUF file: header, config, slice, tokenizer, chat template. */
async function open(bytes: Uint8Array, spec?: SliceSpec, keepQuantized = false) {
  return outcomeAsync(async () => {
    const file = await readGguf(memorySource(bytes, NAME))
    const slice = await loadGguf(file, spec, { keepQuantized })
    expectSaneSlice(slice, spec)
    if (file.metadata.has('tokenizer.ggml.model')) {
      const tokenizer = ggufTokenizer(file, slice.config)
      for (const id of tokenizer.encode('Once upon a time, 😀 <s>')) expect(id >= 0 && id < tokenizer.vocabSize, `token id ${id} of ${tokenizer.vocabSize}`).toBe(true)
    }
    const template = ggufChatTemplate(file)
    if (template !== undefined) compileChatTemplate(template, `${NAME} chat template`).render([{ role: 'user', content: 'hi' }])
    return slice
  }, CODES, /fuzz\.gguf|layer range/)
}

let fixtures: Record<string, Uint8Array>
let release: () => void
const before = arrayBufferBytes()
beforeAll(async () => {
  const stories = await llama2cModel('stories260K')
  const multiHead = await llama2cModel('multiHead')
  // rope factors for the family features: one per pair of a head (head size 8: 4 of them)
  const factors = { type: 'factors' as const, factors: [1, 2, 4, 8] }
  fixtures = {
    'stories260K Q8_0 with tokenizer and template': modelToGguf(stories, { type: 'Q8_0', vocab: storiesVocab(), chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' }),
    'multiHead qwen2 Q4_0 with rope_freqs': modelToGguf(withFamilyFeatures(multiHead, { biasSeed: 3, ropeScaling: factors }), { type: 'Q4_0', architecture: 'qwen2' }),
    'multiHead F16 with linear RoPE scaling': modelToGguf({ ...multiHead, config: { ...multiHead.config, ropeScaling: { type: 'linear', factor: 2 } } }, { type: 'F16' }),
  }
  release = guardAllocations(32 << 20)
})
afterAll(() => {
  release()
  expect(arrayBufferBytes() - before).toBeLessThan(256 << 20)
})

/** A fixture by name (called inside a test, once beforeAll has made them), so a counterexample prints short. */
const fixture = () => fc.oneof(...Object.keys(fixtures).map((name) => ({ weight: name.startsWith('stories') ? 1 : 2, arbitrary: fc.constant(name) })))
const layersOf = (name: string) => (name.startsWith('stories') ? 5 : 3)

// ---- headers built field by field -----------------------------------------------------------------

/** u64 values a lying header uses: small, exactly at the reader's bounds, and gigabytes or more. */
const u64 = fc.oneof(
  fc.constantFrom(0, 1, 2, 7, 255, 2 ** 16, 2 ** 24, 2 ** 24 + 1, 2 ** 28, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 63),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(Number),
  fc.nat({ max: 64 }),
)
const u32 = fc.oneof(fc.constantFrom(0, 1, 4, 8, 9, 12, 13, 30, 255, 2 ** 31, 2 ** 32 - 1), fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 13 }))

type Field = { u32: number } | { u64: number } | { text: string; claim?: number } | { raw: Uint8Array }
const text = (t: string, claim?: number): Field => ({ text: t, claim })
const key = fc.oneof(
  fc.constantFrom('general.architecture', 'general.alignment', 'llama.block_count', 'llama.embedding_length', 'llama.context_length', 'llama.attention.head_count',
    'tokenizer.ggml.model', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.merges', 'tokenizer.chat_template'),
  fc.string({ maxLength: 20 }),
)

const kvField: fc.Arbitrary<Field[]> = fc.tuple(key, fc.option(u64, { freq: 4 }), u32, fc.oneof(
  fc.tuple(fc.string({ maxLength: 20 }), fc.option(u64, { freq: 3 })).map(([s, claim]) => [text(s, claim ?? undefined)]), // a string value
  fc.tuple(u32, u64, fc.uint8Array({ maxLength: 64 })).map(([elementType, count, body]): Field[] => [{ u32: elementType }, { u64: count }, { raw: body }]), // an array value
  fc.uint8Array({ maxLength: 16 }).map((raw): Field[] => [{ raw }]), // a number
)).map(([k, claim, type, value]) => [text(k, claim ?? undefined), { u32: type }, ...value])

const tensorField: fc.Arbitrary<Field[]> = fc.tuple(fc.string({ maxLength: 24 }), fc.option(u64, { freq: 5 }), u32, fc.array(u64, { maxLength: 5 }), u32, u64)
  .map(([name, claim, nDims, dims, type, offset]) => [text(name, claim ?? undefined), { u32: nDims }, ...dims.map((d) => ({ u64: d })), { u32: type }, { u64: offset }])

const craftedHeader = fc.record({
  magic: fc.oneof({ weight: 9, arbitrary: fc.constant(GGUF_MAGIC) }, { weight: 1, arbitrary: u32 }),
  version: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(2, 3) }, { weight: 1, arbitrary: u32 }),
  tensorCount: u64,
  kvCount: u64,
  kvs: fc.array(kvField, { maxLength: 4 }),
  tensors: fc.array(tensorField, { maxLength: 3 }),
  tail: fc.uint8Array({ maxLength: 256 }),
}).map((h) => {
  const fields: Field[] = [{ u32: h.magic }, { u32: h.version }, { u64: h.tensorCount }, { u64: h.kvCount }, ...h.kvs.flat(), ...h.tensors.flat(), { raw: h.tail }]
  return serialize(fields)
})

function serialize(fields: Field[]): Uint8Array {
  const utf8 = new TextEncoder()
  const parts = fields.map((f) => {
    if ('raw' in f) return f.raw
    if ('u32' in f) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, f.u32 >>> 0, true); return b }
    const u64bytes = (v: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(Math.min(v, 2 ** 64 - 1)) & (2n ** 64n - 1n), true); return b }
    if ('u64' in f) return u64bytes(f.u64)
    const body = utf8.encode(f.text)
    return concat(u64bytes(f.claim ?? body.length), body)
  })
  return concat(...parts)
}

// ---- well-formed files: a small valid model whose metadata values and tensor shapes are changed -----------

const metaValue: fc.Arbitrary<GgufMetaValue> = fc.oneof(
  fc.record({ type: fc.constantFrom('u32' as const, 'u64' as const), value: fc.oneof(fc.nat({ max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 2, 3, 4, 8, 16, 32, 64, 2 ** 24, 2 ** 31)) }),
  fc.record({ type: fc.constant('i32' as const), value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
  fc.record({ type: fc.constant('f32' as const), value: fc.oneof(fc.float(), fc.constantFrom(0, -1, 1e-5, 1e30, Infinity, NaN)) }),
  fc.record({ type: fc.constant('bool' as const), value: fc.boolean() }),
  fc.record({ type: fc.constant('string' as const), value: fc.oneof(fc.constantFrom('llama', 'qwen2', 'gpt2', 'linear', 'yarn', 'toString', 'constructor', '{{ x', '{% for x in range(10) %}{{ x }}{% endfor %}'), fc.string({ maxLength: 30 })) }),
  fc.record({ type: fc.constant('strings' as const), value: fc.array(fc.string({ maxLength: 8 }), { maxLength: 20 }) }),
  fc.record({ type: fc.constant('f32s' as const), value: fc.array(fc.float(), { maxLength: 20 }) }),
  fc.record({ type: fc.constant('i32s' as const), value: fc.array(fc.integer({ min: -1, max: 6 }), { maxLength: 20 }) }),
)

/** A one-layer llama model (dim 32, 4 heads, vocab 16) with a sentencepiece vocabulary and rope factors. */
function smallModel(): { meta: [string, GgufMetaValue][]; tensors: { name: string; shape: number[]; type: number }[] } {
  const pieces = ['<unk>', '<s>', '</s>', '\u2581', 'a', 'b', '\u2581a', 'ab', ...Array.from({ length: 8 }, (_, i) => `<0x${(0x41 + i).toString(16).toUpperCase()}>`)]
  const u32 = (value: number): GgufMetaValue => ({ type: 'u32', value })
  return {
    meta: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['llama.context_length', u32(64)], ['llama.embedding_length', u32(32)], ['llama.block_count', u32(1)], ['llama.feed_forward_length', u32(64)],
      ['llama.attention.head_count', u32(4)], ['llama.attention.head_count_kv', u32(2)], ['llama.rope.dimension_count', u32(8)],
      ['llama.rope.freq_base', { type: 'f32', value: 10000 }], ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }], ['tokenizer.ggml.tokens', { type: 'strings', value: pieces }],
      ['tokenizer.ggml.scores', { type: 'f32s', value: pieces.map((_, i) => -i) }],
      ['tokenizer.ggml.token_type', { type: 'i32s', value: pieces.map((p, i) => (i === 0 ? 2 : i < 3 ? 3 : p.startsWith('<0x') ? 6 : 1)) }],
      ['tokenizer.ggml.bos_token_id', u32(1)], ['tokenizer.ggml.eos_token_id', u32(2)],
      ['tokenizer.chat_template', { type: 'string', value: '{% for m in messages %}{{ m.content }}{% endfor %}' }],
    ],
    tensors: [
      { name: 'token_embd.weight', shape: [16, 32], type: GGML_TYPE.Q8_0 },
      { name: 'blk.0.attn_norm.weight', shape: [32], type: GGML_TYPE.F32 },
      { name: 'blk.0.attn_q.weight', shape: [32, 32], type: GGML_TYPE.Q4_0 },
      { name: 'blk.0.attn_k.weight', shape: [16, 32], type: GGML_TYPE.F16 },
      { name: 'blk.0.attn_v.weight', shape: [16, 32], type: GGML_TYPE.BF16 },
      { name: 'blk.0.attn_output.weight', shape: [32, 32], type: GGML_TYPE.F32 },
      { name: 'blk.0.ffn_norm.weight', shape: [32], type: GGML_TYPE.F32 },
      { name: 'blk.0.ffn_gate.weight', shape: [64, 32], type: GGML_TYPE.Q8_0 },
      { name: 'blk.0.ffn_down.weight', shape: [32, 64], type: GGML_TYPE.Q8_0 },
      { name: 'blk.0.ffn_up.weight', shape: [64, 32], type: GGML_TYPE.Q8_0 },
      { name: 'output_norm.weight', shape: [32], type: GGML_TYPE.F32 },
      { name: 'rope_freqs.weight', shape: [4], type: GGML_TYPE.F32 },
    ],
  }
}

/** Bytes of `shape` in `type`, when it is small and fills whole blocks (else none: the reader must refuse it without them). */
function tensorData(shape: number[], type: number): Uint8Array {
  const elements = shape.reduce((a, b) => a * b, 1)
  const block = { [GGML_TYPE.Q8_0]: [32, 34], [GGML_TYPE.Q4_0]: [32, 18], [GGML_TYPE.Q4_K]: [256, 144], [GGML_TYPE.F16]: [1, 2], [GGML_TYPE.BF16]: [1, 2] }[type] ?? [1, 4]
  if (elements > 1 << 16 || elements % block[0] !== 0) return new Uint8Array(0)
  const data = new Uint8Array((elements / block[0]) * block[1])
  if (type === GGML_TYPE.F32) new Float32Array(data.buffer).fill(1)
  return data
}

const dim = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1, 2, 4, 8, 16, 32, 64) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 20, 2 ** 28, 2 ** 32, 2 ** 40, 2 ** 53 - 1) })
const metaKey = fc.constantFrom(...smallModel().meta.map(([k]) => k), 'general.alignment', 'llama.attention.key_length', 'llama.rope.scaling.type', 'llama.rope.scaling.factor',
  'tokenizer.ggml.pre', 'tokenizer.ggml.merges', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.add_bos_token', 'tokenizer.ggml.add_space_prefix')
const tensorChange = fc.record({
  which: fc.nat(),
  shape: fc.option(fc.array(dim, { minLength: 1, maxLength: 4 })),
  type: fc.option(fc.constantFrom(GGML_TYPE.F32, GGML_TYPE.F16, GGML_TYPE.BF16, GGML_TYPE.Q8_0, GGML_TYPE.Q4_0, GGML_TYPE.Q4_K, 5, 99)),
  drop: fc.boolean(),
})
/** The changes, not the bytes, are what fast-check draws and shrinks (and prints). */
const fileChanges = fc.record({
  set: fc.array(fc.tuple(metaKey, metaValue), { maxLength: 4 }),
  drop: fc.array(fc.nat(), { maxLength: 2 }),
  tensors: fc.array(tensorChange, { maxLength: 3 }),
})
function changedFile({ set, drop, tensors: changes }: typeof fileChanges extends fc.Arbitrary<infer T> ? T : never): Uint8Array {
  const { meta, tensors } = smallModel()
  for (const d of drop) meta.splice(d % meta.length, 1)
  for (const [k, v] of set) {
    const at = meta.findIndex(([mk]) => mk === k)
    if (at >= 0) meta[at] = [k, v]
    else meta.push([k, v])
  }
  for (const c of changes) {
    const t = tensors[c.which % tensors.length]
    if (c.shape) t.shape = c.shape
    if (c.type !== null) t.type = c.type
    if (c.drop) tensors.splice(tensors.indexOf(t), 1)
  }
  return writeGguf(meta, tensors.map((t): GgufTensorOut => ({ ...t, data: tensorData(t.shape, t.type) })))
}

describe('GGUF', () => {
  it('the fixtures load whole and by slices, with their tokenizer and template', async () => {
    await fc.assert(fc.asyncProperty(fixture(), sliceSpec(5), fc.boolean(), async (name, spec, keep) => {
      const r = await open(fixtures[name], spec, keep)
      const inside = !spec || (spec.layers.start >= 0 && spec.layers.end <= layersOf(name))
      expect(r.ok).toBe(inside)
    }), { ...fuzzParams(50), numRuns: Math.ceil(fuzzParams().numRuns / 10) })
  })

  it('damaged fixtures: header bytes flipped, lengths that lie, truncation, extension', async () => {
    await fc.assert(fc.asyncProperty(fixture(), fc.array(byteMutation(), { minLength: 1, maxLength: 3 }), fc.constantFrom(4096, undefined), sliceSpec(5), async (name, mutations, focus, spec) => {
      await open(mutateBytes(fixtures[name], mutations, focus), spec)
    }), fuzzParams(51))
  })

  it('headers built field by field, with counts, string lengths, array lengths and dimensions up to 2^64', async () => {
    await fc.assert(fc.asyncProperty(craftedHeader, async (bytes) => { await open(bytes) }), fuzzParams(52))
  })

  it('a small valid model loads with its tokenizer and template (so the next property starts from one that works)', async () => {
    const r = await open(writeGguf(smallModel().meta, smallModel().tensors.map((t) => ({ ...t, data: tensorData(t.shape, t.type) }))))
    expect(r.ok).toBe(true)
  })

  it('that model with metadata values of other types and sizes, and tensors of other shapes (zero and huge dimensions) and types', async () => {
    let loaded = 0
    await fc.assert(fc.asyncProperty(fileChanges, async (changes) => { if ((await open(changedFile(changes))).ok) loaded++ }), fuzzParams(53))
    expect(loaded).toBeGreaterThan(0)
  })

  it('random bytes behind a valid magic and version', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (rest) => {
      const head = new Uint8Array(8)
      new DataView(head.buffer).setUint32(0, GGUF_MAGIC, true)
      new DataView(head.buffer).setUint32(4, 3, true)
      await open(concat(head, rest))
    }), fuzzParams(54))
  })
})

describe('GGUF: counterexamples the fuzzers found', () => {
  const model = () => smallModel()
  const file = (m: ReturnType<typeof smallModel>) => writeGguf(m.meta, m.tensors.map((t) => ({ ...t, data: tensorData(t.shape, t.type) })))
  const set = (m: ReturnType<typeof smallModel>, key: string, value: GgufMetaValue) => { m.meta = m.meta.map(([k, v]) => [k, k === key ? value : v]); return m }
  const refused = async (bytes: Uint8Array, code: string, message: RegExp) => {
    const r = await open(bytes)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error).toMatchObject({ code, message: expect.stringMatching(message) })
  }

  it('a 70 000-byte metadata key (a flipped length swallowed the header) is named in at most 80 characters, not echoed whole', async () => {
    const bytes = serialize([{ u32: GGUF_MAGIC }, { u32: 3 }, { u64: 0 }, { u64: 1 }, text('x'.repeat(70_000)), { u32: 99 }, { raw: new Uint8Array(32) }])
    await refused(bytes, 'model-format', /^fuzz\.gguf: metadata x{80}… has unknown value type 99$/)
  })

  it('rope_freqs.weight of shape [0, 2^28] (no bytes, a dimension of 2^28) is refused without allocating 1 GiB', async () => {
    const m = model()
    m.tensors.find((t) => t.name === 'rope_freqs.weight')!.shape = [0, 2 ** 28]
    await refused(file(m), 'model-format', /rope_freqs.weight should hold 4 positive factors .* holds 0/)
  })

  it('rope factors that are not positive, or not one per pair of a head, are refused', async () => {
    const m = model()
    m.tensors.find((t) => t.name === 'rope_freqs.weight')!.shape = [3]
    await refused(file(m), 'model-format', /should hold 4 positive factors .* holds 3/)
    const negative = writeGguf(model().meta, model().tensors.map((t) => ({ ...t, data: t.name === 'rope_freqs.weight' ? new Uint8Array(Float32Array.of(1, -2, 1, 1).buffer) : tensorData(t.shape, t.type) })))
    await refused(negative, 'model-format', /a non-positive or non-finite one/)
  })

  it('a BOS id past the vocabulary is refused, not encoded', async () => {
    await refused(file(set(model(), 'tokenizer.ggml.bos_token_id', { type: 'i32', value: 16 })), 'tokenizer-format', /BOS id 16 is outside the vocabulary \(0\.\.15\)/)
  })

  it('names that are Object.prototype members are not architectures or pre-tokenizers', async () => {
    await refused(file(set(model(), 'general.architecture', { type: 'string', value: 'toString' })), 'model-format', /general.architecture "toString" is not a llama-family architecture/)
    const gpt2 = set(model(), 'tokenizer.ggml.model', { type: 'string', value: 'gpt2' })
    gpt2.meta.push(['tokenizer.ggml.pre', { type: 'string', value: 'constructor' }], ['tokenizer.ggml.merges', { type: 'strings', value: [] }])
    await refused(file(gpt2), 'tokenizer-format', /tokenizer.ggml.pre "constructor" is not a pre-tokenizer tabmesh knows/)
  })
})
