import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { BatchEngine } from '../engine/engine.ts'
import type { ModelConfig } from '../model/model.ts'
import type { FrameChannel } from './channel.ts'
import { decodeFrame, encodeFrame, type Frame } from './frames.ts'

/**
 * A contributor's side of the activation protocol: it hosts layers [hosted.start, hosted.end) of
 * one model and serves sessions, one per channel, over one batch engine (one copy of the weights).
 * Each session has its own KV cache slot. Forward requests of every session wait in one bounded
 * queue; whenever the engine is free, the host takes the queued requests (oldest first, one per
 * session, as many rows as a pass holds) and runs them as one batch, so K sessions share each read
 * of the weights and a session's next step enters as soon as the stage is free.
 *
 * Prefixes: a session closed with `keep` leaves its KV cache behind (LRU, inside the KV budget)
 * under the id OPENED gave it; the same client opens a later session on it and sends only the new
 * positions. Everything a client sends is checked before it is used; a bad request gets an ERROR
 * frame and the other sessions' batches go on.
 */
export interface HostOptions {
  modelId: string
  config: ModelConfig
  hosted: LayerRange
  /** The engine over `hosted`: every session's KV cache slot and the batched forward. */
  engine: BatchEngine
  maxSessions?: number
  /** Sessions one client (remote peer) may hold at once. */
  maxSessionsPerClient?: number
  maxQueue?: number // forward requests waiting across all sessions; more are refused (back-pressure)
  kvBudgetBytes?: number // KV cache memory across sessions and kept prefixes
  idleTimeoutMs?: number // a session with no request for this long is closed
  maxRows?: number // rows per forward request (a prefill chunk, a speculative draft plus one)
  /** Kept prefixes at most (each also counts against the KV budget). */
  maxPrefixes?: number
  random?: () => number // prefix ids (default crypto)
}

export interface HostStats {
  activeSessions: number
  kvBytes: number // KV cache memory held by the open sessions
  keptBytes: number // KV cache memory held by kept prefixes (LRU; with kvBytes, inside the KV budget)
  queueDepth: number
  tokensProcessed: number // rows forwarded, all sessions
  sessionsServed: number
  busyMs: number // time spent computing
  batches: number // forward passes run
  batchedRequests: number // requests they carried (batchedRequests / batches: sessions per pass)
  keptPrefixes: number
  prefixHits: number // sessions opened on a kept prefix
  prefixPositionsReused: number
}

export interface SwarmHost {
  /** Serves one session on `channel` until it closes; never throws. */
  serve(channel: FrameChannel): Promise<void>
  stats(): HostStats
  /** Closes every session with an error frame (the host is leaving). */
  close(reason?: string): void
}

interface Session {
  channel: FrameChannel
  client: string
  range: LayerRange
  slot: number
  kvBytes: number
  maxLength: number
  filled: number // positions [0, filled) of this session are in its cache
  prefixId: number
  pending: number
}

interface Kept {
  client: string
  range: LayerRange
  slot: number
  kvBytes: number
  length: number
  maxLength: number
}

interface Job {
  session: Session
  request: Extract<Frame, { type: 'forward' }>
  send(frame: Frame): void
}

const sameRange = (a: LayerRange, b: LayerRange) => a.start === b.start && a.end === b.end

