/**
 * The peer table: who is in the mesh, what they host, how loaded and healthy they are, when they
 * were last heard from, and the round-trip time to them. Built from validated adverts and from
 * connection and ping events; plain data and a clock, so it is tested without a network.
 *
 * A peer that sends no advert for `staleAfterMs` (default 2.2 s: two missed heartbeats of 1 s) is dropped by the
 * next sweep; a 'leave' advert drops it at once. WebRTC would notice a vanished tab only after
 * 8-12 s, too late for routing.
 */
import type { Advert, HostedSlice, Load } from './protocol.ts'

/** Load-derived health, from the queue and how fast the peer works through it. */
export type Health = 'idle' | 'moderate' | 'busy' | 'overloaded'
export const HEALTH_ORDER: readonly Health[] = ['idle', 'moderate', 'busy', 'overloaded']

/** Outcomes of work the swarm sent to a peer (the "measured history" selection weighs). */
export interface PeerHistory {
  successes: number
  failures: number
  /** Exponentially weighted mean latency of successful work, ms (undefined until the first). */
  latencyMs: number | undefined
}

export interface PeerEntry {
  peerId: string
  /** The newest advert (adverts with an older `seq` are ignored). */
  advert: Advert
  health: Health
  firstSeen: number // ms, local clock
  lastSeen: number // ms, local clock: when the newest advert arrived
  /** Local clock minus the advert's sentAt at arrival: propagation delay plus clock skew. */
  advertDelayMs: number
  /** Open connections to the peer, and whether one of them is direct (not through a relay). */
  connections: number
  direct: boolean
  /** Latest ping round trip, ms. */
  rttMs: number | undefined
  history: PeerHistory
  /**
   * Set when no direct connection to the peer could be made (every WebRTC dial failed: a NAT or
   * firewall between us, a TURN server down): routes leave the peer out until `until` (local
   * clock), then try it again. A direct connection clears it.
   */
  unreachable?: { why: string; since: number; until: number }
}

export type PeerTableEvent =
  | { type: 'join'; entry: PeerEntry }
  | { type: 'update'; entry: PeerEntry; changed: boolean }
  | { type: 'leave'; peerId: string; why: 'stale' | 'left'; lastSeen: number }

export interface PeerTableOptions {
  /** This node's peer id: its own adverts never enter the table. */
  selfId: string
  /** Silence after which a peer is dropped (default 2200 ms). */
  staleAfterMs?: number
  now?: () => number
}

export interface PeerTable {
  readonly selfId: string
  readonly staleAfterMs: number
  /** Applies a validated advert; returns the entry, or undefined if it was stale, ours or a 'leave'. */
  applyAdvert(advert: Advert, receivedAt?: number): PeerEntry | undefined
  connectionOpened(peerId: string, direct: boolean): void
  connectionClosed(peerId: string, direct: boolean): void
  setRtt(peerId: string, rttMs: number): void
  /** Marks a peer unreachable for `forMs` (default 60 s): see PeerEntry.unreachable. */
  markUnreachable(peerId: string, why: string, forMs?: number): void
  /** Records how a piece of work sent to the peer went. */
  recordOutcome(peerId: string, outcome: { ok: boolean; latencyMs?: number }): void
  /** Drops peers silent for longer than staleAfterMs; returns their ids. */
  sweep(now?: number): string[]
  get(peerId: string): PeerEntry | undefined
  has(peerId: string): boolean
  /** Entries sorted by peer id. */
  list(): PeerEntry[]
  readonly size: number
  /** Subscribes to joins, updates and leaves; returns the unsubscribe function. */
  subscribe(listener: (event: PeerTableEvent) => void): () => void
}

/** Seconds of queued work below which a peer counts as moderate, busy (above: overloaded). */
const WAIT_THRESHOLDS_S = { moderate: 0.25, busy: 2 }
/** Without a measured speed, queue depths at which a peer counts as busy, overloaded. */
const QUEUE_THRESHOLDS = { busy: 3, overloaded: 8 }

/**
 * Health from load and speed: idle with nothing queued or running; otherwise by the estimated
 * time to drain the queue (queued steps x layers hosted / measured layer-token rate).
 */
export function classifyHealth(load: Load, hosted: readonly HostedSlice[], layerTokensPerSecond: number | undefined): Health {
  if (load.queueDepth === 0) return load.activeSessions === 0 ? 'idle' : 'moderate'
  const layers = hosted.reduce((n, h) => n + (h.layers.end - h.layers.start), 0)
  if (layerTokensPerSecond !== undefined && layerTokensPerSecond > 0 && layers > 0) {
    const waitS = (load.queueDepth * layers) / layerTokensPerSecond
    if (waitS < WAIT_THRESHOLDS_S.moderate) return 'moderate'
    return waitS < WAIT_THRESHOLDS_S.busy ? 'busy' : 'overloaded'
  }
  if (load.queueDepth < QUEUE_THRESHOLDS.busy) return 'moderate'
  return load.queueDepth < QUEUE_THRESHOLDS.overloaded ? 'busy' : 'overloaded'
}

