/**
 * The audit trail: an append-only, hash-chained log per tab of what the trust layer saw and
 * decided (sessions opened, hops, spot checks, verdicts, bans). Each entry carries the SHA-256 of
 * the one before it and its own SHA-256 over the canonical JSON of its content, so an export can be
 * checked by anyone, offline (`tabmesh audit verify <export.json>`): an entry changed, removed,
 * moved or cut from either end breaks the chain at a place `verifyAuditChain` names.
 *
 * The chain proves the log is whole and unchanged since it was written, not that what it says is
 * true: a tab can write any story it likes, but it cannot quietly rewrite one it has exported.
 */
import { openDB } from 'idb'
import { TabmeshError } from '../core/errors.ts'

export type AuditKind = 'session' | 'hop' | 'check' | 'verdict' | 'ban'

export const AUDIT_KINDS: readonly AuditKind[] = ['session', 'hop', 'check', 'verdict', 'ban']

/** The `prev` of the first entry, and the head of an empty log. */
export const GENESIS_HASH = '0'.repeat(64)

export interface AuditEntry {
  /** 0, 1, 2, ... in the order the entries were written. */
  seq: number
  /** When it was written, ms since the epoch. */
  at: number
  kind: AuditKind
  /** JSON-safe: peer ids, layers, positions [from, to), modelId, outcome, ... (kept as its canonical JSON reads back). */
  data: Record<string, unknown>
  /** Hex SHA-256 of the previous entry, or GENESIS_HASH for the first. */
  prev: string
  /** Hex SHA-256 over canonicalJson({ seq, at, kind, data, prev }). */
  hash: string
}

export interface AuditExport {
  format: 'tabmesh-audit'
  version: 1
  /** The last entry's hash (GENESIS_HASH when empty): an export cut short at its end no longer matches it. */
  head: string
  entries: AuditEntry[]
}

/**
 * Where a chain breaks. `index` is the entry's place in the export's `entries`; -1 when the export
 * itself is malformed, `entries.length` for a head mismatch (what is missing comes after the last
 * entry). `seq` is that entry's seq when it has a numeric one.
 */
export type AuditProblem = {
  index: number
  seq: number | undefined
  kind: 'tampered' | 'removed' | 'reordered' | 'malformed' | 'head-mismatch'
  message: string
}

export type AuditVerdict = { ok: true; entries: number; head: string } | { ok: false; problem: AuditProblem }

export interface AuditStore {
  /** Every stored entry, in seq order. */
  load(): Promise<AuditEntry[]>
  /** Stores one entry; rejects if its seq is already stored (the log is append-only). */
  append(entry: AuditEntry): Promise<void>
}

export interface AuditLog {
  /** Writes an entry after the current head; appends are serialized, so concurrent calls get consecutive seqs. Rejects with TabmeshError('bad-argument') for data that is not JSON-safe. */
  append(kind: AuditKind, data: Record<string, unknown>): Promise<AuditEntry>
  /** The entries, oldest first (frozen). */
  entries(): AuditEntry[]
  /** Hash of the last entry, or GENESIS_HASH. */
  head(): string
  /** A copy of the log to hand out; `verifyAuditChain` checks it. */
  export(): AuditExport
  size(): number
  /** Called after every entry written; returns the unsubscribe function. */
  onChange(listener: () => void): () => void
  /** What was wrong with the store's chain when the log was opened, if anything: such a log is kept, not trusted. */
  loadProblem(): AuditProblem | undefined
}

export interface AuditLogOptions {
  /** Entries the log holds at most; once full, appends are refused (TabmeshError('refused')): export it and open a new one. Default unlimited. */
  maxEntries?: number
  /** The clock for `at` (default Date.now). */
  now?: () => number
}

const HEX64 = /^[0-9a-f]{64}$/
const ENTRY_KEYS = ['at', 'data', 'hash', 'kind', 'prev', 'seq']

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * JSON with object keys sorted (by UTF-16 code units) at every depth; arrays keep their order.
 * Otherwise as JSON.stringify: undefined, functions and symbols are left out of objects and are null
 * in arrays, toJSON() is used. A non-finite number, a bigint or a cycle is a TabmeshError('bad-argument').
 */
