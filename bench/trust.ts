/**
 * npm run bench:trust -> bench/results/trust.json and a table.
 * Spot checks (src/trust) measured two ways in one run:
 *  1. in one process (bench/trust-trials.ts, run as `bench:trust:node` in a child process): per
 *     attack mode of testing/liars.ts at least 200 trials with the real checker, hosts and
 *     protocol over in-memory channels: detection rate, tokens from the first lie to the verdict,
 *     ids against the honest run; >= 1,000 honest checks across ref/wasm and F32/Q8_0 pairs
 *     (false positives, the honest spread per pair); tokens/s with and without checks (one thread:
 *     an upper bound on the overhead);
 *  2. through real browsers (each peer a Chromium process, real relay, WebRTC, in a loopback-only
 *     network namespace): a 3-hop swarm of stories260K with a replica of every span, a client's
 *     tokens/s without checks, with checks among strangers (a new client tab each time: every hop
 *     checked) and with established reputations (one client tab warmed up until its peers' check
 *     rate is at the floor), same run, interleaved; and a few trials per attack mode with a lying
 *     contributor in its own Chromium process (caught, ids equal to the honest reply).
 * Targets (issue): detection >= 99% within 32 tokens per mode, no false positive in >= 1,000
 * honest checks, overhead <= 10% established and <= 25% all-new. Exit 1 (after writing the JSON)
 * if a detection or correctness target fails; overheads are reported, not enforced (a 2-core
 * machine shares its cores between every peer).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import type { TabChatRequest } from '../src/cli-tab/main.ts'
import { headlessCall, launchChromiumProcess, loopbackOnly, ROOT, startRelayProcess, type ChromiumProcess } from '../lab/mesh-harness.ts'
import type { LiarStartOptions } from '../lab/pages/swarm-liar.ts'
import type { Attack } from '../testing/liars.ts'
import { goldenIds } from '../testing/golden.ts'
import type { TrustTrialsResult } from './trust-trials.ts'

if (!loopbackOnly()) {
  const r = spawnSync('unshare', ['-n', 'bash', '-c', `ip link set lo up && exec ${process.execPath} --import tsx ${join(ROOT, 'bench/trust.ts')}`], { stdio: 'inherit', env: process.env })
  process.exit(r.status ?? 1)
}

const BROWSER_ATTACKS: Attack[] = (process.env.TABMESH_TRUST_BROWSER_ATTACKS ?? 'noise,echo,quantized,replay').split(',') as Attack[]
const BROWSER_TRIALS = Number(process.env.TABMESH_TRUST_BROWSER_TRIALS ?? 2)
const REPEATS = Number(process.env.TABMESH_TRUST_REPEATS ?? 3)
const TOKENS = 64
const golden = goldenIds()

// ---- 1. in one process -------------------------------------------------------------------------
const node = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/vite-run.ts'), join(ROOT, 'bench/trust-node.ts')], { cwd: ROOT, stdio: 'inherit', env: process.env })
const trials = JSON.parse(readFileSync(join(ROOT, 'bench/results/trust-node.json'), 'utf8')) as TrustTrialsResult

// ---- 2. through browsers -----------------------------------------------------------------------
let siteDir = process.env.TABMESH_SITE_DIR
if (!siteDir) {
  siteDir = mkdtempSync(join(tmpdir(), 'tabmesh-bench-trust-site-'))
  const b = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '-c', 'lab/vite.config.ts', '--outDir', siteDir, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' })
  if (b.status !== 0) throw new Error('vite build failed')
}
const relay = await startRelayProcess(siteDir)
const processes: ChromiumProcess[] = []
interface Tab { page: Page; call: ReturnType<typeof headlessCall>; process: ChromiumProcess }
async function tab(path = 'src/cli-tab/index.html'): Promise<Tab> {
  const p = await launchChromiumProcess()
  processes.push(p)
  const page = await (await p.browser.newContext()).newPage()
  await page.goto(new URL(path, relay.url).toString())
  await page.waitForFunction(() => document.body.dataset.ready === 'true' || 'trustLab' in window, undefined, { timeout: 30_000 })
  return { page, call: headlessCall(page), process: p }
}
const close = async (t: Tab) => {
  await t.process.close()
  processes.splice(processes.indexOf(t.process), 1)
}
const request = (extra: Partial<TabChatRequest> = {}): TabChatRequest => ({ prompt: '', maxTokens: TOKENS, temperature: 0, topP: 0.9, seed: 1, hopTimeoutMs: 10_000, ...extra })
const same = (ids: number[]) => JSON.stringify(ids) === JSON.stringify(golden)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

// a replica of every span, so verifiers are other peers (the client checks itself for 10%)
for (const [start, end] of [[0, 2], [0, 2], [2, 4], [2, 4], [4, 5], [4, 5]]) await (await tab()).call('contribute', { layers: { start, end }, backend: 'ref' })
const established = await tab()
await established.call('chat', request({ maxTokens: 4, verify: false })) // join, dial
let warmup = 0
for (; warmup < 40; warmup++) {
  const out = await established.call('chat', request())
  if (!same([...out.promptTokens, ...out.tokens])) throw new Error('an honest warm-up chat differed from the golden')
  const state = await established.call('trustState')
  const hosts = state.peers.filter((p) => p.passed > 0)
  if (hosts.length >= 3 && Math.max(...hosts.map((p) => p.checkRate)) <= 0.06) break
}
const tps = { without: [] as number[], new: [] as number[], established: [] as number[] }
const honestChecks = { checks: 0, failed: 0 }
for (let r = 0; r < REPEATS; r++) {
  tps.without.push((await established.call('chat', request({ verify: false }))).tokensPerSecond)
  const out = await established.call('chat', request())
  tps.established.push(out.tokensPerSecond)
  const fresh = await tab() // a stranger to everyone: every hop checked
  await fresh.call('chat', request({ maxTokens: 4, verify: false }))
  const n = await fresh.call('chat', request())
  tps.new.push(n.tokensPerSecond)
  for (const o of [out, n]) {
    if (!same([...o.promptTokens, ...o.tokens])) throw new Error('an honest chat differed from the golden')
    honestChecks.checks += o.checks?.checks ?? 0
    honestChecks.failed += (o.checks?.failed ?? 0) + (o.checks?.inconclusive ?? 0) + (o.checks?.verifierLied ?? 0)
  }
  await close(fresh)
}
const browserOverhead = {
  withoutTps: median(tps.without), newTps: median(tps.new), establishedTps: median(tps.established), warmupSessions: warmup,
  overheadFractionNew: 1 - median(tps.new) / median(tps.without), overheadFractionEstablished: 1 - median(tps.established) / median(tps.without),
  honestChecks: honestChecks.checks, falsePositives: honestChecks.failed,
}

type TrustLab = { start(o: LiarStartOptions): Promise<{ peerId: string }>; lies(): number }
const browserAttacks: Record<string, { trials: number; lied: number; caught: number; idsMismatched: number }> = {}
for (const attack of BROWSER_ATTACKS) {
  const row = (browserAttacks[attack] = { trials: 0, lied: 0, caught: 0, idsMismatched: 0 })
  for (let t = 0; t < BROWSER_TRIALS; t++) {
    const liar = await tab('lab/pages/swarm-liar.html')
    const { peerId } = await liar.page.evaluate((o) => (window as unknown as { trustLab: TrustLab }).trustLab.start(o), { modelId: 'stories260K', layers: { start: 2, end: 4 }, attack, honestForwards: 4 + 5 * t, seed: 100 + t })
    const client = await tab()
    await client.call('join')
    await new Promise((r) => setTimeout(r, 2000)) // the liar's advert reaches the client
    const out = await client.call('chat', request())
    row.trials++
    if (!same([...out.promptTokens, ...out.tokens])) row.idsMismatched++
    if (await liar.page.evaluate(() => (window as unknown as { trustLab: TrustLab }).trustLab.lies()) > 0) {
      row.lied++
      // caught on the route, or found out as a verifier of the honest host's work (the only liar here)
      if (out.events.some((e) => e.type === 'caught' && e.peerId === peerId) || (out.checks?.verifierLied ?? 0) > 0) row.caught++
    }
    await close(client)
    await close(liar)
  }
}

// ---- report ------------------------------------------------------------------------------------
const result = {
  model: 'stories260K',
  detectionRate: trials.detectionRate,
  tokensToDetectionP99: trials.tokensToDetectionP99,
  falsePositives: trials.falsePositives + browserOverhead.falsePositives,
  honestChecks: trials.honestChecks + browserOverhead.honestChecks,
  overheadFraction: browserOverhead.overheadFractionEstablished,
  overheadFractionNew: browserOverhead.overheadFractionNew,
  browsers: { overhead: browserOverhead, attacks: browserAttacks },
  inProcess: trials,
  measuredAt: new Date().toISOString(),
}
console.table(Object.entries(trials.attacks).map(([mode, a]) => ({ mode, ...a, browserTrials: browserAttacks[mode]?.trials ?? 0, browserCaught: browserAttacks[mode]?.caught ?? 0, browserLied: browserAttacks[mode]?.lied ?? 0 })))
console.log(`browsers: ${browserOverhead.withoutTps.toFixed(1)} tokens/s without checks, ${browserOverhead.newTps.toFixed(1)} among strangers (overhead ${(100 * browserOverhead.overheadFractionNew).toFixed(1)}%, target <= 25%), ${browserOverhead.establishedTps.toFixed(1)} established (overhead ${(100 * browserOverhead.overheadFractionEstablished).toFixed(1)}%, target <= 10%) after ${warmup} warm-up sessions`)
console.log(`detectionRate ${result.detectionRate} (target >= 0.99), tokensToDetectionP99 ${result.tokensToDetectionP99} (<= 32), falsePositives ${result.falsePositives} in ${result.honestChecks} honest checks (0 in >= 1000)`)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/trust.json'), JSON.stringify(result, null, 2) + '\n')
for (const p of processes) await p.close()
await relay.kill()
const browserMissed = Object.values(browserAttacks).some((a) => a.caught < a.lied || a.idsMismatched > 0)
process.exit(node.status !== 0 || browserMissed || result.falsePositives > 0 ? 1 : 0)
