/**
 * Reputation: what this tab has seen of each peer's work, slow to earn and fast to lose. A passed
 * check is worth +1 (capped), a failed one -40; a peer at or under REVOKE_BELOW is revoked: routes
 * and verifier choices skip it, across sessions (the store persists, IndexedDB in a browser).
 *
 * The check rate follows from it: a peer with no record is checked in every session, one with a
 * long clean record rarely, never less than MIN_CHECK_RATE, so an established peer that turns
 * is still caught. Only this tab's own observations count: reports from other peers are not
 * taken (a swarm of Sybils could vouch for each other or smear an honest peer for free).
 */
import { openDB } from 'idb'

export const PASS_REWARD = 1
export const FAIL_PENALTY = 40
export const MAX_SCORE = 100
export const MIN_SCORE = -200
export const REVOKE_BELOW = -20
export const MIN_CHECK_RATE = 0.05
/** The score at which the rate halves (rate = max(MIN_CHECK_RATE, 1 / (1 + score / RATE_HALF_SCORE))). */
export const RATE_HALF_SCORE = 5

export interface PeerRecord {
  peerId: string
  score: number
  passed: number
  failed: number
  /** Checks that could not be settled either way (a disagreement with no third opinion). */
  inconclusive: number
  firstSeen: number
  lastChange: number
}

export interface ReputationStore {
  load(): Promise<PeerRecord[]>
  save(record: PeerRecord): Promise<void>
}

export interface Reputation {
  get(peerId: string): PeerRecord | undefined
  score(peerId: string): number
  /** Chance that a peer's part of a session is checked: 1 for a stranger, falling with its score, never under MIN_CHECK_RATE. */
  checkRate(peerId: string): number
  revoked(peerId: string): boolean
  passed(peerId: string): PeerRecord
  failed(peerId: string): PeerRecord
  inconclusive(peerId: string): PeerRecord
  list(): PeerRecord[]
  onChange(listener: (record: PeerRecord) => void): () => void
}

export function checkRateFor(score: number): number {
  if (score <= 0) return 1
  return Math.max(MIN_CHECK_RATE, 1 / (1 + score / RATE_HALF_SCORE))
}

export function memoryReputationStore(records: PeerRecord[] = []): ReputationStore {
  const kept = new Map(records.map((r) => [r.peerId, r]))
  return {
    load: async () => [...kept.values()].map((r) => ({ ...r })),
    save: async (r) => { kept.set(r.peerId, { ...r }) },
  }
}

export function indexedDbReputationStore(dbName = 'tabmesh-reputation'): ReputationStore {
  const db = openDB(dbName, 1, { upgrade: (d) => { d.createObjectStore('peers', { keyPath: 'peerId' }) } })
  return {
    load: async () => (await (await db).getAll('peers')) as PeerRecord[],
    save: async (r) => { await (await db).put('peers', r) },
  }
}

const clamp = (x: number) => Math.min(MAX_SCORE, Math.max(MIN_SCORE, x))

export async function openReputation(store: ReputationStore = memoryReputationStore(), options: { now?: () => number; log?: (line: string) => void } = {}): Promise<Reputation> {
  const now = options.now ?? Date.now
  const records = new Map<string, PeerRecord>()
  for (const r of await store.load()) {
    if (typeof r?.peerId === 'string' && Number.isFinite(r.score)) records.set(r.peerId, r)
  }
  const listeners = new Set<(r: PeerRecord) => void>()
  const record = (peerId: string) => {
    let r = records.get(peerId)
    if (!r) records.set(peerId, (r = { peerId, score: 0, passed: 0, failed: 0, inconclusive: 0, firstSeen: now(), lastChange: now() }))
    return r
  }
  const change = (peerId: string, f: (r: PeerRecord) => void) => {
    const r = record(peerId)
    f(r)
    r.score = clamp(r.score)
    r.lastChange = now()
    store.save({ ...r }).catch((err: Error) => options.log?.(`tabmesh: reputation not saved: ${err.message}`))
    for (const l of listeners) {
      try { l({ ...r }) } catch { /* a listener's failure is its own */ }
    }
    return { ...r }
  }
  return {
    get: (id) => { const r = records.get(id); return r && { ...r } },
    score: (id) => records.get(id)?.score ?? 0,
    checkRate: (id) => checkRateFor(records.get(id)?.score ?? 0),
    revoked: (id) => (records.get(id)?.score ?? 0) <= REVOKE_BELOW,
    passed: (id) => change(id, (r) => { r.passed++; r.score += PASS_REWARD }),
    failed: (id) => change(id, (r) => { r.failed++; r.score -= FAIL_PENALTY }),
    inconclusive: (id) => change(id, (r) => { r.inconclusive++ }),
    list: () => [...records.values()].map((r) => ({ ...r })),
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
