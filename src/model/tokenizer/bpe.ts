import { createRecordHeap } from './heap.ts'
import { clip, TabmeshError } from '../../core/errors.ts'
import { createUtf8StreamDecoder, type StreamDecoder, type Tokenizer } from './tokenizer.ts'

/**
 * The BPE engine behind the Hugging Face (tokenizer.json) and GGUF tokenizers. Two flavours:
 * - byte-level (GPT-2, Llama-3, Qwen2, SmolLM2): text is split by a regex, each piece's UTF-8
 *   bytes are mapped to printable characters, and merges apply within a piece;
 * - sentencepiece-style (Llama-2, TinyLlama, llama2.c): spaces become "▁", a "▁" is prepended,
 *   merges apply over characters, and characters without a piece fall back to <0xXX> byte tokens.
 * Merging follows Hugging Face tokenizers' Word::merge_all: repeatedly the pair with the lowest
 * rank, leftmost first. Sentencepiece's score order is the same thing with rank = score order.
 */

export interface MergeRule {
  rank: number // lower merges first
  id: number // the merged token
}

export interface SpecialToken {
  id: number
  content: string
  special: boolean // true: decodes to nothing (control tokens like <|im_end|>); false: decodes to its text
}

export interface BpeTokenizerSpec {
  name: string // file name for errors
  mode: 'byte-level' | 'sentencepiece'
  tokens: (string | undefined)[] // id -> token text as the model stores it
  merges: Map<number, MergeRule> // key: pairKey(left, right)
  /** Tokens matched verbatim in the input before anything else (special and added tokens). */
  specials: SpecialToken[]
  /** Applied to each stretch of text between special tokens (`first`: it starts the input). */
  normalize: (text: string, first: boolean) => string
  /** Splits a normalized stretch into the words BPE runs on. */
  preTokenize: (text: string, first: boolean) => string[]
  byteFallback: boolean
  unkId: number // -1 when there is none
  fuseUnk: boolean
  ignoreMerges: boolean // a word that is itself a token is not merged (Llama-3)
  bosId: number // -1 when there is none
  eosId: number
  addBos: boolean // encode() adds BOS unless told otherwise
  stripSpaceAfterBos: boolean // sentencepiece decoders drop the dummy-prefix space of the first piece
}

export interface EncodeOptions {
  bos?: boolean // default: whether the tokenizer adds BOS (tokenizer.json post-processor, GGUF add_bos_token)
  eos?: boolean
  specials?: boolean // match special tokens in the text (default true, as Hugging Face and llama.cpp chat do)
}

export const pairKey = (left: number, right: number): number => left * 0x400000 + right // ids < 2^22

// ---- byte-level mapping (GPT-2's bytes_to_unicode) ----

export const BYTE_TO_CHAR: string[] = (() => {
  const out: string[] = new Array(256)
  let next = 256
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    out[b] = String.fromCharCode(printable ? b : next++)
  }
  return out
})()
export const CHAR_TO_BYTE: Map<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]))

const utf8Encoder = new TextEncoder()
export const toByteLevel = (text: string): string => {
  let out = ''
  for (const b of utf8Encoder.encode(text)) out += BYTE_TO_CHAR[b]
  return out
}

// ---- pre-tokenizer regexes ----

