import { createRecordHeap } from './heap.ts'
import { TabmeshError } from '../../core/errors.ts'

/**
 * llama2.c's tokenizer (tokenizer.bin): int32 max_token_length, then per token
 * { float32 score, int32 length, bytes }. Encoding is run.c's: BOS, a dummy-prefix space for a
 * non-empty text, one token per UTF-8 character (byte fallback <0x00>..<0xFF> = ids 3..258 when
 * the character has no piece), then repeatedly merge the adjacent pair whose merged piece has
 * the highest score.
 */
export interface Tokenizer {
  readonly vocabSize: number
  readonly bosId: number
  readonly eosId: number
  encode(text: string, options?: { bos?: boolean; eos?: boolean }): number[]
  /** Bytes of `token` as it prints after `prev` (run.c's decode: no leading space right after BOS). */
  decodePiece(prev: number, token: number): Uint8Array
  /** Text of a whole sequence (the first token's predecessor is `prev`). */
  decode(tokens: number[], prev?: number): string
  /** Streaming text: feed tokens one by one; a UTF-8 character split across tokens comes out whole. */
  createStreamDecoder(prev?: number): StreamDecoder
  piece(token: number): Uint8Array
}

export interface StreamDecoder {
  /** Text completed by this token ('' while a multi-byte character is still incomplete). */
  push(token: number): string
  /** Whatever is left (an incomplete character becomes U+FFFD). */
  flush(): string
}

const BYTE_FALLBACK_OFFSET = 3 // <0x00> is id 3

/** Streaming text from token pieces: a UTF-8 character split across tokens comes out whole. */
export function createUtf8StreamDecoder(decodePiece: (prev: number, token: number) => Uint8Array, prev: number): StreamDecoder {
  const utf8 = new TextDecoder('utf-8')
  return {
    push(token) {
      const text = utf8.decode(decodePiece(prev, token), { stream: true })
      prev = token
      return text
    },
    flush: () => utf8.decode(),
  }
}
/** Bytes as a string of the same length, one char per byte (a map key); in slices, so a long piece cannot overflow the call stack. */
export function latin1(bytes: Uint8Array): string {
  if (bytes.length <= 4096) return String.fromCharCode(...bytes)
  let out = ''
  for (let i = 0; i < bytes.length; i += 4096) out += String.fromCharCode(...bytes.subarray(i, i + 4096))
  return out
}

export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, name = 'tokenizer'): Tokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const fail = (why: string): never => { throw new TabmeshError('tokenizer-format', `${name}: ${why}`) }
  if (bytes.byteLength < 4) fail('too short for a llama2.c tokenizer')
  let offset = 4 // max_token_length is not needed: pieces carry their own lengths
  const pieces: Uint8Array[] = []
  const scores = new Float32Array(vocabSize)
  while (offset < bytes.byteLength) {
    if (offset + 8 > bytes.byteLength) fail(`entry ${pieces.length} is cut short at byte ${offset}`)
    const score = view.getFloat32(offset, true)
    const length = view.getInt32(offset + 4, true)
    offset += 8
    if (length < 0 || offset + length > bytes.byteLength) fail(`entry ${pieces.length} has length ${length}, past the end of the file`)
    if (pieces.length < vocabSize) scores[pieces.length] = score
    pieces.push(bytes.slice(offset, offset + length))
    offset += length
  }
  if (pieces.length !== vocabSize) {
    throw new TabmeshError('model-mismatch', `${name} has ${pieces.length} tokens but the model's vocabulary has ${vocabSize}; they do not belong together`)
  }
  if (vocabSize < 3) fail(`${vocabSize} tokens; a llama2.c vocabulary starts with <unk>, <s> and </s>`)
  return createBpeTokenizer(pieces, scores, name)
}

