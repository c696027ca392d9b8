/**
 * The Node part of `npm run bench:trust` (alone: `npm run bench:trust:node`, bench/trust-node.ts).
 * Spot checks (src/trust) against contributors that lie, measured on the real stories260K (5
 * layers) in an in-process swarm (testing/trust-swarm.ts: real hosts over in-memory channels, a
 * client swarm engine with the checker), greedy generations of 48 tokens from BOS:
 *  1. detection, per attack mode of testing/liars.ts: `trials` trials each (default 200), each with
 *     a fresh reputation, its own seed for the liar, the checker's draws and its fingerprint, and
 *     a lie starting after 0-24 honest forwards. Per mode: the share of trials where the liar lied
 *     that ended with it caught (a 'caught' event naming it), generation steps from its first lie
 *     to the 'caught' event (p50/p99/max), trials whose ids differ from the honest run
 *     (GOLDEN_IDS), and whether it ended revoked;
 *  2. false positives: an honest swarm mixing ref and wasm backends and F32 and Q8_0 weights,
 *     sessions with fresh reputations (every window checked) until `honestChecks` checks (default
 *     1000): accusations of any kind, and the largest passed distance per (checked, verifier)
 *     pair of execution kinds against its tolerance;
 *  3. overhead: tokens/s of the honest 3-hop swarm without checks, with checks and new peers (fresh
 *     reputations) and with established peers (a reputation warmed until the check rate stops
 *     falling), median of 7 interleaved; and rows re-executed per generated token. One process, one thread:
 *     the verifier's work is on the same CPU, so this is an upper bound.
 * It writes nothing; the driver (bench/trust-node.ts, or bench:trust's) writes the JSON.
 * Load it through Vite (bench/vite-run.ts): the wasm backend imports AssemblyScript sources.
 */
import { createRng } from '../src/core/rng.ts'
import { quantizeSlice } from '../src/model/quant/quantize.ts'
import type { SwarmEngine, SwarmEvent } from '../src/swarm/swarm-engine.ts'
import { checkRateFor, MAX_SCORE, memoryReputationStore, MIN_CHECK_RATE, openReputation, type CheckEvent, type CheckStats, type ExecutionKind, type Reputation } from '../src/trust/index.ts'
import { ATTACKS, type Attack } from '../testing/liars.ts'
import { GOLDEN_IDS, loadStories } from '../testing/models.ts'
import { greedyIds, impostorsOf, liarSwarm, startPeer, trustSwarmEngine, type InProcessPeer } from '../testing/trust-swarm.ts'

export const TOKENS = 48
const MAX_HONEST_FORWARDS = 24
const REPEATS = 7
/** A slow hop is not what is measured: wasm sessions take seconds to build on a busy machine, and a timed-out hop is banned. */
const HOP_TIMEOUT_MS = 30_000

export interface TrustTrialsOptions {
  trials?: number // per attack mode, default 200
  honestChecks?: number // checks of honest work at least, default 1000
  log?: (line: string) => void
}

export interface AttackResult {
  trials: number
  lied: number // trials where the liar lied at least once
  noLie: number // trials where it never did (fraction, replay): left out of the rate
  caught: number // of `lied`: a 'caught' event named the liar
  detectionRate: number // caught / lied
  tokensToDetectionP50: number
  tokensToDetectionP99: number
  tokensToDetectionMax: number
  idsMismatched: number // trials whose ids differ from the honest run (a thrown generation counts)
  errors: number // trials whose generation threw
  revoked: number // of `lied`: trials that ended with the liar revoked
  honestAccused: number // trials where an honest peer got a failed check
  failovers: number // hops that failed (not a verdict: an error or a timeout)
  caughtWithoutLie: number
  missed: MissedTrial[] // the first few trials that lied and were not caught, or went wrong
}

