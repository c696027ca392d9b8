import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stories260K, syntheticBytes, type SyntheticName } from './models.ts'
import { memorySource } from '../src/model/source/byte-source.ts'
import type { LlamaGgufOptions } from '../src/model/formats/gguf-writer.ts'
import { llama2cAsGguf, llama2cAsHfFiles } from '../src/model/formats/llama2c-export.ts'
import { loadLlama2c } from '../src/model/formats/llama2c.ts'
import type { ModelSlice } from '../src/model/model.ts'
import { llama2cVocab } from '../src/model/tokenizer/spm-vocab.ts'
import { BYTE_TO_CHAR, PRETOKENIZE_PATTERNS, compilePattern, splitByRegex, toByteLevel } from '../src/model/tokenizer/bpe.ts'

/**
 * Test helper (Node): the project's own GGUF and safetensors fixtures, written at test time into a
 * temporary folder from stories260K and the synthetic llama2.c models. Nothing here is committed.
 */
export async function llama2cModel(name: 'stories260K' | SyntheticName): Promise<ModelSlice> {
  return loadLlama2c(memorySource(name === 'stories260K' ? stories260K.weights : syntheticBytes(name)))
}

export const storiesVocab = () => llama2cVocab(stories260K.tokenizer, 'tok512.bin')

export function storiesGguf(options: LlamaGgufOptions = {}): Promise<Uint8Array> {
  return llama2cModel('stories260K').then((m) => llama2cAsGguf(m, storiesVocab(), { name: 'stories260K', ...options }))
}

/** A folder of files that removes itself. */
export function tempFolder(prefix = 'tabmesh-formats-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return {
    dir,
    write(name: string, data: Uint8Array | string): string {
      const path = join(dir, name)
      writeFileSync(path, data)
      return path
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** stories260K as a Hugging Face folder: model.safetensors, config.json, tokenizer.json, tokenizer_config.json. */
export async function storiesHfFiles(dtype: 'F32' | 'F16' | 'BF16' = 'F32') {
  return llama2cAsHfFiles(await llama2cModel('stories260K'), storiesVocab(), { dtype }) as { 'model.safetensors': Uint8Array; 'config.json': string; 'tokenizer.json': string; 'tokenizer_config.json': string }
}

/** The text the byte-level BPE fixture is trained on: words, digits, punctuation, CJK, emoji, runs of whitespace. */
export const BYTE_LEVEL_CORPUS = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park.
One day, she saw a big, red ball! "Can I play?" she asked. Tom's dog didn't want to share; it's 12345 steps away.
日本語のテキスト and émojis 😀 are rare here.   Spaces   and\ttabs\n\nnewlines.`

/**
 * A tiny byte-level BPE (Llama-3 / Qwen2 / SmolLM2 style) trained on `corpus` (most frequent pair
 * first), as tokenizer.json, with <|begin_of_text|>, <|end_of_text|> and <|eot_id|> added.
 */
export function trainByteLevelTokenizer(corpus = BYTE_LEVEL_CORPUS, pattern: string = PRETOKENIZE_PATTERNS.llama3, nMerges = 150) {
  const words = splitByRegex(corpus, compilePattern(pattern, 'test')).map((w) => Array.from(toByteLevel(w)))
  const vocab: Record<string, number> = {}
  BYTE_TO_CHAR.forEach((c, i) => { vocab[c] = i })
  const merges: [string, string][] = []
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>()
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) { const k = w[i] + '\u0000' + w[i + 1]; counts.set(k, (counts.get(k) ?? 0) + 1) }
    let best = '', bestCount = 1
    for (const [k, c] of counts) if (c > bestCount) { best = k; bestCount = c }
    if (!best) break
    const [a, b] = best.split('\u0000')
    merges.push([a, b])
    vocab[a + b] ??= Object.keys(vocab).length
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b)
  }
  const n = Object.keys(vocab).length
  const added = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'].map((content, i) => ({ id: n + i, content, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }))
  return {
    json: {
      version: '1.0',
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
      post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: {} },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, byte_fallback: false, ignore_merges: true, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
    },
    vocab, merges, bos: n, eos: n + 1, eot: n + 2,
  }
}
