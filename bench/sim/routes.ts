/**
 * Route planning with the project's own code: PeerEntry values as src/mesh/peer-table.ts holds
 * them (direct and rttMs only for peers the client holds a connection to: the node pings direct
 * connections only), candidates from src/swarm/mesh-swarm-engine.ts routeCandidates (each priced
 * by src/mesh/selection.ts routeCost, with the client's own median dial as dialMs for a peer it
 * holds no connection to), revoked peers left out as swarm-engine's usable() does, and
 * src/swarm/route.ts planRoute with the session's banned peers.
 *
 * Shortlist (a simulation shortcut, checked): a tab's table holds every peer, and planRoute over
 * all of a model's hosts costs O(layers x candidates x span) — measured here as planFullMs. To keep
 * thousands of plans cheap, each plan sees (a) per layer of the span, the `shortlistPerLayer`
 * usable hosts with the lowest routeCost per layer as a stranger (no RTT known, no connection;
 * ranking refreshed every 10 s), skipping banned, refusing and revoked ones, plus (b) every host
 * the client is connected to. Every 25th plan (up to 40) is also made over the full table; the
 * cost ratio is reported as shortlistCostRatio (1 = the same route cost).
 */
import type { LayerRange } from '../../src/core/vocabulary.ts'
import type { MeshNode } from '../../src/mesh/node.ts'
import type { PeerEntry } from '../../src/mesh/peer-table.ts'
import { routeCost } from '../../src/mesh/selection.ts'
import { routeCandidates } from '../../src/swarm/mesh-swarm-engine.ts'
import { planRoute, type RouteCandidate, type RouteHop } from '../../src/swarm/route.ts'
import type { SimContext } from './context.ts'
import { connected } from './peers.ts'
import type { Chat, Hop, Peer } from './types.ts'
import { computeRowsMs, HOST_KV_BUDGET, HOST_MAX_SESSIONS, rttMs, sessionKvBytes, type ModelSpec } from './world.ts'

/** Activation bytes of `rows` positions one way (f32, the hop's default dtype). */
export const activationBytes = (m: ModelSpec, rows: number) => rows * m.dim * 4

/** Head and sampling on the client: reading the output matrix (128k vocab x dim, q4) once per token. */
export const localMs = (client: Peer, m: ModelSpec) => ((128_256 * m.dim * 0.5625) / client.device.bandwidth) * 1000

/** True milliseconds of one call of `rows` positions through `host` for `layers` layers (round trip, transfer both ways, wait, compute). */
export function stepMs(client: Peer, host: Peer, m: ModelSpec, layers: number, rows: number, rtt = rttMs(client, host)): number {
  const transfer = activationBytes(m, rows) * (1 / client.device.linkBytesPerMs + 1 / host.device.linkBytesPerMs)
  return rtt + transfer + host.waitMs + computeRowsMs(host.device, host.lts, layers, rows)
}

/** True milliseconds per generated token on the chat's route now. */
export function tokenMs(chat: Chat): number {
  let ms = localMs(chat.client, chat.model)
  for (const h of chat.hops) ms += h.rttMs + activationBytes(chat.model, 1) * (1 / chat.client.device.linkBytesPerMs + 1 / h.host.device.linkBytesPerMs) + h.serviceMs + h.host.waitMs
  return ms
}

/** The client's peer-table entry for `p`. `knowAll`: an oracle that knows every RTT. */
export function entryFor(ctx: SimContext, client: Peer, p: Peer, knowAll = false): PeerEntry {
  const direct = connected(client, p, ctx.population)
  const now = ctx.loop.now
  return {
    peerId: p.id, advert: p.advert, health: p.health, firstSeen: 0, lastSeen: now, advertDelayMs: 0,
    connections: direct ? 1 : 0, direct, rttMs: direct || knowAll ? rttMs(client, p) : undefined,
    history: { successes: 0, failures: client.client?.failures.get(p.id) ?? 0, latencyMs: undefined },
  }
}

/**
 * A stand-in MeshNode with what routeCandidates reads: a peer table listing `entries`, and
 * expectedDialMs (src/mesh/node.ts: the median of the tab's last 10 dials, 400 before any).
 */
