import { clip, TabmeshError } from '../../core/errors.ts'
import {
  PRETOKENIZE_PATTERNS, compilePattern, createBpeTokenizer, mergesFromPairs, mergesFromScores, splitByRegex,
  type BpeTokenizer, type SpecialToken,
} from './bpe.ts'
import { ggufNumber, ggufString, type GgufFile, type GgufValue } from '../formats/gguf.ts'
import type { ModelConfig } from '../model.ts'
import { GGUF_TOKEN_TYPE, SPM_SPACE } from './spm-vocab.ts'

/**
 * The tokenizer embedded in a GGUF file (tokenizer.ggml.*), as llama.cpp reads it:
 * - model "llama": sentencepiece (tokens, scores, token types; merges by score, byte fallback);
 * - model "gpt2": byte-level BPE (tokens, merges), pre-tokenized by the regex that
 *   tokenizer.ggml.pre names (llama-bpe, qwen2, smollm, gpt-2/default).
 * Control and user-defined tokens are matched in the text.
 */

/** llama.cpp's pre-tokenizer names -> the regexes to split with, in order. */
const PRE_TOKENIZERS: Record<string, string[]> = {
  default: [PRETOKENIZE_PATTERNS.gpt2],
  'gpt-2': [PRETOKENIZE_PATTERNS.gpt2],
  'llama-bpe': [PRETOKENIZE_PATTERNS.llama3],
  llama3: [PRETOKENIZE_PATTERNS.llama3],
  qwen2: [PRETOKENIZE_PATTERNS.qwen2],
  smollm: [String.raw`\p{N}`, PRETOKENIZE_PATTERNS.gpt2],
}

function stringArray(file: GgufFile, key: string): string[] {
  const v = file.metadata.get(key)
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new TabmeshError('tokenizer-format', `${file.source.name}: metadata ${key} should be an array of strings`)
  return v as string[]
}

function numberArray(file: GgufFile, key: string, length: number): ArrayLike<number> | undefined {
  const v: GgufValue | undefined = file.metadata.get(key)
  if (v === undefined) return undefined
  if (!(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint32Array || Array.isArray(v))) throw new TabmeshError('tokenizer-format', `${file.source.name}: metadata ${key} should be an array of numbers`)
  if (v.length !== length) throw new TabmeshError('tokenizer-format', `${file.source.name}: metadata ${key} has ${v.length} entries for ${length} tokens`)
  return v as ArrayLike<number>
}

const bool = (file: GgufFile, key: string): boolean | undefined => {
  const v = file.metadata.get(key)
  return typeof v === 'boolean' ? v : undefined
}