/** The health the table assigns: load-derived, made one step worse by a self-reported 'degraded'. */
export function advertHealth(advert: Advert): Health {
  const base = classifyHealth(advert.load, advert.hosted, advert.capabilities.speed.layerTokensPerSecond)
  if (advert.health.status === 'ok') return base
  return HEALTH_ORDER[Math.min(HEALTH_ORDER.length - 1, HEALTH_ORDER.indexOf(base) + 1)]
}

const LATENCY_EWMA = 0.3 // weight of the newest sample

export function createPeerTable(options: PeerTableOptions): PeerTable {
  const { selfId } = options
  const staleAfterMs = options.staleAfterMs ?? 2200
  const now = options.now ?? (() => Date.now())
  const entries = new Map<string, PeerEntry>()
  // Connection state can arrive before the first advert (the dial is what brings it).
  const pendingConnections = new Map<string, { connections: number; direct: number; rttMs?: number }>()
  const listeners = new Set<(event: PeerTableEvent) => void>()

  const emit = (event: PeerTableEvent) => {
    for (const listener of listeners) {
      try {
        listener(event)
      } catch (err) {
        console.error('tabmesh: peer table listener failed', err)
      }
    }
  }

  const connState = (peerId: string) => {
    let s = pendingConnections.get(peerId)
    if (!s) pendingConnections.set(peerId, (s = { connections: 0, direct: 0 }))
    return s
  }

  const syncConnections = (peerId: string) => {
    const entry = entries.get(peerId)
    const s = pendingConnections.get(peerId)
    if (!entry) return
    entry.connections = s?.connections ?? 0
    entry.direct = (s?.direct ?? 0) > 0
    if (s?.rttMs !== undefined) entry.rttMs = s.rttMs
    if (entry.direct) entry.unreachable = undefined
  }

  return {
    selfId,
    staleAfterMs,
    applyAdvert(advert, receivedAt = now()) {
      if (advert.peerId === selfId) return undefined
      const existing = entries.get(advert.peerId)
      if (advert.reason === 'leave') {
        if (existing && advert.seq > existing.advert.seq) {
          entries.delete(advert.peerId)
          emit({ type: 'leave', peerId: advert.peerId, why: 'left', lastSeen: receivedAt })
        }
        return undefined
      }
      if (existing && advert.seq <= existing.advert.seq) return undefined
      const health = advertHealth(advert)
      if (existing) {
        const changed = advert.reason !== 'heartbeat' || health !== existing.health
        existing.advert = advert
        existing.health = health
        existing.lastSeen = receivedAt
        existing.advertDelayMs = receivedAt - advert.sentAt
        emit({ type: 'update', entry: existing, changed })
        return existing
      }
      const entry: PeerEntry = {
        peerId: advert.peerId, advert, health, firstSeen: receivedAt, lastSeen: receivedAt, advertDelayMs: receivedAt - advert.sentAt,
        connections: 0, direct: false, rttMs: undefined, history: { successes: 0, failures: 0, latencyMs: undefined },
      }
      entries.set(advert.peerId, entry)
      syncConnections(advert.peerId)
      emit({ type: 'join', entry })
      return entry
    },
    connectionOpened(peerId, direct) {
      const s = connState(peerId)
      s.connections++
      if (direct) s.direct++
      syncConnections(peerId)
    },
    connectionClosed(peerId, direct) {
      const s = connState(peerId)
      s.connections = Math.max(0, s.connections - 1)
      if (direct) s.direct = Math.max(0, s.direct - 1)
      if (s.connections === 0) pendingConnections.delete(peerId)
      syncConnections(peerId)
    },
    setRtt(peerId, rttMs) {
      if (!Number.isFinite(rttMs) || rttMs < 0) return
      connState(peerId).rttMs = rttMs
      syncConnections(peerId)
    },
    markUnreachable(peerId, why, forMs = 60_000) {
      const entry = entries.get(peerId)
      if (!entry || entry.direct) return
      const at = now()
      const changed = !entry.unreachable
      entry.unreachable = { why: why.slice(0, 200), since: entry.unreachable?.since ?? at, until: at + forMs }
      if (changed) emit({ type: 'update', entry, changed: true })
    },
    recordOutcome(peerId, outcome) {
      const entry = entries.get(peerId)
      if (!entry) return
      const h = entry.history
      if (!outcome.ok) {
        h.failures++
        return
      }
      h.successes++
      if (outcome.latencyMs !== undefined && Number.isFinite(outcome.latencyMs) && outcome.latencyMs >= 0) {
        h.latencyMs = h.latencyMs === undefined ? outcome.latencyMs : h.latencyMs + LATENCY_EWMA * (outcome.latencyMs - h.latencyMs)
      }
    },
    sweep(at = now()) {
      const dropped: string[] = []
      for (const [peerId, entry] of entries) {
        if (entry.unreachable && at >= entry.unreachable.until) entry.unreachable = undefined
        if (at - entry.lastSeen > staleAfterMs) {
          entries.delete(peerId)
          dropped.push(peerId)
          emit({ type: 'leave', peerId, why: 'stale', lastSeen: entry.lastSeen })
        }
      }
      return dropped
    },
    get: (peerId) => entries.get(peerId),
    has: (peerId) => entries.has(peerId),
    list: () => [...entries.values()].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)),
    get size() {
      return entries.size
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
