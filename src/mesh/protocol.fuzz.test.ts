/**
 * Fuzzing the gossip protocol: decodeMessage and the topic validators on random bytes, random JSON,
 * damaged valid messages (bits flipped, keys deleted or repeated, values of the wrong type, wrong
 * versions) and oversized payloads. Nothing may throw, nothing may be refused as 'internal' (that
 * would be an exception caught at the last line), and every valid message is still accepted.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { fakePeerId } from '../../testing/mesh-fixtures.ts'
import { fuzzParams } from '../../testing/fuzz.ts'
import { CASE_TIME_LIMIT_MS } from '../../testing/fuzz-checks.ts'
import { byteMutation, duplicateKey, jsonMutation, mutateBytes, mutateJson, smallJson } from '../../testing/fuzz-mutations.ts'
import {
  ADVERT_TOPIC, MAX_MESSAGE_BYTES, MESH_TOPICS, TASK_TOPIC, decodeMessage, encodeMessage, messageAuthor,
  type DecodeResult, type MeshMessage, type MeshTopic, type RejectReason,
} from './protocol.ts'
import { createMeshValidators } from './validation.ts'

const REASONS: RejectReason[] = ['oversized', 'not-json', 'wrong-version', 'malformed', 'unsigned', 'spoofed', 'rate-limited', 'unknown-topic', 'internal']
const utf8 = new TextEncoder()
const bytesOf = (text: string) => utf8.encode(text)

/** decodeMessage, with the checks every result must pass; returns the result. */
function decode(topic: string, data: Uint8Array): DecodeResult<MeshMessage> {
  const started = performance.now()
  const r = decodeMessage(topic, data)
  expect(performance.now() - started).toBeLessThan(CASE_TIME_LIMIT_MS)
  if (r.ok) {
    // what is accepted is a message this peer would itself send (encodeMessage re-checks it)
    expect(decodeMessage(topic, encodeMessage(topic as MeshTopic, r.message))).toEqual(r)
  } else {
    expect(REASONS).toContain(r.reason)
    expect(r.reason, `an exception escaped into the validator: ${r.detail}`).not.toBe('internal')
    expect(r.detail.length).toBeGreaterThan(0)
    expect(r.detail.length).toBeLessThanOrEqual(200)
  }
  return r
}

// ---- valid messages -----------------------------------------------------------------------------

const peerId = fc.nat({ max: 10_000 }).map(fakePeerId)
const modelId = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)
const taskId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/)
const count = fc.integer({ min: 0, max: 1_000_000 })
const timestamp = fc.oneof(fc.integer({ min: 0, max: 2 ** 53 }), fc.double({ min: 0, max: 2 ** 53, noNaN: true }))
const layers = fc.tuple(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 4096 }))
  .filter(([a, b]) => a !== b)
  .map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }))

const advert = (author: fc.Arbitrary<string>) => fc.record({
  v: fc.constant(1 as const),
  type: fc.constant('advert' as const),
  peerId: author,
  seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  sentAt: timestamp,
  reason: fc.constantFrom('join' as const, 'change' as const, 'heartbeat' as const, 'leave' as const),
  addrs: fc.array(fc.string({ unit: 'binary', minLength: 1, maxLength: 120 }), { maxLength: 8 }),
  capabilities: fc.record({
    backend: fc.constantFrom('webgpu' as const, 'wasm' as const, 'js' as const, 'none' as const),
    adapter: fc.string({ maxLength: 128 }),
    memoryBudgetBytes: fc.integer({ min: 0, max: 2 ** 50 }),
    speed: fc.record({ gflops: fc.double({ min: 0, max: 1e6, noNaN: true }), layerTokensPerSecond: fc.double({ min: 0, max: 1e9, noNaN: true }) }, { requiredKeys: ['gflops'] }),
  }, { requiredKeys: ['backend', 'memoryBudgetBytes', 'speed'] }),
  hosted: fc.array(fc.record({ modelId, layers, embedding: fc.boolean(), head: fc.boolean() }), { maxLength: 4 }),
  load: fc.record({ queueDepth: count, activeSessions: count }),
  health: fc.record({ status: fc.constantFrom('ok' as const, 'degraded' as const, 'draining' as const), recentErrors: count }),
})

