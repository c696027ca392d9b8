import { TabmeshError } from '../../core/errors.ts'
import { latin1 } from './tokenizer.ts'

/**
 * A sentencepiece-style vocabulary: pieces with scores, as in llama2.c's tokenizer.bin, GGUF's
 * tokenizer.ggml.{tokens,scores} and (as merges) a Llama-2 tokenizer.json. Writers convert
 * between these; the tokenizers read them.
 */
export interface SpmVocab {
  pieces: string[] // token text, spaces as U+2581 (sentencepiece's "▁"); byte tokens "<0x0A>"
  scores: Float32Array // (vocab) higher merges first
  kinds: TokenKind[] // (vocab)
}

export type TokenKind = 'normal' | 'unknown' | 'control' | 'byte'

export const SPM_SPACE = '\u2581'

/** GGUF tokenizer.ggml.token_type values. */
export const GGUF_TOKEN_TYPE: Record<TokenKind, number> = { normal: 1, unknown: 2, control: 3, byte: 6 }

/**
 * llama2.c's tokenizer.bin as a sentencepiece vocabulary: ids 0, 1, 2 are <unk>, <s>, </s>
 * (llama2.c's export wraps the last two in newlines), byte tokens <0x00>..<0xFF> follow, and
 * spaces become "▁" again.
 */
export function llama2cVocab(bytes: Uint8Array, name = 'tokenizer.bin'): SpmVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const pieces: string[] = []
  const scores: number[] = []
  const kinds: TokenKind[] = []
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  for (let offset = 4; offset < bytes.byteLength;) {
    if (offset + 8 > bytes.byteLength) throw new TabmeshError('tokenizer-format', `${name}: entry ${pieces.length} is cut short`)
    scores.push(view.getFloat32(offset, true))
    const length = view.getInt32(offset + 4, true)
    if (length < 0 || offset + 8 + length > bytes.byteLength) throw new TabmeshError('tokenizer-format', `${name}: entry ${pieces.length} has length ${length}, past the end of the file`)
    const raw = bytes.subarray(offset + 8, offset + 8 + length)
    offset += 8 + length
    const id = pieces.length
    const text = latin1(raw)
    if (id < 3) {
      pieces.push(['<unk>', '<s>', '</s>'][id])
      kinds.push(id === 0 ? 'unknown' : 'control')
    } else if (/^<0x[0-9A-F]{2}>$/.test(text)) {
      pieces.push(text)
      kinds.push('byte')
    } else {
      let piece: string
      try {
        piece = utf8.decode(raw)
      } catch {
        throw new TabmeshError('tokenizer-format', `${name}: piece ${id} is not valid UTF-8`)
      }
      pieces.push(piece.replaceAll(' ', SPM_SPACE))
      kinds.push('normal')
    }
  }
  return { pieces, scores: Float32Array.from(scores), kinds }
}

/**
 * Every pair of pieces whose concatenation is a piece, ordered by the merged piece's score
 * (highest first, ties by id): the merges that make rank-based BPE behave like sentencepiece's
 * (and run.c's) score-based merging.
 */
export function spmMergePairs(vocab: SpmVocab): [string, string][] {
  const ids = new Map<string, number>()
  vocab.pieces.forEach((p, id) => { if (vocab.kinds[id] === 'normal' && !ids.has(p)) ids.set(p, id) })
  const merges: { left: string; right: string; id: number }[] = []
  vocab.pieces.forEach((piece, id) => {
    if (vocab.kinds[id] !== 'normal') return
    const chars = Array.from(piece)
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('')
      const right = chars.slice(cut).join('')
      if (ids.has(left) && ids.has(right)) merges.push({ left, right, id })
    }
  })
  merges.sort((a, b) => vocab.scores[b.id] - vocab.scores[a.id] || a.id - b.id || ids.get(a.left)! - ids.get(b.left)!)
  return merges.map((m) => [m.left, m.right])
}
