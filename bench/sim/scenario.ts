/**
 * One scenario: N tabs at steady state (initial tabs get the residual of a session, newcomers
 * arrive as a Poisson process at N / mean session, so N stays about constant), each hosting
 * layers where the swarm is weakest, some chatting; periodic ticks update hosts' load (and so
 * their adverts), the route shortlists, and the samples of coverage and connections.
 *
 * Time: a warm-up (not measured), then the measured span. The loop runs in slices of 10 s of
 * simulated time and yields between them, so the reputation books' async saves settle.
 */
import { layerThroughput, rebalance } from '../../src/swarm/placement.ts'
import { memoryReputationStore, openReputation, type Reputation } from '../../src/trust/reputation.ts'
import type { LayerRange } from '../../src/core/vocabulary.ts'
import { advance, endChat, replaceHop, sampleUnfinished, startChat } from './chats.ts'
import { TRUST, verifierGone } from './sessions.ts'
import type { ScenarioParams, SimContext } from './context.ts'
import { createEventLoop } from './events.ts'
import { addServed, assignModel, connectionCount, CONNECTIONS, dropConnections, newPeer, placeJoiner, pruneConnections, refreshHealth, removeServed, servedLists } from './peers.ts'
import { createRandom } from './random.ts'
import { refreshShortlists, tokenMs } from './routes.ts'
import { newMetrics } from './stats.ts'
import type { Peer } from './types.ts'
import { computeRowsMs, DEPARTURE, detectionMs, meanSessionS, MODELS, sampleResidualS, sampleSessionS, weightBytesPerLayer } from './world.ts'

export const TICKS = { loadMs: 2000, shortlistMs: 10_000, coverageMs: 10_000, pruneMs: 5000, connectionSampleMs: 30_000, sliceMs: 10_000 }
/** M/D/1 utilisation is capped here (a host past it refuses work: maxQueue 32). */
const RHO_CAP = 0.95

