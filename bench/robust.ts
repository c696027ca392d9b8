/**
 * npm run bench:robust -> bench/results/robust.json and a table.
 * The relay process (`tabmesh start`'s server: the libp2p relay beside the HTTP site and model
 * registry, in a process of its own) under load, for a fixed time each (TABMESH_BENCH_SECONDS,
 * default 10):
 *  (a) an HTTP flood from several concurrent keep-alive clients (TABMESH_BENCH_CLIENTS, default 8):
 *      GET /models, Range GETs of a model file, GET of the site, and bad requests (/%E0, POST,
 *      unsatisfiable ranges): requests/s, p50/p99 latency, responses by status, whether every
 *      answer was the expected one, and the count the server itself made of them;
 *  (b) a flood of circuit-relay reservation attempts, each from a new libp2p node (in a flood
 *      process of its own) dialing the relay over WebSockets (the relay's limit is TABMESH_BENCH_MAX_RESERVATIONS,
 *      default 64; TABMESH_BENCH_FLOOD_CONCURRENCY attempts in flight, default 16): accepted vs
 *      refused (by libp2p status or error name), what the relay holds, whether a new peer gets a
 *      slot once the flood's peers left; and HTTP p99 latency of a light probe during the flood
 *      against the same probe measured just before it.
 * It fails (exit 1) if the relay process exits, if any response was a 5xx, or if the server did
 * not count the flood. Run: node --experimental-websocket (Node 20 dials WebSockets only with it).
 */
import '../src/nodejs/relay/polyfill.ts'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import type { Libp2p } from '@libp2p/interface'
import { createRng } from '../src/core/rng.ts'
import type { HttpStats } from '../src/nodejs/relay/http-server.ts'
import { reserve } from '../testing/relay-reservations.ts'

const ROOT = resolve(import.meta.dirname, '..')
const SECONDS = Number(process.env.TABMESH_BENCH_SECONDS ?? 10)
const CLIENTS = Number(process.env.TABMESH_BENCH_CLIENTS ?? 8)
const MAX_RESERVATIONS = Number(process.env.TABMESH_BENCH_MAX_RESERVATIONS ?? 64)
const FLOOD_CONCURRENCY = Number(process.env.TABMESH_BENCH_FLOOD_CONCURRENCY ?? 16)
const MODEL_FILE = '/models/stories260K/stories260K.bin'

interface ServerStats { http: HttpStats; reservations: number; connections: number; rss: number }

// ---- the relay process: `--serve` runs the server and answers "stats" lines on stdin ----
async function serve() {
  const { resolveModelsDir, scanModels } = await import('../src/nodejs/models-dir.ts')
  const { startTabmeshServer } = await import('../src/nodejs/relay/server.ts')
  const modelsDir = resolveModelsDir()
  const server = await startTabmeshServer({
    host: '127.0.0.1', port: 0, relayPort: 0, siteDir: process.env.TABMESH_SITE_DIR!, modelsDir,
    registry: { models: await scanModels(modelsDir) }, maxReservations: MAX_RESERVATIONS,
  })
  console.log(JSON.stringify({ url: server.url, multiaddrs: server.relay.multiaddrs }))
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line !== 'stats') return
    const stats: ServerStats = { http: server.httpStats, reservations: server.relay.libp2p.services.relay.reservations.size, connections: server.relay.libp2p.getConnections().length, rss: process.memoryUsage().rss }
    console.log(JSON.stringify(stats))
  })
  process.stdin.on('end', () => {
    setTimeout(() => process.exit(0), 2000).unref()
    void server.stop().then(() => process.exit(0))
  })
}

/** The built site: $TABMESH_SITE_DIR, else dist/, else a fresh build in a temp dir. */
function siteDir(): string {
  if (process.env.TABMESH_SITE_DIR) return process.env.TABMESH_SITE_DIR
  if (existsSync(join(ROOT, 'dist/index.html'))) return join(ROOT, 'dist')
  const dir = mkdtempSync(join(tmpdir(), 'tabmesh-bench-site-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const b = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--outDir', dir, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' })
  if (b.status !== 0) throw new Error('vite build failed')
  return dir
}

interface Relay { url: string; multiaddrs: string[]; child: ChildProcess; stats(): Promise<ServerStats>; exit: { code: number | null; signal: string | null } | undefined; stderr: string[] }

async function startRelay(): Promise<Relay> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/robust.ts'), '--serve'], {
    cwd: ROOT, env: { ...process.env, TABMESH_SITE_DIR: siteDir() }, stdio: ['pipe', 'pipe', 'pipe'],
  })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l))
  const lines = createInterface({ input: child.stdout! })
  const waiting: ((line: string) => void)[] = []
  const first = new Promise<string>((res, rej) => {
    waiting.push(res)
    child.once('exit', (code) => rej(new Error(`relay exited with ${code} before it was ready:\n${stderr.join('\n')}`)))
  })
  lines.on('line', (line) => waiting.shift()?.(line))
  const info = JSON.parse(await first) as { url: string; multiaddrs: string[] }
  const relay: Relay = {
    ...info, child, stderr, exit: undefined,
    stats: () => new Promise<ServerStats>((res) => {
      waiting.push((line) => res(JSON.parse(line) as ServerStats))
      child.stdin!.write('stats\n')
    }),
  }
  child.once('exit', (code, signal) => { relay.exit = { code, signal } })
  return relay
}

