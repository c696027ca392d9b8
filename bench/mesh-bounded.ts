/**
 * `npm run bench:mesh:bounded`: bounded connections on loopback. N tabs (each its own Chromium
 * process, as many as this 2-core machine holds) whose nodes keep at most `cap` direct WebRTC
 * connections: does every tab still hear every other through gossip, do connections stay at the
 * cap, and what does a first request to a peer cost when it needs an on-demand dial (the network
 * part of a time to first token) as the swarm grows? The same is measured with the cap above N
 * (a full mesh) as the baseline of the same run.
 *
 * Checks that the path it measures was taken: the bounded tabs' table holds every other tab while
 * their direct connections stay bounded (each dials at most `cap`; others dial it about as often),
 * the on-demand requests really went to peers with no open connection, and those connections
 * closed again once idle. Writes bench/results/mesh-bounded.json. TABMESH_BOUNDED="4:2,8:3" picks
 * (tabs:cap) pairs.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { buildMeshSite, launchChromiumProcess, loopbackOnly, openMeshPeer, ROOT, startRelayProcess, type BrowserPeer } from '../lab/mesh-harness.ts'

const CASES = (process.env.TABMESH_BOUNDED ?? '5:2,8:2').split(',').map((c) => c.split(':').map(Number) as [number, number])

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : Number.NaN)

interface CaseResult {
  tabs: number
  cap: number
  /** Seconds until every tab's table held every other tab. */
  discoveredAllS: number
  maxDirectPerTab: number
  meanDirectPerTab: number
  /** A first request (open + 32-byte echo) to peers with no open connection: dial on demand. */
  onDemandFirstEchoMs: number[]
  /** The same to peers already connected. */
  warmFirstEchoMs: number[]
  idleClosed: number
  /** Requests that failed (a dial or stream open that timed out on the loaded machine). */
  failures: string[]
}

if (!loopbackOnly()) throw new Error('run this in a loopback-only network namespace: `npm run bench:mesh:bounded`')
const siteDir = buildMeshSite()

async function measure(tabs: number, cap: number): Promise<CaseResult> {
  const relay = await startRelayProcess(siteDir)
  const chromiums = await Promise.all(Array.from({ length: tabs }, () => launchChromiumProcess()))
  let peers: BrowserPeer[] = []
  try {
    peers = []
    for (const c of chromiums) peers.push(await openMeshPeer(c, relay.url, { maxDirectPeers: cap, idleCloseMs: 5000 }))
    const t0 = Date.now()
    while ((await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.table().length)))).some((k) => k < tabs - 1)) {
      if (Date.now() - t0 > 90_000) throw new Error(`${tabs} tabs (cap ${cap}) did not all hear each other in 90 s`)
      await sleep(200)
    }
    const discoveredAllS = (Date.now() - t0) / 1000
    await sleep(3000) // let the dialer settle at the cap
    const onDemand: number[] = []
    const warm: number[] = []
    const failures: string[] = []
    // each tab asks one peer it is not connected to, and one it is
    for (const p of peers) {
      const direct = await p.page.evaluate(() => window.meshLab.directPeers())
      const others = peers.filter((q) => q !== p).map((q) => q.peerId)
      const cold = others.find((id) => !direct.includes(id))
      try {
        if (cold) {
          const r = await p.page.evaluate((id) => window.meshLab.firstEcho(id), cold)
          if (r.wasDirect) throw new Error('the on-demand request found a connection already open: the path was not taken')
          onDemand.push(r.totalMs)
        }
        const hot = direct.find((id) => others.includes(id))
        if (hot) warm.push((await p.page.evaluate((id) => window.meshLab.firstEcho(id), hot)).totalMs)
      } catch (err) {
        if (/path was not taken/.test(String(err))) throw err
        failures.push(String((err as Error).message).split('\n')[0].slice(0, 160))
      }
    }
    // on-demand connections beyond the cap close once idle (5 s), checked every 5 s
    await sleep(20_000)
    const directCounts = await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.directPeers().length)))
    const idleClosed = (await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.stats().idleClosed)))).reduce((a, b) => a + b, 0)
    return {
      tabs, cap, discoveredAllS, maxDirectPerTab: Math.max(...directCounts), meanDirectPerTab: directCounts.reduce((a, b) => a + b, 0) / tabs,
      onDemandFirstEchoMs: onDemand, warmFirstEchoMs: warm, idleClosed, failures,
    }
  } finally {
    await Promise.all(peers.map((p) => p.close()))
    await Promise.all(chromiums.map((c) => c.close()))
    await relay.kill()
  }
}

const results: CaseResult[] = []
for (const [tabs, cap] of CASES) {
  for (const c of [cap, tabs]) { // bounded, then the full-mesh baseline of the same size
    const r = await measure(tabs, c)
    results.push(r)
    console.log(`${tabs} tabs, cap ${c}: all heard in ${r.discoveredAllS.toFixed(1)} s; direct per tab max ${r.maxDirectPerTab} mean ${r.meanDirectPerTab.toFixed(1)}; first echo on demand ${median(r.onDemandFirstEchoMs).toFixed(0)} ms (n=${r.onDemandFirstEchoMs.length}), warm ${median(r.warmFirstEchoMs).toFixed(0)} ms; idle closed ${r.idleClosed}; failed requests ${r.failures.length}`)
  }
}
const bounded = results.filter((r) => r.cap < r.tabs)
// the bound: a tab dials at most `cap` peers it discovers, and is dialled by others as much on
// average; what it dialled on demand has closed again after idleCloseMs
for (const r of bounded) {
  if (r.meanDirectPerTab > 2 * r.cap) throw new Error(`${r.tabs} tabs: ${r.meanDirectPerTab} direct connections per tab on average, over twice the cap ${r.cap}`)
  if (r.onDemandFirstEchoMs.length > 0 && r.idleClosed === 0) throw new Error(`${r.tabs} tabs: no connection dialled on demand was closed once idle`)
}
const ratio = bounded.length >= 2 ? median(bounded.at(-1)!.onDemandFirstEchoMs) / median(bounded[0].onDemandFirstEchoMs) : Number.NaN
console.log(`on-demand first echo, largest vs smallest bounded swarm: ${ratio.toFixed(2)}x (1.0 = does not grow with swarm size)`)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/mesh-bounded.json'), JSON.stringify({
  date: new Date().toISOString(), machine: { cpus: cpus().length, loadavg: loadavg() }, results, onDemandGrowth: ratio,
}, null, 2))
process.exit(0)
