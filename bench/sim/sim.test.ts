import { describe, expect, it } from 'vitest'
import { selfTest } from './selftest.ts'

describe('the swarm simulator', () => {
  it('orders events by time then scheduling, and samples churn with the stated medians and means (seeded)', () => {
    expect(() => selfTest()).not.toThrow()
  })
})
