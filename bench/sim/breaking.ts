/**
 * Where the design breaks: thresholds crossed in the scenarios and the gossip curve, each with
 * the measured value and a sentence on what would fix it.
 */
import { breakingN, gossipLoad, type AdvertCost, type Propagation } from './gossip.ts'
import type { ScenarioSummary } from './report.ts'
import { CONNECTIONS } from './peers.ts'

export interface BreakingPoint {
  what: string
  at: string
  value: number | null
  fix: string
}

/** Log-log interpolation of where y crosses `level` between two points (x falling as y rises). */
function crossing(a: [number, number], b: [number, number], level: number): number {
  const [x0, y0] = a.map(Math.log) as [number, number]
  const [x1, y1] = b.map(Math.log) as [number, number]
  if (y1 === y0) return Math.exp(x1)
  return Math.exp(x0 + ((Math.log(level) - y0) * (x1 - x0)) / (y1 - y0))
}

/** Where the distinct-token fraction passes 1% in the sweep, in words. */
function distinctAt(sweep: ScenarioSummary[], distinct: (s: ScenarioSummary) => number): string {
  const k = sweep.findIndex((s) => distinct(s) > 0.01)
  const last = sweep[sweep.length - 1]
  if (k < 0) return `stay under 1% down to ${last.medianSessionMin} min (${(distinct(last) * 100).toFixed(2)}% there)`
  const prev = sweep[k - 1]
  const at = prev && distinct(prev) > 0 ? crossing([prev.medianSessionMin, distinct(prev)], [sweep[k].medianSessionMin, distinct(sweep[k])], 0.01) : sweep[k].medianSessionMin
  return `pass 1% only at ~${at.toFixed(2)} min (${(distinct(sweep[k]) * 100).toFixed(2)}% at ${sweep[k].medianSessionMin} min)`
}

