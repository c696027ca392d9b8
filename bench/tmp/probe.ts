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
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import type { TabChatRequest } from '../../src/cli-tab/main.ts'
import { makeSyntheticLlama2c } from '../../src/model/formats/synthetic.ts'
import { resolveModelsDir } from '../../src/nodejs/models-dir.ts'
import { headlessCall, launchChromiumProcess, loopbackOnly, ROOT, startRelayProcess, type ChromiumProcess } from '../../lab/mesh-harness.ts'

const require = createRequire(import.meta.url)
if (!loopbackOnly()) {
  const r = spawnSync('unshare', ['-n', 'bash', '-c', `ip link set lo up && exec ${process.execPath} --import tsx ${join(ROOT, 'bench/tmp/probe.ts')}`], { stdio: 'inherit', env: process.env })
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


const backend = (process.env.PB ?? 'wasm') as 'wasm' | 'ref'
for (let i = 0; i < 3; i++) contributors[i].peerId = (await contributors[i].tab.call('contribute', { model: 'deep12', layers: { start: [0, 4, 8][i], end: [4, 8, 12][i] }, backend })).peerId
await new Promise((r) => setTimeout(r, 2500))
const req = (extra = {}) => ({ model: 'deep12', prompt: 'Once upon a time', maxTokens: 64, temperature: 0, topP: 0.9, seed: 1, hopTimeoutMs: 5000, verify: false, speculate: false, ...extra }) as TabChatRequest
const cpu = () => { const f = require('node:fs').readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number); return { busy: f[0] + f[1] + f[2] + f[5] + f[6], all: f.reduce((a: number, b: number) => a + b, 0) } }
for (const c of clients) await c.call('chat', req({ maxTokens: 4 }))
{
  const b = cpu(); await new Promise((r) => setTimeout(r, 5000)); const a = cpu()
  console.log('idle after warm-up: cpu busy share', ((a.busy - b.busy) / (a.all - b.all)).toFixed(2))
  console.log(require('node:child_process').execSync('ps -eo pcpu,rss,args --sort=-pcpu | head -12').toString().split('\n').map((l: string) => l.slice(0, 160)).join('\n'))
}

for (const [name, page] of [['client', clients[1].page], ['contributor', contributors[1].tab.page]] as const) {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.start')
  await new Promise((r) => setTimeout(r, 5000))
  const { profile } = await cdp.send('Profiler.stop') as { profile: { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[]; samples: number[]; timeDeltas: number[] } }
  const self = new Map<string, number>()
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  profile.samples.forEach((id, k) => { const n = byId.get(id)!; const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`; self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[k] ?? 0) / 1000) })
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = self.get('(idle) :-1') ?? 0
  console.log(name, 'profiled ms', Math.round(total), 'non-idle', Math.round(total - idle - (self.get('(program) :-1') ?? 0)), 'program', Math.round(self.get('(program) :-1') ?? 0))
  console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `  ${v.toFixed(0)} ms ${k}`).join('\n'))
  // inclusive time by stack path of up to 6 frames for heavy leaves
  const parent = new Map<number, number>()
  for (const n of profile.nodes as unknown as { id: number; children?: number[] }[]) for (const c of n.children ?? []) parent.set(c, n.id)
  const paths = new Map<string, number>()
  profile.samples.forEach((id, k) => {
    const names: string[] = []
    for (let x: number | undefined = id; x !== undefined && names.length < 9; x = parent.get(x)) { const f = byId.get(x)!.callFrame; names.push(`${f.functionName || '?'}:${f.lineNumber}`) }
    if (names[0].startsWith('(idle)') || names[0].startsWith('(program)')) return
    const key = names.join(' < ')
    paths.set(key, (paths.get(key) ?? 0) + (profile.timeDeltas[k] ?? 0) / 1000)
  })
  console.log([...paths].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `  PATH ${v.toFixed(0)} ms ${k}`).join('\n'))
}
const st = await Promise.all(contributors.slice(0, 3).map((c) => c.tab.call('contributorStats')))
console.log(st.map((x) => `${x!.batchedRequests}/${x!.batches} busy ${Math.round(x!.busyMs)}`).join('  '))
for (const p of processes) await p.close()
await relay.kill()
process.exit(0)