function createBpeTokenizer(pieces: Uint8Array[], scores: Float32Array, name: string): Tokenizer {
  const vocabSize = pieces.length
  const bosId = 1
  const eosId = 2
  // Piece bytes -> id, keyed by a latin1 string of the bytes. Like run.c's bsearch over a sorted
  // vocabulary, a duplicated piece resolves to one id; we keep the first.
  const ids = new Map<string, number>()
  pieces.forEach((p, id) => { if (!ids.has(latin1(p))) ids.set(latin1(p), id) })
  const byteValue = pieces.map((p) => {
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(latin1(p))
    return m ? parseInt(m[1], 16) : -1
  })
  const spaceId = ids.get(' ')

  function encode(text: string, options: { bos?: boolean; eos?: boolean } = {}): number[] {
    const { bos = true, eos = false } = options
    const tokens: number[] = []
    if (bos) tokens.push(bosId)
    const bytes = new TextEncoder().encode(text)
    if (bytes.length > 0) {
      if (spaceId === undefined) throw new TabmeshError('tokenizer-format', 'the vocabulary has no " " piece for the dummy prefix')
      tokens.push(spaceId)
    }
    // one token per UTF-8 character, or one per byte when the character has no piece
    for (let i = 0; i < bytes.length;) {
      let end = i + 1
      while (end < bytes.length && (bytes[end] & 0xc0) === 0x80 && end - i < 4) end++
      const id = ids.get(latin1(bytes.subarray(i, end)))
      if (id !== undefined) tokens.push(id)
      else {
        for (let b = i; b < end; b++) {
          if (bytes[b] + BYTE_FALLBACK_OFFSET >= vocabSize) {
            throw new TabmeshError('tokenizer-format', `${name}: ${JSON.stringify(new TextDecoder().decode(bytes.subarray(i, end)))} has no piece and the ${vocabSize}-token vocabulary has no byte token for 0x${bytes[b].toString(16).padStart(2, '0')}`)
          }
          tokens.push(bytes[b] + BYTE_FALLBACK_OFFSET)
        }
      }
      i = end
    }
    // merge the best-scoring adjacent pair until none merges (the first of equal scores wins, and a
    // score must beat run.c's -1e10 floor); like run.c this runs over BOS and the dummy prefix too.
    // The symbols are a linked list and the candidates a heap; a candidate whose symbols changed
    // since it was pushed (their versions moved on) is stale and skipped.
    const n = tokens.length
    const keys = tokens.map((t) => latin1(pieces[t]))
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1))
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1)
    const version = new Int32Array(n) // -1: merged into its left neighbour
    // candidates (score, left, right, leftVersion, rightVersion), highest score first, then leftmost:
    // the pair run.c's loop would pick, found in O(log n) instead of a scan of the text per merge
    const heap = createRecordHeap(5, (d, a, b) => d[a] > d[b] || (d[a] === d[b] && d[a + 1] < d[b + 1]))
    const top = new Float64Array(5)
    const consider = (l: number) => {
      const r = next[l]
      if (l < 0 || r < 0) return
      const id = ids.get(keys[l] + keys[r])
      if (id !== undefined && scores[id] > -1e10) heap.push(scores[id], l, r, version[l], version[r])
    }
    for (let i = 0; i + 1 < n; i++) consider(i)
    while (heap.size > 0) {
      heap.pop(top)
      const l = top[1], r = top[2], lv = top[3], rv = top[4]
      if (version[l] !== lv || version[r] !== rv || next[l] !== r) continue
      keys[l] += keys[r]
      tokens[l] = ids.get(keys[l])!
      version[l]++
      version[r] = -1
      next[l] = next[r]
      if (next[r] >= 0) prev[next[r]] = l
      consider(prev[l])
      consider(l)
    }
    const merged: number[] = []
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) merged.push(tokens[i])
    if (eos) merged.push(eosId)
    return merged
  }

  function checkToken(token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize) throw new TabmeshError('bad-argument', `token id ${token} is outside the vocabulary (0..${vocabSize - 1})`)
  }

  function decodePiece(prev: number, token: number): Uint8Array {
    checkToken(token)
    const byte = byteValue[token]
    if (byte >= 0) return Uint8Array.of(byte)
    const piece = pieces[token]
    return prev === bosId && piece[0] === 0x20 ? piece.subarray(1) : piece
  }

  const createStreamDecoder = (prev = bosId) => createUtf8StreamDecoder(decodePiece, prev)

  return {
    vocabSize, bosId, eosId, encode, decodePiece, createStreamDecoder,
    decode(tokens, prev = bosId) {
      const d = createStreamDecoder(prev)
      return tokens.map((t) => d.push(t)).join('') + d.flush()
    },
    piece(token) {
      checkToken(token)
      return pieces[token]
    },
  }
}
