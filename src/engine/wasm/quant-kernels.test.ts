import { describe, expect, it } from 'vitest'
import { createRng, type Rng } from '../../core/rng.ts'
import { dequantizeTensor, QUANT_BLOCK_BYTES, quantizeTensor, type QuantizedTensor, type QuantType } from '../../model/quant/index.ts'
import { quantizedMatvec } from '../reference/quant-matvec.ts'
import { createQuantKernels, loadQuantKernels } from './quant-kernels.ts'
import { relativeError } from '../../../testing/compare.ts'

/**
 * Tolerance against quantizedMatvec (the TypeScript twin), as max |kernel - twin| over max |twin|
 * of one product: the twin adds in float64, the kernel in float32 lanes (a tree over each block,
 * then block by block), so they differ by float32 rounding of sums of up to a few thousand terms.
 */
const TOLERANCE = 1e-5

const SHAPES: [number, number][] = [[1, 32], [7, 64], [33, 96], [160, 64], [64, 160 + 32], [300, 288], [17, 1024]]

const randoms = (rng: Rng, n: number, scale = 1) => Float32Array.from({ length: n }, () => (rng.nextF32() * 2 - 1) * scale)

/** The twin, row by row: out (rows, d). */
function twin(w: QuantizedTensor, x: Float32Array, rows: number): Float32Array {
  const [d, n] = w.shape
  const out = new Float32Array(rows * d)
  for (let r = 0; r < rows; r++) quantizedMatvec(out.subarray(r * d, (r + 1) * d), x.subarray(r * n, (r + 1) * n), w)
  return out
}

/** Blocks of random bytes (every code and nibble pattern) with scales from `scales` (f16 bits). */
function randomBlocks(rng: Rng, type: QuantType, shape: [number, number], scales: number[]): QuantizedTensor {
  const blockBytes = QUANT_BLOCK_BYTES[type]
  const count = (shape[0] * shape[1]) / 32
  const blocks = new Uint8Array(count * blockBytes)
  for (let i = 0; i < blocks.length; i++) blocks[i] = rng.nextU32() & 0xff
  for (let b = 0; b < count; b++) {
    const h = scales[rng.nextU32() % scales.length]
    blocks[b * blockBytes] = h & 0xff
    blocks[b * blockBytes + 1] = h >> 8
  }
  return { name: `random ${type}`, shape, type, blocks }
}