const taskMessage = (author: fc.Arbitrary<string>) => fc.oneof(
  fc.record({
    v: fc.constant(1 as const), type: fc.constant('task-announce' as const), taskId, announcer: author,
    kind: fc.constantFrom('host-layers' as const, 'serve-generation' as const), modelId, layers,
    claimWindowMs: fc.integer({ min: 20, max: 10_000 }), minMemoryBytes: fc.integer({ min: 0, max: 2 ** 50 }), sentAt: timestamp,
  }, { requiredKeys: ['v', 'type', 'taskId', 'announcer', 'kind', 'modelId', 'claimWindowMs', 'sentAt'] }),
  fc.record({
    v: fc.constant(1 as const), type: fc.constant('task-claim' as const), taskId, announcer: peerId, claimer: author,
    score: fc.double({ min: 0, max: 1e12, noNaN: true }), sentAt: timestamp,
  }),
  fc.record({
    v: fc.constant(1 as const), type: fc.constant('task-award' as const), taskId, announcer: author,
    winner: fc.option(peerId, { nil: null }), claims: count, sentAt: timestamp,
  }),
)

const topicAndMessage = (author: fc.Arbitrary<string>): fc.Arbitrary<[MeshTopic, MeshMessage]> => fc.oneof(
  advert(author).map((m): [MeshTopic, MeshMessage] => [ADVERT_TOPIC, m]),
  taskMessage(author).map((m): [MeshTopic, MeshMessage] => [TASK_TOPIC, m]),
)

const topic = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...MESH_TOPICS) },
  { weight: 1, arbitrary: fc.constantFrom('', '/tabmesh/2/adverts', 'constructor', '__proto__', 'toString', 'hasOwnProperty') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
)

describe('gossip messages: decodeMessage', () => {
  it('accepts every valid message that fits its topic, exactly as sent', () => {
    fc.assert(fc.property(topicAndMessage(peerId), ([t, message]) => {
      const data = bytesOf(JSON.stringify(message))
      const r = decode(t, data)
      if (data.byteLength > MAX_MESSAGE_BYTES[t]) expect(r).toMatchObject({ ok: false, reason: 'oversized' })
      else expect(r).toEqual({ ok: true, message })
    }), fuzzParams(1))
  })

  it('random bytes: refused with a reason, never thrown', () => {
    fc.assert(fc.property(topic, fc.uint8Array({ maxLength: 5000 }), (t, data) => {
      decode(t, data)
    }), fuzzParams(2))
  })

  it('random JSON values: refused with a reason, never thrown', () => {
    fc.assert(fc.property(topic, fc.jsonValue({ maxDepth: 4 }), (t, value) => {
      const r = decode(t, bytesOf(JSON.stringify(value) ?? 'null'))
      expect(r.ok).toBe(false)
    }), fuzzParams(3))
  })

  it('damaged valid messages (JSON level): keys deleted, added or repeated, values of another type, wrong versions', () => {
    fc.assert(fc.property(topicAndMessage(peerId), fc.array(jsonMutation(), { minLength: 1, maxLength: 4 }), fc.option(fc.tuple(fc.nat(), smallJson())), (([t, message], mutations, dup) => {
      let text = JSON.stringify(mutateJson(message, mutations)) ?? ''
      if (dup) text = duplicateKey(text, dup[0], dup[1])
      decode(t, bytesOf(text))
    })), fuzzParams(4))
  })

  it('damaged valid messages (byte level): flipped bits, truncated, extended, spliced', () => {
    fc.assert(fc.property(topicAndMessage(peerId), fc.array(byteMutation(), { minLength: 1, maxLength: 4 }), ([t, message], mutations) => {
      decode(t, mutateBytes(bytesOf(JSON.stringify(message)), mutations))
    }), fuzzParams(5))
  })

  it('a valid message on any other topic is refused as unknown-topic', () => {
    fc.assert(fc.property(topic.filter((t) => !(MESH_TOPICS as readonly string[]).includes(t)), topicAndMessage(peerId), (t, [, message]) => {
      expect(decode(t, bytesOf(JSON.stringify(message)))).toMatchObject({ ok: false, reason: 'unknown-topic' })
    }), fuzzParams(9))
  })

  it('wrong versions are refused as such', () => {
    fc.assert(fc.property(topicAndMessage(peerId), smallJson().filter((v) => v !== 1), ([t, message], v) => {
      const r = decode(t, bytesOf(JSON.stringify({ ...message, v })))
      expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/^(wrong-version|oversized)$/) })
    }), fuzzParams(6))
  })

  it('oversized payloads are refused before parsing', () => {
    fc.assert(fc.property(fc.constantFrom(...MESH_TOPICS), fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 0, max: 255 }), (t, extra, fill) => {
      const r = decode(t, new Uint8Array(MAX_MESSAGE_BYTES[t] + extra).fill(fill))
      expect(r).toMatchObject({ ok: false, reason: 'oversized' })
    }), { ...fuzzParams(7), numRuns: Math.max(1, Math.ceil(fuzzParams().numRuns / 10)) })
  })
})