export interface MissedTrial {
  trial: number
  seed: number
  honestForwards: number
  lies: number
  caught: boolean
  idsMatch: boolean
  error?: string
  checks: Pick<CheckStats, 'checks' | 'passed' | 'failed' | 'verifierLied' | 'inconclusive' | 'unverifiable' | 'selfChecks'>
  scoreR: number
  firstLieStep: number // -1: no altered row
  caughtStep: number // -1: not caught
  checksOfR: string[] // the liar's checks: positions, verifier, outcome
}

export interface SpreadEntry {
  checked: string // backend/weights of the checked peer
  verifier: string // backend/weights of the verifier (self: the client's reference engine)
  checks: number
  maxDistance: number
  tolerance: number
}

export interface TrustTrialsResult {
  model: 'stories260K'
  tokens: number
  attacks: Record<Attack, AttackResult>
  detectionRate: number // min over modes
  tokensToDetectionP99: number // max over modes
  honest: { sessions: number; honestChecks: number; falsePositives: number; failed: number; inconclusive: number; verifierLied: number; unverifiable: number; failovers: number; spread: SpreadEntry[] }
  falsePositives: number
  honestChecks: number
  overhead: {
    withoutTps: number
    newTps: number
    establishedTps: number
    overheadFractionNew: number
    overheadFractionEstablished: number
    rowsReexecutedPerTokenNew: number
    rowsReexecutedPerTokenEstablished: number
    establishedCheckRate: number // the check rate of the route's peers once established (the score cap's)
    establishedWarmupSessions: number
  }
  overheadFraction: number // established
}

/** Nearest-rank percentile of sorted values (0 when none). */
function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 0.5)
const kindName = (k: ExecutionKind) => `${k.backend}/${k.weights ?? 'f32'}`
const seededRandom = (seed: number) => {
  const rng = createRng(seed)
  return () => rng.nextF32()
}