describe('Q8_0 / Q4_0 / f32 SIMD kernels (AssemblyScript) against quantizedMatvec and plain loops', () => {
  for (const type of ['q8_0', 'q4_0'] as const) {
    it(`${type}: ${SHAPES.length} shapes x rows 1, 3, 64 on fresh random weights and inputs, within ${TOLERANCE}; a row gives the same bits alone or among others`, async () => {
      const k = await loadQuantKernels()
      const rng = createRng(type === 'q8_0' ? 8 : 4)
      for (const [d, n] of SHAPES) {
        const w = quantizeTensor(`w ${d}x${n}`, [d, n], randoms(rng, d * n, 0.5), type)
        const m = k.upload(w)
        expect(k.upload(w)).toBe(m) // once per tensor
        const single: Float32Array[] = []
        for (const rows of [1, 3, 64]) {
          const x = randoms(rng, rows * n, 2)
          const out = new Float32Array(rows * d).fill(NaN)
          k.matvec(m, x, rows, out)
          expect(relativeError(out, twin(w, x, rows)), `${d}x${n}, ${rows} rows`).toBeLessThan(TOLERANCE)
          // the same rows one at a time: identical, so prefill and decode agree exactly
          const one = new Float32Array(d)
          for (let r = 0; r < rows; r++) {
            k.matvec(m, x.subarray(r * n, (r + 1) * n), 1, one)
            expect(one).toEqual(out.subarray(r * d, (r + 1) * d))
          }
          single.push(out)
        }
        expect(single[0].some((v) => v !== 0)).toBe(true)
      }
    })

    it(`${type}: every code pattern, and f16 scales from subnormal to the largest normal, negative and zero`, async () => {
      const k = await loadQuantKernels()
      const rng = createRng(type === 'q8_0' ? 88 : 44)
      const scales = [0x0001, 0x0200, 0x03ff, 0x0400, 0x3c00, 0x2e66, 0xa8f5, 0x7bff, 0xfbff, 0x8000, 0x0000, 0x83ff]
      for (const [d, n] of [[40, 256], [3, 64]] as [number, number][]) {
        const w = randomBlocks(rng, type, [d, n], scales)
        for (const rows of [1, 3]) {
          const x = randoms(rng, rows * n)
          const out = new Float32Array(rows * d)
          k.matvec(k.upload(w), x, rows, out)
          const expected = twin(w, x, rows)
          // per output, against the size of its own terms (outputs here range over 10 orders of magnitude)
          const magnitude = termMagnitudes(w, x, rows)
          for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - expected[i])).toBeLessThanOrEqual(TOLERANCE * magnitude[i])
          expect(out.some((v) => v !== 0)).toBe(true)
        }
      }
    })
  }

  it(`f32: odd widths x rows 1, 3, 64 against a float64 loop, within ${TOLERANCE}; a row gives the same bits alone or among others`, async () => {
    const k = await loadQuantKernels()
    const rng = createRng(32)
    for (const [d, n] of [[1, 1], [5, 7], [64, 172], [33, 100], [300, 288], [9, 1027]] as [number, number][]) {
      const w = randoms(rng, d * n)
      const m = k.uploadF32(`w ${d}x${n}`, w, d, n)
      expect(k.uploadF32('again', w, d, n)).toBe(m)
      for (const rows of [1, 3, 64]) {
        const x = randoms(rng, rows * n, 2)
        const out = new Float32Array(rows * d).fill(NaN)
        k.matvec(m, x, rows, out)
        const expected = new Float32Array(rows * d)
        for (let r = 0; r < rows; r++) {
          for (let i = 0; i < d; i++) {
            let sum = 0
            for (let j = 0; j < n; j++) sum += w[i * n + j] * x[r * n + j]
            expected[r * d + i] = sum
          }
        }
        expect(relativeError(out, expected), `${d}x${n}, ${rows} rows`).toBeLessThan(TOLERANCE)
        const one = new Float32Array(d)
        for (let r = 0; r < rows; r++) {
          k.matvec(m, x.subarray(r * n, (r + 1) * n), 1, one)
          expect(one).toEqual(out.subarray(r * d, (r + 1) * d))
        }
      }
    }
    expect(() => k.uploadF32('short', new Float32Array(10), 3, 4)).toThrow(expect.objectContaining({ code: 'model-mismatch' }))
  })

  it('the shared-memory build (the one helper threads run) gives the same bits as the plain one', async () => {
    const plain = await loadQuantKernels()
    const shared = await createQuantKernels({ shared: true, helpers: 0 })
    expect(shared.memory.buffer).toBeInstanceOf(SharedArrayBuffer)
    expect(plain.memory.buffer).toBeInstanceOf(ArrayBuffer)
    expect(shared.threads).toBe(1)
    const rng = createRng(77)
    for (const type of ['q8_0', 'q4_0', 'f32'] as const) {
      const [d, n] = [96, 320]
      const values = randoms(rng, d * n)
      const w = type === 'f32' ? undefined : quantizeTensor(type, [d, n], values, type)
      for (const rows of [1, 5]) {
        const x = randoms(rng, rows * n)
        const a = new Float32Array(rows * d), b = new Float32Array(rows * d)
        plain.matvec(w ? plain.upload(w) : plain.uploadF32('f32', values, d, n), x, rows, a)
        shared.matvec(w ? shared.upload(w) : shared.uploadF32('f32', values, d, n), x, rows, b)
        expect(b).toEqual(a)
      }
    }
  })

  it('keeps a matrix as its blocks: kernel memory grows by the block bytes, not 4 bytes a weight', async () => {
    const k = await loadQuantKernels()
    const rng = createRng(5)
    const big = quantizeTensor('big', [2048, 1024], randoms(rng, 2048 * 1024), 'q4_0')
    const before = k.memory.buffer.byteLength
    const held = k.weightBytes
    k.upload(big)
    expect(k.weightBytes - held).toBe(big.blocks.byteLength)
    const growth = k.memory.buffer.byteLength - before
    expect(growth).toBeLessThanOrEqual(big.blocks.byteLength + 65536)
    expect(growth).toBeLessThan(0.2 * 4 * 2048 * 1024)
  })

  it('refuses blocks that do not match their shape, and calls with too little input or output, with typed errors', async () => {
    const k = await loadQuantKernels()
    const w = quantizeTensor('layers.3.wq', [4, 64], new Float32Array(256), 'q8_0')
    expect(() => k.upload({ ...w, blocks: w.blocks.subarray(1) })).toThrow(expect.objectContaining({ code: 'model-format', message: expect.stringMatching(/layers\.3\.wq/) }))
    expect(() => k.upload({ ...w, shape: [4, 48] })).toThrow(expect.objectContaining({ code: 'model-format' }))
    expect(() => k.upload({ ...w, type: 'q5_0' as QuantType })).toThrow(expect.objectContaining({ code: 'model-format' }))
    const m = k.upload(w)
    expect(() => k.matvec(m, new Float32Array(63), 1, new Float32Array(4))).toThrow(expect.objectContaining({ code: 'bad-argument' }))
    expect(() => k.matvec(m, new Float32Array(128), 2, new Float32Array(7))).toThrow(expect.objectContaining({ code: 'bad-argument' }))
    expect(() => k.matvec(m, new Float32Array(128), 0, new Float32Array(8))).toThrow(expect.objectContaining({ code: 'bad-argument' }))
  })
})

/** Per output, sum_j |W_ij x_j|: the size of the terms a float32 sum rounds, for an error bound. */
function termMagnitudes(w: QuantizedTensor, x: Float32Array, rows: number): Float64Array {
  const [d, n] = w.shape
  const values = dequantizeTensor(w) // (d, n)
  const out = new Float64Array(rows * d)
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < d; i++) {
      let sum = 0
      for (let j = 0; j < n; j++) sum += Math.abs(values[i * n + j] * x[r * n + j])
      out[r * d + i] = sum
    }
  }
  return out
}
