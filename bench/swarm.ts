/**
 * npm run bench:swarm -> bench/results/swarm.json and a table.
 * Decode tokens/s of local generation versus 2- and 3-hop pipelines over real WebRTC between
 * browser processes (stories260K and a deeper synthetic model); per-hop overhead against the raw
 * 32-byte stream round trip (libp2p ping) measured in the same run; aggregate tokens/s of 1, 2 and 4
 * concurrent sessions through 3 hops; recovery time after a contributor is SIGKILLed.
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
import { headlessCall, launchChromiumProcess, loopbackOnly, ROOT, startRelayProcess, type ChromiumProcess } from '../lab/mesh-harness.ts'

if (!loopbackOnly()) {
  const r = spawnSync('unshare', ['-n', 'bash', '-c', `ip link set lo up && exec ${process.execPath} --import tsx ${join(ROOT, 'bench/swarm.ts')}`], { stdio: 'inherit', env: process.env })
  process.exit(r.status ?? 1)
}

const TOKENS = 48
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
const contributors = await Promise.all([0, 1, 2, 3].map(async () => { const b = await browser(); return { ...b, tab: await tab(b.browser) } }))
const clientBrowser = await browser()
const clients = await Promise.all([0, 1, 2, 3].map(() => tab(clientBrowser.browser)))

/** Hosts `splits` (layer boundaries) of `model` on the first contributors; the rest host nothing. */
async function host(model: string, bounds: number[]) {
  for (const c of contributors) await c.tab.call('stopContributing')
  for (let i = 0; i + 1 < bounds.length; i++) await contributors[i].tab.call('contribute', { model, layers: { start: bounds[i], end: bounds[i + 1] }, backend: 'ref' })
  await new Promise((r) => setTimeout(r, 2500)) // adverts settle; stale ones expire
}
const decodeMsPerToken = (r: { tokenTimes: number[] }) => (r.tokenTimes.at(-1)! - r.tokenTimes[0]) / (r.tokenTimes.length - 1)
// the pipeline itself, without spot checks (bench:trust measures what they cost)
const request = (model: string, extra: Partial<TabChatRequest> = {}): TabChatRequest => ({ model, prompt: 'Once upon a time', maxTokens: TOKENS, temperature: 0, topP: 0.9, seed: 1, hopTimeoutMs: 5000, verify: false, ...extra })

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

// concurrency: 1, 2, 4 sessions at once through 3 hops of the deeper model
await host('deep12', [0, 4, 8, 12])
const throughput: Record<number, number> = {}
for (const n of [1, 2, 4]) {
  const started = performance.now()
  const outs = await Promise.all(clients.slice(0, n).map((c) => c.call('chat', request('deep12'))))
  const seconds = (performance.now() - started) / 1000
  throughput[n] = outs.reduce((s, o) => s + o.tokens.length, 0) / seconds
  rows.push({ model: 'deep12', route: `3 hops, ${n} concurrent`, aggregateTokensPerSecond: throughput[n] })
}
result.concurrencySpeedup4 = throughput[4] / throughput[1]

// recovery: the middle contributor of stories260K is killed at token 10; a standby holds its layers
await host('stories260K', [0, 2, 4, 5])
await contributors[3].tab.call('contribute', { model: 'stories260K', layers: { start: 2, end: 4 }, backend: 'ref' })
await new Promise((r) => setTimeout(r, 1500))
const run = clients[1].call('chat', request('stories260K', { pauseAtToken: 10 }))
while (!(await clients[1].call('chatState')).paused) await new Promise((r) => setTimeout(r, 50))
contributors[1].process.kill('SIGKILL')
await clients[1].call('resume')
const recovered = await run
const failover = recovered.events.find((e) => e.type === 'failover')
if (failover?.type === 'failover') {
  const noticed = failover.at - failover.recoveryMs
  const next = recovered.tokenTimes.find((t) => t > failover.at)!
  result.recoveryMs = next - noticed
  rows.push({ model: 'stories260K', route: 'failover (middle of 3 killed)', recoveryMs: result.recoveryMs })
}
result.failoverIdsMatch = JSON.stringify(recovered.tokens) === JSON.stringify((await clients[2].call('chat', request('stories260K', { mode: 'local' }))).tokens)

console.table(rows)
console.log(`perHopOverheadRatio ${Number(result.perHopOverheadRatio).toFixed(2)} (target <= 1.5), concurrencySpeedup4 ${Number(result.concurrencySpeedup4).toFixed(2)} (target >= 2.5), recoveryMs ${Number(result.recoveryMs).toFixed(0)} (target < 2000)`)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/swarm.json'), JSON.stringify({ ...result, measuredAt: new Date().toISOString() }, null, 2))
for (const p of processes) await p.close()
await relay.kill()
process.exit(0)