function meshOf(client: Peer, entries: PeerEntry[]): MeshNode {
  const recent = [...(client.client?.recentDialMs ?? [])].sort((a, b) => a - b)
  const expectedDialMs = () => (recent.length > 0 ? recent[recent.length >> 1] : 400)
  return { table: { list: () => entries }, expectedDialMs } as unknown as MeshNode
}

/** Whether `p` admits one more session needing `kvBytes` (src/swarm/host.ts: maxSessions, then the KV budget); `pending` sessions and KV already promised in this request. */
export function admits(p: Peer, kvBytes: number, pending = { sessions: 0, kv: 0 }): boolean {
  return p.sessions.size + p.checks.size + pending.sessions < HOST_MAX_SESSIONS && p.kvUsed + pending.kv + kvBytes <= HOST_KV_BUDGET
}

/** Whether `p` could admit a session of at least one layer for this chat. */
export const hasRoom = (ctx: SimContext, chat: Chat, p: Peer) => admits(p, sessionKvBytes(chat.model, 1, maxLengthFor(ctx, chat)))

export const maxLengthFor = (ctx: SimContext, chat: Chat) => (ctx.params.maxLength === 'seqLen' ? chat.model.seqLen : chat.promptTokens + chat.targetTokens)

function candidatesFor(ctx: SimContext, chat: Chat, hosts: Iterable<Peer>, knowAll = false): RouteCandidate[] {
  const rep = chat.client.client!.reputation
  const entries: PeerEntry[] = []
  for (const p of hosts) {
    if (p === chat.client || !p.alive || !p.ready || p.model !== chat.model) continue
    if (ctx.params.capacityAware && !hasRoom(ctx, chat, p)) continue
    entries.push(entryFor(ctx, chat.client, p, knowAll))
  }
  const cands = routeCandidates(meshOf(chat.client, entries), chat.model.id, chat.model.dim).filter((c) => !rep.revoked(c.peerId))
  if (!ctx.params.capacityAware) return cands
  // the fix emulated: a span whose KV the host cannot hold now costs Infinity (planRoute skips it)
  const maxLength = maxLengthFor(ctx, chat)
  return cands.map((c) => {
    const host = ctx.byId.get(c.peerId)!
    return { ...c, cost: (span: LayerRange) => (host.kvUsed + sessionKvBytes(chat.model, span.end - span.start, maxLength) <= HOST_KV_BUDGET ? c.cost(span) : Infinity) }
  })
}

/** Re-ranks every model's hosts by their cost per layer as strangers (routeCost of the whole slice / its layers). */
export function refreshShortlists(ctx: SimContext): void {
  for (const list of ctx.lists.values()) {
    const m = list.model
    const keyed = list.peers.map((p) => {
      const entry: PeerEntry = {
        peerId: p.id, advert: p.advert, health: p.health, firstSeen: 0, lastSeen: 0, advertDelayMs: 0, connections: 0, direct: false, rttMs: undefined,
        history: { successes: 0, failures: 0, latencyMs: undefined },
      }
      const span = p.layers!.end - p.layers!.start
      return { p, key: routeCost(entry, { modelId: m.id, layers: p.layers!, rows: 1, transferBytes: 2 * activationBytes(m, 1) }) / span }
    }).sort((a, b) => a.key - b.key || a.p.idx - b.p.idx)
    ctx.shortlist.set(m.id, keyed.map((k) => k.p))
  }
}

/**
 * The plan's shortlist: walking the ranking, per layer of `span` the first `shortlistPerLayer`
 * usable hosts (alive, ready, not excluded); undefined when the whole ranking cannot cover the
 * span (then no route exists).
 */
