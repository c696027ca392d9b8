/**
 * A scenario's measurements, summarised for sim.json, and the compact table printed to stdout.
 */
import type { SimContext } from './context.ts'
import type { GossipLoad } from './gossip.ts'
import { max, mean, quantile, round } from './stats.ts'

export interface ScenarioSummary {
  name: string
  peers: number
  churnMultiplier: number
  medianSessionMin: number
  liarShare: number
  rebalance: boolean
  rebalancePeriodS: number
  routing: string
  maxLength: string
  simMinutes: number
  population: { mean: number | null; min: number | null; max: number | null }
  joins: number
  leaves: number
  rebalanceMoves: number
  coverage: Record<string, { coveredFraction: number | null; minReplicasP50: number | null; minReplicasMin: number | null; weakestLayerTokensPerSecondP50: number | null }>
  routes: { requests: number; found: number; availability: number | null; givenUpAfterRefusals: number; refusalsPerRequest: number | null; dialsPerRequest: number | null }
  chats: { started: number; completed: number; failed: number; failedBy: Record<string, number>; aborted: number }
  tokens: number
  tokensPerSecond: { p50: number | null; p10: number | null }
  /** Per model; tokens/s samples include chats still generating at the end (70B chats outlast the window). */
  byModel: Record<string, { chats: number; tokensPerSecondP50: number | null; tokensPerSecondP10: number | null; ttftMsP50: number | null }>
  ttftMs: { p50: number | null; p90: number | null; prefillP50: number | null }
  dialDelayMs: { mean: number | null; p50: number | null; p90: number | null; chatsWithDialFraction: number | null }
  failovers: {
    count: number; graceful: number; silent: number; moved: number
    /** Chats ended by churn: more than maxFailovers, or no replacement route. */
    chatsLostFraction: number | null
    per1000Tokens: number | null; tokensNeedingFailoverFraction: number | null; chatsWithFailoverFraction: number | null
    timeLostMs: { mean: number | null; p50: number | null; p90: number | null }
    replayMsP50: number | null
    timeLostIfReplayBatchedMsP50: number | null
  }
  trust: {
    liarHops: number; caught: number; wrongTokens: number; wrongTokenFraction: number | null; chatsWithWrongTokensFraction: number | null
    tokensServedByLiarBeforeCaught: { mean: number | null; p90: number | null; max: number | null }
    uncaughtClientLiarPairs: number; meanCheckRate: number | null; drawnHopFraction: number | null; reexecutedRowFraction: number | null
  }
  connections: { max: number | null; p50: number | null; p99: number | null; mean: number | null; overLibp2pCapFraction: number | null }
  planner: { shortlistPlanMsP50: number | null; fullTablePlanMsP50: number | null; shortlistCostRatioP50: number | null; shortlistCostRatioP90: number | null; shortlistCostRatioMax: number | null; chosenOverOracleP50: number | null; chosenOverOracleP90: number | null }
  gossip?: GossipLoad
  wallSeconds: number
}

const r = round
const frac = (a: number, b: number) => (b > 0 ? r(a / b, 4) : null)

