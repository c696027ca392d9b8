/**
 * Fuzzing the tokenizer readers: tokenizer.bin (parseLlama2cTokenizer and llama2cVocab) cut short,
 * with bits flipped and length fields that lie, and made of random pieces; tokenizer.json and
 * tokenizer_config.json as random JSON and as the fixtures with any part replaced, deleted or of
 * another type. Files are refused with a typed TabmeshError naming the file, or give a tokenizer
 * that encodes any text to ids inside its vocabulary (or refuses that text with a typed error).
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stories260K } from '../../../testing/models.ts'
import { storiesVocab, trainByteLevelTokenizer } from '../../../testing/format-fixtures.ts'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { arrayBufferBytes, guardAllocations, outcome } from '../../../testing/fuzz-checks.ts'
import { byteMutation, concat, jsonMutation, mutateBytes, mutateJson, smallJson } from '../../../testing/fuzz-mutations.ts'
import { spmTokenizerJson } from '../formats/safetensors-writer.ts'
import { hfChatTemplate, parseHfTokenizer } from './hf-tokenizer.ts'
import { llama2cVocab } from './spm-vocab.ts'
import { parseLlama2cTokenizer, type Tokenizer } from './tokenizer.ts'

const CODES = ['tokenizer-format', 'model-mismatch', 'bad-argument'] as const
const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('Once upon a time', ' ', '', '<s></s><|eot_id|>', '😀\u0000\ud800'))

/** Encodes `sample` and decodes the ids: ids in the vocabulary, or a typed refusal of the text. */
function exercise(tokenizer: Tokenizer, sample: string): void {
  const r = outcome(() => tokenizer.encode(sample), CODES)
  if (!r.ok) return
  for (const id of r.value) expect(Number.isInteger(id) && id >= 0 && id < tokenizer.vocabSize, `id ${id} of ${tokenizer.vocabSize}`).toBe(true)
  expect(typeof tokenizer.decode(r.value)).toBe('string')
}

/** A tokenizer.bin: int32 max length, then { f32 score, i32 length, bytes } per piece. */
function tokenizerBin(pieces: { score: number; bytes: Uint8Array; claim?: number }[]): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array(4)]
  for (const p of pieces) {
    const head = new Uint8Array(8)
    new DataView(head.buffer).setFloat32(0, p.score, true)
    new DataView(head.buffer).setInt32(4, p.claim ?? p.bytes.length, true)
    parts.push(head, p.bytes)
  }
  return concat(...parts)
}

let release: () => void
const before = arrayBufferBytes()
beforeAll(() => { release = guardAllocations(32 << 20) })
afterAll(() => {
  release()
  expect(arrayBufferBytes() - before).toBeLessThan(256 << 20)
})

describe('tokenizer.bin', () => {
  const read = (bytes: Uint8Array, vocabSize: number) => {
    const r = outcome(() => parseLlama2cTokenizer(bytes, vocabSize, 'fuzz.bin'), CODES, /fuzz\.bin/)
    outcome(() => llama2cVocab(bytes, 'fuzz.bin'), CODES, /fuzz\.bin/)
    return r
  }

  it('stories260K\'s tokenizer.bin cut short, with bits flipped and length fields that lie', () => {
    fc.assert(fc.property(fc.array(byteMutation(), { minLength: 1, maxLength: 3 }), text, (mutations, sample) => {
      const r = read(mutateBytes(stories260K.tokenizer, mutations), 512)
      if (r.ok) exercise(r.value, sample)
    }), fuzzParams(70))
  })

  it('made of random pieces (scores NaN and infinite too, lengths that lie), for a vocabulary of their count', () => {
    const piece = fc.record({
      score: fc.oneof(fc.float(), fc.constantFrom(NaN, Infinity, -Infinity, -1e10, 0)),
      bytes: fc.oneof({ weight: 20, arbitrary: fc.uint8Array({ maxLength: 6 }) }, { weight: 3, arbitrary: fc.constantFrom(...[' ', 'a', 'b', 'ab', ' a', '<0x41>', 'é'].map((s) => new TextEncoder().encode(s))) }, { weight: 1, arbitrary: fc.constant(new Uint8Array(300_000)) }),
      claim: fc.option(fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(-8, -1, 2 ** 31 - 1)), { nil: undefined, freq: 8 }),
    })
    fc.assert(fc.property(fc.array(piece, { maxLength: 300 }), text, (pieces, sample) => {
      const r = read(tokenizerBin(pieces), pieces.length)
      if (r.ok) exercise(r.value, sample)
    }), fuzzParams(71))
  })
})

