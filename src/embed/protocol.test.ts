import { describe, expect, it } from 'vitest'
import { TabmeshError } from '../core/errors.ts'
import { compileChatTemplate, PLAIN_CONTINUATION_TEMPLATE } from '../model/template/index.ts'
import { renderPrompt } from './chat-backend.ts'
import { boundedSize, MAX_MESSAGE_BYTES, messageId, parseHostMessage, PROTOCOL } from './protocol.ts'

const chat = (request: unknown) => ({ protocol: PROTOCOL, type: 'chat', id: 'c1', request })
const refused = (data: unknown) => {
  try {
    parseHostMessage(data)
  } catch (err) {
    expect(err).toBeInstanceOf(TabmeshError)
    return err as TabmeshError
  }
  throw new Error('accepted')
}

describe('host messages', () => {
  it('accepts each message type', () => {
    expect(parseHostMessage(chat({ messages: [{ role: 'user', content: '' }], temperature: 0, max_tokens: 64 }))).toMatchObject({ type: 'chat', request: { max_tokens: 64 } })
    expect(parseHostMessage({ protocol: PROTOCOL, type: 'contribute', id: 'k', enabled: true, memoryBudget: 2 ** 28 })).toMatchObject({ enabled: true })
    for (const type of ['hello', 'status', 'interrupt']) expect(parseHostMessage({ protocol: PROTOCOL, type, id: 'x' }).type).toBe(type)
  })

  it('refuses what is not a protocol message', () => {
    for (const d of ['hello', null, 42, [], {}, { protocol: 'other/1', type: 'status', id: 'x' }]) expect(refused(d).code).toBe('protocol')
  })

  it('refuses unknown types, unknown keys, and values out of range, naming the field', () => {
    expect(refused({ protocol: PROTOCOL, type: 'nope', id: 'x' }).code).toBe('bad-argument')
    expect(refused({ protocol: PROTOCOL, type: 'contribute', id: 'x', enabled: true, start: 'now' }).message).toMatch(/start/)
    expect(refused(chat({ messages: [] })).message).toMatch(/request\.messages/)
    expect(refused(chat({ messages: [{ role: 'tool', content: '' }] })).message).toMatch(/role/)
    expect(refused(chat({ messages: [{ role: 'user', content: '' }], max_tokens: -1 })).message).toMatch(/max_tokens/)
    expect(refused(chat({ messages: [{ role: 'user', content: '' }], temperature: Number.NaN })).code).toBe('bad-argument')
    expect(refused({ protocol: PROTOCOL, type: 'status', id: 'x'.repeat(65) }).message).toMatch(/id/)
  })

  it('refuses oversized, deeply nested and binary messages before parsing them', () => {
    expect(refused(chat({ messages: [{ role: 'user', content: 'x'.repeat(MAX_MESSAGE_BYTES) }] })).message).toMatch(/larger than/)
    let deep: unknown = { protocol: PROTOCOL, type: 'status', id: 'd' }
    for (let i = 0; i < 20; i++) deep = { protocol: PROTOCOL, type: 'status', id: 'd', x: deep }
    expect(refused(deep).code).toBe('protocol')
    expect(refused({ protocol: PROTOCOL, type: 'status', id: 'b', data: new Uint8Array(4) }).message).toMatch(/binary/)
  })

  it('measures sizes without walking past the limit', () => {
    const huge = Array.from({ length: 1e5 }, () => 'ab')
    expect(boundedSize(huge, 1000)).toBe(Infinity)
    expect(boundedSize({ a: 'xy', b: [1, true, null] }, 1000)).toBeLessThan(100)
    expect(boundedSize({ f: () => 1 }, 1000)).toBe(Infinity)
  })

  it('keeps a usable id of a refused message for the error reply', () => {
    expect(messageId({ id: 'p3' })).toBe('p3')
    expect(messageId({ id: 'x'.repeat(65) })).toBeNull()
    expect(messageId('hello')).toBeNull()
  })
})

describe('prompts from messages', () => {
  it('stories260K: a plain continuation of the messages\' text', () => {
    const t = compileChatTemplate(PLAIN_CONTINUATION_TEMPLATE)
    expect(renderPrompt(t, [{ role: 'user', content: '' }])).toBe('')
    expect(renderPrompt(t, [{ role: 'system', content: 'Once upon' }, { role: 'user', content: ' a time' }])).toBe('Once upon a time')
  })

  it('a chat model: its own template, with the generation prompt and no BOS text (the tokenizer adds BOS)', () => {
    const t = compileChatTemplate("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    expect(renderPrompt(t, [{ role: 'user', content: 'hi' }])).toBe('<|user|>hi\n<|assistant|>')
  })
})
