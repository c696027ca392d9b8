/**
 * Sessions on hosts, as src/swarm/swarm-engine.ts opens them: a route's hops are opened one after
 * another (dialling a host the client holds no connection to, then OPEN and its answer); a host
 * that is full (src/swarm/host.ts: maxSessions, then its KV budget) refuses, and the whole span is
 * planned again without it. Each hop is drawn for spot checks once (src/trust/checks.ts: the
 * client's reputation rate for the host); a drawn hop gets a verifier, whose check is an ordinary
 * session to it, and each window of 8 positions a drawn honest hop completes is a passed check
 * for host and verifier (reputation.passed).
 */
import type { LayerRange } from '../../src/core/vocabulary.ts'
import type { SimContext } from './context.ts'
import { acquire, connected, release } from './peers.ts'
import { admits, maxLengthFor, planSpan } from './routes.ts'
import type { Chat, Hop, Peer } from './types.ts'
import { computeRowsMs, dialMs, rttMs, sessionKvBytes } from './world.ts'

/**
 * maxReplans: swarm-engine's rebuild re-plans after each refusal without limit until no route is
 * left; here a request refused 32 times (about 30-60 s of dials and OPENs) counts as given up.
 */
export const SWARM = { maxFailovers: 8, prefillChunk: 32, maxReplans: 32 }
/** A patient liar is honest for its first sessions with each client (to earn a low check rate), then lies in every one. */
export const TRUST = { windowRows: 8, maxPendingWindows: 2, patientHonestSessions: 3 }

export type FailoverCause = 'graceful' | 'silent' | 'moved' | 'caught'

/**
 * A verifier for a drawn hop (swarm-engine openRunner): a host of the whole span, in random order,
 * that admits the check session; none (in a bounded random window of the model's hosts, for
 * speed): the client checks itself. The check is an ordinary session to the verifier: it takes a
 * session slot and KV, and its re-execution loads the verifier's queue.
 */
function assignVerifier(ctx: SimContext, hop: Hop, t: number): void {
  const chat = hop.chat
  const pool = ctx.shortlist.get(chat.model.id) ?? []
  const rep = chat.client.client!.reputation
  const from = ctx.rng.int(Math.max(1, pool.length))
  for (let i = 0; i < Math.min(pool.length, 400); i++) {
    const p = pool[(from + i) % pool.length]
    if (p === hop.host || p === chat.client || !p.alive || !p.ready || chat.banned.has(p.id) || rep.revoked(p.id)) continue
    if (!(p.layers!.start <= hop.layers.start && hop.layers.end <= p.layers!.end) || !admits(p, hop.kvBytes)) continue
    hop.verifier = p
    p.checks.add(hop)
    p.kvUsed += hop.kvBytes
    ctx.busyHosts.add(p)
    acquire(chat.client, p, t)
    return
  }
  hop.verifier = undefined
}

function dropVerifier(hop: Hop, t: number): void {
  const v = hop.verifier
  if (!v) return
  v.checks.delete(hop)
  v.kvUsed -= hop.kvBytes
  release(hop.chat.client, v, t)
  hop.verifier = undefined
}

/** A verifier that left or moved: the checker opens a runner on another. */
export function verifierGone(ctx: SimContext, v: Peer, t: number): void {
  for (const hop of [...v.checks]) {
    dropVerifier(hop, t)
    if (hop.live) assignVerifier(ctx, hop, t)
  }
}

export function createHop(ctx: SimContext, chat: Chat, host: Peer, layers: LayerRange, kvBytes: number, t: number): Hop {
  const client = chat.client
  const rep = client.client!.reputation
  const rate = rep.checkRate(host.id)
  const drawn = ctx.rng.next() < rate
  let lying = host.liar === 'naive'
  if (host.liar === 'patient') {
    const n = host.honestWith!.get(client.idx) ?? 0
    lying = n >= TRUST.patientHonestSessions
    if (!lying) host.honestWith!.set(client.idx, n + 1)
  }
  const hop: Hop = {
    chat, host, layers, drawn, lying, positions: 0, windows: 0, kvBytes, live: true, tokensAtStart: chat.tokens,
    serviceMs: computeRowsMs(host.device, host.lts, layers.end - layers.start, 1), rttMs: rttMs(client, host),
  }
  host.sessions.add(hop)
  host.kvUsed += kvBytes
  ctx.busyHosts.add(host)
  acquire(client, host, t)
  if (drawn) assignVerifier(ctx, hop, t)
  if (chat.measured) {
    const m = ctx.metrics
    m.hopsOpened++
    m.checkRateSum += rate
    if (drawn) m.hopsDrawn++
    if (lying) m.liarHops++
  }
  return hop
}