export function findBreakingPoints(results: ScenarioSummary[], advert: AdvertCost, prop: Propagation): BreakingPoint[] {
  const out: BreakingPoint[] = []
  const scale = results.filter((s) => s.name.startsWith('scale-')).sort((a, b) => a.peers - b.peers)
  const sweepN = results.find((s) => s.name.startsWith('churn-'))?.peers
  const sweep = results.filter((s) => s.peers === sweepN && (s.name.startsWith('churn-') || s.name === `scale-${sweepN}`)).sort((a, b) => b.medianSessionMin - a.medianSessionMin)

  // churn: failovers per token > 1% (one failover stalls one token; failovers during a replay stall the same token again)
  const per = (s: ScenarioSummary) => (s.failovers.per1000Tokens ?? 0) / 1000
  const distinct = (s: ScenarioSummary) => s.failovers.tokensNeedingFailoverFraction ?? 0
  const i = sweep.findIndex((s) => per(s) > 0.01)
  const last = sweep[sweep.length - 1]
  if (i < 0) {
    out.push({ what: 'churn: failovers exceed 1% of tokens (10 per 1,000)', at: `not reached down to a median tab session of ${last?.medianSessionMin} min (${last?.failovers.per1000Tokens} per 1,000 there)`, value: null, fix: 'nothing needed at these rates' })
  } else {
    const prev = sweep[i - 1]
    const at = prev && per(prev) > 0 ? crossing([prev.medianSessionMin, per(prev)], [sweep[i].medianSessionMin, per(sweep[i])], 0.01) : sweep[i].medianSessionMin
    out.push({
      what: 'churn: failovers exceed 1% of tokens (10 per 1,000)', value: +at.toFixed(2),
      at: `median tab session ~${at.toFixed(1)} min, i.e. churn x${(20 / at).toFixed(0)} of the 20 min baseline (${sweep[i].failovers.per1000Tokens} per 1,000 at ${sweep[i].medianSessionMin} min, N = ${sweepN}); distinct tokens interrupted ${distinctAt(sweep, distinct)} (several failovers often hit the token being replayed); at the 20 min baseline ${sweep.find((s) => s.churnMultiplier === 1)?.failovers.per1000Tokens ?? '?'} per 1,000`,
      fix: 'drain before leaving (announce and hand sessions over on pagehide/visibility change) and keep a warm standby for each hop, so a departure costs a switch rather than a replay',
    })
  }
  // churn: chats lost (maxFailovers exceeded or no replacement route) > 1%
  const lost = (s: ScenarioSummary) => s.failovers.chatsLostFraction ?? 0
  const j = sweep.findIndex((s) => lost(s) > 0.01)
  out.push(j < 0
    ? { what: 'churn: > 1% of chats lost to failovers', at: `not reached down to ${last?.medianSessionMin} min`, value: null, fix: 'nothing needed at these rates' }
    : {
      what: 'churn: > 1% of chats lost to failovers', value: sweep[j].medianSessionMin,
      at: `median tab session ${sweep[j].medianSessionMin} min: ${(lost(sweep[j]) * 100).toFixed(1)}% of chats end with more than 8 failovers or no replacement route (${(lost(last) * 100).toFixed(1)}% at ${last.medianSessionMin} min); layer coverage stays ${Math.min(...Object.values(last.coverage).map((c) => c.coveredFraction ?? 0)) * 100}% throughout`,
      fix: 'the same drain-and-standby, plus a replay that batches history (each failover then costs seconds, not tens of seconds, so fewer hosts leave during one)',
    })

  // as-is routing: full hosts refuse, clients re-plan
  const asIs = results.filter((s) => s.name.startsWith('as-is-')).sort((a, b) => a.peers - b.peers)
  const failing = asIs.find((s) => (s.routes.availability ?? 1) < 0.99)
  if (asIs.length > 0) {
    out.push({
      what: 'routing as is: routes pick hosts that are full (adverts do not say so), which refuse', value: failing?.peers ?? null,
      at: `${asIs.map((s) => `N = ${s.peers}: ${s.routes.refusalsPerRequest} refusals per route request, ${((s.routes.availability ?? 0) * 100).toFixed(0)}% of requests get a route within 32 re-plans`).join('; ')} (every client ranks strangers the same way, so they queue up at the same few big hosts, whose 256 MiB kvBudget holds 1-3 sessions)`,
      fix: 'advertise free session slots and KV in the advert\'s load, let routeCost return Infinity for a host that cannot take the hop, and spread equal-cost choices at random (the scale-* scenarios emulate the first two: ~0.1-0.3 refusals per request)',
    })
  }
  // verification overhead
  const big0 = scale[scale.length - 1]
  if (big0) {
    out.push({
      what: 'spot checks re-execute most of the work', value: big0.trust.reexecutedRowFraction,
      at: `${((big0.trust.reexecutedRowFraction ?? 0) * 100).toFixed(0)}% of hop rows re-executed by verifiers at N = ${big0.peers} (mean check rate ${big0.trust.meanCheckRate}): reputation is per client, and a client rarely meets a host twice in a large swarm, so most hosts are strangers (rate 1); verifier sessions also take host slots and KV`,
      fix: 'share verdicts (signed audit entries gossiped or fetched on demand) so a host checked clean by others starts at a lower rate, and check a random window sample of a stranger rather than every window',
    })
  }

  // gossip
  const nAdverts = breakingN(advert, prop, (l) => l.advertsPerS > 100)
  const nMsgs = breakingN(advert, prop, (l) => l.messagesPerS > 100)
  const nBytes = breakingN(advert, prop, (l) => l.bytesPerS > 100_000)
  const nCpu = breakingN(advert, prop, (l) => l.cpuMsPerS > 100)
  const at1k = gossipLoad(1000, advert, prop)
  out.push({
    what: 'gossip: a tab receives > 100 KB/s of advert traffic', value: nBytes ?? null,
    at: `N ~ ${nBytes} tabs (at N = 1000: ${(at1k.bytesPerS / 1000).toFixed(0)} KB/s, of which IHAVE ${(at1k.bytesBreakdown.ihave / 1000).toFixed(0)} KB/s, full adverts ${(at1k.bytesBreakdown.full / 1000).toFixed(0)} KB/s)`,
    fix: 'per-model advert topics, heartbeats only on change with a slow keep-alive (e.g. every max(1 s, N/50 s)) and a staleAfterMs to match, so per-tab traffic stays flat in N',
  })
  out.push({
    what: 'gossip: > 100 messages/s per tab', value: nAdverts ?? null,
    at: `distinct adverts exceed 100/s at N ~ ${nAdverts}; gossipsub RPCs (adverts with duplicates, IDONTWANT, IHAVE) at N ~ ${nMsgs}`,
    fix: 'the same: per-model topics and an advert interval that grows with N; beyond ~1,000 tabs, discovery through a DHT or rendezvous (as Petals does) instead of flooding every advert to every tab',
  })
  out.push({
    what: 'gossip: verifying adverts takes > 10% of a core', value: nCpu ?? null,
    at: `N ~ ${nCpu} (decode ${advert.decodeUs.toFixed(0)} us + Ed25519 verify ${advert.verifyUs.toFixed(0)} us per advert, measured in Node)`,
    fix: 'fewer adverts (above); a tab need not validate adverts of models it never routes through',
  })

  // connections
  const maxConn = Math.max(...scale.map((s) => s.connections.max ?? 0))
  const worst = scale.find((s) => (s.connections.max ?? 0) === maxConn)
  out.push({
    what: `connections: a tab above libp2p's maxConnections (${CONNECTIONS.libp2pMaxConnections})`, value: maxConn,
    at: maxConn > CONNECTIONS.libp2pMaxConnections
      ? `reached: max ${maxConn} at N = ${worst?.peers} (p99 ${worst?.connections.p99})`
      : `not reached: max ${maxConn} (N = ${worst?.peers}), p99 ${worst?.connections.p99}, p50 ${worst?.connections.p50}; bounded by maxSessions x clients plus route hops, flat in N`,
    fix: 'keep maxSessions per host and the idle close as they are; the count grows with routes per client (hops + verifiers), not with N',
  })

  // planner cost
  const big = scale[scale.length - 1]
  if (big?.planner.fullTablePlanMsP50) {
    out.push({
      what: 'route planning over the full peer table', value: big.planner.fullTablePlanMsP50,
      at: `${big.planner.fullTablePlanMsP50} ms per plan at N = ${big.peers} (vs ${scale[0]?.planner.fullTablePlanMsP50} ms at N = ${scale[0]?.peers}; linear in hosts x span); a shortlist (per layer the 6 cheapest hosts + connected ones) plans in ${big.planner.shortlistPlanMsP50} ms with a route cost ${big.planner.shortlistCostRatioP50}x (p50) / ${big.planner.shortlistCostRatioP90}x (p90) the full plan's`,
      fix: 'plan over a shortlist (per layer the k cheapest hosts plus connected ones), as this simulation does, or keep only the requested model in the candidates',
    })
  }
  // deep models: a token makes a round trip from the client to every hop
  if (big) {
    const models = Object.entries(big.byModel).map(([id, b]) => `${id} ${b.tokensPerSecondP50} tok/s, TTFT ${b.ttftMsP50 === null ? '-' : (b.ttftMsP50 / 1000).toFixed(0)} s`).join('; ')
    out.push({
      what: 'deep models: every token goes from the client to each hop and back', value: big.byModel['llama-70b-q4']?.tokensPerSecondP50 ?? null,
      at: `p50 at N = ${big.peers}: ${models}. An 80-layer model takes ~10-15 hops at ~160 ms RTT each (a random stranger is usually on another continent; its RTT is unknown to routeCost until connected: the chosen route is ${big.planner.chosenOverOracleP90}x slower per token at p90 than one planned with every RTT known)`,
      fix: 'forward activations host to host along the route (the client sends once, the last hop answers), put region or network coordinates in adverts so strangers near each other are ranked first, and favour hosts that hold longer slices',
    })
  }
  // dial cost in time to first token
  if (big) {
    out.push({
      what: 'dials in time to first token', value: big.dialDelayMs.mean,
      at: `mean ${big.dialDelayMs.mean} ms (p90 ${big.dialDelayMs.p90} ms) of a TTFT of ${big.ttftMs.p50} ms p50 (p90 ${big.ttftMs.p90} ms; prefill p50 ${big.ttftMs.prefillP50} ms) at N = ${big.peers}; ${((big.dialDelayMs.chatsWithDialFraction ?? 0) * 100).toFixed(0)}% of chats dial, ${big.routes.dialsPerRequest} dials per route request; swarm-engine opens hops one after another and prefills in 32-row chunks, each a trip through the whole route`,
      fix: 'dial the route hops in parallel (openRoute awaits each), pre-dial the next chat\'s likely hosts while the user types, and prefill remote routes in maxRows (64) chunks',
    })
  }
  // KV admission with maxLength = seqLen
  const seq = results.find((s) => s.name === 'maxlen-seqlen')
  const ref = results.find((s) => s.name === `scale-${seq?.peers}`)
  if (seq) {
    out.push({
      what: 'host KV admission when clients ask for maxLength = seqLen (tab-runtime today)', value: seq.routes.availability,
      at: `routes found for ${((seq.routes.availability ?? 0) * 100).toFixed(1)}% of requests (vs ${((ref?.routes.availability ?? 0) * 100).toFixed(1)}% asking for prompt + 256), N = ${seq.peers}: the host's default 256 MiB kvBudget holds one 4096-position f32 session of at most 8 layers of an 8B/70B-shaped model (kvDim 1024), and placement already gives most hosts more layers`,
      fix: 'open sessions for prompt + max new tokens (not seqLen), size the host\'s kvBudget from its memory budget, and advertise free KV so routeCost can avoid full hosts',
    })
  }
  // failover replay
  const base = scale[0]
  if (base?.failovers.timeLostMs.p50) {
    out.push({
      what: 'failover replays history one entry per generated token', value: base.failovers.timeLostMs.p50,
      at: `time lost per failover p50 ${base.failovers.timeLostMs.p50} ms (replay ${base.failovers.replayMsP50} ms) vs ${base.failovers.timeLostIfReplayBatchedMsP50} ms if the replay were batched in 32-row calls (N = ${base.peers})`,
      fix: 'coalesce the kept history into maxRows-sized forward calls when replaying (rebuild() sends each decode step as its own round trip)',
    })
  }
  const liars = results.find((s) => s.name === 'liars-5pct')
  if (liars) {
    out.push({
      what: 'liars (5% of hosts; half lie always, half only after 3 honest sessions with a client, when its check rate has fallen to ~5-8%)', value: liars.trust.wrongTokenFraction,
      at: `${((liars.trust.wrongTokenFraction ?? 0) * 100).toFixed(2)}% of tokens wrong, ${((liars.trust.chatsWithWrongTokensFraction ?? 0) * 100).toFixed(1)}% of chats touched, ${liars.trust.caught} caught, ${liars.trust.uncaughtClientLiarPairs} client-liar pairs still uncaught, mean ${liars.trust.tokensServedByLiarBeforeCaught.mean} wrong tokens before a catch (5% liars, N = ${liars.peers})`,
      fix: 'raise MIN_CHECK_RATE for hosts on a chat\'s route (or check every session of a small random share of tokens), and share convictions through signed audit entries so one catch protects every client',
    })
  }
  return out
}