function shortlistFor(ctx: SimContext, chat: Chat, span: LayerRange, excluded: ReadonlySet<string>): Set<Peer> | undefined {
  const k = ctx.params.shortlistPerLayer
  const rep = chat.client.client!.reputation
  const maxLength = maxLengthFor(ctx, chat)
  const have = new Int32Array(span.end - span.start)
  let short = have.length
  const chosen = new Set<Peer>()
  for (const p of ctx.shortlist.get(chat.model.id) ?? []) {
    if (short === 0) break
    if (!p.alive || !p.ready || p === chat.client || p.model !== chat.model || excluded.has(p.id) || rep.revoked(p.id)) continue
    const from = Math.max(span.start, p.layers!.start)
    const to = Math.min(span.end, p.layers!.end)
    // capacity-aware: only a host that can take all it would serve of the span counts (one that is full, or would take only a part, is left out)
    if (ctx.params.capacityAware && !admits(p, sessionKvBytes(chat.model, Math.max(0, to - from), maxLength))) continue
    let useful = false
    for (let l = from; l < to; l++) if (have[l - span.start] < k) useful = true
    if (!useful) continue
    chosen.add(p)
    for (let l = from; l < to; l++) if (++have[l - span.start] === k) short--
  }
  return have.every((n) => n > 0) ? chosen : undefined
}

/** The route cost planRoute minimised, summed over `hops` with `cands`' own estimates. */
function plannedCost(cands: RouteCandidate[], hops: RouteHop[]): number {
  let sum = 0
  for (const h of hops) {
    const c = cands.find((x) => x.peerId === h.peerId && x.layers.start <= h.layers.start && h.layers.end <= x.layers.end)
    sum += c ? c.cost(h.layers) : Infinity
  }
  return sum
}

/** True per-token milliseconds of a planned route for this client (without its local head). */
function trueCost(ctx: SimContext, client: Peer, m: ModelSpec, hops: RouteHop[]): number {
  let sum = 0
  for (const h of hops) sum += stepMs(client, ctx.byId.get(h.peerId)!, m, h.layers.end - h.layers.start, 1)
  return sum
}

/**
 * A route for `span` of the chat's model, avoiding the session's banned peers and `refusing`
 * (hosts that refused this request); undefined when none exists.
 */
export function planSpan(ctx: SimContext, chat: Chat, span: LayerRange, refusing: ReadonlySet<string>): RouteHop[] | undefined {
  const list = ctx.lists.get(chat.model.id)!
  for (let l = span.start; l < span.end; l++) if (list.replicas[l] === 0) return undefined
  const banned = new Set([...chat.banned, ...refusing])
  const hosts = shortlistFor(ctx, chat, span, banned)
  if (!hosts) return undefined
  for (const q of chat.client.last.keys()) hosts.add(ctx.peers[q])
  const started = performance.now()
  const cands = candidatesFor(ctx, chat, hosts)
  let route: RouteHop[] | undefined
  try {
    route = planRoute(cands, span, banned)
  } catch {
    route = undefined
  }
  if (ctx.measuring()) ctx.metrics.planShortMs.push(performance.now() - started)
  if (ctx.measuring() && ++ctx.planCount % 25 === 0 && ctx.metrics.planFullMs.length < 40) {
    // the same plan over the full table: its cost, and how close the shortlist's route comes
    const t0 = performance.now()
    const all = candidatesFor(ctx, chat, list.peers)
    let full: RouteHop[] | undefined
    try {
      full = planRoute(all, span, banned)
    } catch {
      full = undefined
    }
    ctx.metrics.planFullMs.push(performance.now() - t0)
    if (route && full) ctx.metrics.shortlistCostRatio.push(plannedCost(all, route) / plannedCost(all, full))
    route ??= full
  }
  if (route && ctx.measuring() && ctx.planCount % 5 === 0 && span.end - span.start === chat.model.nLayers) {
    // how much slower per token the chosen route is than one planned knowing every RTT
    const truth = trueCost(ctx, chat.client, chat.model, route)
    try {
      const oracle = planRoute(candidatesFor(ctx, chat, hosts, true), span, banned)
      ctx.metrics.plannedVsOracle.push(truth / trueCost(ctx, chat.client, chat.model, oracle))
    } catch {
      // no oracle route: nothing to compare
    }
  }
  return route
}

/** Milliseconds a verifier needs to re-run one window of 8 positions of `hop` and answer. */
export function checkLatencyMs(hop: Hop): number {
  const v = hop.verifier
  const layers = hop.layers.end - hop.layers.start
  if (!v) return 300 // the client's own engine
  return rttMs(hop.chat.client, v) + computeRowsMs(v.device, v.lts, layers, 8)
}
