import { describe, expect, it } from 'vitest'
import { storiesTokenizer } from '../../../testing/models.ts'
import { memorySource } from '../source/byte-source.ts'
import {
  PRETOKENIZE_PATTERNS, compilePattern, createBpeTokenizer, mergesFromPairs, splitByRegex, toByteLevel,
  type BpeTokenizer,
} from './bpe.ts'
import encodeFixtures from '../../../testing/fixtures/runc-encode.json'
import { BYTE_LEVEL_CORPUS, llama2cModel, storiesGguf, storiesVocab, trainByteLevelTokenizer } from '../../../testing/format-fixtures.ts'
import { readGguf } from '../formats/gguf.ts'
import { ggufTokenizer } from './gguf-tokenizer.ts'
import { modelToGguf, writeGguf } from '../formats/gguf-writer.ts'
import { parseHfTokenizer } from './hf-tokenizer.ts'
import { spmTokenizerJson } from '../formats/safetensors-writer.ts'

const llama2c = storiesTokenizer()
const hf = parseHfTokenizer(spmTokenizerJson(storiesVocab()), { tokenizerConfig: { bos_token: '<s>', eos_token: '</s>' } })
const gguf = storiesGguf().then(async (bytes) => ggufTokenizer(await readGguf(memorySource(bytes))))

