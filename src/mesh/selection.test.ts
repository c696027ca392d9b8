import { describe, expect, it } from 'vitest'
import { createPeerTable, type PeerEntry } from './peer-table.ts'
import type { Advert } from './protocol.ts'
import { canServe, routeCost, UNREACHABLE_PENALTY_MS, type HopWork, type WorkNeed } from './selection.ts'
import { fakePeerId, makeAdvert } from '../../testing/mesh-fixtures.ts'

function entries(...adverts: Advert[]): PeerEntry[] {
  const table = createPeerTable({ selfId: fakePeerId(0), now: () => 0 })
  for (const a of adverts) table.applyAdvert(a)
  return table.list()
}

const load = (queueDepth: number, activeSessions = 0) => ({ load: { queueDepth, activeSessions } })
const serving = (list: PeerEntry[], need: WorkNeed) => list.filter((e) => canServe(e, need)).map((e) => e.peerId)
const [P1, P2, P3, P4] = [1, 2, 3, 4].map(fakePeerId)

describe('who can serve a hop', () => {
  it('leaves out peers that cannot serve: wrong layers, too little memory, draining, no backend, excluded', () => {
    const list = entries(
      makeAdvert(P1, { hosted: [{ modelId: 'stories260K', layers: { start: 0, end: 2 }, embedding: true, head: false }] }),
      makeAdvert(P2, { capabilities: { backend: 'wasm', memoryBudgetBytes: 1000, speed: { gflops: 1 } } }),
      makeAdvert(P3, { health: { status: 'draining', recentErrors: 0 } }),
      makeAdvert(P4, { capabilities: { backend: 'none', memoryBudgetBytes: 2 ** 30, speed: { gflops: 0 } } }),
    )
    expect(serving(list, { hosts: { modelId: 'stories260K', layers: { start: 1, end: 4 } } })).toEqual([P2])
    expect(serving(list, { minMemoryBytes: 2 ** 20 })).toEqual([P1])
    expect(serving(list, { exclude: new Set([P1, P2]) })).toEqual([])
    expect(serving(list, { backends: ['none'] })).toEqual([P4])
  })
})

describe('route cost', () => {
  const hop: HopWork = { modelId: 'stories260K', layers: { start: 0, end: 5 }, rows: 1, transferBytes: 2 * 64 * 4 }
  const base = () => {
    const e = entries(makeAdvert(P1, { capabilities: { backend: 'wasm', memoryBudgetBytes: 2 ** 30, speed: { gflops: 20, layerTokensPerSecond: 5000 } } }))[0]
    e.direct = true
    return e
  }

  it('is round trip + transfer + compute for an idle peer', () => {
    const e = base()
    e.rttMs = 2
    // 2 ms RTT + 512 B at 8 kB/ms + 5 layer-tokens at 5000/s = 1 ms; a fresh peer's failure prior adds 20%
    expect(routeCost(e, hop)).toBeCloseTo((2 + 0.064 + 1) * (1 + 2 * 0.1), 6)
  })

  it('grows with RTT, queue, slower speed, failures and worse health', () => {
    const cost = (patch: (e: PeerEntry) => void) => {
      const e = base()
      e.rttMs = 2
      patch(e)
      return routeCost(e, hop)
    }
    const idle = cost(() => {})
    expect(cost((e) => (e.rttMs = 20))).toBeGreaterThan(idle)
    expect(cost((e) => (e.advert.capabilities.speed.layerTokensPerSecond = 500))).toBeGreaterThan(idle)
    expect(cost((e) => (e.history.failures = 3))).toBeGreaterThan(idle)
    expect(cost((e) => { e.advert.load.queueDepth = 3; e.health = 'moderate' })).toBeGreaterThan(idle)
    expect(cost((e) => (e.health = 'overloaded'))).toBeGreaterThan(cost((e) => (e.health = 'busy')))
  })

  it('falls back to GFLOP/s when the slice speed is unmeasured', () => {
    const e = entries(makeAdvert(P1, { capabilities: { backend: 'wasm', memoryBudgetBytes: 2 ** 30, speed: { gflops: 10 } } }))[0]
    e.rttMs = 0
    e.direct = true
    const flopsPerLayerToken = 2e6 // 1M parameters per layer
    // 5 layers x 2 MFLOP at 10 GFLOP/s = 1 ms
    expect(routeCost(e, { ...hop, transferBytes: 0, flopsPerLayerToken })).toBeCloseTo(1 * 1.2, 6)
  })

  it('adds the expected dial for a peer with no direct connection, so warm connections win close calls', () => {
    const e = base()
    e.rttMs = 2
    const warm = routeCost(e, hop)
    e.direct = false
    expect(routeCost(e, hop)).toBeCloseTo(warm + 400, 6)
    expect(routeCost(e, hop, { dialMs: 1500 })).toBeCloseTo(warm + 1500, 6)
  })

  it('costs a peer marked unreachable more than any reachable route until the mark expires', () => {
    let t = 0
    const table = createPeerTable({ selfId: fakePeerId(0), now: () => t, staleAfterMs: 1e9 })
    table.applyAdvert(makeAdvert(P1, { hosted: [{ modelId: 'stories260K', layers: { start: 0, end: 5 }, embedding: true, head: true }] }))
    const before = routeCost(table.get(P1)!, hop)
    table.markUnreachable(P1, 'ICE failed', 60_000)
    expect(routeCost(table.get(P1)!, hop)).toBeCloseTo(before + UNREACHABLE_PENALTY_MS, 6)
    t = 30_000
    table.sweep(t)
    expect(table.get(P1)?.unreachable?.why).toBe('ICE failed')
    t = 60_001
    table.sweep(t)
    expect(table.get(P1)?.unreachable).toBeUndefined()
    expect(routeCost(table.get(P1)!, hop)).toBeCloseTo(before, 6)
    // a direct connection clears the mark at once
    table.markUnreachable(P1, 'ICE failed')
    table.connectionOpened(P1, true)
    expect(table.get(P1)?.unreachable).toBeUndefined()
  })

  it('is infinite for a peer that does not host the layers or is draining', () => {
    const e = base()
    expect(routeCost(e, { ...hop, layers: { start: 3, end: 7 } })).toBe(Infinity)
    expect(routeCost(e, { ...hop, modelId: 'other' })).toBe(Infinity)
    e.advert.health.status = 'draining'
    expect(routeCost(e, hop)).toBe(Infinity)
  })
})
