import { describe, expect, it } from 'vitest'
import { createRng } from './rng.ts'

// run.c's xorshift64* written with BigInt: slow but obviously right
function bigintRng(seed: bigint) {
  let s = seed
  const mask = (1n << 64n) - 1n
  return () => {
    s ^= s >> 12n
    s = (s ^ (s << 25n)) & mask
    s ^= s >> 27n
    return Number(((s * 0x2545f4914f6cdd1dn) & mask) >> 32n)
  }
}

describe('run.c rng', () => {
  it.each([1n, 42n, 123456789n, 0xdeadbeefcafebaben, (1n << 64n) - 1n])('matches a BigInt xorshift64* for seed %s', (seed) => {
    const fast = createRng(seed)
    const slow = bigintRng(seed)
    for (let i = 0; i < 10_000; i++) expect(fast.nextU32()).toBe(slow())
  })

  it('gives floats in [0, 1)', () => {
    const rng = createRng(7)
    for (let i = 0; i < 10_000; i++) {
      const x = rng.nextF32()
      expect(x >= 0 && x < 1).toBe(true)
    }
  })
})