// ---- HTTP load ----
type Kind = 'registry' | 'range' | 'site' | 'bad-path' | 'bad-method' | 'bad-range'
const EXPECTED: Record<Kind, number> = { registry: 200, range: 206, site: 200, 'bad-path': 400, 'bad-method': 405, 'bad-range': 416 }
const FLOOD_MIX: [Kind, number][] = [['registry', 25], ['range', 30], ['site', 20], ['bad-path', 10], ['bad-method', 5], ['bad-range', 10]]
const PROBE_MIX: [Kind, number][] = [['registry', 50], ['range', 50]]

interface LoadResult {
  requests: number
  seconds: number
  latenciesMs: number[]
  byStatus: Record<number, number>
  /** Responses whose status was not the one its kind should get. */
  unexpected: number
  /** Requests with no response (socket errors), by error code. */
  errors: Record<string, number>
}

function oneRequest(base: URL, agent: Agent, kind: Kind, rng: ReturnType<typeof createRng>): Promise<{ status?: number; error?: string }> {
  const at = rng.nextU32() % 1_000_000
  const spec: { method: string; path: string; headers: Record<string, string> } =
    kind === 'registry' ? { method: 'GET', path: '/models', headers: {} }
    : kind === 'range' ? { method: 'GET', path: MODEL_FILE, headers: { Range: `bytes=${at}-${at + 4095}` } }
    : kind === 'site' ? { method: 'GET', path: '/', headers: {} }
    : kind === 'bad-path' ? { method: 'GET', path: '/%E0', headers: {} }
    : kind === 'bad-method' ? { method: 'POST', path: '/models', headers: { 'Content-Length': '0' } }
    : { method: 'GET', path: MODEL_FILE, headers: { Range: 'bytes=999999999-' } }
  return new Promise((res) => {
    const req = request({ host: base.hostname, port: base.port, agent, method: spec.method, path: spec.path, headers: spec.headers, timeout: 10_000 }, (response) => {
      response.on('data', () => {})
      response.on('end', () => res({ status: response.statusCode }))
      response.on('error', (err: NodeJS.ErrnoException) => res({ error: err.code ?? err.name }))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
    req.on('error', (err: NodeJS.ErrnoException) => res({ error: err.code ?? err.name }))
    req.end()
  })
}

/** `clients` keep-alive clients, each sending its next request when the last one is answered (plus `pauseMs`). */
async function httpLoad(base: URL, clients: number, seconds: number, mix: [Kind, number][], pauseMs = 0, seed = 1): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients })
  const total = mix.reduce((n, [, w]) => n + w, 0)
  const result: LoadResult = { requests: 0, seconds, latenciesMs: [], byStatus: {}, unexpected: 0, errors: {} }
  const end = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const rng = createRng(seed * 1000 + c + 1)
    while (performance.now() < end) {
      let pick = rng.nextU32() % total
      const kind = mix.find(([, w]) => (pick -= w) < 0)![0]
      const t0 = performance.now()
      const { status, error } = await oneRequest(base, agent, kind, rng)
      result.requests++
      if (status === undefined) {
        result.errors[error!] = (result.errors[error!] ?? 0) + 1
      } else {
        result.latenciesMs.push(performance.now() - t0)
        result.byStatus[status] = (result.byStatus[status] ?? 0) + 1
        if (status !== EXPECTED[kind]) result.unexpected++
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs))
    }
  }))
  agent.destroy()
  return result
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits
const answered = (s: HttpStats) => Object.values(s.byStatus).reduce((n, x) => n + x, 0)
const summary = (r: LoadResult) => ({
  requests: r.requests, requestsPerSecond: round(r.requests / r.seconds, 1), p50Ms: round(quantile(r.latenciesMs, 0.5)), p99Ms: round(quantile(r.latenciesMs, 0.99)),
  byStatus: r.byStatus, unexpectedStatus: r.unexpected, errors: r.errors,
})

