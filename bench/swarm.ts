/**
 * npm run bench:swarm -> bench/results/swarm.json and a table.
 * Decode tokens/s of local generation versus 2- and 3-hop pipelines over real WebRTC between
 * browser processes (stories260K and a deeper synthetic model); per-hop overhead against the raw
 * 32-byte stream round trip (libp2p ping) measured in the same run; aggregate tokens/s and per-token
 * latency of 1, 2, 4 and 8 concurrent sessions through 3 batching hosts (ratios against 1 session);
 * speculative decoding on and off (ids compared); time to first token of a conversation's second
 * turn with the hosts' kept prefix and without; recovery after the middle peer of the route (checked
 * to be on it) is SIGKILLed.
 * Runs itself inside a loopback-only network namespace.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import type { TabChatRequest } from '../src/cli-tab/main.ts'
import { makeSyntheticLlama2c } from '../src/model/formats/synthetic.ts'
import { resolveModelsDir } from '../src/nodejs/models-dir.ts'
import { storiesGguf } from '../testing/format-fixtures.ts'
import { headlessCall, launchChromiumProcess, loopbackOnly, ROOT, startRelayProcess, type ChromiumProcess } from '../lab/mesh-harness.ts'

if (!loopbackOnly()) {
  const r = spawnSync('unshare', ['-n', 'bash', '-c', `ip link set lo up && exec ${process.execPath} --import tsx ${join(ROOT, 'bench/swarm.ts')}`], { stdio: 'inherit', env: process.env })
  process.exit(r.status ?? 1)
}

const TOKENS = 48
const CONCURRENT_TOKENS = 64
const SPEC_TOKENS = 128
const BACKEND = (process.env.TABMESH_BENCH_BACKEND ?? 'wasm') as 'wasm' | 'ref' // what the contributors compute with
const DEEP = { dim: 256, hiddenDim: 688, nLayers: 12, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, sharedClassifier: true }

// a models dir with stories260K and a deeper synthetic model sharing its tokenizer
const modelsDir = mkdtempSync(join(tmpdir(), 'tabmesh-bench-models-'))
const shared = resolveModelsDir()
for (const [id, weights] of [['stories260K', null], ['deep12', makeSyntheticLlama2c(DEEP, 99)]] as const) {
  mkdirSync(join(modelsDir, id))
  copyFileSync(join(shared, 'stories260K/tok512.bin'), join(modelsDir, id, 'tok512.bin'))
  if (weights) writeFileSync(join(modelsDir, id, `${id}.bin`), weights)
  else copyFileSync(join(shared, 'stories260K/stories260K.bin'), join(modelsDir, id, 'stories260K.bin'))
}
// stories260K's draft model: its own weights at Q4_0 (a GGUF written here), paired by tabmesh.json
mkdirSync(join(modelsDir, 'stories260K-q4'))
writeFileSync(join(modelsDir, 'stories260K-q4', 'stories260K-q4.gguf'), await storiesGguf({ type: 'Q4_0', name: 'stories260K-q4' }))
writeFileSync(join(modelsDir, 'stories260K', 'tabmesh.json'), JSON.stringify({ draft: 'stories260K-q4' }))
process.env.TABMESH_MODELS = modelsDir

let siteDir = process.env.TABMESH_SITE_DIR
if (!siteDir) {
  siteDir = mkdtempSync(join(tmpdir(), 'tabmesh-bench-site-'))
  const b = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--outDir', siteDir, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' })
  if (b.status !== 0) throw new Error('vite build failed')
}
const relay = await startRelayProcess(siteDir)

interface Tab { page: Page; call: ReturnType<typeof headlessCall> }
const processes: ChromiumProcess[] = []
async function browser(): Promise<ChromiumProcess> {
  const p = await launchChromiumProcess()
  processes.push(p)
  return p
}
async function tab(b: Browser): Promise<Tab> {
  const page = await (await b.newContext()).newPage()
  await page.goto(new URL('src/cli-tab/index.html', relay.url).toString())
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  return { page, call: headlessCall(page) }
}

// each contributor a Chromium process of its own (one is SIGKILLed); the clients share one
const contributors: (ChromiumProcess & { tab: Tab; peerId?: string })[] = await Promise.all([0, 1, 2, 3].map(async () => { const b = await browser(); return { ...b, tab: await tab(b.browser) } }))
const clientBrowser = await browser()
// client tabs join the mesh on their first chat: every tab in the mesh costs the 2-core machine CPU
// even when idle (gossip, pings, WebRTC), so later sections add theirs only when they need them
const clients = await Promise.all(Array.from({ length: 4 }, () => tab(clientBrowser.browser)))

/** Hosts `splits` (layer boundaries) of `model` on the first contributors; the rest host nothing. */
async function host(model: string, bounds: number[]) {
  for (const c of contributors) await c.tab.call('stopContributing')
  for (let i = 0; i + 1 < bounds.length; i++) contributors[i].peerId = (await contributors[i].tab.call('contribute', { model, layers: { start: bounds[i], end: bounds[i + 1] }, backend: BACKEND })).peerId
  await new Promise((r) => setTimeout(r, 2500)) // adverts settle; stale ones expire
}
const decodeMsPerToken = (r: { tokenTimes: number[] }) => (r.tokenTimes.at(-1)! - r.tokenTimes[0]) / (r.tokenTimes.length - 1)
// the pipeline itself, without spot checks (bench:trust measures what they cost)
const request = (model: string, extra: Partial<TabChatRequest> = {}): TabChatRequest => ({ model, prompt: 'Once upon a time', maxTokens: TOKENS, temperature: 0, topP: 0.9, seed: 1, hopTimeoutMs: 5000, verify: false, speculate: false, ...extra })

