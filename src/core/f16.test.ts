import { describe, expect, it } from 'vitest'
import { f16ToF32, f32ToF16, f32ToF16Wire } from './f16.ts'
import { createRng } from './rng.ts'

// ---- expected behaviour: src/swarm/frames.ts's own conversions before they moved to core (verbatim) ----

// IEEE half precision <-> single, for f16 transfers (no Float16Array in Node 20)
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
function toHalf(value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = ((x >>> 23) & 0xff) - 127 + 15
  const mant = x & 0x7fffff
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0) // inf, nan
  if (exp >= 0x1f) return sign | 0x7c00 // overflow to inf
  if (exp <= 0) {
    if (exp < -10) return sign
    const m = (mant | 0x800000) >>> (1 - exp)
    return sign | ((m + 0x1000 + ((m >>> 13) & 1) - 1) >>> 13)
  }
  const rounded = (exp << 10) + ((mant + 0xfff + ((mant >>> 13) & 1)) >>> 13)
  return sign | Math.min(rounded, 0x7c00)
}
function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

// ---- inputs ----

const scratchF = new Float32Array(1)
const scratchU = new Uint32Array(scratchF.buffer)
/** The float32 with these bits, as a JS number (NaN payloads and signs pass through as V8 keeps them). */
const fromBits = (bits: number): number => {
  scratchU[0] = bits >>> 0
  return scratchF[0]
}
/** The bits a number has once stored in a Float32Array (what a frame's values are). */
const f32Bits = (value: number): number => {
  scratchF[0] = value
  return scratchU[0]
}

/** Float32 bit patterns around every half: each half's value, its neighbours, and the ties between halves and their neighbours. */
function edgeBits(): number[] {
  const bits: number[] = []
  for (let h = 0; h < 0x7c00; h++) {
    const at = f32Bits(fromHalf(h))
    const tie = f32Bits((fromHalf(h) + fromHalf(h + 1)) / 2) // exact in f32: halves have 11 significant bits
    for (const base of [at, tie]) for (let d = -2; d <= 2; d++) bits.push(base + d, (base + d) | 0x80000000)
  }
  const special = [
    0x00000000, 0x00000001, 0x007fffff, 0x00800000, // zero, f32 subnormals, smallest normal
    0x33000000, 0x33000001, 0x337fffff, 0x33800000, 0x32ffffff, // 2^-25 (half the smallest half subnormal), 2^-24
    0x38800000, 0x387fffff, 0x38800001, // 2^-14 (smallest normal half)
    0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000, // 65504, below/at the overflow tie 65520, 65536
    0x7f7fffff, 0x7f800000, // max f32, infinity
    0x7f800001, 0x7fc00000, 0x7fc00001, 0x7fe00000, 0x7fffffff, 0x7fa00000, 0x7f802000, // NaNs: signalling, quiet, payloads
  ]
  for (const b of special) bits.push(b, b | 0x80000000)
  return bits.map((b) => b >>> 0)
}

function randomBits(count: number, seed: number): number[] {
  const rng = createRng(seed)
  const bits: number[] = []
  for (let i = 0; i < count; i++) bits.push(rng.nextU32())
  // and as many in the half range, where the rounding happens (biased exponents 96..143)
  for (let i = 0; i < count; i++) bits.push(((rng.nextU32() & 0x807fffff) | ((96 + (rng.nextU32() % 48)) << 23)) >>> 0)
  return bits
}

/** Doubles that are not float32 values: both conversions round them to float32 first. */
function randomDoubles(count: number, seed: number): number[] {
  const rng = createRng(seed)
  const out: number[] = [Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, 1e-300, 65519.999, 65520.001, 2 ** -25 + 2 ** -60, -0, 0.1, 1 / 3]
  for (let i = 0; i < count; i++) {
    const mantissa = rng.nextU32() * 2 ** 21 + (rng.nextU32() >>> 11) // 53 random bits
    out.push((rng.nextU32() & 1 ? -1 : 1) * (1 + mantissa / 2 ** 53) * 2 ** ((rng.nextU32() % 60) - 40))
  }
  return out
}

// ---- the checks ----

describe('core f16 against the activation frames\' own conversions (a wire format: bits must not change)', () => {
  it('f16ToF32 gives fromHalf\'s value and float32 bits for all 65536 halves', () => {
    let differing = 0
    for (let h = 0; h < 65536; h++) {
      const got = f16ToF32(h), want = fromHalf(h)
      if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want))) || f32Bits(got) !== f32Bits(want)) differing++
    }
    expect(differing).toBe(0)
  })

  it('f32ToF16Wire gives toHalf\'s bits on every half, every tie between halves and their neighbours, NaNs, infinities and subnormals', () => {
    const bits = edgeBits()
    expect(bits.length).toBeGreaterThan(600_000)
    const differing = bits.filter((b) => f32ToF16Wire(fromBits(b)) !== toHalf(fromBits(b)))
    expect(differing.map((b) => b.toString(16))).toEqual([])
  })

  it('f32ToF16Wire gives toHalf\'s bits on random float32s and doubles', () => {
    const values = [...randomBits(500_000, 7).map(fromBits), ...randomDoubles(100_000, 8)]
    const differing = values.filter((v) => f32ToF16Wire(v) !== toHalf(v))
    expect(differing).toEqual([])
  })

  it('round trip: every finite half survives f16ToF32 then f32ToF16Wire', () => {
    for (let h = 0; h < 65536; h++) {
      if (((h >> 10) & 0x1f) === 31) continue
      expect(f32ToF16Wire(f16ToF32(h))).toBe(h)
    }
  })

  // Why the frames keep their own conversion: f32ToF16 (GGUF, round to nearest even throughout) is
  // not bit-identical to it. They differ only on negative NaNs and on subnormal results, where the
  // wire conversion rounds from a truncated mantissa and lands one step lower.
  it('f32ToF16 differs from the wire conversion, only on negative NaNs and subnormal results one step apart', () => {
    expect(toHalf(fromBits(0xffc00000))).toBe(0xfe00)
    expect(f32ToF16(fromBits(0xffc00000))).toBe(0x7e00)
    expect(toHalf(fromBits(0x33000001))).toBe(0x0000) // just above 2^-25
    expect(f32ToF16(fromBits(0x33000001))).toBe(0x0001)
    expect(toHalf(fromBits(0x34200001))).toBe(0x0002) // just above the tie between 2 and 3 * 2^-24
    expect(f32ToF16(fromBits(0x34200001))).toBe(0x0003)
    const values = [...edgeBits(), ...randomBits(200_000, 9)].map(fromBits)
    const unexplained = values.filter((v) => {
      const wire = toHalf(v), rne = f32ToF16(v)
      if (wire === rne) return false
      if (Number.isNaN(v)) return !(wire === 0xfe00 && rne === 0x7e00)
      return !((rne & 0x7fff) <= 0x0400 && (wire & 0x8000) === (rne & 0x8000) && (rne & 0x7fff) - (wire & 0x7fff) === 1)
    })
    expect(unexplained).toEqual([])
  })
})
