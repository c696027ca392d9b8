import { describe, expect, it } from 'vitest'
import { createRng } from '../core/rng.ts'
import { memorySource } from '../model/source/byte-source.ts'
import { loadLlama2c } from '../model/formats/llama2c.ts'
import type { ModelSlice } from '../model/model.ts'
import { quantizeSlice } from '../model/quant/index.ts'
import { makeSyntheticLlama2c, withFamilyFeatures } from '../model/formats/synthetic.ts'
import { loadStories } from '../../testing/models.ts'
import { relativeError } from '../../testing/compare.ts'
import type { BatchEngine, Engine } from './engine.ts'
import { createReferenceBatchEngine, createReferenceEngine } from './reference/reference.ts'
import { createWasmBatchEngine } from './wasm/index.ts'
import { createWasmQuantEngine } from './wasm/quant-engine.ts'

/**
 * Batched forward (rows of several sessions in one call, each with its own KV cache slot) against
 * the unbatched engine of the same backend, one session at a time, row for row. Tolerance: max
 * |batched - alone| over max |alone| per session; the same arithmetic in a different row order, so
 * 1e-6 (float32 lanes of the kernels can sum rows in another order).
 */
const TOLERANCE = 1e-6

const layersOnly = (m: ModelSlice): ModelSlice => ({ ...m, spec: { layers: { start: 0, end: m.config.nLayers }, embedding: false, head: false } })

interface Session {
  inputs: Float32Array // (length, dim) fresh random hidden states
  length: number
  next: number // next position to send
  slot: number
  alone: Engine // the same backend, this session only
  expected: Float32Array // (length, dim) the alone engine's outputs
}


/**
 * Sessions of different lengths at different positions: each call takes a prefill chunk of one
 * session and one row of each other (rows interleaved), a session whose rows run out is closed
 * mid-way and a new one opens in its slot's place.
 */
async function compareBatched(batch: BatchEngine, alone: () => Promise<Engine>, seed: number): Promise<{ error: number; calls: number; maxRowsInCall: number; closedMidway: number }> {
  const c = batch.config
  const rng = createRng(seed)
  const lengths = [37, 9, 23, 5, 30]
  const sessions: Session[] = []
  const open = async (length: number) => {
    const inputs = Float32Array.from({ length: length * c.dim }, () => (rng.nextF32() * 2 - 1))
    const e = await alone()
    // the unbatched reference for this session: a prefill of 3 rows, then one row at a time
    const expected = new Float32Array(length * c.dim)
    for (let p = 0; p < length;) {
      const n = p === 0 ? Math.min(3, length) : 1
      const out = await e.forward(inputs.slice(p * c.dim, (p + n) * c.dim), Int32Array.from({ length: n }, (_, i) => p + i))
      expected.set(out, p * c.dim)
      p += n
    }
    sessions.push({ inputs, length, next: 0, slot: await batch.openCache(length + 3), alone: e, expected })
  }
  for (const l of lengths.slice(0, 3)) await open(l)
  const queued = lengths.slice(3)
  const actual = new Map<Session, Float32Array>()
  let calls = 0
  let maxRowsInCall = 0
  let closedMidway = 0
  while (sessions.some((s) => s.next < s.length)) {
    const rows: { s: Session; pos: number }[] = []
    const live = sessions.filter((s) => s.next < s.length)
    // the first live session sends a chunk of up to 4 rows; the others one row each; interleave them
    const first = live[calls % live.length]
    for (let i = 0; i < 4 && first.next + i < first.length; i++) rows.push({ s: first, pos: first.next + i })
    for (const s of live) if (s !== first) rows.splice(Math.min(rows.length, 1 + (rows.length % 2)), 0, { s, pos: s.next })
    // rows of one slot must rise: order each slot's rows
    const bySlot = new Map<Session, number[]>()
    for (const r of rows) bySlot.set(r.s, [...(bySlot.get(r.s) ?? []), r.pos])
    for (const [s, ps] of bySlot) { ps.sort((a, b) => a - b); let k = 0; for (const r of rows) if (r.s === s) r.pos = ps[k++] }
    const hidden = new Float32Array(rows.length * c.dim)
    rows.forEach((r, i) => hidden.set(r.s.inputs.subarray(r.pos * c.dim, (r.pos + 1) * c.dim), i * c.dim))
    const out = await batch.forwardBatch(hidden, Int32Array.from(rows, (r) => r.s.slot), Int32Array.from(rows, (r) => r.pos))
    calls++
    maxRowsInCall = Math.max(maxRowsInCall, rows.length)
    rows.forEach((r, i) => {
      const a = actual.get(r.s) ?? new Float32Array(r.s.length * c.dim)
      a.set(out.subarray(i * c.dim, (i + 1) * c.dim), r.pos * c.dim)
      actual.set(r.s, a)
    })
    for (const [s, ps] of bySlot) s.next = ps[ps.length - 1] + 1
    for (const s of live) {
      if (s.next === s.length) {
        await batch.closeCache(s.slot) // finished mid-batch: the others go on
        if (queued.length) { closedMidway++; await open(queued.shift()!) }
      }
    }
  }
  let error = 0
  for (const s of sessions) error = Math.max(error, relativeError(actual.get(s)!, s.expected))
  return { error, calls, maxRowsInCall, closedMidway }
}

