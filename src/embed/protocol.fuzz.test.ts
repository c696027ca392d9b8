/**
 * Fuzzing the embed's postMessage protocol: parseHostMessage, messageId and boundedSize on random
 * values of every kind structured clone carries (objects, arrays sparse or not, Maps, Sets, Dates,
 * typed arrays, boxed values, null-prototype objects), on valid messages with fields deleted, added
 * or of another type, and on oversized and deep ones. A host message is either parsed into exactly
 * what was sent or refused with a 'protocol' / 'bad-argument' TabmeshError, fast.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fuzzParams } from '../../testing/fuzz.ts'
import { outcome } from '../../testing/fuzz-checks.ts'
import { jsonMutation, mutateJson } from '../../testing/fuzz-mutations.ts'
import { boundedSize, hostMessageSchema, MAX_MESSAGE_BYTES, messageId, parseHostMessage, PROTOCOL, type HostMessage } from './protocol.ts'

const id = fc.string({ unit: 'binary', minLength: 1, maxLength: 64 })
const content = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom('{{ messages }}', '{% for m in messages %}', '</s><|im_end|>', '\u0000\ud800\udfff\u2028'),
)
const message = fc.record({
  role: fc.constantFrom('system' as const, 'user' as const, 'assistant' as const),
  content,
  name: fc.string({ maxLength: 64 }),
}, { requiredKeys: ['role', 'content'] })

const nullish = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, fc.constant(null))
const chatRequest = fc.record({
  messages: fc.array(message, { minLength: 1, maxLength: 8 }),
  stream: nullish(fc.boolean()),
  temperature: nullish(fc.double({ min: 0, max: 2, noNaN: true })),
  top_p: nullish(fc.double({ min: 0, max: 1, noNaN: true })),
  max_tokens: nullish(fc.integer({ min: 0, max: 1 << 20 })),
  seed: nullish(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  stream_options: nullish(fc.record({ include_usage: fc.boolean() }, { requiredKeys: [] })),
  model: nullish(fc.string({ maxLength: 256 })),
}, { requiredKeys: ['messages'] })

const validMessage: fc.Arbitrary<HostMessage> = fc.oneof(
  fc.record({ protocol: fc.constant(PROTOCOL), type: fc.constantFrom('hello' as const, 'interrupt' as const, 'status' as const), id }),
  fc.record({ protocol: fc.constant(PROTOCOL), type: fc.constant('chat' as const), id, request: chatRequest }),
  fc.record({
    protocol: fc.constant(PROTOCOL), type: fc.constant('contribute' as const), id, enabled: fc.boolean(),
    memoryBudget: fc.integer({ min: 1 << 20, max: 64 * 2 ** 30 }),
  }, { requiredKeys: ['protocol', 'type', 'id', 'enabled'] }),
) as fc.Arbitrary<HostMessage>

/** What structured clone can deliver as event.data. */
const cloneable = fc.anything({
  maxDepth: 4, withMap: true, withSet: true, withDate: true, withTypedArray: true, withSparseArray: true,
  withBoxedValues: true, withNullPrototype: true, withBigInt: true, withObjectString: true,
})

/** A sparse array: a huge length, a few elements (what `a = []; a.length = 2 ** 32 - 1` sends). */
const sparse = fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.array(fc.tuple(fc.nat(), cloneable), { maxLength: 3 })).map(([length, items]) => {
  const a: unknown[] = []
  a.length = length
  for (const [at, v] of items) if (length > 0) a[at % length] = v
  return a
})

/** parseHostMessage with the checks every outcome must pass. */
function parse(data: unknown) {
  const r = outcome(() => parseHostMessage(data), ['protocol', 'bad-argument'], /^message refused: /)
  if (r.ok) expect(hostMessageSchema.parse(data)).toEqual(r.value)
  const mid = messageId(data)
  expect(mid === null || (typeof mid === 'string' && mid.length > 0 && mid.length <= 64)).toBe(true)
  return r
}