describe('tokenizer.json and tokenizer_config.json', () => {
  const files: Record<string, { json: unknown; config: Record<string, unknown> }> = {
    'sentencepiece (from tok512.bin)': { json: spmTokenizerJson(storiesVocab()), config: { bos_token: '<s>', eos_token: '</s>' } },
    'byte-level (Llama-3 style)': { json: trainByteLevelTokenizer().json, config: { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' } },
  }
  const fixture = fc.constantFrom(...Object.keys(files))

  const parse = (json: unknown, config: unknown) => outcome(() => parseHfTokenizer(json, { name: 'fuzz/tokenizer.json', tokenizerConfig: config as Record<string, unknown> }), CODES, /fuzz\/tokenizer\.json/)

  it('the fixtures parse and encode', () => {
    fc.assert(fc.property(fixture, text, (name, sample) => {
      const r = parse(files[name].json, files[name].config)
      expect(r.ok).toBe(true)
      if (r.ok) exercise(r.value, sample)
    }), { ...fuzzParams(72), numRuns: Math.ceil(fuzzParams().numRuns / 10) })
  })

  it('random JSON', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 2 }), (json, config) => { parse(json, config) }), fuzzParams(73))
  })

  it('the fixtures with a part replaced by a random value, deleted, or of another type', () => {
    const part = fc.constantFrom('normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'added_tokens', 'model', 'model.vocab', 'model.merges', 'model.type',
      'model.unk_token', 'model.byte_fallback', 'normalizer.normalizers', 'pre_tokenizer.pretokenizers', 'post_processor.single', 'added_tokens.0', 'model.merges.0')
    const node = fc.oneof(
      smallJson(),
      fc.record({
        type: fc.constantFrom('Sequence', 'Prepend', 'Replace', 'NFC', 'NFKD', 'Lowercase', 'ByteLevel', 'Split', 'Digits', 'Metaspace', 'TemplateProcessing', 'BPE', 'WordPiece', 'Strip', 'toString'),
        normalizers: fc.array(smallJson(), { maxLength: 2 }), pretokenizers: fc.array(smallJson(), { maxLength: 2 }), processors: fc.array(smallJson(), { maxLength: 2 }),
        prepend: smallJson(), content: smallJson(), replacement: smallJson(), prepend_scheme: smallJson(), split: smallJson(), behavior: fc.constantFrom('Isolated', 'Removed', 'Merged', 'MergedWithNext'),
        pattern: fc.oneof(fc.record({ String: fc.string({ maxLength: 4 }) }), fc.record({ Regex: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('(', '\\p{L}+', '(?i:a)', '(a*)*b')) }), smallJson()),
        single: fc.array(fc.oneof(smallJson(), fc.record({ SpecialToken: fc.record({ id: smallJson() }) })), { maxLength: 2 }),
        use_regex: fc.boolean(), add_prefix_space: fc.boolean(), individual_digits: fc.boolean(), invert: fc.boolean(),
      }, { requiredKeys: ['type'] }),
    )
    const config = fc.oneof(smallJson(), fc.record({ bos_token: smallJson(), eos_token: fc.oneof(smallJson(), fc.record({ content: smallJson() })), add_bos_token: smallJson(), chat_template: fc.oneof(smallJson(), fc.array(smallJson())) }, { requiredKeys: [] }))
    fc.assert(fc.property(fixture, fc.array(fc.tuple(part, fc.option(node)), { minLength: 1, maxLength: 3 }), fc.array(jsonMutation(), { maxLength: 2 }), config, text, (name, changes, mutations, tc, sample) => {
      const json = structuredClone(files[name].json) as Record<string, unknown>
      for (const [path, value] of changes) {
        const keys = path.split('.')
        let at: Record<string, unknown> | undefined = json
        for (const k of keys.slice(0, -1)) at = at && typeof at[k] === 'object' && at[k] !== null ? (at[k] as Record<string, unknown>) : undefined
        if (!at) continue
        if (value === null) delete at[keys.at(-1)!]
        else at[keys.at(-1)!] = value
      }
      const r = parse(mutateJson(json, mutations), tc)
      if (r.ok) exercise(r.value, sample)
      const template = outcome(() => hfChatTemplate(tc as Record<string, unknown>), CODES)
      if (template.ok) expect(template.value === undefined || typeof template.value === 'string').toBe(true)
    }), fuzzParams(74))
  })
})

