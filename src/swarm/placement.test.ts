import { describe, expect, it } from 'vitest'
import { chooseLayers, layersThatFit, rebalance, type ServedRange } from './placement.ts'

const s = (peerId: string, start: number, end: number, throughput = 10): ServedRange => ({ peerId, layers: { start, end }, throughput })

describe('shard placement', () => {
  it('starts at the first layers of an empty swarm', () => {
    expect(chooseLayers(5, 2, [])).toEqual({ start: 0, end: 2 })
  })
  it('fills the gap first', () => {
    expect(chooseLayers(5, 2, [s('a', 0, 2), s('b', 4, 5)])).toEqual({ start: 2, end: 4 })
    expect(chooseLayers(12, 3, [s('a', 0, 6), s('b', 9, 12)])).toEqual({ start: 6, end: 9 })
  })
  it('then the least-served layers', () => {
    expect(chooseLayers(6, 2, [s('a', 0, 6, 10), s('b', 0, 2, 50), s('c', 4, 6, 5)])).toEqual({ start: 2, end: 4 })
  })
  it('counts how many layers a memory budget holds', () => {
    expect(layersThatFit(10_000, 3_000, 5)).toBe(3)
    expect(layersThatFit(1e12, 3_000, 5)).toBe(5)
    expect(() => chooseLayers(5, 0, [])).toThrow(/no room for even one layer/)
  })
  it('moves a peer out of a crowded range into a thin one, but not for a small gain', () => {
    const served = [s('a', 0, 3), s('b', 0, 3), s('c', 3, 5, 10)]
    expect(rebalance(5, [...served, s('me', 0, 2, 10)], s('me', 0, 2, 10))).toEqual({ start: 3, end: 5 })
    // c is nearly as strong as the crowd: moving would help by less than the margin
    const balanced = [s('a', 0, 3, 10), s('c', 3, 5, 9), s('me', 0, 2, 1)]
    expect(rebalance(5, balanced, s('me', 0, 2, 1))).toBeUndefined()
  })
  it('never moves out of a layer only it serves', () => {
    const served = [s('me', 0, 2), s('b', 2, 5, 100)]
    expect(rebalance(5, served, s('me', 0, 2))).toBeUndefined()
  })
})
