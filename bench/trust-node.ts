/**
 * npm run bench:trust:node -> bench/results/trust-node.json and a table.
 * The Node part of `npm run bench:trust` alone (bench/trust-trials.ts): spot checks against each
 * attack mode of testing/liars.ts on stories260K (detection rate, generation steps from the first
 * lie to the verdict, ids against the honest run, revocation), false positives over an honest
 * swarm of ref and wasm peers on F32 and Q8_0 weights (and the honest distance per pair of
 * execution kinds against its tolerance), and the tokens/s cost of checking in one process.
 * TABMESH_TRUST_TRIALS sets the trials per attack mode (default 200), TABMESH_TRUST_HONEST_CHECKS
 * the honest checks (default 1000). It fails (exit 1, after writing the JSON) when a mode is caught
 * in under 99% of the trials where it lied, any trial's ids differ from the honest run, an honest
 * peer is accused, a caught liar is not revoked, or the p99 of steps to detection is over 32.
 * Runs through Vite's SSR loader (bench/vite-run.ts): the wasm backend imports AssemblyScript sources.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ATTACKS } from '../testing/liars.ts'
import { runTrustTrials, type TrustTrialsResult } from './trust-trials.ts'

const ROOT = resolve(fileURLToPath(import.meta.url), '../..')
const MIN_DETECTION = 0.99
const MAX_P99 = 32

const envNumber = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined)
const started = performance.now()
const result = await runTrustTrials({
  trials: envNumber('TABMESH_TRUST_TRIALS'),
  honestChecks: envNumber('TABMESH_TRUST_HONEST_CHECKS'),
  log: (line) => console.log(line),
})

const dir = join(ROOT, 'bench/results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'trust-node.json'), JSON.stringify(result, null, 2) + '\n')

/** What failed, one line each; empty when every target is met. */
function failures(r: TrustTrialsResult): string[] {
  const out: string[] = []
  for (const [mode, a] of Object.entries(r.attacks)) {
    if (a.detectionRate < MIN_DETECTION) out.push(`${mode}: caught in ${(a.detectionRate * 100).toFixed(1)}% of the trials where it lied (target >= ${MIN_DETECTION * 100}%)`)
    if (a.idsMismatched > 0) out.push(`${mode}: ids differ from the honest run in ${a.idsMismatched} trial(s)${a.errors ? ` (${a.errors} threw)` : ''}`)
    if (a.revoked < a.caught) out.push(`${mode}: caught in ${a.caught} trial(s) but revoked in ${a.revoked}`)
    if (a.tokensToDetectionP99 > MAX_P99) out.push(`${mode}: p99 ${a.tokensToDetectionP99} steps to detection (target <= ${MAX_P99})`)
  }
  if (r.falsePositives > 0) out.push(`honest swarm: ${r.falsePositives} accusation(s) in ${r.honestChecks} checks`)
  return out
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`
const row = (cells: (string | number)[], widths: number[]) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')
const w = [12, 7, 6, 7, 8, 6, 6, 6, 6, 8, 8, 10]
console.log(`\ntrust: ${result.model}, ${result.tokens} tokens per session`)
console.log(row(['attack', 'trials', 'lied', 'caught', 'rate', 'p50', 'p99', 'max', 'ids≠', 'revoked', 'accused', 'failovers'], w))
for (const mode of ATTACKS) {
  const a = result.attacks[mode]
  console.log(row([mode, a.trials, a.lied, a.caught, pct(a.detectionRate), a.tokensToDetectionP50, a.tokensToDetectionP99, a.tokensToDetectionMax, a.idsMismatched, `${a.revoked}/${a.lied}`, a.honestAccused, a.failovers], w))
}
console.log(`detection rate (min over modes) ${pct(result.detectionRate)}, steps to detection p99 (max over modes) ${result.tokensToDetectionP99}`)

const h = result.honest
console.log(`\nhonest swarm: ${h.sessions} sessions, ${h.honestChecks} checks, false positives ${h.falsePositives} (failed ${h.failed}, inconclusive ${h.inconclusive}, verifier-lied ${h.verifierLied}), unverifiable ${h.unverifiable}, failovers ${h.failovers}`)
const sw = [10, 10, 7, 12, 10, 8]
console.log(row(['checked', 'verifier', 'checks', 'max distance', 'tolerance', 'ratio'], sw))
for (const s of h.spread) console.log(row([s.checked, s.verifier, s.checks, s.maxDistance.toExponential(2), s.tolerance.toExponential(1), pct(s.maxDistance / s.tolerance)], sw))

const o = result.overhead
console.log(`\noverhead (one process: the verifier shares the CPU, an upper bound), median of 7, interleaved:`)
const ow = [12, 9, 9, 16]
console.log(row(['', 'tok/s', 'overhead', 'rows re-run/tok'], ow))
console.log(row(['no checks', o.withoutTps.toFixed(1), '-', '-'], ow))
console.log(row(['new peers', o.newTps.toFixed(1), pct(o.overheadFractionNew), o.rowsReexecutedPerTokenNew.toFixed(2)], ow))
console.log(row(['established', o.establishedTps.toFixed(1), pct(o.overheadFractionEstablished), o.rowsReexecutedPerTokenEstablished.toFixed(2)], ow))
console.log(`established: check rate ${o.establishedCheckRate.toFixed(3)} after ${o.establishedWarmupSessions} warm-up sessions`)

const failed = failures(result)
console.log(`\nbench/results/trust-node.json written (${((performance.now() - started) / 1000).toFixed(0)} s)`)
if (failed.length > 0) {
  console.log(`FAILED:\n  ${failed.join('\n  ')}`)
  process.exitCode = 1
} else {
  console.log('every target met')
}
