import { describe, expect, it } from 'vitest'
import { f16ToF32, f32ToF16 } from './f16.ts'

/** IEEE half -> number by the formula, independent of the table f16ToF32 reads. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

describe('f16 (activation frames, GGUF scales)', () => {
  it('f16ToF32 gives the IEEE value of all 65536 halves', () => {
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h)
      if (Number.isNaN(want)) expect(f16ToF32(h)).toBeNaN()
      else expect(Object.is(f16ToF32(h), want)).toBe(true)
    }
  })

  it('f32ToF16 rounds to the nearest half, ties to even, on every tie between neighbouring halves (subnormals included)', () => {
    for (let h = 0; h < 0x7bff; h++) {
      const tie = (halfValue(h) + halfValue(h + 1)) / 2 // exact in f32: halves have 11 significant bits
      const even = h % 2 === 0 ? h : h + 1
      expect(f32ToF16(tie)).toBe(even)
      expect(f32ToF16(-tie)).toBe(even | 0x8000)
      expect(f32ToF16(tie * (1 + 2 ** -20))).toBe(h + 1) // just above the tie
    }
  })

  it('keeps infinities and NaN, and overflows past the largest half to infinity', () => {
    expect(f32ToF16(Infinity)).toBe(0x7c00)
    expect(f32ToF16(-Infinity)).toBe(0xfc00)
    expect(f16ToF32(f32ToF16(NaN))).toBeNaN()
    expect(f32ToF16(65504)).toBe(0x7bff)
    expect(f32ToF16(65520)).toBe(0x7c00) // the tie above the largest half rounds to even: infinity
    expect(f32ToF16(-0)).toBe(0x8000)
  })
})
