import { describe, expect, it } from 'vitest'
import { createChecker, SELF, type SpanRunner } from './checks.ts'
import { memoryReputationStore, openReputation } from './reputation.ts'

/**
 * The checker under rollbacks: speculative decoding rolls every hop back (a rejected draft) many
 * times a session, so a rollback must void only the checks of the positions it takes back.
 */
describe('checks and rollbacks', () => {
  const dim = 8
  const layer = (h: Float32Array) => h.map((x) => 2 * x + 1) // what an honest host computes
  const rows = (from: number, to: number) => Float32Array.from({ length: (to - from) * dim }, (_, i) => Math.sin(from * dim + i))
  const positions = (from: number, to: number) => Int32Array.from({ length: to - from }, (_, i) => from + i)

  it('a dispute below a rollback stands: the liar is convicted while the referee runs and the session rolls back above it', async () => {
    const reputation = await openReputation(memoryReputationStore())
    let release!: () => void
    const gate = new Promise<void>((r) => { release = r })
    const runner = (peerId: string, gated: boolean): SpanRunner => ({
      peerId, kind: { backend: 'ref' }, maxRows: 32, close() {},
      forward: async (_p, h) => { if (gated) await gate; return layer(h) },
    })
    const checker = createChecker({
      dim, reputation, kindOf: () => ({ backend: 'ref' }), windowRows: 8, selfCheckShare: 0, random: () => 0,
      // the verifier is an honest peer; the referee (the client itself) is slow
      openRunner: async (_span, _exclude, preferSelf) => (preferSelf ? runner(SELF, true) : runner('V', false)),
    })
    const hop = checker.track({ peerId: 'P', layers: { start: 0, end: 1 } })
    const input = rows(0, 12)
    const lied = layer(input)
    lied[3 * dim] += 5 // position 3 is a lie
    await hop.record(positions(0, 12), input, lied)
    await new Promise((r) => setTimeout(r, 10)) // the verifier disagrees at 3; the referee waits at the gate
    // a rejected draft: positions 10 and 11 are sent again with other inputs
    const again = rows(100, 102)
    await hop.record(positions(10, 12), again, layer(again))
    release()
    await checker.settle()
    expect(checker.takeFailure()).toMatchObject({ peerId: 'P', position: 3, outcome: 'failed' })
    expect(reputation.get('P')!.failed).toBeGreaterThan(0)
  })

  it('a rollback below a window voids its check, and the positions are checked again with the new inputs', async () => {
    const reputation = await openReputation(memoryReputationStore())
    const checker = createChecker({ dim, reputation, kindOf: () => ({ backend: 'ref' }), windowRows: 4, selfCheckShare: 1, random: () => 0, openRunner: async () => ({ peerId: SELF, kind: { backend: 'ref' }, maxRows: 32, close() {}, forward: async (_p, h) => layer(h) }) })
    const hop = checker.track({ peerId: 'P', layers: { start: 0, end: 1 } })
    const input = rows(0, 8)
    const lied = layer(input)
    lied[6 * dim] += 5 // a lie in a row that is then rolled back: gone with it
    await hop.record(positions(0, 8), input, lied)
    const again = rows(50, 54)
    await hop.record(positions(5, 9), again, layer(again))
    await checker.settle()
    expect(checker.takeFailure()).toBeUndefined()
    expect(checker.stats().failed).toBe(0)
    expect(hop.decidedThrough()).toBe(9)
  })
})

describe('checks when a verifier cannot be found', () => {
  it('positions an unverifiable window let through are compared by the next verifier found', async () => {
    const dim = 8
    const layer = (h: Float32Array) => h.map((x) => 2 * x + 1)
    const reputation = await openReputation(memoryReputationStore())
    let available = false
    const checker = createChecker({
      dim, reputation, kindOf: () => ({ backend: 'ref' }), windowRows: 4, selfCheckShare: 0, random: () => 0.5,
      openRunner: async () => (available ? { peerId: 'V', kind: { backend: 'ref' }, maxRows: 32, close() {}, forward: async (_p, h) => layer(h) } : undefined),
    })
    const hop = checker.track({ peerId: 'P', layers: { start: 0, end: 1 } })
    const input = Float32Array.from({ length: 8 * dim }, (_, i) => Math.cos(i))
    const lied = layer(input)
    lied[1 * dim] += 3 // position 1: in the first window, which nobody can verify
    await hop.record(Int32Array.from([0, 1, 2, 3]), input.subarray(0, 4 * dim), lied.subarray(0, 4 * dim))
    await new Promise((r) => setTimeout(r, 5))
    available = true
    await hop.record(Int32Array.from([4, 5, 6, 7]), input.subarray(4 * dim), lied.subarray(4 * dim))
    await checker.settle()
    expect(checker.stats().unverifiable).toBeGreaterThan(0)
    expect(checker.takeFailure()).toMatchObject({ peerId: 'P', position: 1 })
  })
})
