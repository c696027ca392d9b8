import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { ADVERT_TOPIC, decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, TASK_TOPIC, type MeshTopic } from './protocol.ts'
import { makeAdvert, makeAnnounce } from '../../testing/mesh-fixtures.ts'
import { createMeshValidators, type Rejection } from './validation.ts'

const bytes = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value))

let alice: PeerId
let bob: PeerId
beforeAll(async () => {
  alice = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  bob = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
})

function signed(topic: string, data: Uint8Array, from: PeerId = alice): Message {
  // validators read only type, from, topic and data; signatures are checked by gossipsub before them
  return { type: 'signed', from, topic, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: undefined as never }
}

describe('protocol: schemas', () => {
  it('round-trips a valid advert and task messages', () => {
    const advert = makeAdvert(alice.toString())
    const decoded = decodeMessage(ADVERT_TOPIC, encodeMessage(ADVERT_TOPIC, advert))
    expect(decoded).toEqual({ ok: true, message: advert })
    const announce = makeAnnounce(alice.toString())
    expect(decodeMessage(TASK_TOPIC, encodeMessage(TASK_TOPIC, announce))).toEqual({ ok: true, message: announce })
  })

  const a = () => makeAdvert('12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')
  const cases: [string, MeshTopic, Uint8Array, string][] = [
    ['oversized', ADVERT_TOPIC, bytes({ ...a(), addrs: ['x'.repeat(5000)] }), 'oversized'],
    ['not JSON', ADVERT_TOPIC, bytes('{"v":1,'), 'not-json'],
    ['invalid UTF-8', ADVERT_TOPIC, new Uint8Array([0xff, 0xfe, 0x7b]), 'not-json'],
    ['a JSON array', ADVERT_TOPIC, bytes([1, 2]), 'malformed'],
    ['a wrong version', ADVERT_TOPIC, bytes({ ...a(), v: 2 }), 'wrong-version'],
    ['no version', TASK_TOPIC, bytes({ ...makeAnnounce(a().peerId), v: undefined }), 'wrong-version'],
    ['an unknown key', ADVERT_TOPIC, bytes({ ...a(), extra: true }), 'malformed'],
    ['an empty layer range', ADVERT_TOPIC, bytes({ ...a(), hosted: [{ modelId: 'm', layers: { start: 3, end: 3 }, embedding: false, head: false }] }), 'malformed'],
    ['a negative queue', ADVERT_TOPIC, bytes({ ...a(), load: { queueDepth: -1, activeSessions: 0 } }), 'malformed'],
    ['a bad peer id', ADVERT_TOPIC, bytes({ ...a(), peerId: 'not a peer id' }), 'malformed'],
    ['an advert on the task topic', TASK_TOPIC, bytes(a()), 'malformed'],
    ['an unknown task type', TASK_TOPIC, bytes({ ...makeAnnounce(a().peerId), type: 'task-steal' }), 'malformed'],
    ['an infinite score', TASK_TOPIC, bytes('{"v":1,"type":"task-claim","taskId":"t","announcer":"12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","claimer":"12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","score":1e999,"sentAt":1}'), 'malformed'],
  ]
  it.each(cases)('rejects %s', (_what, topic, data, reason) => {
    const r = decodeMessage(topic, data)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.reason).toBe(reason)
  })

  it('refuses to encode a message its receivers would reject', () => {
    expect(() => encodeMessage(ADVERT_TOPIC, { ...makeAdvert(alice.toString()), seq: -1 })).toThrow(expect.objectContaining({ code: 'bad-argument', message: expect.stringMatching(/invalid .*advert.*seq/) }))
  })

  it('keeps every topic limit small', () => {
    for (const limit of Object.values(MAX_MESSAGE_BYTES)) expect(limit).toBeLessThanOrEqual(4096)
  })
})