describe('sentencepiece-style BPE: tokenizer.json and GGUF made from tok512.bin match run.c', () => {
  it.each(encodeFixtures.map((f) => [f.prompt, f.ids] as const))('encodes %j exactly as run.c', async (prompt, ids) => {
    // run.c reads "<s>" in a prompt as text; Hugging Face and llama.cpp match special tokens unless told not to
    expect(hf.encode(prompt, { specials: false })).toEqual(ids)
    expect((await gguf).encode(prompt, { specials: false })).toEqual(ids)
  })

  it.each(encodeFixtures.map((f) => [f.prompt, f.ids] as const))('decodes run.c\'s ids for %j as the llama2.c tokenizer does', async (_prompt, ids) => {
    for (const tok of [hf, await gguf]) {
      expect(tok.decode(ids.slice(1), ids[0])).toBe(llama2c.decode(ids.slice(1), ids[0]))
      for (let i = 1; i < ids.length; i++) expect(tok.decodePiece(ids[i - 1], ids[i])).toEqual(llama2c.decodePiece(ids[i - 1], ids[i]))
    }
  })

  it('matches special tokens in text by default, and ends with EOS on request', async () => {
    for (const tok of [hf, await gguf]) {
      expect(tok.encode('<s> and </s>')).toEqual([1, 1, ...tok.encode(' and ', { bos: false }), 2])
      expect(tok.encode('hi', { eos: true }).at(-1)).toBe(2)
      expect([tok.bosId, tok.eosId, tok.vocabSize, tok.addBos]).toEqual([1, 2, 512, true])
      expect(tok.decode([1, 2])).toBe('') // control tokens print nothing
    }
  })

  it('refuses a GGUF tokenizer larger than the model\'s vocabulary', async () => {
    const model = await llama2cModel('stories260K')
    const file = await readGguf(memorySource(modelToGguf(model, { vocab: storiesVocab() }), 'stories.gguf'))
    expect(() => ggufTokenizer(file, { ...model.config, vocabSize: 500 })).toThrow(/stories.gguf: the tokenizer has 512 tokens but the model's embedding has 500 rows/)
    const noTokenizer = await readGguf(memorySource(modelToGguf(model), 'bare.gguf'))
    expect(() => ggufTokenizer(noTokenizer)).toThrow(/bare.gguf: has no embedded tokenizer/)
  })
})

// ---- byte-level BPE (Llama-3 / Qwen2 / SmolLM2 style), on a vocabulary trained here ----

const trainByteLevel = (pattern: string, nMerges: number) => trainByteLevelTokenizer(BYTE_LEVEL_CORPUS, pattern, nMerges)
const CORPUS = BYTE_LEVEL_CORPUS

/** The textbook merge loop (lowest rank first, leftmost on ties), to check the heap-based one against. */
function naiveBpe(word: string, vocab: Record<string, number>, merges: [string, string][]): number[] {
  const rank = new Map(merges.map(([a, b], i) => [a + '\u0000' + b, i]))
  if (vocab[word] !== undefined) return [vocab[word]] // ignore_merges
  const syms = Array.from(word)
  for (;;) {
    let best = -1, bestRank = Infinity
    for (let i = 0; i + 1 < syms.length; i++) {
      const r = rank.get(syms[i] + '\u0000' + syms[i + 1])
      if (r !== undefined && r < bestRank) { bestRank = r; best = i }
    }
    if (best < 0) return syms.map((s) => vocab[s])
    syms.splice(best, 2, syms[best] + syms[best + 1])
  }
}

describe('byte-level BPE (tokenizer.json and GGUF gpt2)', () => {
  const trained = trainByteLevel(PRETOKENIZE_PATTERNS.llama3, 150)
  const tok = parseHfTokenizer(trained.json, { tokenizerConfig: { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' } })
  const texts = [CORPUS, 'Hello world\'s 12345 tokens!!\n\n', '  leading and trailing  ', 'ÀÉÎõü ß ∑ 😀🎉 日本', "We'RE shouting, DON'T", '\r\n\tmixed\u00a0space', '']

  it('splits text as Llama-3\'s pattern does (contractions, digits in threes, punctuation runs)', () => {
    const re = compilePattern(PRETOKENIZE_PATTERNS.llama3, 'test')
    expect(splitByRegex("Hello world's 12345 tokens!!\n\n", re)).toEqual(['Hello', ' world', "'s", ' ', '123', '45', ' tokens', '!!\n\n'])
    expect(splitByRegex("WE'RE", re)).toEqual(['WE', "'RE"]) // (?i:...) rewritten for JavaScript
    expect(splitByRegex('a  b\n\n c', re)).toEqual(['a', ' ', ' b', '\n\n', ' c'])
    expect(splitByRegex('x 12345', compilePattern(PRETOKENIZE_PATTERNS.qwen2, 'test'))).toEqual(['x', ' ', '1', '2', '3', '4', '5'])
  })

  it('encodes like the textbook merge loop and decodes back to the same text', () => {
    const re = compilePattern(PRETOKENIZE_PATTERNS.llama3, 'test')
    for (const text of texts) {
      const want = [trained.bos, ...splitByRegex(text, re).flatMap((w) => naiveBpe(toByteLevel(w), trained.vocab, trained.merges))]
      expect(tok.encode(text), text).toEqual(want)
      expect(tok.decode(tok.encode(text).slice(1), trained.bos)).toBe(text)
    }
    expect(tok.encode(CORPUS).length).toBeLessThan(0.75 * new TextEncoder().encode(CORPUS).length) // the merges do merge
  })

  it('matches special tokens, adds BOS as the post-processor says, and streams split UTF-8 whole', () => {
    const ids = tok.encode('<|begin_of_text|>hi<|eot_id|>', { bos: false })
    expect(ids[0]).toBe(trained.bos)
    expect(ids.at(-1)).toBe(trained.eot)
    expect(tok.encode('<|eot_id|>', { bos: false, specials: false }).length).toBeGreaterThan(1)
    expect([tok.bosId, tok.eosId, tok.addBos]).toEqual([trained.bos, trained.eot, true])
    const d = tok.createStreamDecoder(trained.bos)
    const parts = tok.encode('😀', { bos: false }).map((t) => d.push(t))
    expect(parts.at(-1)).toBe('😀')
    expect(parts.slice(0, -1).every((p) => p === '')).toBe(true)
  })

  it('the same vocabulary as GGUF (tokenizer.ggml.model gpt2, pre llama-bpe) encodes identically', async () => {
    const tokens: string[] = []
    for (const [t, id] of Object.entries(trained.vocab)) tokens[id] = t
    const added = trained.json.added_tokens.map((t) => t.content)
    const meta: Parameters<typeof writeGguf>[0] = [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
      ['tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' }],
      ['tokenizer.ggml.tokens', { type: 'strings', value: [...tokens, ...added] }],
      ['tokenizer.ggml.token_type', { type: 'i32s', value: [...tokens.map(() => 1), 3, 3, 3] }],
      ['tokenizer.ggml.merges', { type: 'strings', value: trained.merges.map(([a, b]) => `${a} ${b}`) }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: trained.bos }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: trained.eot }],
      ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ]
    const g = ggufTokenizer(await readGguf(memorySource(writeGguf(meta, []), 'bpe.gguf')))
    for (const text of texts) expect(g.encode(text), text).toEqual(tok.encode(text))
    expect(g.encode('a<|eot_id|>b')).toEqual(tok.encode('a<|eot_id|>b'))
  })

  it('refuses what it cannot run, naming the file and field', () => {
    const bad = (patch: (j: typeof trained.json) => unknown) => () => parseHfTokenizer(patch(structuredClone(trained.json)), { name: 'x/tokenizer.json' })
    expect(bad((j) => ({ ...j, model: { ...j.model, type: 'WordPiece' } }))).toThrow(/x\/tokenizer.json: model.type WordPiece is not supported/)
    expect(bad((j) => ({ ...j, pre_tokenizer: { type: 'BertPreTokenizer' } }))).toThrow(/x\/tokenizer.json: pre_tokenizer BertPreTokenizer is not supported/)
    expect(bad((j) => ({ ...j, model: { ...j.model, merges: ['zz qq'] } }))).toThrow(/x\/tokenizer.json: model.merges: merge 0 .* not in the vocabulary/)
    expect(bad(() => ({ nothing: true }))).toThrow(/no "model" section/)
  })
})

describe('merge engine details', () => {
  it('falls back to bytes for unknown characters and to <unk> without byte tokens', () => {
    const tokens = ['<unk>', 'a', 'b', 'ab']
    const base = {
      name: 't', mode: 'sentencepiece' as const, tokens, specials: [], normalize: (t: string) => t, preTokenize: (t: string) => [t],
      byteFallback: true, unkId: 0, fuseUnk: true, ignoreMerges: false, bosId: -1, eosId: -1, addBos: false, stripSpaceAfterBos: false,
      merges: mergesFromPairs([['a', 'b']], new Map(tokens.map((t, i) => [t, i])), 't'),
    }
    const t: BpeTokenizer = createBpeTokenizer(base)
    expect(t.encode('abxyab')).toEqual([3, 0, 3]) // no byte tokens: one fused <unk>
    expect(() => createBpeTokenizer({ ...base, unkId: -1 }).encode('x')).toThrow(/"x" has no token/)
  })
})
