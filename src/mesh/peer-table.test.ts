import { describe, expect, it } from 'vitest'
import { classifyHealth, createPeerTable, type PeerTableEvent } from './peer-table.ts'
import { fakePeerId, makeAdvert } from '../../testing/mesh-fixtures.ts'

const A = fakePeerId(1)
const B = fakePeerId(2)
const SELF = fakePeerId(0)

function clockedTable(staleAfterMs = 2500) {
  let t = 10_000
  const table = createPeerTable({ selfId: SELF, staleAfterMs, now: () => t })
  const events: PeerTableEvent[] = []
  table.subscribe((e) => events.push(e))
  return { table, events, advance: (ms: number) => (t += ms), now: () => t }
}

describe('peer table', () => {
  it('lists peers from adverts with what they host, their load, health and last seen', () => {
    const { table, events, now } = clockedTable()
    table.applyAdvert(makeAdvert(B, { sentAt: now() - 4 }))
    table.applyAdvert(makeAdvert(A, { load: { queueDepth: 9, activeSessions: 2 } }))
    expect(table.list().map((e) => e.peerId)).toEqual([A, B])
    expect(table.get(B)).toMatchObject({ health: 'idle', lastSeen: now(), advertDelayMs: 4 })
    expect(table.get(B)!.advert.hosted[0]).toEqual({ modelId: 'stories260K', layers: { start: 0, end: 5 }, embedding: true, head: true })
    expect(table.get(A)!.health).toBe('overloaded')
    expect(events.map((e) => e.type)).toEqual(['join', 'join'])
  })

  it('ignores its own adverts and older ones', () => {
    const { table } = clockedTable()
    expect(table.applyAdvert(makeAdvert(SELF))).toBeUndefined()
    table.applyAdvert(makeAdvert(A, { seq: 5, load: { queueDepth: 1, activeSessions: 0 } }))
    expect(table.applyAdvert(makeAdvert(A, { seq: 4 }))).toBeUndefined()
    expect(table.get(A)!.advert.load.queueDepth).toBe(1)
    expect(table.size).toBe(1)
  })

  it('drops a peer silent for longer than the stale time, and only then', () => {
    const { table, events, advance } = clockedTable(2500)
    table.applyAdvert(makeAdvert(A, { seq: 1 }))
    table.applyAdvert(makeAdvert(B, { seq: 1 }))
    for (let s = 2; s <= 3; s++) {
      advance(1000)
      table.applyAdvert(makeAdvert(A, { seq: s })) // A keeps its heartbeat; B has gone quiet
      expect(table.sweep()).toEqual([])
    }
    advance(501)
    expect(table.sweep()).toEqual([B])
    expect(table.list().map((e) => e.peerId)).toEqual([A])
    expect(events.at(-1)).toEqual({ type: 'leave', peerId: B, why: 'stale', lastSeen: 10_000 })
  })

  it("drops a peer at once on its 'leave' advert", () => {
    const { table, events } = clockedTable()
    table.applyAdvert(makeAdvert(A, { seq: 1 }))
    table.applyAdvert(makeAdvert(A, { seq: 2, reason: 'leave' }))
    expect(table.has(A)).toBe(false)
    expect(events.at(-1)).toMatchObject({ type: 'leave', why: 'left' })
  })

  it('marks heartbeats that change nothing as unchanged', () => {
    const { table, events } = clockedTable()
    table.applyAdvert(makeAdvert(A, { seq: 1 }))
    table.applyAdvert(makeAdvert(A, { seq: 2, reason: 'heartbeat' }))
    table.applyAdvert(makeAdvert(A, { seq: 3, reason: 'heartbeat', load: { queueDepth: 5, activeSessions: 1 } }))
    table.applyAdvert(makeAdvert(A, { seq: 4, reason: 'change' }))
    expect(events.slice(1).map((e) => e.type === 'update' && e.changed)).toEqual([false, true, true])
  })

  it('tracks connections (also ones opened before the first advert) and RTT', () => {
    const { table } = clockedTable()
    table.connectionOpened(A, false) // the relayed signalling connection
    table.connectionOpened(A, true) // the WebRTC one
    table.setRtt(A, 1.5)
    table.applyAdvert(makeAdvert(A))
    expect(table.get(A)).toMatchObject({ connections: 2, direct: true, rttMs: 1.5 })
    table.connectionClosed(A, true)
    expect(table.get(A)).toMatchObject({ connections: 1, direct: false })
    table.setRtt(A, Number.NaN)
    expect(table.get(A)!.rttMs).toBe(1.5)
  })

  it('keeps a latency average and success counts of work sent to a peer', () => {
    const { table } = clockedTable()
    table.applyAdvert(makeAdvert(A))
    table.recordOutcome(A, { ok: true, latencyMs: 100 })
    table.recordOutcome(A, { ok: true, latencyMs: 200 })
    table.recordOutcome(A, { ok: false })
    expect(table.get(A)!.history).toEqual({ successes: 2, failures: 1, latencyMs: 130 })
  })
})

describe('health classification', () => {
  const hosted = [{ modelId: 'm', layers: { start: 0, end: 10 }, embedding: false, head: false }]
  it.each([
    [0, 0, undefined, 'idle'],
    [0, 3, undefined, 'moderate'],
    [1, 1, undefined, 'moderate'],
    [4, 1, undefined, 'busy'],
    [20, 1, undefined, 'overloaded'],
    [2, 1, 1000, 'moderate'], // 2 x 10 layers at 1000 layer-tokens/s: 20 ms queued
    [50, 1, 1000, 'busy'], // 0.5 s
    [500, 1, 1000, 'overloaded'], // 5 s
  ] as const)('queue %i, sessions %i, speed %s -> %s', (queueDepth, activeSessions, speed, expected) => {
    expect(classifyHealth({ queueDepth, activeSessions }, hosted, speed)).toBe(expected)
  })
})