describe('tokenizer files: counterexamples the fuzzers found', () => {
  const ascii = (s: string) => new TextEncoder().encode(s)

  it('tokenizer.bin with a negative length field: refused, not read backwards for ever (llama2cVocab)', () => {
    const bytes = tokenizerBin([{ score: 0, bytes: ascii('a') }, { score: 0, bytes: new Uint8Array(0), claim: -8 }])
    expect(() => llama2cVocab(bytes, 'neg.bin')).toThrow(/^neg\.bin: entry 1 has length -8, past the end of the file/)
    expect(() => parseLlama2cTokenizer(bytes, 2, 'neg.bin')).toThrow(/^neg\.bin: entry 1 has length -8/)
  })

  it('a 300 000-byte piece is read, not spread onto the call stack', () => {
    const pieces = ['<unk>', '<s>', '</s>', ' '].map((s) => ({ score: 0, bytes: ascii(s) }))
    const tok = parseLlama2cTokenizer(tokenizerBin([...pieces, { score: 0, bytes: new Uint8Array(300_000).fill(0x61) }]), 5, 'long.bin')
    expect(tok.piece(4).length).toBe(300_000)
    expect(llama2cVocab(tokenizerBin([...pieces, { score: 0, bytes: new Uint8Array(300_000).fill(0x61) }])).pieces[4].length).toBe(300_000)
  })

  it('a vocabulary without byte tokens refuses a character it has no piece for, instead of ids past its end', () => {
    const tok = parseLlama2cTokenizer(tokenizerBin(['<unk>', '<s>', '</s>', ' ', 'a'].map((s) => ({ score: 0, bytes: ascii(s) }))), 5, 'small.bin')
    expect(tok.encode('a a')).toEqual([1, 3, 4, 3, 4])
    expect(() => tok.encode('xyz')).toThrow(/^small\.bin: "x" has no piece and the 5-token vocabulary has no byte token for 0x78/)
    expect(() => parseLlama2cTokenizer(tokenizerBin([{ score: 0, bytes: ascii(' ') }]), 1, 'one.bin')).toThrow(/^one\.bin: 1 tokens; a llama2.c vocabulary starts with <unk>, <s> and <\/s>/)
  })

  it('tokenizer.json parts of the wrong shape are refused by name, not met with a TypeError', () => {
    const base = { model: { type: 'BPE', vocab: { a: 0 } } }
    const cases: [unknown, RegExp][] = [
      [{ ...base, normalizer: { type: 'Sequence' } }, /t\.json: normalizer Sequence: normalizers should be a list, is undefined/],
      [{ ...base, added_tokens: [null] }, /t\.json: added_tokens has an entry without an id/],
      [{ ...base, added_tokens: 5 }, /t\.json: added_tokens should be a list, is 5/],
      [{ model: { ...base.model, merges: 'ab' } }, /t\.json: model\.merges should be a list/],
      [{ ...base, post_processor: { type: 'TemplateProcessing' } }, /t\.json: post_processor TemplateProcessing: single should be a list/],
      [{ ...base, normalizer: { type: 'Prepend', prepend: 5 } }, /t\.json: normalizer Prepend: prepend should be a string, is 5/],
      [{ ...base, pre_tokenizer: { type: 'Metaspace', replacement: 7 } }, /t\.json: pre_tokenizer Metaspace: replacement should be a string/],
      [{ ...base, normalizer: JSON.parse('{"type":"Sequence","normalizers":['.repeat(20) + '{"type":"NFC"}' + ']}'.repeat(20)) }, /t\.json: normalizer Sequence nests more than 16 deep/],
    ]
    for (const [json, message] of cases) expect(() => parseHfTokenizer(json, { name: 't.json' })).toThrow(message)
  })

  it('a Metaspace replacement is text, not a regex: "(" splits before each "("', () => {
    const tok = parseHfTokenizer({ model: { type: 'BPE', vocab: { '(': 0, 'a': 1 } }, pre_tokenizer: { type: 'Metaspace', replacement: '(', prepend_scheme: 'never' } }, { name: 't.json' })
    expect(tok.encode('a a')).toEqual([1, 0, 1])
  })

  it('one token at id 2^22 - 1 (a 20-byte file) builds its 4M-entry table at once (filling it hole by hole took seconds)', () => {
    const started = performance.now()
    const tok = parseHfTokenizer({ model: { type: 'BPE', vocab: { a: 2 ** 22 - 1 }, unk_token: 'a', fuse_unk: true } }, { name: 't.json' })
    expect(tok.vocabSize).toBe(2 ** 22)
    expect(tok.encode('hello')).toEqual([2 ** 22 - 1])
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('tokenizer_config.json chat_template lists with null or unnamed entries give no template, not a TypeError', () => {
    expect(hfChatTemplate({ chat_template: [null, 3, { name: 'default', template: 7 }] })).toBeUndefined()
    expect(hfChatTemplate(null as never)).toBeUndefined()
  })
})