export function canonicalJson(value: unknown): string {
  const seen = new Set<object>()
  const write = (v: unknown, path: string): string | undefined => {
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(): unknown }).toJSON()
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v)
      case 'boolean':
        return v ? 'true' : 'false'
      case 'number':
        if (!Number.isFinite(v)) throw new TabmeshError('bad-argument', `audit data${path} is ${v}: only finite numbers are JSON`)
        return JSON.stringify(v)
      case 'bigint':
        throw new TabmeshError('bad-argument', `audit data${path} is a bigint: not JSON`)
      case 'undefined':
      case 'function':
      case 'symbol':
        return undefined
    }
    if (v === null) return 'null'
    const obj = v as object
    if (seen.has(obj)) throw new TabmeshError('bad-argument', `audit data${path} refers to itself: not JSON`)
    seen.add(obj)
    let text: string
    if (Array.isArray(obj)) {
      text = `[${obj.map((item, i) => write(item, `${path}[${i}]`) ?? 'null').join(',')}]`
    } else {
      const parts: string[] = []
      for (const key of Object.keys(obj).sort()) {
        const item = write((obj as Record<string, unknown>)[key], `${path}.${key}`)
        if (item !== undefined) parts.push(`${JSON.stringify(key)}:${item}`)
      }
      text = `{${parts.join(',')}}`
    }
    seen.delete(obj)
    return text
  }
  return write(value, '') ?? 'null'
}

const encoder = new TextEncoder()

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)))
  let hex = ''
  for (const b of digest) hex += b.toString(16).padStart(2, '0')
  return hex
}

