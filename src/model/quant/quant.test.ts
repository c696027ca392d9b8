import { describe, expect, it } from 'vitest'
import { createReferenceEngine } from '../../engine/reference/reference.ts'
import { GOLDEN_IDS } from '../../../testing/models.ts'
import { memorySource } from '../source/byte-source.ts'
import { llama2cModel } from '../../../testing/format-fixtures.ts'
import { loadGguf } from '../formats/gguf.ts'
import { modelToGguf } from '../formats/gguf-writer.ts'
import { loadLlama2c } from '../formats/llama2c.ts'
import type { ModelSlice } from '../model.ts'
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../core/f16.ts'
import { quantizedMatvec } from '../../engine/reference/quant-matvec.ts'
import { GGML_TYPE, dequantize, quantizeQ4_0, quantizeQ4_K, quantizeQ6_K, quantizeQ8_0, quantizeTensor } from './index.ts'
import { makeSyntheticLlama2c } from '../formats/synthetic.ts'

describe('half floats', () => {
  it('fp16 -> fp32 -> fp16 is the identity for every finite bit pattern, and rounding is to nearest even', () => {
    for (let h = 0; h < 65536; h++) {
      if (((h >> 10) & 0x1f) === 31) continue
      expect(f32ToF16(f16ToF32(h))).toBe(h)
    }
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00) // tie -> even (1.0)
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02) // tie -> even (1 + 2^-9)
    expect(f32ToF16(70000)).toBe(0x7c00)
    expect(f32ToF16(2 ** -25)).toBe(0) // half the smallest subnormal rounds to even (0)
    expect(f16ToF32(0x0001)).toBe(2 ** -24)
  })

  it('bf16 keeps the top 16 bits, rounding to nearest even', () => {
    expect(bf16ToF32(f32ToBf16(1.5))).toBe(1.5)
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80) // tie -> even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82)
  })
})

const randomValues = (n: number, seed: number) => {
  let s = seed
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0
    return ((s / 2 ** 32) * 2 - 1) * (1 + (s % 7))
  })
}

describe('block quantization', () => {
  it('Q8_0 and Q4_0 round-trip within half a step of each block, with llama.cpp\'s block layout', () => {
    const x = randomValues(32 * 64, 1)
    // Q8_0 rounds to the nearest of ±127 steps; Q4_0 maps the largest magnitude to -8 and clamps the other side at +7, so its worst case is one step
    for (const [type, quantize, levels, worstSteps] of [[GGML_TYPE.Q8_0, quantizeQ8_0, 127, 0.5], [GGML_TYPE.Q4_0, quantizeQ4_0, 8, 1]] as const) {
      const blocks = quantize(x)
      expect(blocks.byteLength).toBe(64 * (type === GGML_TYPE.Q8_0 ? 34 : 18))
      const y = new Float32Array(x.length)
      dequantize(type, blocks, x.length, y)
      for (let b = 0; b < 64; b++) {
        let amax = 0
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]))
        const step = amax / levels
        for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j] - x[b * 32 + j])).toBeLessThanOrEqual(step * worstSteps + amax * 2e-3)
      }
    }
    // a hand-made Q4_0 block: d = 0.5, nibbles 0..15 -> (q - 8) * d, low nibbles first
    const block = new Uint8Array(18)
    new DataView(block.buffer).setUint16(0, f32ToF16(0.5), true)
    for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4)
    const out = new Float32Array(32)
    dequantize(GGML_TYPE.Q4_0, block, 32, out)
    expect(Array.from(out.subarray(0, 3))).toEqual([-4, -3.5, -3])
    expect(Array.from(out.subarray(16, 19))).toEqual([3.5, 3, 2.5])
  })

  it('Q4_K and Q6_K (our simple quantizers, llama.cpp\'s block layout) dequantize close to the original', () => {
    const x = randomValues(256 * 8, 2)
    for (const [type, quantize, bytes, tolerance] of [[GGML_TYPE.Q4_K, quantizeQ4_K, 144, 0.09], [GGML_TYPE.Q6_K, quantizeQ6_K, 210, 0.025]] as const) {
      const blocks = quantize(x)
      expect(blocks.byteLength).toBe(8 * bytes)
      const y = new Float32Array(x.length)
      dequantize(type, blocks, x.length, y)
      let worst = 0
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i] - x[i]) / 7) // values span ±7
      expect(worst).toBeLessThan(tolerance)
    }
  })

  it('the quantized matvec twin equals a matvec over the dequantized weights', () => {
    const w = randomValues(24 * 96, 3)
    const x = randomValues(96, 4)
    for (const type of ['q8_0', 'q4_0'] as const) {
      const q = quantizeTensor('w', [24, 96], w, type)
      const deq = new Float32Array(w.length)
      dequantize(type === 'q8_0' ? GGML_TYPE.Q8_0 : GGML_TYPE.Q4_0, q.blocks, w.length, deq)
      const got = new Float32Array(24)
      quantizedMatvec(got, x, q)
      for (let r = 0; r < 24; r++) {
        let want = 0
        for (let j = 0; j < 96; j++) want += deq[r * 96 + j] * x[j]
        expect(got[r]).toBeCloseTo(want, 3)
      }
    }
  })
})