// ---- reservation flood: in a process of its own, so its CPU-heavy libp2p nodes do not stall this
// process's HTTP probe (whose latency is meant to be the relay's) ----
interface FloodReport { attempts: number; outcomes: Record<string, number>; messages: Record<string, string>; p50Ms: number; p99Ms: number }

/** `--flood <addr> <seconds> <concurrency>`: prints its report, holds its reservations until stdin ends. */
async function floodProcess() {
  const [relayAddr, seconds, concurrency] = process.argv.slice(3)
  const { held, ...report } = await reservationFlood(relayAddr, Number(seconds), Number(concurrency))
  console.log(JSON.stringify(report satisfies FloodReport))
  process.stdin.on('end', () => void Promise.all(held.map((n) => Promise.resolve(n.stop()).catch(() => {}))).then(() => process.exit(0))).resume()
}

/** Runs the flood process; resolves with its report and a function that makes its peers leave. */
async function runFlood(relayAddr: string, seconds: number, concurrency: number): Promise<{ report: FloodReport; leave(): Promise<void> }> {
  const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', '--import', 'tsx', join(ROOT, 'bench/robust.ts'), '--flood', relayAddr, String(seconds), String(concurrency)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const line = await new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', res)
    child.once('exit', (code) => rej(new Error(`the flood process exited with ${code}`)))
  })
  return { report: JSON.parse(line) as FloodReport, leave: async () => { child.stdin!.end(); await exited } }
}

async function reservationFlood(relayAddr: string, seconds: number, concurrency: number) {
  const outcomes: Record<string, number> = {}
  const messages: Record<string, string> = {}
  const held: Libp2p[] = []
  const latencies: number[] = []
  let attempts = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      attempts++
      const a = await reserve(relayAddr, { keep: true })
      outcomes[a.outcome] = (outcomes[a.outcome] ?? 0) + 1
      if (a.message && !messages[a.outcome]) messages[a.outcome] = a.message.slice(0, 160)
      latencies.push(a.ms)
      if (a.node) held.push(a.node)
    }
  }))
  return { attempts, outcomes, messages, held, p50Ms: round(quantile(latencies, 0.5)), p99Ms: round(quantile(latencies, 0.99)) }
}