export function createSwarmHost(options: HostOptions): SwarmHost {
  const { config, hosted, modelId, engine } = options
  const maxSessions = options.maxSessions ?? 16
  const maxPerClient = options.maxSessionsPerClient ?? 8
  const maxQueue = options.maxQueue ?? 64
  const kvBudget = options.kvBudgetBytes ?? 256 * 1024 * 1024
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000
  const maxRows = Math.min(options.maxRows ?? 64, engine.maxRows)
  const maxPrefixes = options.maxPrefixes ?? 32
  const random = options.random ?? (() => crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32)
  const sessions = new Set<Session>()
  const kept = new Map<number, Kept>() // prefix id -> kept cache, least recently used first
  const queue: Job[] = []
  let running = false
  let closing: string | undefined
  const stats = { tokensProcessed: 0, sessionsServed: 0, busyMs: 0, batches: 0, batchedRequests: 0, prefixHits: 0, prefixPositionsReused: 0 }

  const usedKv = () => [...sessions].reduce((s, x) => s + x.kvBytes, 0) + [...kept.values()].reduce((s, k) => s + k.kvBytes, 0)
  /**
   * Frees kept prefixes, least recently used first (never `spare`, the one being reused), until
   * `bytes` more fit in the budget and at most `keepAtMost` are kept.
   */
  async function makeRoom(bytes: number, keepAtMost = maxPrefixes, spare?: number): Promise<boolean> {
    if (keepAtMost < 0) return false
    for (const [id, k] of kept) {
      if (usedKv() + bytes <= kvBudget && kept.size <= keepAtMost) break
      if (id === spare) continue
      kept.delete(id)
      await engine.closeCache(k.slot).catch(() => {})
    }
    return usedKv() + bytes <= kvBudget
  }
  // host work waits for the next task, so requests already delivered join the pass (a host whose
  // engine computes on this thread would otherwise start a pass the moment the first one arrives)
  const nextTask = taskYield()
  const newPrefixId = () => {
    for (;;) {
      const id = Math.floor(random() * 0xffffffff) + 1
      if (id <= 0xffffffff && !kept.has(id) && ![...sessions].some((s) => s.prefixId === id)) return id
    }
  }

  /** Runs queued requests in batches while any wait: one pass over the weights for all of them. */
  async function drain(): Promise<void> {
    if (running) return
    running = true
    try {
      while (queue.length > 0) {
        await nextTask()
        const range = queue[0].session.range
        const batch: Job[] = []
        let rows = 0
        for (let i = 0; i < queue.length;) {
          const job = queue[i]
          const n = job.request.positions.length
          if (sameRange(job.session.range, range) && rows + n <= engine.maxRows && !batch.some((b) => b.session === job.session)) {
            batch.push(job)
            rows += n
            queue.splice(i, 1)
          } else i++
        }
        await runBatch(batch, rows, range)
      }
    } finally {
      running = false
    }
  }

  async function runBatch(batch: Job[], rows: number, range: LayerRange): Promise<void> {
    const started = performance.now()
    const hidden = new Float32Array(rows * config.dim)
    const caches = new Int32Array(rows)
    const positions = new Int32Array(rows)
    let r = 0
    for (const job of batch) {
      const n = job.request.positions.length
      hidden.set(job.request.hidden, r * config.dim)
      caches.fill(job.session.slot, r, r + n)
      positions.set(job.request.positions, r)
      r += n
    }
    let out: Float32Array | undefined
    try {
      out = await engine.forwardBatch(hidden, caches, positions, range)
    } catch {
      // one request broke the pass: run each alone, so only its own session hears of it
    }
    stats.batches++
    stats.batchedRequests += batch.length
    r = 0
    for (const job of batch) {
      const n = job.request.positions.length
      try {
        const rowsOut = out ? out.subarray(r * config.dim, (r + n) * config.dim) : await engine.forwardBatch(job.request.hidden, caches.subarray(r, r + n), job.request.positions, range)
        job.session.filled = job.request.positions[n - 1] + 1 // a rollback forgets the positions above
        stats.tokensProcessed += n
        job.send({ type: 'hidden', id: job.request.id, hidden: rowsOut, dim: config.dim, dtype: job.request.dtype })
      } catch (err) {
        job.send(errorFrame(job.request.id, err))
      } finally {
        job.session.pending--
      }
      r += n
    }
    stats.busyMs += performance.now() - started
  }

  const errorFrame = (id: number, err: unknown): Frame => {
    const e = err instanceof TabmeshError ? err : new TabmeshError('protocol', (err as Error).message)
    return { type: 'error', id, code: e.code, message: e.message }
  }

  /** Checks an OPEN and gives the session its cache slot, on a kept prefix when it names one. */
  async function open(frame: Extract<Frame, { type: 'open' }>, channel: FrameChannel, client: string): Promise<Session> {
    if (closing) throw new TabmeshError('refused', `host is leaving: ${closing}`)
    if (frame.modelId !== modelId) throw new TabmeshError('refused', `this host serves ${modelId}, not ${frame.modelId}`)
    const range = { start: frame.layerStart, end: frame.layerEnd }
    if (!(range.start >= hosted.start && range.end <= hosted.end && range.start < range.end)) throw new TabmeshError('refused', `layers [${range.start}, ${range.end}) are not inside the hosted [${hosted.start}, ${hosted.end})`)
    if (!(frame.maxLength >= 1 && frame.maxLength <= config.seqLen)) throw new TabmeshError('refused', `max length ${frame.maxLength} is outside 1..${config.seqLen}`)
    if (sessions.size >= maxSessions) throw new TabmeshError('refused', `host is full (${maxSessions} sessions)`)
    if ([...sessions].filter((s) => s.client === client).length >= maxPerClient) throw new TabmeshError('refused', `a client may hold ${maxPerClient} sessions on this host; close one first`)
    let prefix: Kept | undefined
    if (frame.prefixId !== 0) {
      prefix = kept.get(frame.prefixId)
      // a prefix of another client is answered as one that does not exist: ids are not to be probed
      if (!prefix || prefix.client !== client) throw new TabmeshError('prefix-unknown', `no kept prefix ${frame.prefixId} for this client (it expired, was evicted, or never existed)`)
      if (!sameRange(prefix.range, range)) throw new TabmeshError('prefix-unknown', `prefix ${frame.prefixId} holds layers [${prefix.range.start}, ${prefix.range.end}), not [${range.start}, ${range.end})`)
      if (!(frame.prefixLength >= 1 && frame.prefixLength <= prefix.length && frame.prefixLength < frame.maxLength)) throw new TabmeshError('prefix-unknown', `prefix ${frame.prefixId} holds ${prefix.length} positions; ${frame.prefixLength} of a session of ${frame.maxLength} cannot be reused`)
    } else if (frame.prefixLength !== 0) throw new TabmeshError('protocol', 'a prefix length without a prefix id')
    const kvBytes = engine.cacheBytes(frame.maxLength)
    if (!(await makeRoom(kvBytes, maxPrefixes, prefix ? frame.prefixId : undefined))) throw new TabmeshError('refused', `not enough KV cache memory (${kvBytes} bytes wanted, ${kvBudget - usedKv()} free)`)
    const slot = await engine.openCache(frame.maxLength)
    let filled = 0
    if (prefix) {
      // the kept prefix stays (a shared system prompt may open several sessions); it is now the most recent
      kept.delete(frame.prefixId)
      kept.set(frame.prefixId, prefix)
      await engine.copyCache(prefix.slot, slot, frame.prefixLength)
      filled = frame.prefixLength
      stats.prefixHits++
      stats.prefixPositionsReused += filled
    }
    const session: Session = { channel, client, range, slot, kvBytes, maxLength: frame.maxLength, filled, prefixId: newPrefixId(), pending: 0 }
    sessions.add(session)
    stats.sessionsServed++
    return session
  }

  /** Ends a session: its slot is kept as a prefix when asked and memory allows, else freed. */
  async function finish(session: Session, keep: { length: number } | undefined): Promise<void> {
    sessions.delete(session)
    const length = Math.min(keep?.length ?? 0, session.filled)
    if (keep && length > 0 && !closing && (await makeRoom(0, maxPrefixes - 1))) {
      kept.set(session.prefixId, { client: session.client, range: session.range, slot: session.slot, kvBytes: session.kvBytes, length, maxLength: session.maxLength })
      if (usedKv() <= kvBudget) return
      kept.delete(session.prefixId)
    }
    await engine.closeCache(session.slot).catch(() => {})
  }

  function check(session: Session | undefined, request: Extract<Frame, { type: 'forward' }>): void {
    if (!session) throw new TabmeshError('protocol', 'FORWARD before OPEN')
    if (session.pending > 0) throw new TabmeshError('protocol', 'one forward at a time per session: wait for the answer')
    const rows = request.positions.length
    if (request.dim !== config.dim) throw new TabmeshError('protocol', `hidden width ${request.dim}, the model's is ${config.dim}`)
    if (rows > maxRows) throw new TabmeshError('refused', `${rows} rows in one forward (a draft or a prefill chunk); this host takes at most ${maxRows}`)
    const first = request.positions[0]
    // positions continue the cache, or roll it back: never past what this session sent
    if (first > session.filled) throw new TabmeshError('protocol', `position ${first} skips positions this session never sent (it holds 0..${session.filled - 1}); a rollback goes back, not forward`)
    for (let i = 0; i < rows; i++) {
      const p = request.positions[i]
      if (p < 0 || p >= session.maxLength) throw new TabmeshError('protocol', `position ${p} is outside this session's 0..${session.maxLength - 1}`)
      if (i > 0 && p !== request.positions[i - 1] + 1) throw new TabmeshError('protocol', `positions ${request.positions[i - 1]} then ${p}: the rows of one forward are consecutive`)
    }
    for (const x of request.hidden) if (!Number.isFinite(x)) throw new TabmeshError('protocol', 'hidden state holds a non-finite value')
    if (queue.length >= maxQueue) throw new TabmeshError('refused', `host busy: ${queue.length} requests queued; retry later`)
  }

  async function serve(channel: FrameChannel): Promise<void> {
    const send = (frame: Frame) => { if (!channel.closed) channel.send(encodeFrame(frame)) }
    const client = channel.remotePeer ?? ''
    let session: Session | undefined
    let keep: { length: number } | undefined
    let idle: ReturnType<typeof setTimeout> | undefined
    const touch = () => {
      clearTimeout(idle)
      idle = setTimeout(() => {
        send(errorFrame(0, new TabmeshError('refused', `session idle for ${idleTimeoutMs} ms; closed`)))
        channel.close()
      }, idleTimeoutMs)
    }

    try {
      for await (const bytes of channel.messages()) {
        let frame: Frame
        try {
          frame = decodeFrame(bytes)
        } catch (err) {
          send(errorFrame(0, err)) // a malformed frame ends the session: the stream cannot be trusted
          break
        }
        touch()
        if (frame.type === 'close') {
          if (frame.keep) keep = { length: frame.length }
          break
        }
        if (frame.type === 'open') {
          try {
            if (session) throw new TabmeshError('protocol', 'OPEN twice on one stream')
            session = await open(frame, channel, client)
            send({ type: 'opened', id: frame.id, dim: config.dim, maxRows, prefixId: session.prefixId, reused: session.filled })
          } catch (err) {
            send(errorFrame(frame.id, err))
            if (!session) break
          }
          continue
        }
        if (frame.type !== 'forward') {
          send(errorFrame(frame.id, new TabmeshError('protocol', `unexpected ${frame.type} frame from a client`)))
          break
        }
        try {
          check(session, frame)
        } catch (err) {
          send(errorFrame(frame.id, err))
          continue
        }
        session!.pending++
        queue.push({ session: session!, request: frame, send })
        void drain()
      }
    } catch {
      // the channel broke: the client is gone
    } finally {
      clearTimeout(idle)
      if (session) {
        // a request still queued for this session goes nowhere
        for (let i = queue.length - 1; i >= 0; i--) if (queue[i].session === session) queue.splice(i, 1)
        await finish(session, session.pending === 0 ? keep : undefined)
      }
      channel.close()
    }
  }

  return {
    serve,
    stats: () => {
      const keptBytes = [...kept.values()].reduce((n, k) => n + k.kvBytes, 0)
      return { activeSessions: sessions.size, kvBytes: usedKv() - keptBytes, keptBytes, queueDepth: queue.length, keptPrefixes: kept.size, ...stats }
    },
    close(reason = 'closing') {
      closing = reason
      for (const s of sessions) {
        if (!s.channel.closed) s.channel.send(encodeFrame({ type: 'error', id: 0, code: 'refused', message: `host is leaving: ${reason}` }))
        s.channel.close()
      }
      for (const [id, k] of kept) {
        kept.delete(id)
        void engine.closeCache(k.slot).catch(() => {})
      }
    },
  }
}

/** A promise that settles on a later task (not a microtask), without the clamping of nested timers. */
function taskYield(): () => Promise<void> {
  if (typeof MessageChannel === 'undefined') return () => new Promise((r) => setTimeout(r, 0))
  const channel = new MessageChannel()
  const waiting: (() => void)[] = []
  channel.port1.onmessage = () => waiting.shift()?.()
  ;(channel.port1 as { unref?(): void }).unref?.() // Node: the port does not keep the process alive
  return () => new Promise<void>((resolve) => {
    waiting.push(resolve)
    channel.port2.postMessage(0)
  })
}