/**
 * Teacher-forced comparison: run a sequence through the F32 and the quantized model and compare
 * the logits at every position: the relative RMS error ||quant - f32|| / ||f32 - mean(f32)||
 * (mean and worst over positions), and how often the arg-max agrees.
 */
async function compareLogits(f32: ModelSlice, quant: ModelSlice, sequence: number[]) {
  const a = createReferenceEngine(f32)
  const b = createReferenceEngine(quant)
  let worstRelative = 0
  let sumRelative = 0
  let agree = 0
  for (let pos = 0; pos < sequence.length - 1; pos++) {
    const token = Int32Array.of(sequence[pos])
    const at = Int32Array.of(pos)
    const la = Float32Array.from(await a.head(await a.forward(await a.embed(token), at)))
    const lb = await b.head(await b.forward(await b.embed(token), at))
    let mean = 0
    for (const v of la) mean += v / la.length
    let spread = 0
    let diff = 0
    let argA = 0, argB = 0
    for (let i = 0; i < la.length; i++) {
      spread += (la[i] - mean) ** 2
      diff += (la[i] - lb[i]) ** 2
      if (la[i] > la[argA]) argA = i
      if (lb[i] > lb[argB]) argB = i
    }
    worstRelative = Math.max(worstRelative, Math.sqrt(diff / spread))
    sumRelative += Math.sqrt(diff / spread)
    agree += Number(argA === argB)
  }
  return { meanRelative: sumRelative / (sequence.length - 1), worstRelative, top1: agree / (sequence.length - 1) }
}

describe('quantized models against F32 (stated tolerances)', () => {
  // mean relative RMS logit error over the teacher-forced positions; measured values are printed
  const TOLERANCE = { Q8_0: 0.02, Q4_0: 0.25 }
  // random weights have no structure for quantization to preserve: looser bounds
  const SYNTHETIC_TOLERANCE = { Q8_0: 0.025, Q4_0: 0.35, Q4_K: 0.35, Q6_K: 0.09 }
  const MIN_TOP1 = { Q8_0: 0.95, Q4_0: 0.75 }
  const report = (what: string, type: string, tolerance: number, r: { meanRelative: number; worstRelative: number; top1: number }, positions: number) =>
    console.log(`${what} ${type}: logit error ${(r.meanRelative * 100).toFixed(2)}% relative RMS on average (tolerance ${tolerance * 100}%), worst position ${(r.worstRelative * 100).toFixed(1)}%; top-1 agreement with F32 ${(r.top1 * 100).toFixed(1)}% over ${positions} positions`)

  it.each(['Q8_0', 'Q4_0'] as const)('stories260K %s: logits within tolerance of F32, top-1 agreement reported', async (type) => {
    const f32 = await llama2cModel('stories260K')
    const quant = await loadGguf(memorySource(modelToGguf(f32, { type })))
    const r = await compareLogits(f32, quant, GOLDEN_IDS)
    report('stories260K', type, TOLERANCE[type], r, GOLDEN_IDS.length - 1)
    expect(r.meanRelative).toBeLessThan(TOLERANCE[type])
    expect(r.top1).toBeGreaterThanOrEqual(MIN_TOP1[type])
  })

  it.each(['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'] as const)('a 256-wide synthetic model in %s: logits within tolerance, top-1 agreement reported', async (type) => {
    const shape = { dim: 256, hiddenDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 64, sharedClassifier: false }
    const f32 = await loadLlama2c(memorySource(makeSyntheticLlama2c(shape, 77)))
    const quant = await loadGguf(memorySource(modelToGguf(f32, { type })))
    const sequence = Array.from({ length: 33 }, (_, i) => (i * 37 + 1) % 512)
    const r = await compareLogits(f32, quant, sequence)
    report('synthetic 256-wide', type, SYNTHETIC_TOLERANCE[type], r, sequence.length - 1)
    expect(r.meanRelative).toBeLessThan(SYNTHETIC_TOLERANCE[type])
  })
})