export const PRETOKENIZE_PATTERNS = {
  gpt2: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
  llama3: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  qwen2: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

/**
 * A tokenizer regex (Oniguruma / Rust regex syntax) as a JavaScript RegExp. JavaScript (before
 * ES2025) lacks inline flag groups, so `(?i:...)` is rewritten with explicit letter classes.
 */
export function compilePattern(pattern: string, where: string): RegExp {
  const source = pattern.replace(/\(\?i:((?:[^()\\]|\\.)*)\)/g, (_, body: string) =>
    `(?:${body.replace(/\\.|[a-zA-Z]/g, (c) => (c.length === 1 ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c))})`)
  try {
    return new RegExp(source, 'gu')
  } catch (err) {
    throw new TabmeshError('tokenizer-format', `${where}: the pre-tokenizer pattern ${JSON.stringify(pattern)} is not a regex tabmesh can run (${(err as Error).message})`)
  }
}

export type SplitBehavior = 'Isolated' | 'Removed' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous'

/** Splits text by a regex the way Hugging Face's Split pre-tokenizer does. */
export function splitByRegex(text: string, regex: RegExp, behavior: SplitBehavior = 'Isolated', invert = false): string[] {
  const pieces: { text: string; match: boolean }[] = []
  let last = 0
  for (const m of text.matchAll(regex)) {
    if (m[0].length === 0) continue
    if (m.index! > last) pieces.push({ text: text.slice(last, m.index), match: invert })
    pieces.push({ text: m[0], match: !invert })
    last = m.index! + m[0].length
  }
  if (last < text.length) pieces.push({ text: text.slice(last), match: invert })
  const out: string[] = []
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]
    switch (behavior) {
      case 'Isolated': out.push(p.text); break
      case 'Removed': if (!p.match) out.push(p.text); break
      case 'MergedWithPrevious':
        if (p.match && out.length > 0 && !pieces[i - 1].match) out[out.length - 1] += p.text
        else out.push(p.text)
        break
      case 'MergedWithNext':
        if (p.match && i + 1 < pieces.length && !pieces[i + 1].match) { out.push(p.text + pieces[i + 1].text); i++ } else out.push(p.text)
        break
      case 'Contiguous':
        if (out.length > 0 && p.match && pieces[i - 1].match) out[out.length - 1] += p.text
        else out.push(p.text)
        break
    }
  }
  return out
}

// ---- the merge loop ----

export interface BpeTokenizer extends Tokenizer {
  readonly spec: BpeTokenizerSpec
  readonly addBos: boolean
  encode(text: string, options?: EncodeOptions): number[]
}