export function summarise(ctx: SimContext, wallSeconds: number): ScenarioSummary {
  const p = ctx.params
  const m = ctx.metrics
  const coverage: ScenarioSummary['coverage'] = {}
  for (const [id, c] of Object.entries(m.coverageSamples)) {
    coverage[id] = { coveredFraction: frac(c.covered, c.samples), minReplicasP50: r(quantile(c.minReplicas, 0.5)), minReplicasMin: r(Math.min(...c.minReplicas)), weakestLayerTokensPerSecondP50: r(quantile(c.weakest, 0.5)) }
  }
  let uncaught = 0
  for (const v of ctx.wrongByPair.values()) if (v > 0) uncaught++
  return {
    name: p.name, peers: p.peers, churnMultiplier: p.churnMultiplier, medianSessionMin: r(p.churn.medianS / 60)!, liarShare: p.liarShare, rebalance: p.rebalance, rebalancePeriodS: p.rebalancePeriodS, routing: p.capacityAware ? 'capacity-aware (fix emulated: full hosts are not candidates)' : 'as-is (full hosts refuse; client re-plans)', maxLength: p.maxLength, simMinutes: p.simMinutes,
    population: { mean: r(mean(m.populationSamples)), min: r(Math.min(...m.populationSamples)), max: r(max(m.populationSamples)) },
    joins: m.joins, leaves: m.leaves, rebalanceMoves: m.moves, coverage,
    routes: { requests: m.routeRequests, found: m.routesFound, availability: frac(m.routesFound, m.routeRequests), givenUpAfterRefusals: m.routesGivenUp, refusalsPerRequest: frac(m.refusals, m.routeRequests), dialsPerRequest: frac(m.dials, m.routeRequests) },
    chats: { started: m.chatsStarted, completed: m.chatsCompleted, failed: m.chatsFailed, failedBy: m.failedBy, aborted: m.chatsAborted },
    tokens: Math.round(m.tokens),
    tokensPerSecond: { p50: r(quantile(m.tokensPerSecond, 0.5)), p10: r(quantile(m.tokensPerSecond, 0.1)) },
    byModel: Object.fromEntries(Object.entries(m.byModel).map(([id, b]) => [id, { chats: b.tokensPerSecond.length, tokensPerSecondP50: r(quantile(b.tokensPerSecond, 0.5)), tokensPerSecondP10: r(quantile(b.tokensPerSecond, 0.1)), ttftMsP50: r(quantile(b.ttftMs, 0.5)) }])),
    ttftMs: { p50: r(quantile(m.ttftMs, 0.5)), p90: r(quantile(m.ttftMs, 0.9)), prefillP50: r(quantile(m.prefillMs, 0.5)) },
    dialDelayMs: { mean: r(mean(m.dialDelayMs)), p50: r(quantile(m.dialDelayMs, 0.5)), p90: r(quantile(m.dialDelayMs, 0.9)), chatsWithDialFraction: frac(m.dialDelayMs.filter((x) => x > 0).length, m.dialDelayMs.length) },
    failovers: {
      count: m.failovers, graceful: m.failoversGraceful, silent: m.failoversSilent, moved: m.failoversMoved,
      chatsLostFraction: frac((m.failedBy['max-failovers'] ?? 0) + (m.failedBy['failover-no-route'] ?? 0), m.chatsStarted),
      per1000Tokens: m.tokens > 0 ? r((m.failovers * 1000) / m.tokens) : null,
      tokensNeedingFailoverFraction: m.tokens > 0 ? r(m.tokensNeedingFailover / m.tokens, 4) : null,
      chatsWithFailoverFraction: frac(m.chatsWithFailover, m.chatsCompleted),
      timeLostMs: { mean: r(mean(m.failoverMs)), p50: r(quantile(m.failoverMs, 0.5)), p90: r(quantile(m.failoverMs, 0.9)) },
      replayMsP50: r(quantile(m.replayMs, 0.5)),
      timeLostIfReplayBatchedMsP50: r(quantile(m.replayBatchedMs, 0.5)),
    },
    trust: {
      liarHops: m.liarHops, caught: m.caught, wrongTokens: Math.round(m.wrongTokens), wrongTokenFraction: m.tokens > 0 ? r(m.wrongTokens / m.tokens, 4) : null,
      chatsWithWrongTokensFraction: frac(m.chatsWithWrongTokens, m.chatsStarted),
      tokensServedByLiarBeforeCaught: { mean: r(mean(m.tokensBeforeCaught)), p90: r(quantile(m.tokensBeforeCaught, 0.9)), max: r(max(m.tokensBeforeCaught)) },
      uncaughtClientLiarPairs: uncaught, meanCheckRate: m.hopsOpened > 0 ? r(m.checkRateSum / m.hopsOpened) : null,
      drawnHopFraction: frac(m.hopsDrawn, m.hopsOpened), reexecutedRowFraction: frac(m.rowsChecked, m.rowsTotal),
    },
    connections: { max: r(max(m.connections)), p50: r(quantile(m.connections, 0.5)), p99: r(quantile(m.connections, 0.99)), mean: r(mean(m.connections)), overLibp2pCapFraction: frac(m.overLibp2pCap, m.connections.length) },
    planner: {
      shortlistPlanMsP50: r(quantile(m.planShortMs, 0.5)), fullTablePlanMsP50: r(quantile(m.planFullMs, 0.5)),
      shortlistCostRatioP50: r(quantile(m.shortlistCostRatio, 0.5), 4), shortlistCostRatioP90: r(quantile(m.shortlistCostRatio, 0.9), 4), shortlistCostRatioMax: r(max(m.shortlistCostRatio), 4),
      chosenOverOracleP50: r(quantile(m.plannedVsOracle, 0.5)), chosenOverOracleP90: r(quantile(m.plannedVsOracle, 0.9)),
    },
    wallSeconds: r(wallSeconds)!,
  }
}

const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? '-' : x.toFixed(d))
const pct = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? '-' : (100 * x).toFixed(d) + '%')

/** The compact stdout table: one row per scenario. */
export function table(rows: ScenarioSummary[]): string {
  const head = ['scenario', 'N', 'sess', 'cover', 'route', 'tok/s p50', 'p10', 'ttft', 'dial', 'fo/1k', 'tok fo', 'lost p50', 'wrong', 'caught', 'conn p50', 'p99', 'max', 'gossip KB/s', 'wall']
  const body = rows.map((s) => {
    const cov = Math.min(...Object.values(s.coverage).map((c) => c.coveredFraction ?? 0))
    return [
      s.name, String(s.peers), f(s.medianSessionMin, 1) + 'm', pct(cov, 1), pct(s.routes.availability, 1), f(s.tokensPerSecond.p50, 2), f(s.tokensPerSecond.p10, 2),
      f(s.ttftMs.p50) + 'ms', f(s.dialDelayMs.mean) + 'ms', f(s.failovers.per1000Tokens, 2), pct(s.failovers.tokensNeedingFailoverFraction, 3),
      f(s.failovers.timeLostMs.p50) + 'ms', pct(s.trust.wrongTokenFraction, 3), `${s.trust.caught}`, f(s.connections.p50), f(s.connections.p99), f(s.connections.max),
      f(s.gossip ? s.gossip.bytesPerS / 1000 : null), f(s.wallSeconds, 1) + 's',
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')
}
