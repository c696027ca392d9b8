import { describe, expect, it } from 'vitest'
import { createRng } from '../core/rng.ts'
import { createFingerprinter, FINGERPRINT_SIZE, maxDistance, rowDistance } from './fingerprint.ts'
import { checkRateFor, FAIL_PENALTY, MIN_CHECK_RATE, memoryReputationStore, openReputation, REVOKE_BELOW } from './reputation.ts'
import { honestTolerance, TOLERANCE_CPU, TOLERANCE_MIXED_QUANT, TOLERANCE_WEBGPU } from './tolerances.ts'

describe('fingerprints', () => {
  const rng = createRng(42)
  const gaussian = () => Math.sqrt(-2 * Math.log(Math.max(rng.nextF32(), 1e-7))) * Math.cos(2 * Math.PI * rng.nextF32())
  it('estimate the relative distance of two rows within a factor of 2, in any direction, on fresh random rows', () => {
    for (const dim of [64, 288, 2048]) {
      const f = createFingerprinter(dim, 7 + dim)
      for (let trial = 0; trial < 50; trial++) {
        const a = Float32Array.from({ length: dim }, gaussian)
        const b = a.slice()
        const share = 10 ** -(1 + 4 * rng.nextF32()) // 1e-5 .. 1e-1 of the norm
        // the perturbation hits a few small components only, the case top-k values would miss
        const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0))
        const hit = Array.from({ length: 4 }, () => Math.floor(rng.nextF32() * dim))
        for (const d of hit) b[d] += (share * norm) / 2
        const truth = Math.sqrt(hit.reduce((s, d, i) => s + (hit.indexOf(d) === i ? (b[d] - a[d]) ** 2 : 0), 0)) / norm
        const estimate = rowDistance(f.sketch(b), f.sketch(a), 0)
        expect(estimate / truth).toBeGreaterThan(0.5)
        expect(estimate / truth).toBeLessThan(2)
      }
    }
  })
  it('are m floats per row, and identical rows are at distance 0', () => {
    const f = createFingerprinter(64, 1)
    const rows = Float32Array.from({ length: 3 * 64 }, gaussian)
    const s = f.sketch(rows)
    expect(s.length).toBe(3 * FINGERPRINT_SIZE)
    expect(maxDistance(s, f.sketch(rows.slice()))).toEqual({ distance: 0, row: 0 })
    expect(maxDistance(s, s.subarray(0, 2 * FINGERPRINT_SIZE)).distance).toBe(Infinity)
  })
})

describe('tolerances', () => {
  it('per pair: CPU backends tight, WebGPU wider, F32 against Q8_0 widest, f16 adds its rounding', () => {
    expect(honestTolerance({ backend: 'ref' }, { backend: 'wasm' })).toBe(TOLERANCE_CPU)
    expect(honestTolerance({ backend: 'webgpu' }, { backend: 'wasm' })).toBe(TOLERANCE_WEBGPU)
    expect(honestTolerance({ backend: 'ref', weights: 'f32' }, { backend: 'ref', weights: 'q8_0' })).toBe(TOLERANCE_MIXED_QUANT)
    expect(honestTolerance({ backend: 'ref' }, { backend: 'ref' }, 'f16')).toBeGreaterThan(TOLERANCE_CPU)
  })
})

describe('reputation', () => {
  it('is slow to earn, fast to lose; the check rate falls with it to a floor, never to zero', async () => {
    const r = await openReputation(memoryReputationStore())
    expect(r.checkRate('p')).toBe(1)
    for (let i = 0; i < 500; i++) r.passed('p')
    expect(r.checkRate('p')).toBeCloseTo(MIN_CHECK_RATE, 5)
    expect(checkRateFor(1e9)).toBe(MIN_CHECK_RATE)
    r.failed('p')
    expect(r.score('p')).toBe(100 - FAIL_PENALTY)
    r.failed('p')
    r.failed('p')
    expect(r.score('p')).toBeLessThanOrEqual(REVOKE_BELOW)
    expect(r.revoked('p')).toBe(true)
    expect(r.checkRate('p')).toBe(1)
  })
  it('persists through its store and ignores malformed records', async () => {
    const store = memoryReputationStore()
    const a = await openReputation(store)
    a.passed('x')
    a.failed('y')
    await new Promise((r) => setTimeout(r, 0))
    const junk = { load: async () => [...(await store.load()), null, { peerId: 3 }, { peerId: 'z', score: NaN }] as never, save: store.save }
    const b = await openReputation(junk)
    expect(b.get('x')).toMatchObject({ passed: 1, score: 1 })
    expect(b.get('y')).toMatchObject({ failed: 1, score: -FAIL_PENALTY })
    expect(b.list().map((p) => p.peerId).sort()).toEqual(['x', 'y'])
  })
})