export function createBpeTokenizer(spec: BpeTokenizerSpec): BpeTokenizer {
  for (const [what, id] of [['BOS', spec.bosId], ['EOS', spec.eosId], ['unknown token', spec.unkId]] as const) {
    // -1: none; anything else must be a token (an id past the vocabulary would index past the embedding)
    if (id !== -1 && !(Number.isInteger(id) && id >= 0 && id < spec.tokens.length)) {
      throw new TabmeshError('tokenizer-format', `${spec.name}: the ${what} id ${id} is outside the vocabulary (0..${spec.tokens.length - 1})`)
    }
  }
  const vocab = new Map<string, number>()
  spec.tokens.forEach((t, id) => { if (t !== undefined && !vocab.has(t)) vocab.set(t, id) })
  const specialIds = new Map<number, SpecialToken>(spec.specials.map((s) => [s.id, s]))
  for (const s of spec.specials) vocab.set(s.content, s.id)
  const vocabSize = spec.tokens.length
  const byteIds = new Int32Array(256).fill(-1)
  const byteOfToken = new Int16Array(vocabSize).fill(-1)
  spec.tokens.forEach((t, id) => {
    const m = t !== undefined && /^<0x([0-9A-Fa-f]{2})>$/.exec(t)
    if (m && spec.mode === 'sentencepiece') {
      const b = parseInt(m[1], 16)
      if (byteIds[b] < 0) byteIds[b] = id
      byteOfToken[id] = b
    }
  })
  const specialSplitter = spec.specials.length === 0 ? null
    : new RegExp([...spec.specials].sort((a, b) => b.content.length - a.content.length).map((s) => s.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu')

  // merge state, reused across words (nothing allocated per symbol)
  let symId = new Int32Array(256)
  let symNext = new Int32Array(256)
  let symPrev = new Int32Array(256)
  let symText: string[] = []
  // candidate merges (rank, left position, merged id), lowest rank first, then leftmost
  const heap = createRecordHeap(3, (d, a, b) => d[a] < d[b] || (d[a] === d[b] && d[a + 1] < d[b + 1]))
  const popped = new Float64Array(3)
  const cache = new Map<string, number[]>()

  function pushUnknown(text: string, out: number[]): void {
    if (spec.byteFallback && spec.mode === 'sentencepiece') {
      const bytes = utf8Encoder.encode(text)
      if (bytes.every((b) => byteIds[b] >= 0)) {
        for (const b of bytes) out.push(byteIds[b])
        return
      }
    }
    if (spec.unkId < 0) throw new TabmeshError('tokenizer-format', `${spec.name}: ${JSON.stringify(clip(text))} has no token and the tokenizer has neither byte fallback nor an unknown token`)
    if (spec.fuseUnk && out.length > 0 && out[out.length - 1] === spec.unkId) return
    out.push(spec.unkId)
  }

  function bpeWord(word: string, out: number[]): void {
    if (word.length === 0) return
    const whole = vocab.get(word)
    if (spec.ignoreMerges && whole !== undefined && !specialIds.has(whole)) { out.push(whole); return }
    const cacheable = word.length < 64
    if (cacheable) {
      const hit = cache.get(word)
      if (hit) { for (const id of hit) out.push(id); return }
    }
    const chars = Array.from(word)
    const n = chars.length
    if (symId.length < n) {
      symId = new Int32Array(n * 2); symNext = new Int32Array(n * 2); symPrev = new Int32Array(n * 2)
    }
    symText = chars
    for (let i = 0; i < n; i++) {
      const id = vocab.get(chars[i])
      symId[i] = id === undefined || specialIds.has(id) ? -1 : id
      symPrev[i] = i - 1
      symNext[i] = i + 1 < n ? i + 1 : -1
    }
    heap.clear()
    const consider = (left: number) => {
      const right = symNext[left]
      if (right < 0 || symId[left] < 0 || symId[right] < 0) return
      const rule = spec.merges.get(pairKey(symId[left], symId[right]))
      if (rule) heap.push(rule.rank, left, rule.id)
    }
    for (let i = 0; i + 1 < n; i++) consider(i)
    while (heap.size > 0) {
      heap.pop(popped)
      const left = popped[1]
      const right = symNext[left]
      if (symId[left] < 0 || right < 0) continue // left was merged away, or has no neighbour now
      const rule = spec.merges.get(pairKey(symId[left], symId[right]))
      if (!rule || rule.id !== popped[2]) continue // a stale candidate
      symId[left] = rule.id
      symText[left] += symText[right]
      symId[right] = -2 // removed
      symNext[left] = symNext[right]
      if (symNext[right] >= 0) symPrev[symNext[right]] = left
      if (symPrev[left] >= 0) consider(symPrev[left])
      consider(left)
    }
    const start = out.length
    for (let i = 0; i >= 0; i = symNext[i]) {
      if (symId[i] >= 0) out.push(symId[i])
      else pushUnknown(symText[i], out)
    }
    if (cacheable) {
      if (cache.size > 20000) cache.clear()
      cache.set(word, out.slice(start))
    }
  }

  /** `specials: false` reads special-token text ("<|im_end|>") as plain text, e.g. in untrusted user input. */
  function encode(text: string, options: EncodeOptions = {}): number[] {
    const { bos = spec.addBos, eos = false, specials = true } = options
    const out: number[] = []
    if (bos) {
      if (spec.bosId < 0) throw new TabmeshError('bad-argument', `${spec.name}: this tokenizer has no BOS token`)
      out.push(spec.bosId)
    }
    const stretches: { text: string; special?: number }[] = []
    if (specialSplitter && specials) {
      let last = 0
      for (const m of text.matchAll(specialSplitter)) {
        if (m.index! > last) stretches.push({ text: text.slice(last, m.index) })
        stretches.push({ text: m[0], special: vocab.get(m[0]) })
        last = m.index! + m[0].length
      }
      if (last < text.length) stretches.push({ text: text.slice(last) })
    } else if (text.length > 0) {
      stretches.push({ text })
    }
    stretches.forEach((s, i) => {
      if (s.special !== undefined) { out.push(s.special); return }
      const normalized = spec.normalize(s.text, i === 0)
      for (const word of spec.preTokenize(normalized, i === 0)) bpeWord(spec.mode === 'byte-level' ? toByteLevel(word) : word, out)
    })
    if (eos) {
      if (spec.eosId < 0) throw new TabmeshError('bad-argument', `${spec.name}: this tokenizer has no EOS token`)
      out.push(spec.eosId)
    }
    return out
  }

  // decoding: every token's bytes, computed once
  const none = new Uint8Array(0)
  const pieceBytes: Uint8Array[] = spec.tokens.map((t, id) => {
    if (t === undefined) return none
    if (spec.mode === 'byte-level') {
      if (specialIds.has(id)) return utf8Encoder.encode(t)
      const bytes = new Uint8Array(t.length)
      for (let i = 0; i < t.length; i++) {
        const b = CHAR_TO_BYTE.get(t[i])
        if (b === undefined) return utf8Encoder.encode(t) // an added token stored as plain text
        bytes[i] = b
      }
      return bytes
    }
    if (byteOfToken[id] >= 0) return Uint8Array.of(byteOfToken[id])
    return utf8Encoder.encode(t.replaceAll('\u2581', ' '))
  })

  function checkToken(token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize) throw new TabmeshError('bad-argument', `token id ${token} is outside the vocabulary (0..${vocabSize - 1})`)
  }

  function decodePiece(prev: number, token: number): Uint8Array {
    checkToken(token)
    if (specialIds.get(token)?.special) return new Uint8Array(0)
    const bytes = pieceBytes[token]
    if (spec.stripSpaceAfterBos && prev === spec.bosId && byteOfToken[token] < 0 && bytes[0] === 0x20) return bytes.subarray(1)
    return bytes
  }

  const createStreamDecoder = (prev = spec.bosId): StreamDecoder => createUtf8StreamDecoder(decodePiece, prev)

  return {
    spec,
    vocabSize,
    bosId: spec.bosId,
    eosId: spec.eosId,
    addBos: spec.addBos,
    encode,
    decodePiece,
    createStreamDecoder,
    decode(tokens, prev = spec.bosId) {
      const d = createStreamDecoder(prev)
      return tokens.map((t) => d.push(t)).join('') + d.flush()
    },
    piece(token) {
      checkToken(token)
      return pieceBytes[token]
    },
  }
}

/** Merge rules from "left right" pairs in rank order (tokenizer.json and GGUF gpt2 merges). */
export function mergesFromPairs(pairs: [string, string][], vocab: Map<string, number>, where: string): Map<number, MergeRule> {
  const merges = new Map<number, MergeRule>()
  pairs.forEach(([a, b], rank) => {
    const left = vocab.get(a), right = vocab.get(b), merged = vocab.get(a + b)
    if (left === undefined || right === undefined || merged === undefined) {
      throw new TabmeshError('tokenizer-format', `${where}: merge ${rank} (${JSON.stringify(clip(String(a)))} ${JSON.stringify(clip(String(b)))}) uses a token that is not in the vocabulary`)
    }
    const key = pairKey(left, right)
    if (!merges.has(key)) merges.set(key, { rank, id: merged })
  })
  return merges
}

/**
 * Sentencepiece merges from scores: every pair of tokens whose concatenation is a token, ranked by
 * that token's score (equal scores share a rank, so the leftmost pair wins, as in sentencepiece).
 */
export function mergesFromScores(tokens: (string | undefined)[], scores: ArrayLike<number>, mergeable: (id: number) => boolean): Map<number, MergeRule> {
  const vocab = new Map<string, number>()
  tokens.forEach((t, id) => { if (t !== undefined && mergeable(id) && !vocab.has(t)) vocab.set(t, id) })
  const distinct = [...new Set(Array.from(vocab.values(), (id) => scores[id]))].sort((a, b) => b - a)
  const rankOf = new Map(distinct.map((s, i) => [s, i]))
  const merges = new Map<number, MergeRule>()
  for (const [text, id] of vocab) {
    const chars = Array.from(text)
    let left = ''
    for (let cut = 1; cut < chars.length; cut++) {
      left += chars[cut - 1]
      const l = vocab.get(left)
      const r = l === undefined ? undefined : vocab.get(chars.slice(cut).join(''))
      if (l !== undefined && r !== undefined) merges.set(pairKey(l, r), { rank: rankOf.get(scores[id])!, id })
    }
  }
  return merges
}
