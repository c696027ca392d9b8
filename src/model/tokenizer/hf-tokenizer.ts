import { clip, TabmeshError } from '../../core/errors.ts'
import {
  PRETOKENIZE_PATTERNS, compilePattern, createBpeTokenizer, mergesFromPairs, splitByRegex,
  type BpeTokenizer, type BpeTokenizerSpec, type SpecialToken, type SplitBehavior,
} from './bpe.ts'

/**
 * Hugging Face tokenizer.json (the `tokenizers` library's format) for BPE models: byte-level
 * (Llama-3, Qwen2, SmolLM2, GPT-2) and sentencepiece-style with byte fallback (Llama-2, TinyLlama).
 * Supported parts: normalizers Prepend, Replace, NFC/NFKC/NFD/NFKD, Lowercase, Sequence;
 * pre-tokenizers ByteLevel, Split, Digits, Metaspace, Sequence; post-processor TemplateProcessing
 * (for BOS) or ByteLevel. Anything else is refused by name rather than tokenized wrongly.
 */

type Json = Record<string, unknown>

/** Sequences nested deeper than this are refused (a hostile file could nest them until the stack overflows). */
const MAX_NESTING = 16

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `v` as an object, or a clear error naming the part of the file. */
function objectAt(v: unknown, where: string): Json {
  if (!isObject(v)) throw new TabmeshError('tokenizer-format', `${where} should be an object, is ${describe(v)}`)
  return v
}

function arrayAt(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new TabmeshError('tokenizer-format', `${where} should be a list, is ${describe(v)}`)
  return v
}

function stringAt(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new TabmeshError('tokenizer-format', `${where} should be a string, is ${describe(v)}`)
  return v
}

/** A node type as messages name it: the name itself when it is a string. */
const typeName = (v: unknown): string => (typeof v === 'string' ? clip(v, 40) : describe(v))
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? JSON.stringify(clip(v, 40)) : typeof v === 'object' ? 'an object' : String(v))

export interface HfTokenizerOptions {
  name?: string // file name for errors
  /** tokenizer_config.json, for bos_token / eos_token / add_bos_token / chat_template. */
  tokenizerConfig?: Json
  /** Ids from config.json when tokenizer_config.json does not name the tokens. */
  bosId?: number
  eosId?: number
}

const tokenContent = (v: unknown): string | undefined => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as Json).content === 'string' ? (v as Json).content as string : undefined)

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function patternOf(p: unknown, where: string): RegExp {
  const pattern = isObject(p) ? p : {}
  if (pattern.String !== undefined) return new RegExp(escapeRegex(stringAt(pattern.String, `${where}: pattern.String`)), 'gu')
  if (pattern.Regex !== undefined) return compilePattern(stringAt(pattern.Regex, `${where}: pattern.Regex`), where)
  throw new TabmeshError('tokenizer-format', `${where}: pattern should be {String} or {Regex}`)
}

function buildNormalizer(n: unknown, name: string, depth = 0): (text: string) => string {
  if (n === null || n === undefined) return (t) => t
  const node = objectAt(n, `${name}: normalizer`)
  const where = `${name}: normalizer ${typeName(node.type)}`
  switch (node.type) {
    case 'Sequence': {
      if (depth >= MAX_NESTING) throw new TabmeshError('tokenizer-format', `${where} nests more than ${MAX_NESTING} deep`)
      const steps = arrayAt(node.normalizers, `${where}: normalizers`).map((s) => buildNormalizer(s, name, depth + 1))
      return (t) => steps.reduce((acc, f) => f(acc), t)
    }
    case 'Prepend': {
      const prepend = stringAt(node.prepend, `${where}: prepend`)
      return (t) => (t.length > 0 ? prepend + t : t)
    }
    case 'Replace': {
      const re = patternOf(node.pattern, where)
      const content = stringAt(node.content, `${where}: content`)
      return (t) => t.replace(re, () => content)
    }
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD': return (t) => t.normalize(node.type as string)
    case 'Lowercase': return (t) => t.toLowerCase()
    default: throw new TabmeshError('tokenizer-format', `${where} is not supported`)
  }
}

type PreTokenize = (text: string, first: boolean) => string[]

