import { beforeEach, describe, expect, it } from 'vitest'
import { quantizeSlice } from '../model/quant/quantize.ts'
import { memoryReputationStore, openReputation, REVOKE_BELOW } from '../trust/index.ts'
import { GOLDEN_IDS, loadStories } from '../../testing/models.ts'
import { ATTACKS, type Attack } from '../../testing/liars.ts'
import { greedyIds, impostorsOf, liarSwarm, startPeer, trustSwarmEngine } from '../../testing/trust-swarm.ts'
import type { SwarmEvent } from './swarm-engine.ts'
import { promptLookupDrafter } from '../engine/generate.ts'

const model = await loadStories()
const c = model.config
const impostors = await impostorsOf(model)
const golden = GOLDEN_IDS.slice(1)
/** A seeded uniform [0, 1) for the checker's draws: each test gets the same sequence whatever ran before it. */
const seeded = (seed = 1) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
let random = seeded()
beforeEach(() => { random = seeded() })

const swarmWith = (attack: Attack | undefined) => liarSwarm(model, attack, { impostors })

describe('spot checks catch a contributor that lies', () => {
  it.each(ATTACKS.flatMap((a) => [[a, false], [a, true]] as const))('%s (speculative decoding: %s): caught, banned, reputation lost, and the ids equal the honest run', async (attack, speculate) => {
    const reputation = await openReputation(memoryReputationStore())
    const events: SwarmEvent[] = []
    // for collude, R2 also hosts [2, 4) and lies the same way when asked to verify; the client's own checks catch them
    const peers = swarmWith(attack)
    const engine = trustSwarmEngine({ model, peers, events, selfSpans: true, trust: { reputation, random, selfCheckShare: attack === 'collude' ? 0.5 : 0.1 } })
    // with speculation, drafts verified k + 1 rows at a time and rejected rows rolled back on every hop and in the checker
    const ids = await greedyIds(engine, 64, speculate ? { draft: promptLookupDrafter(), maxDraft: 4 } : undefined)
    engine.close()
    expect(ids).toEqual(golden)
    const caught = events.filter((e) => e.type === 'caught')
    expect(caught.map((e) => e.type === 'caught' && e.peerId)).toContain('R')
    expect(reputation.score('R')).toBeLessThanOrEqual(REVOKE_BELOW)
    expect(reputation.revoked('R')).toBe(true)
    expect(peers[1].lies()).toBeGreaterThan(0)
    // nobody honest was accused
    for (const id of ['A', 'B', 'S']) expect(reputation.get(id)?.failed ?? 0).toBe(0)
  })

  it('two colluders who are the only hosts of a span: the client\'s own checks catch both, and the session ends with a typed error', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const peers = [
      startPeer({ peerId: 'A', hosted: { start: 0, end: 2 }, model }),
      startPeer({ peerId: 'R', hosted: { start: 2, end: 4 }, model, hopMs: 1, attack: 'collude', seed: 3 }),
      startPeer({ peerId: 'R2', hosted: { start: 2, end: 4 }, model, hopMs: 2, attack: 'collude', seed: 3 }),
      startPeer({ peerId: 'B', hosted: { start: 4, end: 5 }, model }),
    ]
    const engine = trustSwarmEngine({ model, peers, selfSpans: true, trust: { reputation, random, selfCheckShare: 0.3 } })
    await expect(greedyIds(engine, 64)).rejects.toThrow(/no peers cover layers \[2, 4\).*client's own execution/)
    engine.close()
    expect(reputation.revoked('R')).toBe(true)
    expect(reputation.get('R2')!.failed).toBeGreaterThan(0)
    expect(reputation.get('A')?.failed ?? 0).toBe(0)
  })

  it('an honest swarm of ref and wasm peers on F32 and Q8_0 weights: no accusation over many sessions', async () => {
    const q8 = quantizeSlice(model, 'q8_0')
    const peers = [
      startPeer({ peerId: 'A', hosted: { start: 0, end: 3 }, model, backend: 'wasm' }),
      startPeer({ peerId: 'A8', hosted: { start: 0, end: 3 }, model: q8, weights: 'q8_0' }),
      startPeer({ peerId: 'B', hosted: { start: 3, end: 5 }, model }),
      startPeer({ peerId: 'B2', hosted: { start: 3, end: 5 }, model, backend: 'wasm' }),
    ]
    const events: SwarmEvent[] = []
    const records = []
    for (let s = 0; s < 4; s++) {
      // strangers every session, so every hop is checked
      const reputation = await openReputation(memoryReputationStore())
      const engine = trustSwarmEngine({ model, peers, events, trust: { reputation, random } })
      await greedyIds(engine, 40)
      const stats = engine.checker!.stats()
      engine.close()
      expect(stats.failed + stats.inconclusive + stats.verifierLied).toBe(0)
      expect(stats.checks).toBeGreaterThan(0)
      records.push(...reputation.list())
    }
    expect(events.some((e) => e.type === 'caught')).toBe(false)
    expect(records.every((r) => r.failed === 0 && r.score > 0)).toBe(true)
  })

  it('a verifier that lies is found out by the referee; the honest hop keeps its standing', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const events: SwarmEvent[] = []
    // R is honest and on the route; the only other host of [2, 4) lies, so it is the verifier
    const peers = [
      startPeer({ peerId: 'A', hosted: { start: 0, end: 2 }, model }),
      startPeer({ peerId: 'R', hosted: { start: 2, end: 4 }, model, hopMs: 1 }),
      startPeer({ peerId: 'B', hosted: { start: 4, end: 5 }, model }),
      startPeer({ peerId: 'V', hosted: { start: 2, end: 4 }, model, hopMs: 50, attack: 'noise' }),
    ]
    const engine = trustSwarmEngine({ model, peers, events, selfSpans: true, trust: { reputation, random, selfCheckShare: 0 } })
    expect(await greedyIds(engine, 64)).toEqual(golden)
    expect(engine.checker!.stats().verifierLied).toBeGreaterThan(0)
    engine.close()
    expect(events.some((e) => e.type === 'caught')).toBe(false)
    expect(reputation.get('V')!.failed).toBeGreaterThan(0)
    expect(reputation.get('R')!.failed).toBe(0)
  })

  it('a verifier that never answers is dropped after its deadline; another check takes over and the session goes on', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const peers = [
      startPeer({ peerId: 'A', hosted: { start: 0, end: 5 }, model, hopMs: 1 }),
      startPeer({ peerId: 'V', hosted: { start: 0, end: 5 }, model, hopMs: 50, attack: 'stall' }),
    ]
    const engine = trustSwarmEngine({ model, peers, selfSpans: true, hopTimeoutMs: 300, trust: { reputation, random, selfCheckShare: 0 } })
    expect(await greedyIds(engine, 32)).toEqual(golden.slice(0, 32))
    const stats = engine.checker!.stats()
    engine.close()
    expect(stats.selfChecks).toBeGreaterThan(0) // the client took over the checks
    expect(stats.failed + stats.inconclusive).toBe(0)
    expect(reputation.get('V')!.inconclusive).toBeGreaterThan(0)
    expect(reputation.get('A')!.failed).toBe(0)
  })

  it('with no verifier at all the session still finishes, its windows counted as unverifiable', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const peers = [startPeer({ peerId: 'A', hosted: { start: 0, end: 5 }, model })]
    const engine = trustSwarmEngine({ model, peers, trust: { reputation, random } })
    expect(await greedyIds(engine, 32)).toEqual(golden.slice(0, 32))
    expect(engine.checker!.stats().unverifiable).toBeGreaterThan(0)
    engine.close()
  })

  it('a revoked peer is left out of routes in later sessions', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const peers = swarmWith('noise')
    const first = trustSwarmEngine({ model, peers, selfSpans: true, trust: { reputation, random } })
    await greedyIds(first, 24)
    first.close()
    const lies = peers[1].lies()
    const events: SwarmEvent[] = []
    const second = trustSwarmEngine({ model, peers, events, selfSpans: true, trust: { reputation, random } })
    expect(await greedyIds(second, 24)).toEqual(golden.slice(0, 24))
    second.close()
    expect(peers[1].lies()).toBe(lies)
    const route = events.find((e) => e.type === 'route')
    expect(route?.type === 'route' && route.hops.map((h) => h.peerId)).toEqual(['A', 'S', 'B'])
  })
})
