import type { LayerRange } from '../../src/core/vocabulary.ts'
import { TabmeshError } from '../../src/core/errors.ts'
import { createRng } from '../../src/core/rng.ts'
import type { BatchEngine } from '../../src/engine/engine.ts'
import { createReferenceBatchEngine } from '../../src/engine/reference/reference.ts'
import type { WebGpuBatchEngine, WebGpuBatchEngineOptions } from '../../src/engine/webgpu/batch-engine.ts'
import { getTensor, type ModelSlice } from '../../src/model/model.ts'

/**
 * The webgpu batch engine (src/engine/webgpu/batch-engine.ts) against the reference batch engine
 * (createReferenceBatchEngine) on the same layers: the same script of calls on both, every output
 * compared row for row. Sessions feed the embeddings of seeded random tokens (teacher-forced), so
 * both engines see the same inputs every call. The script: three sessions of different prompt
 * lengths, prefill chunks of one mixed with single decode rows of others in one call, the rows of a
 * call in a seeded random interleaving (each session's in rising positions); calls of one row and
 * of one session's rows (the decode and prefill plans, at a slot's base); one session's slot closed
 * mid-way and a new session opened (into the freed slot) while the others go on; a call split into
 * two sub-ranges of the held layers; one session going to the last position of the context;
 * copyCache of a prefix into a new slot, continued in the same call as the original rolled back to
 * the same prefix and fed the same rows; every slot open, so one more is refused; and bad calls.
 */

export interface BatchOptions {
  /** The slice the webgpu engine runs and the one the reference runs (numerically equal weights). */
  gpu: ModelSlice
  reference: ModelSlice
  /** The layers both hold (default all). */
  layers?: LayerRange
  seed: number
  maxCaches: number // 4 or more: the script opens four sessions
  engine?: Omit<WebGpuBatchEngineOptions, 'device' | 'maxCaches'>
}

export interface BatchRun {
  calls: number
  rows: number
  /** Calls whose rows belong to more than one slot. */
  mixedCalls: number
  /** Sub-range calls (each half of a split call). */
  subRangeCalls: number
  /** Largest |gpu - reference| over every output value, and the largest |reference|. */
  maxHiddenDiff: number
  maxHidden: number
  /** The last position a session reached, and the context. */
  lastPosition: number
  seqLen: number
  /** The slot a session opened after another closed got: the closed one's (reused). */
  reusedSlot: boolean
  /** copyCache: the copied slot continued against the original rolled back and continued, in one call (bitwise: 0). */
  copyVsOriginal: number
  copyRows: number
  /** Opening a slot with every slot open, and again after one closed. */
  refused?: string
  openAfterClose: boolean
  cacheBytes: { reported: number; expected: number }
  errors: { closedSlot?: string; pastLength?: string; falling?: string; badRange?: string }
  /** Buffers and bind groups the device made after the engine was made (none). */
  createdAfterEngine: { buffers: number; bindGroups: number }
}

interface Session {
  name: string
  tokens: Int32Array // (seqLen) the token at each position
  next: number // next position to write
  gpu: number // slot in each engine
  ref: number
}

const codeOf = (err: unknown) => (err instanceof TabmeshError ? err.code : `untyped: ${(err as Error).message}`)

type BatchFactory = (slice: ModelSlice, options: WebGpuBatchEngineOptions) => Promise<WebGpuBatchEngine>

