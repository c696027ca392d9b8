/**
 * `npm run sim`: a discrete-event simulation of the tabmesh swarm at internet scale, driving the
 * project's own placement, route planning, route costs, peer entries, adverts and reputation.
 *
 *   npm run sim                      full run (N = 1,000 / 3,000 / 10,000, a churn sweep, ablations)
 *   npm run sim -- --quick           CI-sized run (seconds); also SIM_QUICK=1
 *   npm run sim -- --seed 7          another seed (default 1)
 *   npm run sim -- --out DIR         where sim.json and the SVGs go (default bench/results)
 *   npm run sim -- --only scale-1000  only the scenarios named (comma-separated)
 *   npm run sim -- --self-test       checks of the event loop and the churn samplers
 *
 * Writes sim.json (every scenario, the gossip curve, breaking points, assumptions) and
 * sim-*.svg, and prints a table and the breaking points.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gossipLoad, measureAdvert, propagation, GOSSIPSUB, type GossipLoad } from './gossip.ts'
import { ASSUMPTIONS } from './assumptions.ts'
import { findBreakingPoints } from './breaking.ts'
import type { ScenarioParams } from './context.ts'
import { createRandom } from './random.ts'
import { summarise, table, type ScenarioSummary } from './report.ts'
import { runScenario } from './scenario.ts'
import { selfTest } from './selftest.ts'
import { lineChart } from './svg.ts'

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(name)
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
}

if (flag('--self-test')) {
  selfTest()
  process.exit(0)
}

const quick = flag('--quick') || process.env.SIM_QUICK === '1'
const seed = Number(option('--seed', '1'))
const outDir = option('--out', 'bench/results')

function scenario(over: Partial<ScenarioParams> & { name: string }): ScenarioParams {
  const churnMultiplier = over.churnMultiplier ?? 1
  return {
    peers: 1000, churnMultiplier, churn: { shape: 0.5, medianS: (20 * 60) / churnMultiplier },
    simMinutes: quick ? 5 : 20, warmupMinutes: quick ? 2 : 5, clientShare: 0.1, thinkMeanS: 60, promptTokens: [64, 512], newTokens: 256,
    liarShare: 0.02, rebalance: true, rebalancePeriodS: 600, maxLength: 'needed', capacityAware: true, shortlistPerLayer: 6, seed, ...over,
  }
}

const scale = quick ? [300, 1000] : [1000, 3000, 10000]
const sweepN = quick ? 300 : 1000
const asIs = quick ? [300] : [300, 1000, 3000]
const churnSweep = quick ? [4, 32] : [0.5, 2, 4, 8, 16, 32]
const only = option('--only', '').split(',').filter(Boolean)
const scenarios: ScenarioParams[] = [
  // at N = 10,000 a host checks rebalance every ~30 min instead of ~10 (each call is O(hosts of its model); it never moved anyone in any run)
  ...scale.map((n) => scenario({ name: `scale-${n}`, peers: n, simMinutes: quick ? 5 : n >= 10000 ? 8 : n >= 3000 ? 12 : 20, warmupMinutes: quick ? 2 : n >= 10000 ? 3 : 5, rebalancePeriodS: n >= 10000 ? 1800 : 600 })),
  ...asIs.map((n) => scenario({ name: `as-is-${n}`, peers: n, capacityAware: false, simMinutes: quick ? 5 : n >= 3000 ? 8 : 15, warmupMinutes: quick ? 2 : 4 })),
  ...churnSweep.map((c) => scenario({ name: `churn-x${c}`, peers: sweepN, churnMultiplier: c })),
  scenario({ name: 'liars-5pct', peers: sweepN, liarShare: 0.05 }),
  scenario({ name: 'maxlen-seqlen', peers: sweepN, maxLength: 'seqLen' }),
].filter((s) => only.length === 0 || only.includes(s.name))

const wall0 = performance.now()
const rng = createRandom(seed)
const advert = await measureAdvert(rng)
// validation delay per hop fixed at 1.5 ms (decode + Ed25519 verify + scheduling), so the flood is deterministic
const prop = propagation(rng.fork(1), quick ? 500 : 2000, quick ? 10 : 30, advert.advertBytes + 242, 1.5)
console.error(`gossip: advert ${advert.advertBytes} B, decode ${advert.decodeUs.toFixed(0)} us, verify ${advert.verifyUs.toFixed(0)} us; mesh degree ${prop.meshDegreeMean.toFixed(1)}, ${prop.copiesPerMessage.toFixed(2)} copies and ${prop.idontwantPerMessage.toFixed(2)} IDONTWANT per advert, delay p50 ${prop.delayP50Ms.toFixed(0)} ms p99 ${prop.delayP99Ms.toFixed(0)} ms`)

const results: ScenarioSummary[] = []
for (const p of scenarios) {
  const t0 = performance.now()
  const ctx = await runScenario(p)
  const s = summarise(ctx, (performance.now() - t0) / 1000)
  s.gossip = gossipLoad(p.peers, advert, prop, s.connections.p50 ?? undefined)
  results.push(s)
  console.error(`${p.name}: ${s.wallSeconds} s wall, ${s.chats.completed} chats, ${s.tokens} tokens`)
}

const curveN = [10, 30, 100, 300, 1000, 3000, 10000]
const gossipCurve: GossipLoad[] = curveN.map((n) => gossipLoad(n, advert, prop))
const breaking = findBreakingPoints(results, advert, prop)
const wallSeconds = (performance.now() - wall0) / 1000

const maxConnectionsPerPeer = Math.max(...results.map((s) => s.connections.max ?? 0))
const out = {
  generatedBy: 'npm run sim' + (quick ? ' -- --quick' : ''),
  seed,
  peers: Math.max(...results.map((s) => s.peers)),
  maxConnectionsPerPeer,
  wallSeconds: +wallSeconds.toFixed(1),
  gossipMeasured: { ...advert, ...prop, gossipsub: GOSSIPSUB },
  gossipCurve,
  breakingPoints: breaking,
  notes: [
    `rebalance (margin 0.25, every ~10 min per host; ~30 min at N = 10,000) moved ${results.reduce((n, s) => n + s.rebalanceMoves, 0)} hosts in all scenarios: with tens of replicas per layer no single move lifts the weakest layer by 25%, and src/ does not call rebalance yet`,
    'scale-*, churn-*, liars-5pct and maxlen-seqlen emulate capacity-aware routing (a host that cannot admit the session is not a candidate); as-is-* run the routing as the code is: full hosts refuse and the client re-plans (given up after 32 refusals)',
    'tokens/s counts chats that completed plus chats still generating at the end (70B-shaped chats take longer than the measured span); TTFT counts chats that reached their first token',
    'a verifier check is an ordinary session on the verifier host (a slot, KV, and queue load), so spot checks at rate ~1 roughly double the sessions and compute a chat needs',
  ],
  scenarios: results,
  assumptions: ASSUMPTIONS,
}
mkdirSync(outDir, { recursive: true })
writeFileSync(join(outDir, 'sim.json'), JSON.stringify(out, null, 2) + '\n')

const byN = results.filter((s) => s.name.startsWith('scale-'))
const sweep = [results.find((s) => s.name === `scale-${sweepN}`) ?? results[0], ...results.filter((s) => s.name.startsWith('churn-'))]
  .filter((s) => s.peers === sweepN).sort((a, b) => b.medianSessionMin - a.medianSessionMin)
const svgs: Record<string, string> = {
  'sim-failovers-vs-churn.svg': lineChart({
    title: `Failovers vs churn (N = ${sweepN})`, xLabel: 'median tab session, minutes', yLabel: 'percent', logX: true, logY: true,
    series: [
      { name: 'failovers per 100 tokens', points: sweep.map((s) => [s.medianSessionMin, (s.failovers.per1000Tokens ?? NaN) / 10]) },
      { name: 'tokens interrupted', points: sweep.map((s) => [s.medianSessionMin, 100 * (s.failovers.tokensNeedingFailoverFraction ?? NaN)]), dashed: true },
      { name: 'chats with a failover', points: sweep.map((s) => [s.medianSessionMin, 100 * (s.failovers.chatsWithFailoverFraction ?? NaN)]) },
      { name: 'chats lost to churn', points: sweep.map((s) => [s.medianSessionMin, 100 * (s.failovers.chatsLostFraction ?? NaN)]) },
    ],
    hlines: [{ y: 1, label: '1%' }],
  }),
  'sim-gossip-vs-peers.svg': lineChart({
    title: 'Advert gossip received per tab', xLabel: 'tabs in the swarm (N)', yLabel: 'per second', logX: true, logY: true,
    series: [
      { name: 'adverts/s (distinct)', points: gossipCurve.map((g) => [g.peers, g.advertsPerS]) },
      { name: 'RPC messages/s', points: gossipCurve.map((g) => [g.peers, g.messagesPerS]) },
      { name: 'KB/s received', points: gossipCurve.map((g) => [g.peers, g.bytesPerS / 1000]) },
      { name: 'CPU ms/s (verify)', points: gossipCurve.map((g) => [g.peers, g.cpuMsPerS]), dashed: true },
    ],
    hlines: [{ y: 100, label: 'tab budget: 100/s, 100 KB/s' }],
  }),
  'sim-connections-vs-peers.svg': lineChart({
    title: 'Direct connections per tab', xLabel: 'tabs in the swarm (N)', yLabel: 'connections', logX: true,
    series: [
      { name: 'p50', points: byN.map((s) => [s.peers, s.connections.p50 ?? NaN]) },
      { name: 'p99', points: byN.map((s) => [s.peers, s.connections.p99 ?? NaN]) },
      { name: 'max', points: byN.map((s) => [s.peers, s.connections.max ?? NaN]) },
      { name: 'max, routing as is', points: results.filter((s) => s.name.startsWith('as-is-')).map((s) => [s.peers, s.connections.max ?? NaN]), dashed: true },
    ],
    hlines: [{ y: 24, label: 'maxDirectPeers 24' }, { y: 72, label: 'libp2p maxConnections 72' }],
  }),
  'sim-tokens-vs-peers.svg': lineChart({
    title: 'Generation speed per chat', xLabel: 'tabs in the swarm (N)', yLabel: 'tokens/s', logX: true,
    series: [
      { name: 'p50', points: byN.map((s) => [s.peers, s.tokensPerSecond.p50 ?? NaN]) },
      { name: 'p10', points: byN.map((s) => [s.peers, s.tokensPerSecond.p10 ?? NaN]) },
      ...Object.keys(byN[0]?.byModel ?? {}).map((id) => ({ name: `p50 ${id}`, points: byN.map((s) => [s.peers, s.byModel[id].tokensPerSecondP50 ?? NaN] as [number, number]), dashed: true })),
    ],
  }),
}
for (const [name, svg] of Object.entries(svgs)) writeFileSync(join(outDir, name), svg)

console.log(table(results))
console.log(`\ngossip per tab (advert ${advert.advertBytes} B, ${prop.copiesPerMessage.toFixed(2)} copies/advert, mesh degree ${prop.meshDegreeMean.toFixed(1)}):`)
for (const g of gossipCurve) console.log(`  N=${String(g.peers).padStart(5)}  ${g.advertsPerS.toFixed(0).padStart(5)} adverts/s  ${g.messagesPerS.toFixed(0).padStart(6)} RPCs/s  ${(g.bytesPerS / 1000).toFixed(0).padStart(6)} KB/s  CPU ${g.cpuMsPerS.toFixed(0)} ms/s`)
console.log('\nbreaking points:')
for (const b of breaking) console.log(`  - ${b.what}: ${b.at}\n    fix: ${b.fix}`)
console.log(`\nmaxConnectionsPerPeer ${maxConnectionsPerPeer}; wrote ${join(outDir, 'sim.json')} and ${Object.keys(svgs).length} SVGs; ${wallSeconds.toFixed(1)} s`)
