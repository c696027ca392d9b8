/**
 * Fuzzing the tokenizers on any text: random Unicode with lone surrogates, astral characters,
 * control characters and special-token look-alikes, and 100 000-character inputs. For the run.c
 * tokenizer (stories260K's tokenizer.bin), a byte-level BPE tokenizer.json, the sentencepiece
 * tokenizer.json made from tok512.bin, and GGUF tokenizers (stories260K's sentencepiece, and a
 * byte-level gpt2 one): encode never throws and gives ids inside the vocabulary; decoding them
 * gives the text back (as UTF-8 carries it: a lone surrogate comes back as U+FFFD, and
 * sentencepiece reads "▁" as a space, as sentencepiece does); streaming the ids one at a time
 * gives the same text, never half a character; random ids decode or are refused as 'bad-argument'.
 */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { stories260K, storiesTokenizer } from '../../../testing/models.ts'
import { storiesGguf, storiesVocab, trainByteLevelTokenizer } from '../../../testing/format-fixtures.ts'
import { FUZZ_RUNS, fuzzParams } from '../../../testing/fuzz.ts'
import { CASE_TIME_LIMIT_MS, outcome } from '../../../testing/fuzz-checks.ts'
import { memorySource } from '../source/byte-source.ts'
import { readGguf } from '../formats/gguf.ts'
import { writeGguf } from '../formats/gguf-writer.ts'
import { spmTokenizerJson } from '../formats/safetensors-writer.ts'
import { ggufTokenizer } from './gguf-tokenizer.ts'
import { parseHfTokenizer } from './hf-tokenizer.ts'
import type { BpeTokenizer } from './bpe.ts'
import { parseLlama2cTokenizer, type Tokenizer } from './tokenizer.ts'

interface Subject {
  tokenizer: Tokenizer
  /** Encodes text as plain text (special-token look-alikes are text), with BOS. */
  encode(text: string): number[]
  /** Whether decoding gives back exactly this (well-formed) text. */
  roundTrips(text: string): boolean
}

const asUtf8 = (text: string) => new TextDecoder().decode(new TextEncoder().encode(text)) // lone surrogates -> U+FFFD
const bpe = (tokenizer: BpeTokenizer, sentencepiece: boolean): Subject => ({
  tokenizer,
  encode: (text) => tokenizer.encode(text, { bos: true, specials: false }),
  roundTrips: (text) => !sentencepiece || !text.includes('\u2581'),
})