export async function runBatch(device: GPUDevice, createBatch: BatchFactory, o: BatchOptions): Promise<BatchRun> {
  const c = o.reference.config
  const held = o.layers ?? { start: 0, end: c.nLayers }
  const layersOnly = (m: ModelSlice): ModelSlice => ({ ...m, spec: { layers: held, embedding: false, head: false } })
  const embedding = getTensor(o.reference, 'token_embedding').data
  const rng = createRng(o.seed)
  const randInt = (n: number) => Math.floor(rng.nextF32() * n) % n

  const counts = { buffers: 0, bindGroups: 0 }
  const createBuffer = device.createBuffer, createBindGroup = device.createBindGroup
  const gpu = await createBatch(layersOnly(o.gpu), { ...o.engine, device, maxCaches: o.maxCaches })
  const ref: BatchEngine = createReferenceBatchEngine(layersOnly(o.reference), { maxCaches: o.maxCaches })
  device.createBuffer = (desc) => { counts.buffers++; return createBuffer.call(device, desc) }
  device.createBindGroup = (desc) => { counts.bindGroups++; return createBindGroup.call(device, desc) }
  try {
    const stats = { calls: 0, rows: 0, mixedCalls: 0, subRangeCalls: 0, maxHiddenDiff: 0, maxHidden: 0, lastPosition: 0 }
    const open = async (name: string, maxLength = c.seqLen): Promise<Session> => {
      const tokens = Int32Array.from({ length: c.seqLen }, () => randInt(c.vocabSize))
      return { name, tokens, next: 0, gpu: await gpu.openCache(maxLength), ref: await ref.openCache(maxLength) }
    }
    const close = async (s: Session) => {
      await gpu.closeCache(s.gpu)
      await ref.closeCache(s.ref)
    }

    /** The rows of `parts` (session, row count) in a seeded random interleaving, each session's in order. */
    const rowsOf = (parts: [Session, number][]) => {
      const left = parts.map(([s, n]) => ({ s, n, at: s.next }))
      const rows: { s: Session; pos: number }[] = []
      for (let total = parts.reduce((a, [, n]) => a + n, 0); total > 0; total--) {
        const live = left.filter((p) => p.n > 0)
        const p = live[randInt(live.length)]
        rows.push({ s: p.s, pos: p.at++ })
        p.n--
      }
      for (const [s, n] of parts) s.next += n
      return rows
    }
    const compare = (a: Float32Array, b: Float32Array) => {
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i])
        if (!(d <= stats.maxHiddenDiff)) stats.maxHiddenDiff = Number.isNaN(d) ? Infinity : d
        stats.maxHidden = Math.max(stats.maxHidden, Math.abs(b[i]))
      }
    }
    /** One forwardBatch on both engines over `rows` (range: a sub-range), compared; returns the webgpu output. */
    const run = async (rows: { s: Session; pos: number }[], range?: LayerRange, input?: { gpu: Float32Array; ref: Float32Array }) => {
      const n = rows.length
      const positions = Int32Array.from(rows, (r) => r.pos)
      let hidden = input?.ref
      if (!hidden) {
        hidden = new Float32Array(n * c.dim)
        rows.forEach((r, i) => hidden!.set(embedding.subarray(r.s.tokens[r.pos] * c.dim, (r.s.tokens[r.pos] + 1) * c.dim), i * c.dim))
      }
      const a = (await gpu.forwardBatch(input?.gpu ?? hidden, Int32Array.from(rows, (r) => r.s.gpu), positions, range)).slice()
      const b = (await ref.forwardBatch(hidden, Int32Array.from(rows, (r) => r.s.ref), positions, range)).slice()
      compare(a, b)
      stats.calls++
      stats.rows += n
      if (new Set(rows.map((r) => r.s)).size > 1) stats.mixedCalls++
      if (range) stats.subRangeCalls++
      for (const r of rows) stats.lastPosition = Math.max(stats.lastPosition, r.pos)
      return { gpu: a, ref: b }
    }
    const call = (parts: [Session, number][]) => run(rowsOf(parts))

    const A = await open('A'), B = await open('B', 40), C = await open('C')
    await call([[A, 7], [B, 1]]) // a prefill chunk and a first row
    await call([[B, 4], [C, 5], [A, 1]])
    await call([[C, 1], [A, 1], [B, 1]]) // decode rows of three sessions
    await call([[A, 1]]) // one row: the decode plan
    await call([[C, 6]]) // one session's rows: the prefill plan, at C's base
    await call([[B, 3], [A, 2]])
    // B's session ends while the others go on; D gets its slot (and whatever B left there)
    const bSlot = B.gpu
    await close(B)
    const D = await open('D')
    const reusedSlot = D.gpu === bSlot
    await call([[A, 1], [C, 1], [D, 3]])
    await call([[D, 1]])
    // one call as two sub-ranges of the held layers, the second fed the first's output
    const mid = held.start + Math.max(1, Math.floor((held.end - held.start) / 2))
    const split = rowsOf([[A, 2], [D, 1], [C, 1]])
    const first = await run(split, { start: held.start, end: mid })
    await run(split, { start: mid, end: held.end }, first)
    // A reads on to the last position of the context in calls of many sizes, with others' decode rows in them
    const chunks = [13, 1, 29, 2, 62, 5, 64, 3]
    for (let i = 0; A.next < c.seqLen; i++) {
      const n = Math.min(chunks[i % chunks.length], c.seqLen - A.next)
      const parts: [Session, number][] = [[A, n]]
      if (n <= 62 && C.next < c.seqLen / 2) parts.push([C, 1])
      if (n <= 62 && D.next < c.seqLen / 2) parts.push([D, 1])
      await call(parts)
    }

    // copyCache: C's first `prefix` positions into E; E and C (rolled back to the prefix) then read the same new rows
    const prefix = C.next - 3
    const E = await open('E')
    await gpu.copyCache(C.gpu, E.gpu, prefix)
    await ref.copyCache(C.ref, E.ref, prefix)
    for (let p = prefix; p < prefix + 4; p++) C.tokens[p] = randInt(c.vocabSize)
    E.tokens.set(C.tokens)
    E.next = prefix
    C.next = prefix
    const copyRows = rowsOf([[E, 4], [C, 4]])
    const copied = await run(copyRows)
    let copyVsOriginal = 0
    const eRows = copyRows.flatMap((r, i) => (r.s === E ? [i] : []))
    const cRows = copyRows.flatMap((r, i) => (r.s === C ? [i] : []))
    eRows.forEach((ei, j) => {
      for (let i = 0; i < c.dim; i++) copyVsOriginal = Math.max(copyVsOriginal, Math.abs(copied.gpu[ei * c.dim + i] - copied.gpu[cRows[j] * c.dim + i]))
    })
    await call([[E, 2], [C, 1], [D, 1]])

    // every slot open: one more is refused; a closed slot cannot be used; closing one lets the next open
    const errors: BatchRun['errors'] = {}
    const attempt = async (key: keyof BatchRun['errors'], f: () => Promise<unknown>) => {
      try {
        await f()
      } catch (err) {
        errors[key] = codeOf(err)
      }
    }
    const extra: number[] = []
    let refused: string | undefined
    for (let i = 0; i < o.maxCaches + 1; i++) {
      try {
        extra.push(await gpu.openCache(8))
      } catch (err) {
        refused = codeOf(err)
        break
      }
    }
    const opened = 4 + extra.length // A, C, D, E and the extra ones
    const one = new Float32Array(c.dim).fill(0.1), two = new Float32Array(2 * c.dim).fill(0.1)
    await gpu.closeCache(E.gpu)
    await attempt('closedSlot', () => gpu.forwardBatch(one, Int32Array.of(E.gpu), Int32Array.of(0)))
    let openAfterClose = false
    try {
      extra.push(await gpu.openCache(8))
      openAfterClose = true
    } catch { /* reported */ }

    // bad calls: typed errors, and the engine goes on
    await attempt('pastLength', () => gpu.forwardBatch(one, Int32Array.of(extra[extra.length - 1]), Int32Array.of(8)))
    await attempt('falling', () => gpu.forwardBatch(two, Int32Array.of(D.gpu, D.gpu), Int32Array.of(5, 4)))
    await attempt('badRange', () => gpu.forwardBatch(one, Int32Array.of(D.gpu), Int32Array.of(0), { start: held.start, end: held.end + 1 }))
    await call([[C, 1], [D, 2]])

    const layers = held.end - held.start
    return {
      ...stats,
      seqLen: c.seqLen,
      reusedSlot,
      copyVsOriginal,
      copyRows: eRows.length,
      refused: opened === o.maxCaches ? refused : `opened ${opened} of ${o.maxCaches} before: ${refused}`,
      openAfterClose,
      cacheBytes: { reported: gpu.cacheBytes(c.seqLen), expected: 2 * layers * c.seqLen * c.kvDim * 4 },
      errors,
      createdAfterEngine: { ...counts },
    }
  } finally {
    device.createBuffer = createBuffer
    device.createBindGroup = createBindGroup
    gpu.destroy()
  }
}