/** The GGUF file's tokenizer; with `config`, checks that it fits the model's vocabulary. */
export function ggufTokenizer(file: GgufFile, config?: ModelConfig): BpeTokenizer {
  const name = file.source.name
  const kind = ggufString(file, 'tokenizer.ggml.model')
  if (kind === undefined) throw new TabmeshError('tokenizer-format', `${name}: has no embedded tokenizer (metadata tokenizer.ggml.model is missing)`)
  const tokens = stringArray(file, 'tokenizer.ggml.tokens')
  if (tokens.length >= 1 << 22) throw new TabmeshError('tokenizer-format', `${name}: ${tokens.length} tokens is implausible`)
  if (config && tokens.length > config.vocabSize) {
    throw new TabmeshError('model-mismatch', `${name}: the tokenizer has ${tokens.length} tokens but the model's embedding has ${config.vocabSize} rows; they do not belong together`)
  }
  const types = numberArray(file, 'tokenizer.ggml.token_type', tokens.length)
  const typeOf = (id: number) => (types ? types[id] : GGUF_TOKEN_TYPE.normal)
  const specials: SpecialToken[] = []
  tokens.forEach((content, id) => {
    const t = typeOf(id)
    if (t === GGUF_TOKEN_TYPE.control || t === 4 /* user defined */) specials.push({ id, content, special: t === GGUF_TOKEN_TYPE.control })
  })
  const id = (key: string) => ggufNumber(file, key) ?? -1
  const bosId = id('tokenizer.ggml.bos_token_id')
  const eosId = id('tokenizer.ggml.eos_token_id')

  if (kind === 'llama') {
    const scores = numberArray(file, 'tokenizer.ggml.scores', tokens.length)
    if (!scores) throw new TabmeshError('tokenizer-format', `${name}: metadata tokenizer.ggml.scores is missing`)
    const addSpacePrefix = bool(file, 'tokenizer.ggml.add_space_prefix') ?? true
    return createBpeTokenizer({
      name,
      mode: 'sentencepiece',
      tokens,
      merges: mergesFromScores(tokens, scores, (i) => typeOf(i) === GGUF_TOKEN_TYPE.normal || typeOf(i) === 4),
      specials: specials.filter((s) => s.content.length > 0),
      // like llama.cpp, the dummy-prefix space goes before every stretch of text (after BOS or a special token)
      normalize: (t) => {
        const text = t.replaceAll(' ', SPM_SPACE)
        return addSpacePrefix && text.length > 0 ? SPM_SPACE + text : text
      },
      preTokenize: (t) => (t.length > 0 ? [t] : []),
      byteFallback: true,
      unkId: ggufNumber(file, 'tokenizer.ggml.unknown_token_id') ?? tokens.indexOf('<unk>'),
      fuseUnk: false,
      ignoreMerges: false,
      bosId, eosId,
      addBos: (bool(file, 'tokenizer.ggml.add_bos_token') ?? true) && bosId >= 0,
      stripSpaceAfterBos: addSpacePrefix,
    })
  }
  if (kind === 'gpt2') {
    const pre = ggufString(file, 'tokenizer.ggml.pre') ?? 'default'
    const patterns = Object.hasOwn(PRE_TOKENIZERS, pre) ? PRE_TOKENIZERS[pre] : undefined
    if (!patterns) throw new TabmeshError('tokenizer-format', `${name}: tokenizer.ggml.pre ${JSON.stringify(clip(pre))} is not a pre-tokenizer tabmesh knows (${Object.keys(PRE_TOKENIZERS).join(', ')})`)
    const regexes = patterns.map((p) => compilePattern(p, `${name}: tokenizer.ggml.pre ${pre}`))
    const vocab = new Map<string, number>()
    tokens.forEach((t, i) => { if (!vocab.has(t)) vocab.set(t, i) })
    const pairs = stringArray(file, 'tokenizer.ggml.merges').map((m, i): [string, string] => {
      const at = m.indexOf(' ', 1)
      if (at < 0) throw new TabmeshError('tokenizer-format', `${name}: tokenizer.ggml.merges[${i}] is not a pair`)
      return [m.slice(0, at), m.slice(at + 1)]
    })
    return createBpeTokenizer({
      name,
      mode: 'byte-level',
      tokens,
      merges: mergesFromPairs(pairs, vocab, `${name}: tokenizer.ggml.merges`),
      specials: specials.filter((s) => s.content.length > 0),
      normalize: (t) => t,
      preTokenize: (t) => regexes.reduce<string[]>((words, re) => words.flatMap((w) => splitByRegex(w, re)), [t]),
      byteFallback: false,
      unkId: ggufNumber(file, 'tokenizer.ggml.unknown_token_id') ?? -1,
      fuseUnk: false,
      ignoreMerges: pre === 'llama-bpe' || pre === 'llama3',
      bosId, eosId,
      addBos: (bool(file, 'tokenizer.ggml.add_bos_token') ?? false) && bosId >= 0,
      stripSpaceAfterBos: false,
    })
  }
  throw new TabmeshError('tokenizer-format', `${name}: tokenizer.ggml.model ${JSON.stringify(clip(kind))} is not supported (llama, gpt2)`)
}

/** The chat template stored in a GGUF file, if any. */
export const ggufChatTemplate = (file: GgufFile): string | undefined => ggufString(file, 'tokenizer.chat_template')