/** The hash an entry must carry: SHA-256 over the canonical JSON of everything but the hash. */
export function auditEntryHash(entry: Omit<AuditEntry, 'hash'>): Promise<string> {
  return sha256Hex(canonicalJson({ seq: entry.seq, at: entry.at, kind: entry.kind, data: entry.data, prev: entry.prev }))
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

export function memoryAuditStore(entries: AuditEntry[] = []): AuditStore {
  const kept = entries.map((e) => structuredClone(e))
  return {
    load: async () => kept.map((e) => structuredClone(e)),
    append: async (entry) => {
      if (kept.some((e) => e.seq === entry.seq)) throw new TabmeshError('bad-argument', `audit entry seq ${entry.seq} is already stored`)
      kept.push(structuredClone(entry))
    },
  }
}

/** The log in IndexedDB (browsers only): one object store 'entries' keyed by seq; add(), never put(). */
export function indexedDbAuditStore(dbName = 'tabmesh-audit'): AuditStore {
  let db: ReturnType<typeof openDB> | undefined
  const open = () => (db ??= openDB(dbName, 1, { upgrade: (d) => { d.createObjectStore('entries', { keyPath: 'seq' }) } }))
  return {
    load: async () => (await (await open()).getAll('entries')) as AuditEntry[],
    append: async (entry) => { await (await open()).add('entries', entry) },
  }
}

/** Opens the log over `store`, checking the stored chain; a broken one is kept and reported by `loadProblem()`. */
export async function openAuditLog(store: AuditStore = memoryAuditStore(), options: AuditLogOptions = {}): Promise<AuditLog> {
  const maxEntries = options.maxEntries ?? Infinity
  const now = options.now ?? Date.now
  if (!(maxEntries >= 0)) throw new TabmeshError('bad-argument', `maxEntries ${maxEntries} must be 0 or more`)

  const loaded: unknown[] = await store.load()
  let problem: AuditProblem | undefined
  const entries: AuditEntry[] = []
  let nextSeq = 0
  if (loaded.length > 0) {
    const last = loaded.at(-1) as Partial<AuditEntry> | undefined
    const verdict = await verifyAuditChain({ format: 'tabmesh-audit', version: 1, head: typeof last?.hash === 'string' ? last.hash : GENESIS_HASH, entries: loaded })
    if (!verdict.ok) problem = verdict.problem
    for (const e of loaded) {
      // a record that is not an entry at all cannot be kept as one; it still counts against reusing its seq
      if (isPlainObject(e) && Number.isSafeInteger(e.seq) && (e.seq as number) >= 0) nextSeq = Math.max(nextSeq, (e.seq as number) + 1)
      if (entryShapeProblem(e) === undefined) entries.push(deepFreeze(e as unknown as AuditEntry))
    }
  }
  let head = entries.at(-1)?.hash ?? GENESIS_HASH
  let chain: Promise<unknown> = Promise.resolve()
  const listeners = new Set<() => void>()

  async function write(kind: AuditKind, data: Record<string, unknown>): Promise<AuditEntry> {
    if (entries.length >= maxEntries) throw new TabmeshError('refused', `the audit log is full (${maxEntries} entries): export it and open a new one`)
    const body = { seq: nextSeq, at: now(), kind, data, prev: head }
    const entry: AuditEntry = deepFreeze({ ...body, hash: await auditEntryHash(body) })
    await store.append(entry)
    entries.push(entry)
    nextSeq = entry.seq + 1
    head = entry.hash
    for (const listener of listeners) {
      try { listener() } catch { /* the listener's problem */ }
    }
    return entry
  }

  return {
    async append(kind, data) {
      if (!AUDIT_KINDS.includes(kind)) throw new TabmeshError('bad-argument', `unknown audit kind ${JSON.stringify(String(kind))}`)
      if (!isPlainObject(data)) throw new TabmeshError('bad-argument', 'audit data must be an object')
      // taken now, as JSON reads it back: later changes by the caller, and what JSON drops, are not in the entry
      const clean = JSON.parse(canonicalJson(data)) as Record<string, unknown>
      const written = chain.then(() => write(kind, clean))
      chain = written.catch(() => {})
      return written
    },
    entries: () => entries.slice(),
    head: () => head,
    export: () => ({ format: 'tabmesh-audit', version: 1, head, entries: entries.map((e) => structuredClone(e)) }),
    size: () => entries.length,
    onChange(listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    loadProblem: () => problem,
  }
}

const describeType = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v)

/** Why `e` is not an entry, or undefined when it has an entry's shape. */
function entryShapeProblem(e: unknown): string | undefined {
  if (!isPlainObject(e)) return `is ${describeType(e)}, not an entry object`
  const extra = Object.keys(e).filter((k) => !ENTRY_KEYS.includes(k))
  if (extra.length > 0) return `has fields an entry does not have (${extra.slice(0, 3).map((k) => JSON.stringify(k.slice(0, 40))).join(', ')})`
  if (!Number.isSafeInteger(e.seq) || (e.seq as number) < 0) return 'has no valid seq (a whole number, 0 or more)'
  if (typeof e.at !== 'number' || !Number.isFinite(e.at)) return 'has no valid time (at)'
  if (!AUDIT_KINDS.includes(e.kind as AuditKind)) return `has no valid kind (one of ${AUDIT_KINDS.join(', ')})`
  if (!isPlainObject(e.data)) return 'has no data object'
  if (typeof e.prev !== 'string' || !HEX64.test(e.prev)) return 'has no valid prev (64 lowercase hex digits)'
  if (typeof e.hash !== 'string' || !HEX64.test(e.hash)) return 'has no valid hash (64 lowercase hex digits)'
  try {
    canonicalJson(e.data)
  } catch (err) {
    return `has data that is not JSON (${(err as Error).message})`
  }
  return undefined
}

const fail = (index: number, seq: number | undefined, kind: AuditProblem['kind'], message: string): AuditVerdict => ({ ok: false, problem: { index, seq, kind, message } })

/**
 * Checks an export (as parsed from JSON, or as `AuditLog.export()` returns it). Never throws: any
 * input gets a verdict, the first problem found or the number of entries and the head.
 */
export async function verifyAuditChain(input: unknown): Promise<AuditVerdict> {
  try {
    return await verify(input)
  } catch (err) {
    // getters that throw, proxies, nesting too deep for the stack: not an export we can read
    return fail(-1, undefined, 'malformed', `the export cannot be read: ${String((err as Error)?.message ?? err).slice(0, 200)}`)
  }
}

async function verify(input: unknown): Promise<AuditVerdict> {
  if (!isPlainObject(input)) return fail(-1, undefined, 'malformed', `the export is ${describeType(input)}, not an object`)
  if (input.format !== 'tabmesh-audit') return fail(-1, undefined, 'malformed', 'the export has no format "tabmesh-audit": not a tabmesh audit export')
  if (input.version !== 1) return fail(-1, undefined, 'malformed', `the export's version ${JSON.stringify(String(input.version)).slice(0, 40)} is not 1`)
  if (typeof input.head !== 'string' || !HEX64.test(input.head)) return fail(-1, undefined, 'malformed', 'the export has no valid head (64 lowercase hex digits)')
  if (!Array.isArray(input.entries)) return fail(-1, undefined, 'malformed', 'the export\'s entries is not an array')
  const list: unknown[] = input.entries
  for (let i = 0; i < list.length; i++) {
    const why = entryShapeProblem(list[i])
    if (why !== undefined) {
      const seq = isPlainObject(list[i]) && typeof (list[i] as { seq?: unknown }).seq === 'number' ? (list[i] as { seq: number }).seq : undefined
      return fail(i, seq, 'malformed', `entry ${i}${seq === undefined ? '' : ` (seq ${seq})`} ${why}`)
    }
  }
  const entries = list as AuditEntry[]
  const name = (i: number) => `entry ${i} (seq ${entries[i].seq})`
  // entries missing before `index` that come later in the list were moved, not removed
  const movedLater = (index: number, from: number, to: number) => entries.slice(index + 1).some((e) => e.seq >= from && e.seq < to)

  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]
    if ((await auditEntryHash(e)) !== e.hash) return fail(i, e.seq, 'tampered', `${name(i)} was changed after it was written: its hash does not match its content`)
    if (i === 0) {
      if (e.prev === GENESIS_HASH && e.seq === 0) continue
      if (e.seq > 0 && movedLater(0, 0, e.seq)) return fail(0, e.seq, 'reordered', `${name(0)} is out of order: entries before it in the log come after it in the export`)
      return fail(0, e.seq, 'removed', `${name(0)} is not the log's first entry: the beginning of the log was cut${e.seq > 0 ? ` (${e.seq === 1 ? 'seq 0 is' : `seqs 0 to ${e.seq - 1} are`} missing)` : ''}`)
    }
    const before = entries[i - 1]
    if (e.prev === before.hash) continue
    if (e.seq > before.seq + 1) {
      if (movedLater(i, before.seq + 1, e.seq)) return fail(i, e.seq, 'reordered', `${name(i)} is out of order: entries between seq ${before.seq} and it come after it in the export`)
      const gap = e.seq - before.seq - 1
      return fail(i, e.seq, 'removed', `${name(i)} does not follow ${name(i - 1)}: ${gap === 1 ? `the entry between them (seq ${before.seq + 1}) was` : `the ${gap} entries between them were`} removed`)
    }
    if (e.seq <= before.seq) return fail(i, e.seq, 'reordered', `${name(i)} is out of order: it comes after seq ${before.seq}`)
    return fail(i, e.seq, 'tampered', `${name(i)} does not link to ${name(i - 1)}: its prev is not that entry's hash (one of them was rewritten)`)
  }
  const last = entries.at(-1)
  const head = last?.hash ?? GENESIS_HASH
  if (input.head !== head) {
    const where = last ? `the last entry (${name(entries.length - 1)})` : 'an empty log'
    return fail(entries.length, undefined, 'head-mismatch', `the export's head is not the hash of ${where}: entries after it were removed, or the head was changed`)
  }
  return { ok: true, entries: entries.length, head }
}