async function main() {
  const relay = await startRelay()
  const base = new URL(relay.url)
  const failures: string[] = []
  console.error(`relay ${relay.url} (pid ${relay.child.pid}); ${SECONDS} s per phase`)

  // (a) HTTP flood
  const before = await relay.stats()
  const flood = await httpLoad(base, CLIENTS, SECONDS, FLOOD_MIX)
  const afterFlood = await relay.stats()
  const serverCounted = answered(afterFlood.http) - answered(before.http)
  const finalAnswer = await oneRequest(base, new Agent(), 'registry', createRng(7))
  const http = {
    clients: CLIENTS, ...summary(flood), serverCounted, serverHandlerErrors: afterFlood.http.handlerErrors, serverClientErrors: afterFlood.http.clientErrors,
    serverRssMiB: round(afterFlood.rss / 2 ** 20, 1), finalRequestStatus: finalAnswer.status ?? finalAnswer.error, stayedUp: relay.exit === undefined && finalAnswer.status === 200,
  }
  if (serverCounted <= 0 || serverCounted < flood.requests - Object.values(flood.errors).reduce((n, x) => n + x, 0)) failures.push(`the server counted ${serverCounted} responses of the ${flood.requests} sent`)
  if (!http.stayedUp) failures.push('the relay did not answer after the HTTP flood')

  // (b) reservation flood, with an HTTP probe before (baseline) and during it
  const baseline = await httpLoad(base, 2, SECONDS, PROBE_MIX, 10, 2)
  const [during, { report: reservations, leave }] = await Promise.all([httpLoad(base, 2, SECONDS, PROBE_MIX, 10, 3), runFlood(relay.multiaddrs[0], SECONDS, FLOOD_CONCURRENCY)])
  const duringFlood = await relay.stats()
  const accepted = reservations.outcomes.OK ?? 0
  await leave()
  // once the flood's peers have left, their slots are free again: a new peer gets one
  let released = await relay.stats()
  for (const end = Date.now() + 5000; released.reservations > 0 && Date.now() < end; released = await relay.stats()) await new Promise((r) => setTimeout(r, 100))
  const afterwards = await reserve(relay.multiaddrs[0])
  const finalRelay = await oneRequest(base, new Agent(), 'registry', createRng(8))
  const typed = Object.keys(reservations.outcomes).every((k) => k !== 'Error' && k !== 'NO_STATUS')
  const relayFlood = {
    maxReservations: MAX_RESERVATIONS, concurrency: FLOOD_CONCURRENCY, attempts: reservations.attempts, attemptsPerSecond: round(reservations.attempts / SECONDS, 1),
    accepted, refused: reservations.attempts - accepted, outcomes: reservations.outcomes, firstMessages: reservations.messages, allOutcomesTyped: typed,
    reservationP50Ms: reservations.p50Ms, reservationP99Ms: reservations.p99Ms,
    relayHeldDuringFlood: duringFlood.reservations, relayConnectionsDuringFlood: duringFlood.connections, relayHeldAfterPeersLeft: released.reservations,
    newPeerAfterFlood: afterwards.outcome, serverRssMiB: round(duringFlood.rss / 2 ** 20, 1),
    httpBaseline: summary(baseline), httpDuringFlood: summary(during),
    httpP99Ratio: round(quantile(during.latenciesMs, 0.99) / quantile(baseline.latenciesMs, 0.99)),
    stayedUp: relay.exit === undefined && finalRelay.status === 200,
  }
  if (!typed) failures.push(`untyped reservation outcomes: ${JSON.stringify(reservations.outcomes)}`)
  if (duringFlood.reservations !== accepted) failures.push(`the relay holds ${duringFlood.reservations} reservations, the flood got ${accepted}`)
  if (accepted > MAX_RESERVATIONS) failures.push(`${accepted} reservations accepted past the limit of ${MAX_RESERVATIONS}`)
  if (!relayFlood.stayedUp) failures.push('the relay did not answer after the reservation flood')

  const all5xx = [flood, baseline, during].reduce((n, r) => n + Object.entries(r.byStatus).filter(([s]) => Number(s) >= 500).reduce((m, [, c]) => m + c, 0), 0)
  if (all5xx > 0) failures.push(`${all5xx} responses were 5xx`)
  const crashes = relay.exit === undefined ? 0 : 1
  if (crashes) failures.push(`the relay exited: ${JSON.stringify(relay.exit)}\n${relay.stderr.slice(-20).join('\n')}`)

  const result = { date: new Date().toISOString(), node: process.version, secondsPerPhase: SECONDS, http, relayFlood, crashes, failures }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench/results/robust.json'), `${JSON.stringify(result, null, 2)}\n`)

  const statuses = (s: Record<number, number>) => Object.entries(s).map(([k, v]) => `${k}:${v}`).join(' ')
  console.log(`\n(a) HTTP flood, ${CLIENTS} keep-alive clients, ${SECONDS} s`)
  console.table({ flood: { 'req/s': http.requestsPerSecond, 'p50 ms': http.p50Ms, 'p99 ms': http.p99Ms, statuses: statuses(http.byStatus), 'no response': statuses(http.errors) || 0, 'server counted': serverCounted, 'stayed up': http.stayedUp } })
  console.log(`\n(b) reservation flood (relay limit ${MAX_RESERVATIONS}, ${FLOOD_CONCURRENCY} in flight), ${SECONDS} s`)
  console.table({ reservations: { attempts: relayFlood.attempts, accepted, refused: relayFlood.refused, outcomes: statuses(reservations.outcomes as unknown as Record<number, number>), 'relay held': relayFlood.relayHeldDuringFlood, 'held after peers left': relayFlood.relayHeldAfterPeersLeft, 'new peer after': relayFlood.newPeerAfterFlood, 'stayed up': relayFlood.stayedUp } })
  console.table({
    'HTTP probe before': { 'req/s': relayFlood.httpBaseline.requestsPerSecond, 'p50 ms': relayFlood.httpBaseline.p50Ms, 'p99 ms': relayFlood.httpBaseline.p99Ms },
    'HTTP probe during': { 'req/s': relayFlood.httpDuringFlood.requestsPerSecond, 'p50 ms': relayFlood.httpDuringFlood.p50Ms, 'p99 ms': relayFlood.httpDuringFlood.p99Ms },
  })
  console.log(`HTTP p99 during / before the reservation flood: ${relayFlood.httpP99Ratio}x; crashes: ${crashes}`)
  for (const f of failures) console.error(`FAILED: ${f}`)

  relay.child.stdin!.end()
  await new Promise((r) => { if (relay.exit) r(undefined); else relay.child.once('exit', r) })
  process.exit(failures.length > 0 ? 1 : 0)
}

if (process.argv[2] === '--serve') await serve()
else if (process.argv[2] === '--flood') await floodProcess()
else await main()