const rows: Record<string, unknown>[] = []
const result: Record<string, unknown> = { tokens: TOKENS, rows }
let rtt = 0
let perHopOverheads: number[] = []
for (const [model, nLayers] of [['stories260K', 5], ['deep12', 12]] as const) {
  const local = await clients[0].call('chat', request(model, { mode: 'local' }))
  const localMs = decodeMsPerToken(local)
  rows.push({ model, route: 'local', tokensPerSecond: 1000 / localMs, msPerToken: localMs })
  for (const hops of [2, 3]) {
    const bounds = Array.from({ length: hops + 1 }, (_, i) => Math.round((i * nLayers) / hops))
    await host(model, bounds)
    await clients[0].call('chat', request(model, { maxTokens: 4 })) // connect and warm up
    const r = await clients[0].call('chat', request(model))
    const ms = decodeMsPerToken(r)
    const pings = await clients[0].call('pingPeers', 20)
    rtt = Object.values(pings).sort((a, b) => a - b)[Object.values(pings).length >> 1]
    const perHop = (ms - localMs) / hops
    perHopOverheads.push(perHop / rtt)
    rows.push({ model, route: `${hops} hops`, tokensPerSecond: 1000 / ms, msPerToken: ms, perHopOverheadMs: perHop, streamRttMs: rtt, ratio: perHop / rtt })
  }
}
result.perHopOverheadRatio = perHopOverheads.sort((a, b) => a - b)[perHopOverheads.length >> 1]