export async function runScenario(params: ScenarioParams): Promise<SimContext> {
  const rng = createRandom(params.seed)
  const loop = createEventLoop()
  const warmupMs = params.warmupMinutes * 60_000
  const endMs = warmupMs + params.simMinutes * 60_000
  const ctx: SimContext = {
    params, loop, rng, peers: [], byId: new Map(), lists: servedLists(), shortlist: new Map(), population: 0, activeChats: new Set(),
    busyHosts: new Set(), metrics: newMetrics(MODELS.map((m) => m.id)), wrongByPair: new Map(), measuring: () => loop.now >= warmupMs, nextChatId: 1, planCount: 0,
  }
  const m = ctx.metrics
  const pool: Reputation[] = []
  const topUp = async (size: number) => {
    while (pool.length < size) pool.push(await openReputation(memoryReputationStore()))
  }
  await topUp(Math.ceil(params.peers * params.clientShare * 1.3) + 64)

  const ready = (p: Peer, firstCheckMs: number) => {
    if (!p.alive) return
    addServed(ctx.lists.get(p.model!.id)!, p)
    refreshHealth(p)
    if (params.rebalance) loop.after(firstCheckMs, () => rebalanceCheck(p))
  }
  const loadMs = (p: Peer, layers: number) => (layers * weightBytesPerLayer(p.model!)) / p.device.loadBytesPerMs

  const rebalanceCheck = (p: Peer) => {
    if (!p.alive || !p.ready) return
    const list = ctx.lists.get(p.model!.id)!
    const target = rebalance(p.model!.nLayers, list.items, p.served!, 0.25)
    const period = params.rebalancePeriodS * 1000
    if (!target) return loop.after(period * (0.8 + 0.4 * rng.next()), () => rebalanceCheck(p))
    move(p, target)
  }

  /** A rebalancing tab drains its old slice (clients fail over as after a clean leave), loads the new layers, and serves again. */
  const move = (p: Peer, target: LayerRange) => {
    const t = loop.now
    if (ctx.measuring()) m.moves++
    removeServed(ctx.lists.get(p.model!.id)!, p)
    hostGone(p, t, 'moved')
    const old = p.layers!
    const fresh = Math.max(0, target.end - target.start - Math.max(0, Math.min(old.end, target.end) - Math.max(old.start, target.start)))
    p.layers = target
    loop.after(loadMs(p, fresh), () => ready(p, params.rebalancePeriodS * 1000))
  }

  const hostGone = (p: Peer, t: number, cause: 'graceful' | 'silent' | 'moved') => {
    verifierGone(ctx, p, t)
    for (const hop of [...p.sessions]) {
      if (!hop.live || advance(ctx, hop.chat, t) || !hop.live) continue
      replaceHop(ctx, hop.chat, hop, t, detectionMs(rng, cause !== 'silent'), cause)
    }
  }

  const join = (initial: boolean) => {
    const t = loop.now
    const p = newPeer(rng, ctx.peers.length, t)
    ctx.peers.push(p)
    ctx.byId.set(p.id, p)
    ctx.population++
    p.leaveAt = t + (initial ? sampleResidualS(rng, params.churn) : sampleSessionS(rng, params.churn)) * 1000
    p.graceful = rng.next() < DEPARTURE.gracefulShare
    if (rng.next() < params.clientShare && pool.length > 0) p.client = { reputation: pool.pop()!, failures: new Map(), recentDialMs: [] }
    const place = placeJoiner(p, ctx.lists)
    if (place) {
      assignModel(p, place.model, place.layers)
      if (rng.next() < params.liarShare) {
        p.liar = rng.next() < 0.5 ? 'naive' : 'patient'
        p.honestWith = new Map()
      }
      const period = params.rebalancePeriodS * 1000
      if (initial) ready(p, rng.next() * period)
      else loop.after(loadMs(p, place.layers.end - place.layers.start), () => ready(p, period * (0.8 + 0.4 * rng.next())))
    }
    loop.at(p.leaveAt, () => leave(p))
    if (p.client) loop.after(initial ? rng.next() * params.thinkMeanS * 1000 : rng.exp(params.thinkMeanS * 1000), () => startChat(ctx, p))
    if (!initial && ctx.measuring()) m.joins++
  }

  const leave = (p: Peer) => {
    const t = loop.now
    p.alive = false
    ctx.population--
    if (ctx.measuring()) m.leaves++
    if (p.client?.chat) endChat(ctx, p.client.chat, t, 'aborted')
    if (p.ready) removeServed(ctx.lists.get(p.model!.id)!, p)
    hostGone(p, t, p.graceful ? 'graceful' : 'silent')
    dropConnections(p, ctx.peers)
    ctx.busyHosts.delete(p)
  }

  const arrivalMeanMs = (meanSessionS(params.churn) * 1000) / params.peers
  const arrive = () => {
    join(false)
    loop.after(rng.exp(arrivalMeanMs), arrive)
  }

  const loadTick = () => {
    const t = loop.now
    for (const chat of [...ctx.activeChats]) advance(ctx, chat, t)
    const s2 = new Map<Peer, number>()
    for (let iter = 0; iter < 2; iter++) {
      for (const h of ctx.busyHosts) {
        h.rho = 0
        s2.set(h, 0)
      }
      for (const chat of ctx.activeChats) {
        if (chat.phase !== 'generating') continue
        const rate = 1 / chat.tauMs
        for (const hop of chat.hops) {
          hop.host.rho += rate * hop.serviceMs
          s2.set(hop.host, (s2.get(hop.host) ?? 0) + rate * hop.serviceMs ** 2)
          const v = hop.verifier
          if (!v) continue
          // the verifier re-runs each window of 8 positions in one call
          const check = computeRowsMs(v.device, v.lts, hop.layers.end - hop.layers.start, TRUST.windowRows)
          v.rho += (rate / TRUST.windowRows) * check
          s2.set(v, (s2.get(v) ?? 0) + (rate / TRUST.windowRows) * check ** 2)
        }
      }
      for (const h of ctx.busyHosts) h.waitMs = (s2.get(h) ?? 0) / (2 * (1 - Math.min(h.rho, RHO_CAP)))
      for (const chat of ctx.activeChats) if (chat.phase === 'generating') chat.tauMs = tokenMs(chat)
    }
    for (const h of [...ctx.busyHosts]) {
      const rho = Math.min(h.rho, RHO_CAP)
      h.advert.load = { queueDepth: Math.round((rho * rho) / (2 * (1 - rho))), activeSessions: h.sessions.size }
      refreshHealth(h)
      if (h.sessions.size === 0 && h.checks.size === 0) {
        h.waitMs = 0
        ctx.busyHosts.delete(h)
      }
    }
    loop.after(TICKS.loadMs, loadTick)
  }

  const coverageTick = () => {
    if (ctx.measuring()) {
      m.populationSamples.push(ctx.population)
      for (const list of ctx.lists.values()) {
        const c = m.coverageSamples[list.model.id]
        const t = layerThroughput(list.model.nLayers, list.items)
        let weakest = Infinity
        for (const x of t) weakest = Math.min(weakest, x)
        c.samples++
        if (weakest > 0) c.covered++
        c.weakest.push(weakest)
        c.minReplicas.push(list.replicas.reduce((a, b) => Math.min(a, b), Infinity))
      }
    }
    loop.after(TICKS.coverageMs, coverageTick)
  }

  let pruneCount = 0
  const pruneTick = () => {
    const t = loop.now
    const sample = ctx.measuring() && ++pruneCount % (TICKS.connectionSampleMs / TICKS.pruneMs) === 0
    for (const p of ctx.peers) {
      if (!p.alive) continue
      pruneConnections(p, t, ctx.peers)
      if (!sample) continue
      const n = connectionCount(p)
      m.connections.push(n)
      if (n > CONNECTIONS.libp2pMaxConnections) m.overLibp2pCap++
    }
    loop.after(TICKS.pruneMs, pruneTick)
  }

  const shortlistTick = () => {
    refreshShortlists(ctx)
    loop.after(TICKS.shortlistMs, shortlistTick)
  }

  for (let i = 0; i < params.peers; i++) join(true)
  refreshShortlists(ctx)
  loop.after(rng.exp(arrivalMeanMs), arrive)
  loop.after(TICKS.loadMs, loadTick)
  loop.after(TICKS.coverageMs, coverageTick)
  loop.after(TICKS.pruneMs, pruneTick)
  loop.after(TICKS.shortlistMs, shortlistTick)
  for (let t = 0; t < endMs;) {
    t = Math.min(endMs, t + TICKS.sliceMs)
    loop.run(t)
    await topUp(64)
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (const chat of [...ctx.activeChats]) if (!advance(ctx, chat, endMs)) sampleUnfinished(ctx, chat, endMs)
  return ctx
}