describe('protocol: topic validators', () => {
  it('accepts valid messages and rejects malformed, wrong-version, oversized, unsigned and spoofed ones', () => {
    const rejections: Rejection[] = []
    const logs: string[] = []
    const { validators, stats } = createMeshValidators({ log: (l) => logs.push(l), onReject: (r) => rejections.push(r) })
    const adverts = validators.get(ADVERT_TOPIC)!
    const good = bytes(makeAdvert(alice.toString()))
    expect(adverts(alice, signed(ADVERT_TOPIC, good))).toBe(TopicValidatorResult.Accept)
    expect(adverts(alice, signed(ADVERT_TOPIC, bytes({ ...makeAdvert(alice.toString()), v: 9 })))).toBe(TopicValidatorResult.Reject)
    expect(adverts(alice, signed(ADVERT_TOPIC, new Uint8Array(10_000)))).toBe(TopicValidatorResult.Reject)
    expect(adverts(alice, signed(ADVERT_TOPIC, bytes('}{')))).toBe(TopicValidatorResult.Reject)
    expect(adverts(alice, { type: 'unsigned', topic: ADVERT_TOPIC, data: good })).toBe(TopicValidatorResult.Reject)
    // bob signs an advert that claims to be alice's
    expect(adverts(bob, signed(ADVERT_TOPIC, good, bob))).toBe(TopicValidatorResult.Reject)
    expect(rejections.map((r) => r.reason)).toEqual(['wrong-version', 'oversized', 'not-json', 'unsigned', 'spoofed'])
    expect(stats()).toMatchObject({ accepted: 1, rejected: 5 })
    expect(logs).toHaveLength(5)
  })

  it('logs each (peer, reason) once but counts every rejection', () => {
    const logs: string[] = []
    const { validators, stats } = createMeshValidators({ log: (l) => logs.push(l) })
    const tasks = validators.get(TASK_TOPIC)!
    for (let i = 0; i < 50; i++) expect(tasks(alice, signed(TASK_TOPIC, bytes({ v: 2 })))).toBe(TopicValidatorResult.Reject)
    expect(tasks(bob, signed(TASK_TOPIC, bytes({ v: 2 }), bob))).toBe(TopicValidatorResult.Reject)
    expect(logs).toHaveLength(2)
    expect(stats().byReason['wrong-version']).toBe(51)
  })

  it('rate-limits a flood: rejected from the flooder itself, ignored when an honest peer forwards it', () => {
    let t = 0
    const { validators, stats } = createMeshValidators({ log: () => {}, rateLimits: { [ADVERT_TOPIC]: { ratePerSecond: 5, burst: 10, now: () => t } } })
    const adverts = validators.get(ADVERT_TOPIC)!
    const results = Array.from({ length: 30 }, (_, i) => adverts(alice, signed(ADVERT_TOPIC, bytes(makeAdvert(alice.toString(), { seq: i + 1 })))))
    expect(results.filter((r) => r === TopicValidatorResult.Accept)).toHaveLength(10)
    expect(results.slice(10).every((r) => r === TopicValidatorResult.Reject)).toBe(true)
    expect(adverts(bob, signed(ADVERT_TOPIC, bytes(makeAdvert(alice.toString(), { seq: 99 }))))).toBe(TopicValidatorResult.Ignore)
    t += 1000 // a second later, 5 more tokens
    expect(adverts(alice, signed(ADVERT_TOPIC, bytes(makeAdvert(alice.toString(), { seq: 100 }))))).toBe(TopicValidatorResult.Accept)
    expect(stats()).toMatchObject({ accepted: 11, rejected: 20, ignored: 1 })
  })

  it('never throws, whatever arrives', () => {
    const { validators } = createMeshValidators({ log: () => {} })
    const evil = { toString: () => { throw new Error('boom') } } as unknown as PeerId
    for (const validator of validators.values()) {
      expect(validator(evil, signed(ADVERT_TOPIC, bytes('{}'), evil))).toBe(TopicValidatorResult.Reject)
      expect(validator(alice, { type: 'signed', from: alice, topic: 'x', data: undefined as never, sequenceNumber: 1n, signature: new Uint8Array(), key: undefined as never })).toBe(TopicValidatorResult.Reject)
      expect(validator(alice, null as never)).toBe(TopicValidatorResult.Reject)
    }
  })
})
