import { TabmeshError } from '../../core/errors.ts'
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

export interface HfTokenizerOptions {
  name?: string // file name for errors
  /** tokenizer_config.json, for bos_token / eos_token / add_bos_token / chat_template. */
  tokenizerConfig?: Json
  /** Ids from config.json when tokenizer_config.json does not name the tokens. */
  bosId?: number
  eosId?: number
}

const tokenContent = (v: unknown): string | undefined => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as Json).content === 'string' ? (v as Json).content as string : undefined)

function patternOf(p: unknown, where: string): RegExp {
  const pattern = p as { String?: string; Regex?: string } | undefined
  if (pattern?.String !== undefined) return new RegExp(pattern.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu')
  if (pattern?.Regex !== undefined) return compilePattern(pattern.Regex, where)
  throw new TabmeshError('tokenizer-format', `${where}: pattern should be {String} or {Regex}`)
}

function buildNormalizer(n: unknown, name: string): (text: string) => string {
  if (n === null || n === undefined) return (t) => t
  const node = n as Json
  const where = `${name}: normalizer ${String(node.type)}`
  switch (node.type) {
    case 'Sequence': {
      const steps = (node.normalizers as unknown[]).map((s) => buildNormalizer(s, name))
      return (t) => steps.reduce((acc, f) => f(acc), t)
    }
    case 'Prepend': return (t) => (t.length > 0 ? (node.prepend as string) + t : t)
    case 'Replace': {
      const re = patternOf(node.pattern, where)
      return (t) => t.replace(re, () => node.content as string)
    }
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD': return (t) => t.normalize(node.type as string)
    case 'Lowercase': return (t) => t.toLowerCase()
    default: throw new TabmeshError('tokenizer-format', `${where} is not supported`)
  }
}

type PreTokenize = (text: string, first: boolean) => string[]

function buildPreTokenizer(p: unknown, name: string): { split: PreTokenize; byteLevel: boolean; metaspace?: { prepend: boolean } } {
  if (p === null || p === undefined) return { split: (t) => (t.length > 0 ? [t] : []), byteLevel: false }
  const node = p as Json
  const where = `${name}: pre_tokenizer ${String(node.type)}`
  switch (node.type) {
    case 'Sequence': {
      const steps = (node.pretokenizers as unknown[]).map((s) => buildPreTokenizer(s, name))
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
      if (!['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(behavior)) throw new TabmeshError('tokenizer-format', `${where}: behavior ${String(behavior)} is not supported`)
      return { split: (t) => splitByRegex(t, regex, behavior, node.invert === true), byteLevel: false }
    }
    case 'Digits': {
      const regex = node.individual_digits ? /\p{N}/gu : /\p{N}+/gu
      return { split: (t) => splitByRegex(t, regex), byteLevel: false }
    }
    case 'Metaspace': {
      const replacement = (node.replacement as string) ?? '\u2581'
      const scheme = (node.prepend_scheme as string | undefined) ?? (node.add_prefix_space === false ? 'never' : 'always')
      const split = node.split !== false
      return {
        split: (t, first) => {
          let text = t.replaceAll(' ', replacement)
          if ((scheme === 'always' || (scheme === 'first' && first)) && !text.startsWith(replacement)) text = replacement + text
          if (!split) return [text]
          return text.split(new RegExp(`(?=${replacement})`, 'u')).filter((w) => w.length > 0)
        },
        byteLevel: false,
        metaspace: { prepend: scheme !== 'never' },
      }
    }
    default: throw new TabmeshError('tokenizer-format', `${where} is not supported`)
  }
}

function bosFromPostProcessor(p: unknown): string | undefined {
  const node = p as Json | null | undefined
  if (!node) return undefined
  if (node.type === 'Sequence') {
    for (const s of node.processors as unknown[]) {
      const found = bosFromPostProcessor(s)
      if (found) return found
    }
    return undefined
  }
  if (node.type !== 'TemplateProcessing') return undefined
  const first = (node.single as Json[])[0]
  return first && 'SpecialToken' in first ? ((first.SpecialToken as Json).id as string) : undefined
}

/** A tokenizer from the parsed JSON of tokenizer.json. */
export function parseHfTokenizer(json: unknown, options: HfTokenizerOptions = {}): BpeTokenizer {
  const name = options.name ?? 'tokenizer.json'
  const root = json as Json
  const model = root?.model as Json | undefined
  if (!model || typeof model !== 'object') throw new TabmeshError('tokenizer-format', `${name}: no "model" section; this is not a tokenizer.json`)
  if (model.type !== 'BPE') throw new TabmeshError('tokenizer-format', `${name}: model.type ${String(model.type)} is not supported (BPE)`)
  const vocabJson = model.vocab as Record<string, number>
  if (!vocabJson || typeof vocabJson !== 'object') throw new TabmeshError('tokenizer-format', `${name}: model.vocab is missing`)
  if (model.continuing_subword_prefix || model.end_of_word_suffix) throw new TabmeshError('tokenizer-format', `${name}: BPE subword prefixes/suffixes are not supported`)

  const tokens: (string | undefined)[] = []
  const vocab = new Map<string, number>()
  for (const [text, id] of Object.entries(vocabJson)) {
    if (!Number.isInteger(id) || id < 0 || id >= 1 << 22) throw new TabmeshError('tokenizer-format', `${name}: model.vocab gives ${JSON.stringify(text)} the id ${id}`)
    tokens[id] = text
    vocab.set(text, id)
  }
  const specials: SpecialToken[] = []
  for (const t of (root.added_tokens as Json[] | undefined) ?? []) {
    const id = t.id as number
    const content = t.content as string
    if (!Number.isInteger(id) || typeof content !== 'string') throw new TabmeshError('tokenizer-format', `${name}: added_tokens has an entry without id or content`)
    tokens[id] = content
    specials.push({ id, content, special: t.special === true })
  }
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) tokens[i] = undefined // dense array

  const rawMerges = (model.merges as unknown[] | undefined) ?? []
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

  const tc = options.tokenizerConfig ?? {}
  const idOf = (content: string | undefined) => (content === undefined ? undefined : vocab.get(content) ?? specials.find((s) => s.content === content)?.id)
  const templateBos = bosFromPostProcessor(root.post_processor)
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
  const t = tokenizerConfig?.chat_template
  if (typeof t === 'string') return t
  if (Array.isArray(t)) return (t.find((x) => (x as Json).name === 'default') as Json | undefined)?.template as string | undefined
  return undefined
}