const subjects: Record<string, Subject> = {}
beforeAll(async () => {
  const runc = storiesTokenizer()
  subjects['run.c tokenizer.bin'] = { tokenizer: runc, encode: (text) => runc.encode(text), roundTrips: () => true }
  const trained = trainByteLevelTokenizer()
  subjects['byte-level tokenizer.json'] = bpe(parseHfTokenizer(trained.json, { tokenizerConfig: { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' } }), false)
  subjects['sentencepiece tokenizer.json'] = bpe(parseHfTokenizer(spmTokenizerJson(storiesVocab()), { tokenizerConfig: { bos_token: '<s>', eos_token: '</s>' } }), true)
  subjects['GGUF sentencepiece (stories260K)'] = bpe(ggufTokenizer(await readGguf(memorySource(await storiesGguf({ type: 'Q8_0' })))), true)
  const tokens: string[] = []
  for (const [t, id] of Object.entries(trained.vocab)) tokens[id] = t
  const gguf = writeGguf([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' }],
    ['tokenizer.ggml.tokens', { type: 'strings', value: [...tokens, '<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'] }],
    ['tokenizer.ggml.token_type', { type: 'i32s', value: [...tokens.map(() => 1), 3, 3, 3] }],
    ['tokenizer.ggml.merges', { type: 'strings', value: trained.merges.map(([a, b]) => `${a} ${b}`) }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: trained.bos }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
  ], [])
  subjects['GGUF byte-level gpt2'] = bpe(ggufTokenizer(await readGguf(memorySource(gguf))), false)
})

const NAMES = ['run.c tokenizer.bin', 'byte-level tokenizer.json', 'sentencepiece tokenizer.json', 'GGUF sentencepiece (stories260K)', 'GGUF byte-level gpt2']
const subject = fc.constantFrom(...NAMES)

/** Text of every kind: any UTF-16 (lone surrogates too), astral and combining characters, controls, "▁", special-token look-alikes. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(' ', '  ', '\t', '\n', '\r\n', '\u0000', '\u001b', '\u2581', '\ufffd', '😀', '\ud83d', '\ude00', 'é', 'e\u0301', '日本', '<s>', '</s>', '<|eot_id|>', '<0x41>', 'Once', ' upon', "'s", '123', 'a'), maxLength: 30 }),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }),
)

/** Encodes, checks the ids, decodes them whole and one by one; returns the ids. */
function roundTrip(s: Subject, sample: string): number[] {
  const started = performance.now()
  const r = outcome(() => s.encode(sample), [], undefined, 'encode')
  if (!r.ok) throw r.error
  const ids = r.value
  const { vocabSize } = s.tokenizer
  for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) expect.fail(`id ${id} is outside 0..${vocabSize - 1}`)
  const text = s.tokenizer.decode(ids.slice(1), ids[0])
  if (s.roundTrips(sample)) expect(text).toBe(asUtf8(sample))
  // streamed one id at a time: the same text, and a character split over ids comes out whole
  const stream = s.tokenizer.createStreamDecoder(ids[0])
  const chunks = ids.slice(1).map((id) => stream.push(id))
  chunks.push(stream.flush())
  expect(chunks.join('')).toBe(text)
  if (!asUtf8(sample).includes('\ufffd')) expect(chunks.findIndex((chunk) => chunk.includes('\ufffd')), 'a chunk with U+FFFD (half a character)').toBe(-1)
  expect(performance.now() - started).toBeLessThan(CASE_TIME_LIMIT_MS)
  return ids
}

describe('tokenizers on any text', () => {
  it('encode gives ids in the vocabulary; decode gives the text back; streaming gives the same text', () => {
    fc.assert(fc.property(subject, text, (name, sample) => { roundTrip(subjects[name], sample) }), fuzzParams(80))
  })

  it('100 000-character inputs encode and decode in bounded time', () => {
    const long = fc.tuple(text.filter((t) => t.length > 0), fc.integer({ min: 50_000, max: 100_000 })).map(([unit, n]) => unit.repeat(Math.ceil(n / unit.length)).slice(0, n))
    fc.assert(fc.property(subject, long, (name, sample) => {
      const ids = roundTrip(subjects[name], sample)
      expect(ids.length).toBeGreaterThan(0)
    }), { ...fuzzParams(81), numRuns: Math.max(1, Math.ceil(FUZZ_RUNS / 100)) })
  })

  it('random ids decode to text, or are refused as bad-argument when outside the vocabulary', () => {
    const id = fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: -2, max: 2 ** 31 }), fc.constantFrom(0.5, NaN, -0, 2 ** 53))
    fc.assert(fc.property(subject, fc.array(id, { maxLength: 40 }), fc.integer({ min: 0, max: 600 }), (name, ids, prev) => {
      const { tokenizer } = subjects[name]
      const inside = ids.every((i) => Number.isInteger(i) && i >= 0 && i < tokenizer.vocabSize)
      const r = outcome(() => tokenizer.decode(ids, Math.min(prev, tokenizer.vocabSize - 1)), ['bad-argument'], /token id .* is outside the vocabulary/)
      expect(r.ok).toBe(inside)
      if (r.ok) {
        const stream = tokenizer.createStreamDecoder(Math.min(prev, tokenizer.vocabSize - 1))
        expect(ids.map((i) => stream.push(i)).join('') + stream.flush()).toBe(r.value)
      }
    }), fuzzParams(82))
  })
})