export function closeHop(hop: Hop, t: number): void {
  if (!hop.live) return
  hop.live = false
  hop.host.sessions.delete(hop)
  hop.host.kvUsed -= hop.kvBytes
  release(hop.chat.client, hop.host, t)
  dropVerifier(hop, t)
}

/** The hop has now seen `positions` positions: rows counted, and each full window of a drawn honest hop checked and passed. */
export function setPositions(ctx: SimContext, hop: Hop, positions: number): void {
  const delta = positions - hop.positions
  hop.positions = positions
  const layers = hop.layers.end - hop.layers.start
  if (hop.chat.measured) {
    ctx.metrics.rowsTotal += delta * layers
    if (hop.drawn) ctx.metrics.rowsChecked += delta * layers
  }
  if (!hop.drawn || hop.lying) return
  const rep = hop.chat.client.client!.reputation
  for (const w = Math.floor(positions / TRUST.windowRows); hop.windows < w; hop.windows++) {
    rep.passed(hop.host.id)
    if (hop.verifier?.alive) rep.passed(hop.verifier.id)
  }
}

export interface Opened {
  hops: Hop[]
  ms: number
  dialMs: number
}

/** Plans and opens `span` for the chat (one route request); undefined when no route could be opened. */
export function openSpan(ctx: SimContext, chat: Chat, span: LayerRange, t: number): Opened | undefined {
  const m = ctx.metrics
  if (chat.measured) m.routeRequests++
  const refusing = new Set<string>()
  let ms = 0
  let dial = 0
  for (let attempt = 0; attempt <= SWARM.maxReplans; attempt++) {
    const plan = planSpan(ctx, chat, span, refusing)
    if (!plan) return undefined
    // hops open one after another; a refusal closes what was opened and plans again without that host
    const admitted: { host: Peer; layers: LayerRange; kv: number; at: number }[] = []
    const pending = new Map<Peer, { sessions: number; kv: number }>()
    let refused = false
    for (const r of plan) {
      const host = ctx.byId.get(r.peerId)!
      const rtt = rttMs(chat.client, host)
      if (!connected(chat.client, host, ctx.population)) {
        const d = dialMs(ctx.rng, chat.client, host, rtt)
        ms += d.totalMs
        dial += d.totalMs
        const recent = chat.client.client!.recentDialMs
        recent.push(d.attemptMs)
        if (recent.length > 10) recent.shift()
        if (chat.measured) m.dials++
      }
      ms += rtt // OPEN, and the host's answer
      const kv = sessionKvBytes(chat.model, r.layers.end - r.layers.start, maxLengthFor(ctx, chat))
      const promised = pending.get(host) ?? { sessions: 0, kv: 0 }
      if (!admits(host, kv, promised)) {
        acquire(chat.client, host, t + ms)
        release(chat.client, host, t + ms)
        refusing.add(host.id)
        refused = true
        if (chat.measured) m.refusals++
        break
      }
      pending.set(host, { sessions: promised.sessions + 1, kv: promised.kv + kv })
      admitted.push({ host, layers: r.layers, kv, at: t + ms })
    }
    if (!refused) {
      if (chat.measured) m.routesFound++
      return { hops: admitted.map((a) => createHop(ctx, chat, a.host, a.layers, a.kv, a.at)), ms, dialMs: dial }
    }
    for (const a of admitted) {
      acquire(chat.client, a.host, a.at)
      release(chat.client, a.host, t + ms)
    }
  }
  if (chat.measured) m.routesGivenUp++
  return undefined
}

