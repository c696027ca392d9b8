import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fuzzParams } from '../../testing/fuzz.ts'
import { TabmeshError } from '../core/errors.ts'
import { auditEntryHash, canonicalJson, GENESIS_HASH, memoryAuditStore, openAuditLog, verifyAuditChain, type AuditEntry, type AuditExport, type AuditKind } from './audit.ts'

const KINDS: AuditKind[] = ['session', 'hop', 'check', 'verdict', 'ban']

/** A log of `n` entries written by concurrent append calls, as a JSON round trip of its export. */
async function chainOf(n: number): Promise<AuditExport> {
  let t = 1_700_000_000_000
  const log = await openAuditLog(memoryAuditStore(), { now: () => t++ })
  await Promise.all(Array.from({ length: n }, (_, i) => log.append(KINDS[i % KINDS.length], {
    peerId: `12D3KooW${i}`, layers: { start: i % 4, end: i % 4 + 2 }, positions: [i * 8, i * 8 + 8], modelId: 'stories260K', outcome: i % 7 ? 'passed' : 'failed',
  })))
  return JSON.parse(JSON.stringify(log.export()))
}

const problemOf = async (input: unknown) => {
  const r = await verifyAuditChain(input)
  if (r.ok) throw new Error('expected a problem')
  return r.problem
}

describe('canonicalJson', () => {
  it('sorts keys at every depth, keeps array order, drops undefined as JSON does', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' }, u: undefined })).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}')
    expect(canonicalJson([undefined, null, true])).toBe('[null,null,true]')
  })

  it('rejects non-finite numbers, bigints and cycles with bad-argument', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    for (const bad of [{ x: NaN }, { x: [Infinity] }, { x: -Infinity }, { x: 1n }, cyclic]) {
      expect(() => canonicalJson(bad)).toThrow(TabmeshError)
      try { canonicalJson(bad) } catch (e) { expect((e as TabmeshError).code).toBe('bad-argument') }
    }
  })
})