// concurrency: 1, 2, 4, 8 sessions at once through 3 hops of the deeper model; aggregate tokens/s
// over the window from the first session's start to the last one's end
await host('deep12', [0, 4, 8, 12])
await clients[0].call('chat', request('deep12', { maxTokens: 4 })) // connects once
const throughput: Record<number, number> = {}
const percentile = (xs: number[], p: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]
const statsBefore = await Promise.all(contributors.slice(0, 3).map((c) => c.tab.call('contributorStats')))
for (const n of [1, 2, 4, 8]) {
  // n chats at once in one client tab (as the relay's API tab serves many users): eight tabs' worth
  // of WebRTC links and gossip would measure the 2-core machine's idle mesh load, not the hosts
  const outs = await Promise.all(Array.from({ length: n }, () => clients[0].call('chat', request('deep12', { maxTokens: CONCURRENT_TOKENS }))))
  const starts = outs.map((o) => o.timeOrigin + o.startedAt)
  const ends = outs.map((o) => o.timeOrigin + o.tokenTimes.at(-1)!)
  const seconds = (Math.max(...ends) - Math.min(...starts)) / 1000
  throughput[n] = outs.reduce((s, o) => s + o.tokens.length, 0) / seconds
  const gaps = outs.map((o) => o.tokenTimes.slice(1).map((t, i) => t - o.tokenTimes[i]))
  const idsMatch = outs.every((o) => JSON.stringify(o.tokens) === JSON.stringify(outs[0].tokens))
  rows.push({
    model: 'deep12', route: `3 hops, ${n} concurrent`, aggregateTokensPerSecond: throughput[n],
    tokenLatencyP50Ms: percentile(gaps.map((g) => percentile(g.slice(), 0.5)), 0.5), tokenLatencyP95Ms: percentile(gaps.map((g) => percentile(g.slice(), 0.95)), 0.95), idsMatch,
  })
  if (!idsMatch) throw new Error(`concurrent sessions returned different ids at ${n} sessions`)
}
const statsAfter = await Promise.all(contributors.slice(0, 3).map((c) => c.tab.call('contributorStats')))
// the path taken: hosts ran passes carrying several sessions
result.sessionsPerPass = statsAfter.map((s, i) => (s!.batchedRequests - statsBefore[i]!.batchedRequests) / Math.max(1, s!.batches - statsBefore[i]!.batches))
result.concurrencySpeedup2 = throughput[2] / throughput[1]
result.concurrencySpeedup4 = throughput[4] / throughput[1]
result.concurrencySpeedup8 = throughput[8] / throughput[1]

// speculative decoding on and off through 3 hops of stories260K: drafts from the registry's draft
// model (stories260K at Q4_0) and by prompt lookup
await host('stories260K', [0, 2, 4, 5])
await clients[0].call('chat', request('stories260K', { maxTokens: 4 }))
const specPrompt = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, Lily'
const specRequest = (speculate: boolean | 'lookup') => request('stories260K', { prompt: specPrompt, maxTokens: SPEC_TOKENS, speculate })
await clients[0].call('chat', specRequest(true)) // the draft model loads once
const off = await clients[0].call('chat', specRequest(false))
const drafted = await clients[0].call('chat', specRequest(true))
const lookup = await clients[0].call('chat', specRequest('lookup'))
const decodeRate = (r: { tokens: number[]; tokenTimes: number[]; firstTokenAt?: number }) => (r.tokens.length - 1) / ((r.tokenTimes.at(-1)! - r.firstTokenAt!) / 1000)
const acceptance = (r: { speculation: { drafted: number; accepted: number } }) => r.speculation.accepted / Math.max(1, r.speculation.drafted)
result.speculativeSpeedup = decodeRate(drafted) / decodeRate(off)
result.speculativeIdsMatch = JSON.stringify(drafted.tokens) === JSON.stringify(off.tokens) && JSON.stringify(lookup.tokens) === JSON.stringify(off.tokens)
result.speculativeAcceptance = acceptance(drafted)
result.promptLookupSpeedup = decodeRate(lookup) / decodeRate(off)
result.promptLookupAcceptance = acceptance(lookup)
rows.push({ model: 'stories260K', route: '3 hops, speculation off', tokensPerSecond: decodeRate(off), trips: off.forwardCalls })
rows.push({ model: 'stories260K', route: '3 hops, drafts from stories260K-q4', tokensPerSecond: decodeRate(drafted), trips: drafted.forwardCalls, acceptance: acceptance(drafted), idsMatch: JSON.stringify(drafted.tokens) === JSON.stringify(off.tokens) })
rows.push({ model: 'stories260K', route: '3 hops, drafts by prompt lookup', tokensPerSecond: decodeRate(lookup), trips: lookup.forwardCalls, acceptance: acceptance(lookup), idsMatch: JSON.stringify(lookup.tokens) === JSON.stringify(off.tokens) })
if (drafted.speculation.drafted === 0 || lookup.speculation.drafted === 0) throw new Error('speculation never drafted: the path was not taken')