describe('embed postMessage protocol', () => {
  it('accepts every valid host message, exactly as sent', () => {
    fc.assert(fc.property(validMessage, (m) => {
      const r = parse(m)
      expect(r).toEqual({ ok: true, value: m })
      expect(messageId(m)).toBe(m.id)
    }), fuzzParams(30))
  })

  it('random values of every cloneable kind: refused with a typed error, never thrown otherwise', () => {
    fc.assert(fc.property(cloneable, (data) => { parse(data) }), fuzzParams(31))
  })

  it('random values inside an otherwise valid message', () => {
    fc.assert(fc.property(validMessage, fc.constantFrom('id', 'request', 'enabled', 'memoryBudget', 'type', 'extra'), fc.oneof(cloneable, sparse), (m, key, value) => {
      parse({ ...m, [key]: value })
    }), fuzzParams(32))
  })

  it('valid messages with keys deleted, added, or of another type', () => {
    fc.assert(fc.property(validMessage, fc.array(jsonMutation(), { minLength: 1, maxLength: 4 }), (m, mutations) => {
      parse(mutateJson(m, mutations))
    }), fuzzParams(33))
  })

  it('sparse arrays with huge lengths are refused fast, wherever they are', () => {
    fc.assert(fc.property(sparse, fc.constantFrom('root', 'id', 'messages', 'content'), (a, where) => {
      const chat = (messages: unknown) => ({ protocol: PROTOCOL, type: 'chat', id: 'c', request: { messages } })
      const data = where === 'root' ? a : where === 'id' ? { protocol: PROTOCOL, type: 'hello', id: a } : where === 'messages' ? chat(a) : chat([{ role: 'user', content: a }])
      const r = parse(data)
      if (a.length > MAX_MESSAGE_BYTES) expect(r.ok).toBe(false)
    }), fuzzParams(34))
  })

  it('oversized and deeply nested messages are refused as such', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 * MAX_MESSAGE_BYTES }), fc.integer({ min: 9, max: 200 }), fc.boolean(), (size, depth, deep) => {
      let data: unknown
      if (deep) {
        data = { protocol: PROTOCOL, type: 'status', id: 'd' }
        for (let i = 0; i < depth; i++) data = { protocol: PROTOCOL, type: 'status', id: 'd', x: data }
      } else {
        data = { protocol: PROTOCOL, type: 'chat', id: 'c', request: { messages: [{ role: 'user', content: 'x'.repeat(MAX_MESSAGE_BYTES + size) }] } }
      }
      const r = parse(data)
      expect(r.ok).toBe(false)
      if (!r.ok) expect(r.error).toMatchObject({ code: 'protocol', message: expect.stringMatching(/larger than|nested deeper/) })
    }), { ...fuzzParams(35), numRuns: Math.max(1, Math.ceil(fuzzParams().numRuns / 10)) })
  })

  it('boundedSize never throws and never walks far past its limit', () => {
    fc.assert(fc.property(fc.oneof(cloneable, sparse), fc.integer({ min: 0, max: 1 << 20 }), (value, limit) => {
      const started = performance.now()
      const size = boundedSize(value, limit)
      expect(performance.now() - started).toBeLessThan(2000)
      expect(size === Infinity || (Number.isInteger(size) && size >= 0)).toBe(true)
    }), fuzzParams(36))
  })
})

describe('embed postMessage protocol: counterexamples the fuzzers found', () => {
  it('a sparse array (holes) is measured, not destructured: [ , 1] is refused by the schema, not a TypeError', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(() => parseHostMessage([, 1])).toThrow(/message refused/)
    expect(boundedSize([, 'ab'], 100)).toBeLessThan(100) // eslint-disable-line no-sparse-arrays
  })

  it('a sparse array of length 2^32 - 1 is refused at once, not walked', () => {
    const a: unknown[] = []
    a.length = 2 ** 32 - 1
    const started = performance.now()
    expect(() => parseHostMessage({ protocol: PROTOCOL, type: 'hello', id: a })).toThrow(/larger than/)
    expect(performance.now() - started).toBeLessThan(100)
  })
})