function buildPreTokenizer(p: unknown, name: string, depth = 0): { split: PreTokenize; byteLevel: boolean; metaspace?: { prepend: boolean } } {
  if (p === null || p === undefined) return { split: (t) => (t.length > 0 ? [t] : []), byteLevel: false }
  const node = objectAt(p, `${name}: pre_tokenizer`)
  const where = `${name}: pre_tokenizer ${typeName(node.type)}`
  switch (node.type) {
    case 'Sequence': {
      if (depth >= MAX_NESTING) throw new TabmeshError('tokenizer-format', `${where} nests more than ${MAX_NESTING} deep`)
      const steps = arrayAt(node.pretokenizers, `${where}: pretokenizers`).map((s) => buildPreTokenizer(s, name, depth + 1))
      return {
        split: (t, first) => steps.reduce<string[]>((words, s) => words.flatMap((w, i) => s.split(w, first && i === 0)), [t]),
        byteLevel: steps.some((s) => s.byteLevel),
        metaspace: steps.find((s) => s.metaspace)?.metaspace,
      }
    }
    case 'ByteLevel': {
      const regex = node.use_regex === false ? null : compilePattern(PRETOKENIZE_PATTERNS.gpt2, where)
      const prefix = node.add_prefix_space === true
      return {
        split: (t, first) => {
          const text = prefix && first && !t.startsWith(' ') ? ' ' + t : t
          return regex ? splitByRegex(text, regex) : [text]
        },
        byteLevel: true,
      }
    }
    case 'Split': {
      const regex = patternOf(node.pattern, where)
      const behavior = node.behavior as SplitBehavior
      if (!['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(behavior)) throw new TabmeshError('tokenizer-format', `${where}: behavior ${describe(behavior)} is not supported`)
      return { split: (t) => splitByRegex(t, regex, behavior, node.invert === true), byteLevel: false }
    }
    case 'Digits': {
      const regex = node.individual_digits ? /\p{N}/gu : /\p{N}+/gu
      return { split: (t) => splitByRegex(t, regex), byteLevel: false }
    }
    case 'Metaspace': {
      const replacement = node.replacement === undefined ? '\u2581' : stringAt(node.replacement, `${where}: replacement`)
      const scheme = node.prepend_scheme === undefined ? (node.add_prefix_space === false ? 'never' : 'always') : stringAt(node.prepend_scheme, `${where}: prepend_scheme`)
      if (!['always', 'first', 'never'].includes(scheme)) throw new TabmeshError('tokenizer-format', `${where}: prepend_scheme ${describe(scheme)} is not supported (always, first, never)`)
      const split = node.split !== false
      const before = new RegExp(`(?=${escapeRegex(replacement)})`, 'u') // the replacement is text, not a pattern
      return {
        split: (t, first) => {
          let text = t.replaceAll(' ', replacement)
          if ((scheme === 'always' || (scheme === 'first' && first)) && !text.startsWith(replacement)) text = replacement + text
          if (!split) return [text]
          return text.split(before).filter((w) => w.length > 0)
        },
        byteLevel: false,
        metaspace: { prepend: scheme !== 'never' },
      }
    }
    default: throw new TabmeshError('tokenizer-format', `${where} is not supported`)
  }
}

function bosFromPostProcessor(p: unknown, name: string, depth = 0): string | undefined {
  if (p === null || p === undefined) return undefined
  const node = objectAt(p, `${name}: post_processor`)
  if (node.type === 'Sequence') {
    if (depth >= MAX_NESTING) throw new TabmeshError('tokenizer-format', `${name}: post_processor Sequence nests more than ${MAX_NESTING} deep`)
    for (const s of arrayAt(node.processors, `${name}: post_processor Sequence: processors`)) {
      const found = bosFromPostProcessor(s, name, depth + 1)
      if (found) return found
    }
    return undefined
  }
  if (node.type !== 'TemplateProcessing') return undefined
  const first = arrayAt(node.single, `${name}: post_processor TemplateProcessing: single`)[0]
  const special = isObject(first) && isObject(first.SpecialToken) ? first.SpecialToken.id : undefined
  return typeof special === 'string' ? special : undefined
}

/** A tokenizer from the parsed JSON of tokenizer.json. */
export function parseHfTokenizer(json: unknown, options: HfTokenizerOptions = {}): BpeTokenizer {
  const name = options.name ?? 'tokenizer.json'
  const root: Json = isObject(json) ? json : {}
  const model = root.model
  if (!isObject(model)) throw new TabmeshError('tokenizer-format', `${name}: no "model" section; this is not a tokenizer.json`)
  if (model.type !== 'BPE') throw new TabmeshError('tokenizer-format', `${name}: model.type ${typeName(model.type)} is not supported (BPE)`)
  const vocabJson = model.vocab
  if (!isObject(vocabJson)) throw new TabmeshError('tokenizer-format', `${name}: model.vocab is missing or not an object`)
  if (model.continuing_subword_prefix || model.end_of_word_suffix) throw new TabmeshError('tokenizer-format', `${name}: BPE subword prefixes/suffixes are not supported`)

  const vocab = new Map<string, number>()
  let lastId = -1
  for (const [text, id] of Object.entries(vocabJson)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= 1 << 22) throw new TabmeshError('tokenizer-format', `${name}: model.vocab gives ${JSON.stringify(clip(text))} the id ${describe(id)}`)
    vocab.set(text, id)
    lastId = Math.max(lastId, id)
  }
  const specials: SpecialToken[] = []
  for (const t of root.added_tokens === undefined || root.added_tokens === null ? [] : arrayAt(root.added_tokens, `${name}: added_tokens`)) {
    const id = isObject(t) ? t.id : undefined
    const content = isObject(t) ? t.content : undefined
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= 1 << 22 || typeof content !== 'string' || !isObject(t)) {
      throw new TabmeshError('tokenizer-format', `${name}: added_tokens has an entry without an id (0..2^22) or content`)
    }
    specials.push({ id, content, special: t.special === true })
    lastId = Math.max(lastId, id)
  }
  // id -> text, dense (made whole at once: filling a sparse array hole by hole is slow when a file puts one id at 2^22)
  const tokens = new Array<string | undefined>(lastId + 1).fill(undefined)
  for (const [text, id] of vocab) tokens[id] = text
  for (const s of specials) tokens[s.id] = s.content

  const rawMerges = model.merges === undefined || model.merges === null ? [] : arrayAt(model.merges, `${name}: model.merges`)
  const pairs = rawMerges.map((m, i): [string, string] => {
    if (Array.isArray(m) && m.length === 2) return [m[0] as string, m[1] as string]
    if (typeof m === 'string') {
      const at = m.indexOf(' ', 1) // a merge of a space-like piece keeps its first character
      if (at > 0) return [m.slice(0, at), m.slice(at + 1)]
    }
    throw new TabmeshError('tokenizer-format', `${name}: model.merges[${i}] is not a pair`)
  })
  const merges = mergesFromPairs(pairs, vocab, `${name}: model.merges`)

  const normalize = buildNormalizer(root.normalizer, name)
  const pre = buildPreTokenizer(root.pre_tokenizer, name)
  const decoderTypes = JSON.stringify(root.decoder ?? null)
  const byteLevel = pre.byteLevel || /"type":"ByteLevel"/.test(decoderTypes)

  const tc: Json = isObject(options.tokenizerConfig) ? options.tokenizerConfig : {}
  const idOf = (content: string | undefined) => (content === undefined ? undefined : vocab.get(content) ?? specials.find((s) => s.content === content)?.id)
  const templateBos = bosFromPostProcessor(root.post_processor, name)
  const bosId = idOf(tokenContent(tc.bos_token)) ?? idOf(templateBos) ?? options.bosId ?? -1
  const eosId = idOf(tokenContent(tc.eos_token)) ?? options.eosId ?? -1
  const addBos = typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token && bosId >= 0 : templateBos !== undefined && bosId >= 0
  const unk = typeof model.unk_token === 'string' ? vocab.get(model.unk_token) : undefined

  const spec: BpeTokenizerSpec = {
    name,
    mode: byteLevel ? 'byte-level' : 'sentencepiece',
    tokens,
    merges,
    specials,
    normalize: (t) => normalize(t),
    preTokenize: pre.split,
    byteFallback: model.byte_fallback === true,
    unkId: unk ?? -1,
    fuseUnk: model.fuse_unk === true,
    ignoreMerges: model.ignore_merges === true,
    bosId,
    eosId,
    addBos,
    stripSpaceAfterBos: !byteLevel && (/"type":"Strip"/.test(decoderTypes) || pre.metaspace?.prepend === true || /"type":"Metaspace"/.test(decoderTypes)),
  }
  return createBpeTokenizer(spec)
}

/** The chat template of a tokenizer_config.json (a string, or a list of named templates: "default" is used). */
export function hfChatTemplate(tokenizerConfig: Json | undefined): string | undefined {
  const t = isObject(tokenizerConfig) ? tokenizerConfig.chat_template : undefined
  if (typeof t === 'string') return t
  if (Array.isArray(t)) {
    const named = t.find((x) => isObject(x) && x.name === 'default')
    return isObject(named) && typeof named.template === 'string' ? named.template : undefined
  }
  return undefined
}