// prefix cache: the second turn of a ~300-token conversation, with the hosts' kept prefix and without
const story = 'Once upon a time, there was a little boy named Tim. Tim had a big red ball. He liked to play with his ball in the park with his friends. '
const turn1 = story.repeat(6) + 'One day,'
const first = await clients[1].call('chat', request('stories260K', { prompt: turn1, maxTokens: 40, speculate: false, conversation: 'bench' }))
const turn2 = turn1 + first.text + ' Then'
// the same tab, its connections warm: a fresh session (nothing kept) and then the conversation's own
const cold = await clients[1].call('chat', request('stories260K', { prompt: turn2, maxTokens: 8 }))
const warm = await clients[1].call('chat', request('stories260K', { prompt: turn2, maxTokens: 8, conversation: 'bench' }))
const ttft = (r: { startedAt: number; firstTokenAt?: number }) => r.firstTokenAt! - r.startedAt
result.prefixCacheSpeedup = ttft(cold) / ttft(warm)
result.prefixIdsMatch = JSON.stringify(warm.tokens) === JSON.stringify(cold.tokens)
result.prefixReusedPositions = warm.reusedPositions
rows.push({ model: 'stories260K', route: `second turn (${warm.promptTokens.length} tokens), cold`, ttftMs: ttft(cold) })
rows.push({ model: 'stories260K', route: `second turn, ${warm.reusedPositions} positions kept on the hosts`, ttftMs: ttft(warm), idsMatch: result.prefixIdsMatch })
if (!warm.reusedPositions) throw new Error('the second turn reused no prefix: the path was not taken')

// recovery: the middle contributor of the route is killed at token 10; a standby holds its layers
contributors[3].peerId = (await contributors[3].tab.call('contribute', { model: 'stories260K', layers: { start: 2, end: 4 }, backend: BACKEND })).peerId
await new Promise((r) => setTimeout(r, 1500))
const run = clients[3].call('chat', request('stories260K', { pauseAtToken: 10, speculate: false }))
while (!(await clients[3].call('chatState')).paused) await new Promise((r) => setTimeout(r, 50))
const route = (await clients[3].call('chatState')).route
const victim = contributors.find((c) => c.peerId === route[1])
if (!victim) throw new Error(`the route ${route.join(' -> ')} has no contributor of this bench in the middle`)
victim.process.kill('SIGKILL')
await clients[3].call('resume')
const recovered = await run
const failover = recovered.events.find((e) => e.type === 'failover')
if (failover?.type === 'failover' && failover.peerId === victim.peerId) {
  const noticed = failover.at - failover.recoveryMs
  const next = recovered.tokenTimes.find((t) => t > failover.at)!
  result.recoveryMs = next - noticed
  result.victimOnRoute = true
  rows.push({ model: 'stories260K', route: 'failover (middle of 3 killed)', recoveryMs: result.recoveryMs })
} else throw new Error(`no failover away from the killed peer ${victim.peerId} was reported`)
result.failoverIdsMatch = JSON.stringify(recovered.tokens) === JSON.stringify((await clients[2].call('chat', request('stories260K', { mode: 'local' }))).tokens)

console.table(rows)
const f = (k: string) => Number(result[k]).toFixed(2)
console.log(`perHopOverheadRatio ${f('perHopOverheadRatio')} (target <= 1.5), concurrencySpeedup4 ${f('concurrencySpeedup4')} (>= 2.5), concurrencySpeedup8 ${f('concurrencySpeedup8')} (>= 4), sessionsPerPass ${(result.sessionsPerPass as number[]).map((x) => x.toFixed(1)).join('/')}`)
console.log(`speculativeSpeedup ${f('speculativeSpeedup')} (>= 1.5; draft model, acceptance ${f('speculativeAcceptance')}; prompt lookup ${f('promptLookupSpeedup')}, acceptance ${f('promptLookupAcceptance')}; ids match ${result.speculativeIdsMatch}), prefixCacheSpeedup ${f('prefixCacheSpeedup')} (>= 3; ids match ${result.prefixIdsMatch}), recoveryMs ${Number(result.recoveryMs).toFixed(0)} (< 2000, victim on the route)`)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/swarm.json'), JSON.stringify({ ...result, measuredAt: new Date().toISOString() }, null, 2))
for (const p of processes) await p.close()
await relay.kill()
process.exit(0)