describe('gossip messages: counterexamples the fuzzers found', () => {
  it('a topic named like an Object.prototype member ("toString", "constructor") is unknown, not the task topic', () => {
    const message = JSON.stringify({ v: 1, type: 'task-award', taskId: 't', announcer: fakePeerId(1), winner: null, claims: 0, sentAt: 0 })
    for (const t of ['toString', 'constructor', '__proto__']) expect(decodeMessage(t, bytesOf(message))).toMatchObject({ ok: false, reason: 'unknown-topic' })
  })

  it('an empty topic is refused with a detail that says so', () => {
    expect(decodeMessage('', bytesOf('{}'))).toEqual({ ok: false, reason: 'unknown-topic', detail: 'no topic ""' })
  })
})

describe('gossip messages: topic validators', () => {
  let alice: PeerId
  let bob: PeerId
  beforeAll(async () => {
    alice = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    bob = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  })
  const signed = (t: string, data: Uint8Array, from: PeerId): Message => ({ type: 'signed', from, topic: t, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: undefined as never })
  const unlimited = { ratePerSecond: 1e9, burst: 1e9 }
  const validatorsFor = () => createMeshValidators({ log: () => {}, rateLimits: { [ADVERT_TOPIC]: unlimited, [TASK_TOPIC]: unlimited } })

  it('accept exactly what decodes and is authored by its signer; reject the rest; never throw', () => {
    const input = fc.oneof(
      { weight: 2, arbitrary: fc.tuple(topicAndMessage(fc.constant('alice')), fc.array(byteMutation(), { maxLength: 3 }), fc.boolean()) },
      { weight: 1, arbitrary: fc.tuple(topicAndMessage(peerId), fc.constant([]), fc.boolean()) },
    )
    const { validators, stats } = validatorsFor()
    let expected = { accepted: 0, rejected: 0 }
    fc.assert(fc.property(fc.constantFrom(...MESH_TOPICS), input, fc.boolean(), (t, [[, message], mutations, fromBob], unsigned) => {
      const author = fromBob ? bob : alice
      const named = JSON.parse(JSON.stringify(message).replaceAll('"alice"', JSON.stringify(alice.toString())))
      const data = mutateBytes(bytesOf(JSON.stringify(named)), mutations)
      const msg: Message = unsigned ? { type: 'unsigned', topic: t, data } : signed(t, data, author)
      const result = validators.get(t)!(author, msg)
      const decoded = decodeMessage(t, data)
      const accept = !unsigned && decoded.ok && messageAuthor(decoded.message) === author.toString()
      expect(result).toBe(accept ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
      expected = { accepted: expected.accepted + (accept ? 1 : 0), rejected: expected.rejected + (accept ? 0 : 1) }
      expect(stats()).toMatchObject(expected)
      expect(stats().byReason.internal).toBeUndefined()
    }), fuzzParams(8))
    // the property can fail both ways: some of these were accepted, some refused
    expect(stats().accepted).toBeGreaterThan(0)
    expect(stats().rejected).toBeGreaterThan(0)
  })
})