describe('audit chain', () => {
  it('50 entries appended concurrently get consecutive seqs and a chain that verifies', async () => {
    const exp = await chainOf(50)
    expect(exp.entries.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(exp.entries[0].prev).toBe(GENESIS_HASH)
    for (let i = 1; i < 50; i++) expect(exp.entries[i].prev).toBe(exp.entries[i - 1].hash)
    expect(await verifyAuditChain(exp)).toEqual({ ok: true, entries: 50, head: exp.entries[49].hash })
    expect(exp.head).toBe(exp.entries[49].hash)
  })

  it('an empty log verifies with the zero head', async () => {
    const log = await openAuditLog()
    expect(log.head()).toBe(GENESIS_HASH)
    expect(await verifyAuditChain(log.export())).toEqual({ ok: true, entries: 0, head: GENESIS_HASH })
  })

  it('finds a changed data field and names the entry', async () => {
    const exp = await chainOf(50)
    exp.entries[17].data.outcome = 'passed-by-a-liar'
    const p = await problemOf(exp)
    expect(p).toMatchObject({ kind: 'tampered', index: 17, seq: 17 })
    expect(p.message).toBe('entry 17 (seq 17) was changed after it was written: its hash does not match its content')
  })

  it('finds a rewritten entry whose own hash was recomputed: the next entry no longer links to it', async () => {
    const exp = await chainOf(10)
    const e = exp.entries[4]
    e.data.outcome = 'forged'
    e.hash = await auditEntryHash(e)
    expect(await problemOf(exp)).toMatchObject({ kind: 'tampered', index: 5, seq: 5 })
  })

  it('finds an entry removed in the middle', async () => {
    const exp = await chainOf(50)
    exp.entries.splice(20, 1)
    const p = await problemOf(exp)
    expect(p).toMatchObject({ kind: 'removed', index: 20, seq: 21 })
    expect(p.message).toMatch(/entry 20 \(seq 21\) does not follow entry 19 \(seq 19\): the entry between them \(seq 20\) was removed/)
  })

  it('finds entries removed at the start', async () => {
    const exp = await chainOf(50)
    exp.entries.splice(0, 3)
    const p = await problemOf(exp)
    expect(p).toMatchObject({ kind: 'removed', index: 0, seq: 3 })
    expect(p.message).toMatch(/beginning of the log was cut/)
  })

  it('finds entries removed at the end (the head no longer matches)', async () => {
    const exp = await chainOf(50)
    exp.entries.splice(48, 2)
    const p = await problemOf(exp)
    expect(p).toMatchObject({ kind: 'head-mismatch', index: 48, seq: undefined })
    expect(p.message).toMatch(/entry 47 \(seq 47\).*removed/)
  })

  it('finds two swapped entries, at the first of them', async () => {
    for (const [a, b] of [[10, 11], [10, 30], [0, 1]]) {
      const exp = await chainOf(50)
      ;[exp.entries[a], exp.entries[b]] = [exp.entries[b], exp.entries[a]]
      const p = await problemOf(exp)
      expect(p).toMatchObject({ kind: 'reordered', index: a, seq: b })
      expect(p.message).toMatch(new RegExp(`^entry ${a} \\(seq ${b}\\) is out of order`))
    }
  })

  it('finds a replayed (duplicated) entry as reordered', async () => {
    const exp = await chainOf(10)
    exp.entries.splice(6, 0, exp.entries[3])
    expect(await problemOf(exp)).toMatchObject({ kind: 'reordered', index: 6, seq: 3 })
  })

  it('names malformed exports without throwing', async () => {
    const good = await chainOf(5)
    const { hash: _, ...noHash } = good.entries[2]
    const cases: [unknown, number][] = [
      [null, -1], [42, -1], ['tabmesh-audit', -1], [[], -1], [{}, -1], [{ format: 'x' }, -1],
      [{ ...good, version: 2 }, -1], [{ ...good, head: 'abc' }, -1], [{ ...good, entries: 'not an array' }, -1], [{ ...good, entries: { 0: good.entries[0] } }, -1],
      [{ ...good, entries: [...good.entries.slice(0, 2), noHash, ...good.entries.slice(3)] }, 2],
      [{ ...good, entries: [good.entries[0], null] }, 1],
      [{ ...good, entries: [{ ...good.entries[0], seq: '0' }] }, 0],
      [{ ...good, entries: [good.entries[0], { ...good.entries[1], kind: 'gossip' }] }, 1],
      [{ ...good, entries: [good.entries[0], { ...good.entries[1], data: [1, 2] }] }, 1],
      [{ ...good, entries: [good.entries[0], good.entries[1], { ...good.entries[2], extra: 1 }] }, 2],
      [{ ...good, entries: [{ ...good.entries[0], at: 'yesterday' }] }, 0],
      [{ ...good, entries: [{ ...good.entries[0], prev: GENESIS_HASH.toUpperCase().replace(/0/g, 'G') }] }, 0],
    ]
    for (const [input, index] of cases) {
      const p = await problemOf(input)
      expect(p.kind, JSON.stringify(input)?.slice(0, 100)).toBe('malformed')
      expect(p.index).toBe(index)
      expect(p.message.length).toBeLessThan(300)
    }
    const missingHash = await problemOf({ ...good, entries: [...good.entries.slice(0, 2), noHash] })
    expect(missingHash.message).toBe('entry 2 (seq 2) has no valid hash (64 lowercase hex digits)')
  })

  it('never throws on random junk, nor on randomly mutated exports', async () => {
    const good = await chainOf(4)
    const hostile = { get format(): string { throw new Error('boom') } }
    const deep = JSON.parse('['.repeat(5000) + ']'.repeat(5000))
    for (const input of [hostile, deep, { ...good, entries: [{ ...good.entries[0], data: { x: deep } }] }, new Proxy({}, { get() { throw new Error('trap') } })]) {
      expect((await verifyAuditChain(input)).ok).toBe(false)
    }
    await fc.assert(fc.asyncProperty(fc.anything({ withNullPrototype: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withMap: true }), async (junk) => {
      const r = await verifyAuditChain(junk)
      expect(r.ok).toBe(false)
    }), { ...fuzzParams(1), numRuns: 300 })
    const paths = ['format', 'version', 'head', 'entries', 'entries.0', 'entries.1.seq', 'entries.1.at', 'entries.2.kind', 'entries.2.data', 'entries.3.prev', 'entries.3.hash', 'entries.0.data.layers']
    await fc.assert(fc.asyncProperty(fc.constantFrom(...paths), fc.jsonValue(), async (path, value) => {
      const copy = JSON.parse(JSON.stringify(good))
      const keys = path.split('.')
      let at = copy
      for (const k of keys.slice(0, -1)) at = at[k]
      at[keys.at(-1)!] = value
      const r = await verifyAuditChain(copy)
      if (JSON.stringify(copy) !== JSON.stringify(good)) expect(r.ok).toBe(false)
    }), { ...fuzzParams(2), numRuns: 300 })
  })
})

describe('openAuditLog', () => {
  it('re-opens a store and continues its chain', async () => {
    const store = memoryAuditStore()
    const first = await openAuditLog(store)
    await first.append('session', { modelId: 'stories260K', peers: ['a', 'b'] })
    await first.append('hop', { peerId: 'a', layers: { start: 0, end: 3 } })
    const again = await openAuditLog(store)
    expect(again.loadProblem()).toBeUndefined()
    expect(again.size()).toBe(2)
    expect(again.head()).toBe(first.head())
    const e = await again.append('verdict', { peerId: 'a', outcome: 'passed' })
    expect(e.seq).toBe(2)
    expect(e.prev).toBe(first.head())
    expect(await verifyAuditChain((await openAuditLog(store)).export())).toMatchObject({ ok: true, entries: 3, head: e.hash })
  })

  it('keeps a tampered store but reports it, and appends after its last entry', async () => {
    const exp = await chainOf(6)
    const entries: AuditEntry[] = exp.entries
    entries[2].data.peerId = 'someone else'
    const log = await openAuditLog(memoryAuditStore(entries))
    expect(log.loadProblem()).toMatchObject({ kind: 'tampered', index: 2, seq: 2 })
    expect(log.size()).toBe(6)
    const next = await log.append('ban', { peerId: 'x' })
    expect(next).toMatchObject({ seq: 6, prev: entries[5].hash })
    expect((await problemOf(log.export())).index).toBe(2)
  })

  it('snapshots data at the call, as JSON reads it back, and rejects data that is not JSON', async () => {
    const log = await openAuditLog()
    const data: Record<string, unknown> = { positions: [0, 8], skip: undefined }
    const p = log.append('check', data)
    ;(data.positions as number[]).push(99)
    expect((await p).data).toEqual({ positions: [0, 8] })
    await expect(log.append('check', { distance: NaN })).rejects.toMatchObject({ code: 'bad-argument' })
    // a rejected append leaves the chain as it was
    expect((await log.append('check', { distance: 0.5 })).seq).toBe(1)
    expect(() => { (log.entries()[0].data as { positions: number[] }).positions.push(1) }).toThrow()
  })

  it('a failing store write does not break the chain; maxEntries refuses appends past the limit; listeners hear every entry', async () => {
    const inner = memoryAuditStore()
    let failNext = true
    const flaky = { load: inner.load, append: async (e: AuditEntry) => { if (failNext) { failNext = false; throw new Error('quota') } return inner.append(e) } }
    const log = await openAuditLog(flaky, { maxEntries: 2 })
    let changes = 0
    log.onChange(() => changes++)
    const results = await Promise.allSettled([log.append('hop', { n: 0 }), log.append('hop', { n: 1 }), log.append('hop', { n: 2 }), log.append('hop', { n: 3 })])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled', 'rejected'])
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'refused' })
    expect(log.entries().map((e) => [e.seq, e.data.n])).toEqual([[0, 1], [1, 2]])
    expect(changes).toBe(2)
    expect((await verifyAuditChain(log.export())).ok).toBe(true)
    expect(await inner.load()).toEqual(log.entries())
  })
})