/** run.c's encode as run.c writes it (a scan of every pair per merge), from a tokenizer.bin: the reference for the heap-based one. */
function runcReference(bin: Uint8Array) {
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength)
  const pieces: string[] = []
  const scores: number[] = []
  for (let o = 4; o < bin.length;) {
    scores.push(view.getFloat32(o, true))
    const n = view.getInt32(o + 4, true)
    pieces.push(String.fromCharCode(...bin.subarray(o + 8, o + 8 + n)))
    o += 8 + n
  }
  const ids = new Map<string, number>()
  pieces.forEach((p, i) => { if (!ids.has(p)) ids.set(p, i) })
  return (text: string): number[] => {
    const bytes = new TextEncoder().encode(text)
    const tokens = [1]
    if (bytes.length > 0) tokens.push(ids.get(' ')!)
    for (let i = 0; i < bytes.length;) {
      let end = i + 1
      while (end < bytes.length && (bytes[end] & 0xc0) === 0x80 && end - i < 4) end++
      const id = ids.get(String.fromCharCode(...bytes.subarray(i, end)))
      if (id !== undefined) tokens.push(id)
      else for (let b = i; b < end; b++) tokens.push(bytes[b] + 3)
      i = end
    }
    for (;;) {
      let best = -1e10, bestId = -1, bestAt = -1
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = ids.get(pieces[tokens[i]] + pieces[tokens[i + 1]])
        if (id !== undefined && scores[id] > best) { best = scores[id]; bestId = id; bestAt = i }
      }
      if (bestAt < 0) return tokens
      tokens.splice(bestAt, 2, bestId)
    }
  }
}

describe('the run.c tokenizer merges exactly as run.c does', () => {
  it('stories260K: the same ids as the pair-scanning loop, on any text', () => {
    const reference = runcReference(stories260K.tokenizer)
    const tok = storiesTokenizer()
    fc.assert(fc.property(text, (sample) => { expect(tok.encode(sample)).toEqual(reference(sample)) }), fuzzParams(83))
  })

  it('random vocabularies with many equal scores (the leftmost of equal pairs merges first), NaN and -1e10 scores (never merged)', () => {
    const ascii = (s: string) => new TextEncoder().encode(s)
    const bytePieces = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    const vocabulary = fc.array(fc.tuple(fc.stringMatching(/^[ ab]{2,4}$/), fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(NaN, -1e10, -1e11, Infinity))), { maxLength: 30 })
    fc.assert(fc.property(vocabulary, fc.stringMatching(/^[ abc]{0,40}$/), (merged, sample) => {
      const all = [['<unk>', 0], ['<s>', 0], ['</s>', 0], ...bytePieces.map((p) => [p, 0]), [' ', 0], ['a', 0], ['b', 0], ...merged] as [string, number][]
      const parts = [new Uint8Array(4)]
      for (const [p, score] of all) {
        const head = new Uint8Array(8)
        new DataView(head.buffer).setFloat32(0, score, true)
        new DataView(head.buffer).setInt32(4, ascii(p).length, true)
        parts.push(head, ascii(p))
      }
      const bin = new Uint8Array(parts.reduce((n, q) => n + q.length, 0))
      parts.reduce((o, q) => (bin.set(q, o), o + q.length), 0)
      expect(parseLlama2cTokenizer(bin, all.length).encode(sample)).toEqual(runcReference(bin)(sample))
    }), fuzzParams(84))
  })
})

describe('tokenizers: counterexamples the fuzzers found', () => {
  it('run.c tokenizer: 100 000 characters encode within the hang bound (the pair-scanning loop took minutes: O(n^2) scans)', () => {
    const tok = storiesTokenizer()
    const started = performance.now()
    const ids = tok.encode('Once upon a time, '.repeat(5556))
    expect(performance.now() - started).toBeLessThan(CASE_TIME_LIMIT_MS)
    expect(tok.decode(ids.slice(1), ids[0])).toBe('Once upon a time, '.repeat(5556))
  })
})