const deep = () => loadLlama2c(memorySource(makeSyntheticLlama2c({ dim: 64, hiddenDim: 160, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 320, seqLen: 64, sharedClassifier: false }, 7)))

describe('batched forward over many sessions equals each session alone, row for row', () => {
  for (const [name, load] of [['stories260K', loadStories], ['a synthetic GQA model with q/k/v biases', async () => withFamilyFeatures(await deep(), { biasSeed: 3 })]] as const) {
    it(`reference on ${name}`, async () => {
      const m = layersOnly(await load())
      const r = await compareBatched(createReferenceBatchEngine(m), async () => createReferenceEngine(m), 11)
      expect(r.closedMidway).toBe(2)
      expect(r.maxRowsInCall).toBeGreaterThanOrEqual(5)
      expect(r.error).toBeLessThan(TOLERANCE)
    })
    for (const type of ['f32', 'q8_0', 'q4_0'] as const) {
      it(`wasm kernels (${type}) on ${name}`, async () => {
        const m = layersOnly(await load())
        const slice = type === 'f32' ? m : quantizeSlice(m, type)
        const r = await compareBatched(await createWasmBatchEngine(slice), () => createWasmQuantEngine(slice), 12)
        expect(r.closedMidway).toBe(2)
        expect(r.error).toBeLessThan(TOLERANCE)
      })
    }
  }

  it('a sub-range runs only those layers; copyCache carries a prefix into another slot', async () => {
    const m = layersOnly(await loadStories())
    const c = m.config
    const batch = createReferenceBatchEngine(m)
    const rng = createRng(5)
    const x = Float32Array.from({ length: 6 * c.dim }, () => (rng.nextF32() * 2 - 1))
    const a = await batch.openCache(16)
    const first = (await batch.forwardBatch(x, new Int32Array(6).fill(a), Int32Array.from([0, 1, 2, 3, 4, 5]), { start: 1, end: 3 })).slice()
    const ref = createReferenceEngine({ ...m, spec: { ...m.spec, layers: { start: 1, end: 3 } } })
    expect(relativeError(first, await ref.forward(x, Int32Array.from([0, 1, 2, 3, 4, 5])))).toBeLessThan(TOLERANCE)
    // slot b takes a's first 4 positions, then both continue at position 4 with the same row: same output
    const b = await batch.openCache(16)
    await batch.copyCache(a, b, 4)
    const row = x.slice(4 * c.dim, 5 * c.dim)
    const both = await batch.forwardBatch(Float32Array.from([...row, ...row]), Int32Array.from([a, b]), Int32Array.from([4, 4]), { start: 1, end: 3 })
    expect(relativeError(both.slice(c.dim), both.slice(0, c.dim))).toBe(0)
    expect(relativeError(both.slice(0, c.dim), first.slice(4 * c.dim, 5 * c.dim))).toBeLessThan(TOLERANCE)
  })

  it('refuses bad calls with typed errors and keeps serving', async () => {
    const m = layersOnly(await loadStories())
    const c = m.config
    const batch = createReferenceBatchEngine(m, { maxCaches: 2 })
    const a = await batch.openCache(8)
    await batch.openCache(8)
    await expect(batch.openCache(8)).rejects.toMatchObject({ code: 'refused' })
    const x = new Float32Array(2 * c.dim).fill(0.1)
    await expect(batch.forwardBatch(x, Int32Array.from([a, 7]), Int32Array.from([0, 0]))).rejects.toMatchObject({ code: 'bad-argument' })
    await expect(batch.forwardBatch(x, Int32Array.from([a, a]), Int32Array.from([1, 0]))).rejects.toMatchObject({ code: 'bad-argument' })
    await expect(batch.forwardBatch(x, Int32Array.from([a, a]), Int32Array.from([7, 8]))).rejects.toMatchObject({ code: 'context-window' })
    await expect(batch.forwardBatch(x, Int32Array.from([a, a]), Int32Array.from([0, 1]), { start: 0, end: 9 })).rejects.toMatchObject({ code: 'bad-argument' })
    expect((await batch.forwardBatch(x, Int32Array.from([a, a]), Int32Array.from([0, 1]))).length).toBe(2 * c.dim)
  })
})
