/**
 * `npm run bench:mesh`: the mesh's timings with 2, 3, 4 and 6 tabs, each tab its own Chromium
 * process, in a loopback-only network namespace: page load to the first WebRTC connection and to
 * the full mesh, advert propagation latency (p50/p99), 32-byte stream round trip and bulk stream
 * throughput between two tabs, and how long the others take to drop a SIGKILLed tab.
 *
 * Ratios: each row against the 2-tab row of the same run, and advert propagation against half the
 * stream round trip (what gossip adds over a bare stream). Prints a table and writes
 * bench/results/mesh.json. TABMESH_MESH_SIZES=2,4 picks the sizes; TABMESH_SITE_DIR a built site.
 * Two cores run every browser: numbers taken while other work runs are noisy.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { buildMeshSite, launchChromiumProcess, loopbackOnly, openMeshPeer, ROOT, startRelayProcess, type BrowserPeer } from '../lab/mesh-harness.ts'

const SIZES = (process.env.TABMESH_MESH_SIZES ?? '2,3,4,6').split(',').map(Number)
const CHURN_MS = 8000 // advert sampling window
const CHURN_PERIOD_MS = 250 // each tab sends a 'change' advert this often during the window
const RTT_ROUNDS = 300
const BULK_BYTES = 16 * 2 ** 20

interface SizeResult {
  peers: number
  firstWebrtcMs: { p50: number; max: number } // page load (navigation start) to a tab's first direct connection
  fullMeshMs: { p50: number; max: number } // page load to a tab's last direct connection; max = mesh complete
  nodeStartMs: { p50: number; max: number } // page load to the node being up (relay connected)
  dials: { attempts: number; connected: number; timeouts: number; failures: number; connectMsP50: number; zombiesClosed: number; gossipRepairs: number }
  advertMs: { samples: number; p50: number; p99: number; max: number }
  streamRttMs: { p50: number; p99: number }
  throughputMBps: number
  lostPeerDetectedMs: { p50: number; max: number }
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

if (!loopbackOnly()) throw new Error('run this in a loopback-only network namespace: `npm run bench:mesh`')
const siteDir = buildMeshSite()

async function measure(n: number): Promise<SizeResult> {
  const relay = await startRelayProcess(siteDir)
  const chromiums = await Promise.all(Array.from({ length: n }, () => launchChromiumProcess()))
  let peers: BrowserPeer[] = []
  try {
    // all tabs load at once, each starting its node from the page itself
    peers = await Promise.all(chromiums.map((c) => openMeshPeer(c, relay.url, {}, true)))
    const deadline = Date.now() + 60_000
    while ((await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.directPeers().length)))).some((k) => k < n - 1)) {
      if (Date.now() > deadline) {
        const state = await Promise.all(peers.map((p) => p.page.evaluate(() => ({ direct: window.meshLab.directPeers().length, table: window.meshLab.table().length, dial: window.meshLab.stats().dial }))))
        throw new Error(`${n} tabs did not form a full mesh in 60 s: ${JSON.stringify(state)}`)
      }
      await sleep(100)
    }
    const timelines = await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.timeline())))
    const nodeStats = await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.stats())))
    const stats = nodeStats.map((s) => s.dial)
    const first = timelines.map((t) => t.directReachedMs[0])
    const full = timelines.map((t) => t.directReachedMs[n - 2])
    const nodeUp = timelines.map((t) => t.nodeStartedMs ?? Number.NaN)

    await sleep(1500) // let the first heartbeats and pings settle
    await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.clearAdvertDelays())))
    await Promise.all(peers.map((p) => p.page.evaluate(({ ms, period }) => window.meshLab.churn(ms, period), { ms: CHURN_MS, period: CHURN_PERIOD_MS })))
    const delays = (await Promise.all(peers.map((p) => p.page.evaluate(() => window.meshLab.advertDelays())))).flat()

    const [a, b] = peers
    const rtts = (await a.page.evaluate(({ id, rounds }) => window.meshLab.rtt(id, rounds), { id: b.peerId, rounds: RTT_ROUNDS })).slice(20) // drop warm-up
    await a.page.evaluate(({ id }) => window.meshLab.throughput(id, 2 ** 20), { id: b.peerId }) // warm-up
    const bulk = await a.page.evaluate(({ id, bytes }) => window.meshLab.throughput(id, bytes), { id: b.peerId, bytes: BULK_BYTES })
    if (bulk.bytes !== BULK_BYTES) throw new Error(`bulk transfer delivered ${bulk.bytes} of ${BULK_BYTES} bytes`)

    // crash the last tab and time how long the others take to drop it
    const victim = peers[peers.length - 1]
    const killedAt = Date.now()
    victim.process.kill('SIGKILL')
    const survivors = peers.slice(0, -1)
    const detected: number[] = []
    for (const p of survivors) {
      let at: number | undefined
      while (at === undefined && Date.now() - killedAt < 15_000) {
        at = await p.page.evaluate((id) => window.meshLab.leaves().find((l) => l.peerId === id)?.atEpochMs, victim.peerId)
        if (at === undefined) await sleep(50)
      }
      detected.push(at === undefined ? Number.NaN : at - killedAt)
    }

    const connectMs = stats.flatMap((s) => s.connectMs)
    return {
      peers: n,
      firstWebrtcMs: { p50: quantile(first, 0.5), max: Math.max(...first) },
      fullMeshMs: { p50: quantile(full, 0.5), max: Math.max(...full) },
      nodeStartMs: { p50: quantile(nodeUp, 0.5), max: Math.max(...nodeUp) },
      dials: {
        attempts: stats.reduce((s, d) => s + d.attempts, 0), connected: stats.reduce((s, d) => s + d.connected, 0),
        timeouts: stats.reduce((s, d) => s + d.timeouts, 0), failures: stats.reduce((s, d) => s + d.failures, 0), connectMsP50: quantile(connectMs, 0.5),
        zombiesClosed: nodeStats.reduce((s, n) => s + n.zombiesClosed, 0), gossipRepairs: nodeStats.reduce((s, n) => s + n.gossipRepairs, 0),
      },
      advertMs: { samples: delays.length, p50: quantile(delays, 0.5), p99: quantile(delays, 0.99), max: Math.max(...delays) },
      streamRttMs: { p50: quantile(rtts, 0.5), p99: quantile(rtts, 0.99) },
      throughputMBps: bulk.mbPerS,
      lostPeerDetectedMs: { p50: quantile(detected, 0.5), max: Math.max(...detected) },
    }
  } finally {
    await Promise.all(chromiums.map((c) => c.close()))
    await relay.kill()
  }
}

const results: SizeResult[] = []
const failures: { peers: number; error: string }[] = []
for (const n of SIZES) {
  console.error(`measuring ${n} tabs ...`)
  try {
    results.push(await measure(n))
  } catch (err) {
    console.error(`${n} tabs: ${(err as Error).message}`)
    failures.push({ peers: n, error: (err as Error).message })
  }
}
if (results.length === 0) throw new Error('no mesh size could be measured')

const base = results[0]
const ratio = (x: number, y: number) => (Number.isFinite(x) && Number.isFinite(y) && y > 0 ? `${(x / y).toFixed(2)}x` : '-')
const header = ['tabs', 'node up', 'first WebRTC', 'full mesh', `vs ${base.peers}`, 'dials (timeouts)', 'dial p50', 'advert p50', 'p99', 'vs RTT/2', 'RTT p50', 'p99', 'MB/s', `vs ${base.peers}`, 'lost peer']
const rows = results.map((r) => [
  String(r.peers), fmt(r.nodeStartMs.max, 0), fmt(r.firstWebrtcMs.max, 0), fmt(r.fullMeshMs.max, 0), ratio(r.fullMeshMs.max, base.fullMeshMs.max),
  `${r.dials.attempts} (${r.dials.timeouts})`, fmt(r.dials.connectMsP50, 0), fmt(r.advertMs.p50, 1), fmt(r.advertMs.p99, 1), ratio(r.advertMs.p50, r.streamRttMs.p50 / 2),
  fmt(r.streamRttMs.p50, 2), fmt(r.streamRttMs.p99, 2), fmt(r.throughputMBps, 1), ratio(r.throughputMBps, base.throughputMBps), fmt(r.lostPeerDetectedMs.max, 0),
])
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
console.log(`\nmesh on loopback, one Chromium process per tab (times in ms from page load; max over tabs); load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} cores`)
console.log(header.map((h, i) => h.padStart(widths[i])).join('  '))
for (const row of rows) console.log(row.map((c, i) => c.padStart(widths[i])).join('  '))
for (const f of failures) console.log(`${f.peers} tabs: FAILED (${f.error.slice(0, 200)})`)
const three = results.find((r) => r.peers === 3)
if (three) console.log(`\n3-tab mesh complete ${fmt(three.fullMeshMs.max, 0)} ms after page load (target <= 3000)`)
console.log(`advert propagation p50 ${results.map((r) => `${r.peers}: ${fmt(r.advertMs.p50, 1)} ms`).join(', ')} (target < 20)`)
console.log(`lost peer noticed after ${results.map((r) => `${r.peers}: ${fmt(r.lostPeerDetectedMs.max, 0)} ms`).join(', ')} (target <= 3000)`)

mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/mesh.json'), JSON.stringify({ date: new Date().toISOString(), loadAverage: loadavg(), churnPeriodMs: CHURN_PERIOD_MS, rttRounds: RTT_ROUNDS, bulkBytes: BULK_BYTES, results, failures }, null, 2) + '\n')
console.log('wrote bench/results/mesh.json')
