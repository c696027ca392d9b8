import { describe, expect, it } from 'vitest'
import encodeFixtures from '../../../testing/fixtures/runc-encode.json'
import { parseLlama2cTokenizer } from './tokenizer.ts'
import { stories260K, storiesTokenizer } from '../../../testing/models.ts'

const tok = storiesTokenizer()

describe('llama2.c tokenizer', () => {
  it.each(encodeFixtures.map((f) => [f.prompt, f.ids] as const))('encodes %j exactly as run.c', (prompt, ids) => {
    expect(tok.encode(prompt)).toEqual(ids)
  })

  it.each(encodeFixtures.map((f) => [f.prompt] as const))('decodes the encoding of %j back to the text', (prompt) => {
    const ids = tok.encode(prompt)
    // after BOS the dummy-prefix space is dropped, exactly as run.c prints
    expect(tok.decode(ids.slice(1), ids[0])).toBe(prompt)
  })

  it('falls back to byte tokens for characters without a piece', () => {
    const ids = tok.encode('😀')
    expect(ids.slice(2)).toEqual([...new TextEncoder().encode('😀')].map((b) => b + 3))
  })

  it('streams a UTF-8 character split across byte tokens as one character', () => {
    const ids = tok.encode('a😀b')
    const d = tok.createStreamDecoder(1)
    const pieces = ids.slice(1).map((t) => d.push(t))
    expect(pieces.join('') + d.flush()).toBe('a😀b')
    // the three continuation bytes of the emoji yield nothing until the character is whole
    expect(pieces.filter((p) => p === '').length).toBeGreaterThanOrEqual(3)
    expect(pieces).toContain('😀')
  })

  it('appends EOS on request and leaves BOS out on request', () => {
    expect(tok.encode('hi', { bos: false, eos: true }).at(-1)).toBe(2)
    expect(tok.encode('hi', { bos: false })[0]).not.toBe(1)
  })

  it('refuses a tokenizer whose vocabulary does not match the model', () => {
    expect(() => parseLlama2cTokenizer(stories260K.tokenizer, 32000)).toThrow(/512 tokens but the model's vocabulary has 32000/)
  })

  it('refuses a truncated tokenizer file', () => {
    expect(() => parseLlama2cTokenizer(stories260K.tokenizer.subarray(0, 1000), 512)).toThrow(/past the end|cut short/)
  })

  it('refuses token ids outside the vocabulary', () => {
    expect(() => tok.decodePiece(1, 512)).toThrow(/outside the vocabulary/)
  })
})