export async function runTrustTrials(options: TrustTrialsOptions = {}): Promise<TrustTrialsResult> {
  const trials = options.trials ?? 200
  const honestChecksWanted = options.honestChecks ?? 1000
  const log = options.log ?? (() => {})
  const model = await loadStories()
  const c = model.config
  const golden = GOLDEN_IDS.slice(1, 1 + TOKENS)
  const impostors = await impostorsOf(model)
  const liarSwarmOf = (attack: Attack | undefined, seed: number, honestForwards: number) => liarSwarm(model, attack, { impostors, seed, honestForwards })

  // ---- 1. detection ----
  const attacks = {} as Record<Attack, AttackResult>
  for (const [modeIndex, attack] of ATTACKS.entries()) {
    const started = performance.now()
    const r: AttackResult = { trials: 0, lied: 0, noLie: 0, caught: 0, detectionRate: 0, tokensToDetectionP50: 0, tokensToDetectionP99: 0, tokensToDetectionMax: 0, idsMismatched: 0, errors: 0, revoked: 0, honestAccused: 0, failovers: 0, caughtWithoutLie: 0, missed: [] }
    const latencies: number[] = []
    for (let t = 0; t < trials; t++) {
      const seed = (modeIndex + 1) * 100_000 + t + 1
      const honestForwards = createRng(seed * 31 + 7).nextU32() % (MAX_HONEST_FORWARDS + 1)
      const reputation = await openReputation(memoryReputationStore())
      const events: SwarmEvent[] = []
      const peers = liarSwarmOf(attack, seed, honestForwards)
      const liar = peers[1]
      const engine = trustSwarmEngine({
        model, peers, events, selfSpans: true, hopTimeoutMs: HOP_TIMEOUT_MS,
        trust: { reputation, random: seededRandom(seed * 17 + 3), fingerprintSeed: seed * 13 + 5, selfCheckShare: attack === 'collude' ? 0.5 : 0.1 },
      })
      // generation steps (client forward calls), the first one where R lied and the one where it was caught
      let step = 0
      let firstLieStep = -1
      let caughtStep = -1
      // perturb and collude count a lie on every forward once they turn, but alter only positions 3 mod 7
      const altersRow = (positions?: Int32Array) => !(attack === 'perturb' || attack === 'collude') || (positions !== undefined && positions.some((p) => p % 7 === 3))
      const observe = (at: number, positions?: Int32Array) => {
        if (firstLieStep < 0 && liar.lies() > 0 && altersRow(positions)) firstLieStep = at
        if (caughtStep < 0 && events.some((e) => e.type === 'caught' && e.peerId === 'R')) caughtStep = at
      }
      const counted: SwarmEngine = {
        ...engine,
        async forward(hidden, positions) {
          step++
          try {
            return await engine.forward(hidden, positions)
          } finally {
            observe(step, positions)
          }
        },
        // a verdict at the final settle counts as the next step's
        settle: engine.settle && (async () => {
          try {
            await engine.settle!()
          } finally {
            observe(step + 1)
          }
        }),
      }
      let ids: number[] = []
      let error: string | undefined
      try {
        ids = await greedyIds(counted, TOKENS)
      } catch (err) {
        error = (err as Error).message
      }
      const stats = engine.checker!.stats()
      engine.close()
      for (const p of peers) p.kill()

      const lies = liar.lies()
      const caught = caughtStep >= 0
      const idsMatch = !error && ids.length === golden.length && ids.every((id, i) => id === golden[i])
      r.trials++
      if (!idsMatch) r.idsMismatched++
      if (error) r.errors++
      if (['A', 'B', 'S'].some((id) => (reputation.get(id)?.failed ?? 0) > 0)) r.honestAccused++
      const failovers = events.filter((e) => e.type === 'failover')
      r.failovers += failovers.length
      for (const e of failovers) if (e.type === 'failover') log(`  ${attack} trial ${t}: failover of ${e.peerId}: ${e.reason}`)
      if (lies === 0) {
        r.noLie++
        if (caught) r.caughtWithoutLie++
      } else {
        r.lied++
        if (caught) {
          r.caught++
          if (firstLieStep >= 0) latencies.push(caughtStep - firstLieStep)
        }
        if (reputation.revoked('R')) r.revoked++
      }
      if ((lies > 0 && (!caught || !reputation.revoked('R'))) || !idsMatch || error) {
        const trail = events.flatMap((e) => (e.type === 'check' && e.check.peerId === 'R' ? [`[${e.check.positions.join(',')}) ${e.check.verifier} ${e.check.outcome}`] : []))
        const miss: MissedTrial = {
          trial: t, seed, honestForwards, lies, caught, idsMatch, error, scoreR: reputation.score('R'), firstLieStep, caughtStep, checksOfR: trail,
          checks: { checks: stats.checks, passed: stats.passed, failed: stats.failed, verifierLied: stats.verifierLied, inconclusive: stats.inconclusive, unverifiable: stats.unverifiable, selfChecks: stats.selfChecks },
        }
        if (r.missed.length < 10) r.missed.push(miss)
        log(`  ${attack} trial ${t} (seed ${seed}, honestForwards ${honestForwards}): lies ${lies}, caught ${caught}, ids ${idsMatch ? 'match' : 'DIFFER'}${error ? `, error: ${error}` : ''}, score R ${reputation.score('R')}, first lie at step ${firstLieStep}, caught at ${caughtStep}, checks ${JSON.stringify(miss.checks)}; R's checks: ${trail.join('; ')}`)
      }
    }
    latencies.sort((a, b) => a - b)
    r.detectionRate = r.lied > 0 ? r.caught / r.lied : 0
    r.tokensToDetectionP50 = percentile(latencies, 0.5)
    r.tokensToDetectionP99 = percentile(latencies, 0.99)
    r.tokensToDetectionMax = latencies.length > 0 ? latencies[latencies.length - 1] : 0
    attacks[attack] = r
    log(`${attack}: ${r.caught}/${r.lied} caught (${r.noLie} never lied), steps to detection p50 ${r.tokensToDetectionP50} p99 ${r.tokensToDetectionP99} max ${r.tokensToDetectionMax}, ids mismatched ${r.idsMismatched}, revoked ${r.revoked}/${r.lied} (${((performance.now() - started) / 1000).toFixed(1)} s)`)
  }

  // ---- 2. false positives ----
  const q8 = quantizeSlice(model, 'q8_0')
  const honestPeers = [
    startPeer({ peerId: 'A', hosted: { start: 0, end: 3 }, model, backend: 'wasm' }),
    startPeer({ peerId: 'A8', hosted: { start: 0, end: 3 }, model: q8, weights: 'q8_0' }),
    startPeer({ peerId: 'B', hosted: { start: 3, end: 5 }, model }),
    startPeer({ peerId: 'B2', hosted: { start: 3, end: 5 }, model, backend: 'wasm' }),
    startPeer({ peerId: 'C', hosted: { start: 0, end: 5 }, model }),
  ]
  const kindOf = new Map(honestPeers.map((p) => [p.spec.peerId, kindName(p.kind)]))
  kindOf.set('self', 'ref/f32')
  // the route changes from session to session, so every pair of kinds is checked: the cheap peers of each variant
  const routes = [['A', 'B'], ['A', 'B2'], ['A8', 'B'], ['A8', 'B2'], ['C']]
  const spread = new Map<string, SpreadEntry>()
  const honest = { sessions: 0, honestChecks: 0, falsePositives: 0, failed: 0, inconclusive: 0, verifierLied: 0, unverifiable: 0, failovers: 0 }
  while (honest.honestChecks < honestChecksWanted) {
    const s = honest.sessions++
    const cheap = new Set(routes[s % routes.length])
    for (const p of honestPeers) p.spec.hopMs = cheap.has(p.spec.peerId) ? 1 : 50
    // a fresh reputation whose rate stays 1: every window of every hop is checked
    const fresh = await openReputation(memoryReputationStore())
    const reputation: Reputation = { ...fresh, checkRate: () => 1 }
    const events: SwarmEvent[] = []
    const engine = trustSwarmEngine({ model, peers: honestPeers, events, selfSpans: true, hopTimeoutMs: HOP_TIMEOUT_MS, trust: { reputation, random: seededRandom(900_000 + s), fingerprintSeed: 800_000 + s } })
    const ids = await greedyIds(engine, TOKENS)
    const stats = engine.checker!.stats()
    engine.close()
    honest.honestChecks += stats.checks
    honest.failed += stats.failed
    honest.inconclusive += stats.inconclusive
    honest.verifierLied += stats.verifierLied
    honest.unverifiable += stats.unverifiable
    const accusations = stats.failed + stats.inconclusive + stats.verifierLied
    honest.falsePositives += accusations
    const mismatch = ids.some((id, i) => id !== golden[i])
    for (const e of events) {
      if (e.type === 'failover') {
        honest.failovers++
        log(`  honest session ${s} (route ${[...cheap].join('+')}): failover of ${e.peerId}: ${e.reason}`)
      }
      if (e.type !== 'check') continue
      const check: CheckEvent = e.check
      if (check.outcome !== 'passed') {
        if (check.outcome !== 'unverifiable') log(`  honest session ${s} (route ${[...cheap].join('+')}): ${check.outcome} ${check.peerId} [${check.layers.start}, ${check.layers.end}) by ${check.verifier}${check.referee ? ` referee ${check.referee}` : ''} at [${check.positions.join(', ')}): distance ${check.distance.toExponential(2)} > ${check.tolerance.toExponential(1)}`)
        continue
      }
      const checked = kindOf.get(check.peerId) ?? 'unknown'
      const verifier = kindOf.get(check.verifier) ?? 'unknown'
      const key = `${checked} ${verifier}`
      const entry = spread.get(key) ?? { checked, verifier, checks: 0, maxDistance: 0, tolerance: check.tolerance }
      entry.checks++
      entry.maxDistance = Math.max(entry.maxDistance, check.distance)
      spread.set(key, entry)
    }
    if (accusations > 0 || mismatch) log(`  honest session ${s}: ${accusations} accusation(s)${mismatch ? ', ids differ from the honest run' : ''}`)
  }
  for (const p of honestPeers) p.kill()
  log(`honest: ${honest.honestChecks} checks in ${honest.sessions} sessions, ${honest.falsePositives} false positive(s), ${honest.unverifiable} unverifiable, ${honest.failovers} failover(s)`)

  // ---- 3. overhead ----
  const overheadPeers = liarSwarmOf(undefined, 1, 0)
  async function timed(reputation: Reputation | undefined): Promise<{ seconds: number; rows: number }> {
    const engine = trustSwarmEngine({ model, peers: overheadPeers, selfSpans: true, hopTimeoutMs: HOP_TIMEOUT_MS, trust: reputation && { reputation } })
    const started = performance.now()
    const ids = await greedyIds(engine, TOKENS)
    const seconds = (performance.now() - started) / 1000
    const rows = engine.checker?.stats().rowsReexecuted ?? 0
    engine.close()
    if (ids.some((id, i) => id !== golden[i])) log('  overhead: ids differ from the honest run')
    return { seconds, rows }
  }
  const fresh = () => openReputation(memoryReputationStore())
  // established: one reputation, sessions until the route's peers are checked as rarely as they can be
  // (the score cap's rate; it doubles as the warm-up of the JIT and the engines)
  const established = await fresh()
  const floor = Math.max(MIN_CHECK_RATE, checkRateFor(MAX_SCORE))
  let warmup = 0
  while (['A', 'R', 'B'].some((id) => established.checkRate(id) > floor) && warmup < 500) {
    await timed(established)
    warmup++
  }
  const establishedCheckRate = Math.max(...['A', 'R', 'B'].map((id) => established.checkRate(id)))
  for (let i = 0; i < 3; i++) {
    await timed(undefined)
    await timed(await fresh())
  }
  // the three kinds of session in turn, so drift (JIT, GC, a busy machine) falls on each alike
  const runs = { without: [] as { seconds: number; rows: number }[], asNew: [] as { seconds: number; rows: number }[], asEstablished: [] as { seconds: number; rows: number }[] }
  for (let i = 0; i < REPEATS; i++) {
    runs.without.push(await timed(undefined))
    runs.asNew.push(await timed(await fresh()))
    runs.asEstablished.push(await timed(established))
  }
  const summary = (xs: { seconds: number; rows: number }[]) => ({ tps: TOKENS / median(xs.map((x) => x.seconds)), rowsPerToken: xs.reduce((a, x) => a + x.rows, 0) / (TOKENS * xs.length) })
  const without = summary(runs.without)
  const asNew = summary(runs.asNew)
  const asEstablished = summary(runs.asEstablished)
  for (const p of overheadPeers) p.kill()
  const overhead = {
    withoutTps: without.tps,
    newTps: asNew.tps,
    establishedTps: asEstablished.tps,
    overheadFractionNew: 1 - asNew.tps / without.tps,
    overheadFractionEstablished: 1 - asEstablished.tps / without.tps,
    rowsReexecutedPerTokenNew: asNew.rowsPerToken,
    rowsReexecutedPerTokenEstablished: asEstablished.rowsPerToken,
    establishedCheckRate,
    establishedWarmupSessions: warmup,
  }
  log(`overhead: ${overhead.withoutTps.toFixed(0)} tok/s without checks, ${overhead.newTps.toFixed(0)} new, ${overhead.establishedTps.toFixed(0)} established (check rate ${establishedCheckRate.toFixed(3)} after ${warmup} sessions; MIN_CHECK_RATE ${MIN_CHECK_RATE})`)

  const modes = Object.values(attacks)
  return {
    model: 'stories260K',
    tokens: TOKENS,
    attacks,
    detectionRate: Math.min(...modes.map((m) => m.detectionRate)),
    tokensToDetectionP99: Math.max(...modes.map((m) => m.tokensToDetectionP99)),
    honest: { ...honest, spread: [...spread.values()].sort((a, b) => a.checked.localeCompare(b.checked) || a.verifier.localeCompare(b.verifier)) },
    falsePositives: honest.falsePositives,
    honestChecks: honest.honestChecks,
    overhead,
    overheadFraction: overhead.overheadFractionEstablished,
  }
}
