/**
 * npm run bench:relay -> bench/results/relay.json and a table: how many concurrent tabs one libp2p
 * relay (src/nodejs/relay/libp2p-relay.ts) holds on this machine, and what each costs it.
 *
 * The relay runs in a child process of its own (its RSS, heap after GC, CPU time and event-loop
 * delay are its alone); simulated tabs run in `--workers` peer processes (bench/relay-peers.ts), each
 * holding many Node libp2p peers that reserve a circuit slot, publish a valid advert every second
 * and, a fraction of them each second, signal another process's peer through the relay's circuit.
 * The tab count ramps up in steps after a 0-tab baseline, each held for `--step-seconds`; the ramp
 * stops at the first step that fails a criterion (see `judge`) twice in a row (a failing step is held
 * once more, as other work on the machine comes in bursts), at `--max-tabs`, or when the next step
 * would not fit in `--max-seconds`. Baselines of the same run: the idle relay for memory and
 * CPU, the first step for latencies.
 * Path checks: the relay itself counts the reservations; adverts are timed only between peers of
 * different processes, whose one path is the relay. The simulated peers share the CPUs with the
 * relay (and whatever else runs on the machine): each step reports the machine's load.
 * Options: --max-tabs N (2000), --step-seconds S (15), --max-seconds T (280: the whole run), --steps
 * a,b,c, --workers 1-3 (2), --max-reservations N (the relay's limit; default max(4096, 2 x max-tabs),
 * above startRelayNode's 1024), --signal-fraction F (0.02 of the tabs signal each second),
 * --concurrency C (tabs joining at once per peer process, 4), --tab-inbound-limit BYTES (the tabs'
 * gossipsub inbound RPC limit; default the tab's own, meshGossipsub's 20 MiB).
 * Run inside `unshare -n` (see package.json); Node 20 dials WebSockets only with --experimental-websocket.
 */
import '../src/nodejs/relay/polyfill.ts'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import type { GrowReply, MeasureReply, PeersCommand } from './relay-peers.ts'

const ROOT = resolve(import.meta.dirname, '..')
/** TABMESH_BENCH_PROF_DIR=dir: each child writes a CPU profile there when it exits. */
const PROF = process.env.TABMESH_BENCH_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TABMESH_BENCH_PROF_DIR}`] : []
const EXEC_ARGV = ['--experimental-websocket', '--no-warnings', '--import', 'tsx', ...PROF]
const RELAY_DEFAULT_MAX_RESERVATIONS = 1024 // startRelayNode's default
const SETTLE_MS = 2000 // after growing, for the gossipsub meshes to form
const DRAIN_S = 4.5 // bench/relay-peers.ts DRAIN_MS

/** What the relay process reports when asked. */
interface RelaySample { rss: number; heapUsed: number; cpuSeconds: number; reservations: number; connections: number; loopDelayP99Ms: number; validation: { accepted: number; rejected: number; ignored: number } }

// ---- the relay process ----
async function relayChild(maxReservations: number) {
  const { startRelayNode } = await import('../src/nodejs/relay/libp2p-relay.ts')
  const logged: string[] = []
  const relay = await startRelayNode({ host: '127.0.0.1', port: 0, maxReservations, validation: { log: (l) => { if (logged.length < 5) logged.push(l) } } })
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  process.on('message', (msg: { id: number; gc?: boolean }) => {
    const cpu = process.cpuUsage() // before the GC asked for: the bench's, not the relay's work
    if (msg.gc) (globalThis as { gc?: () => void }).gc?.()
    const m = process.memoryUsage()
    const sample: RelaySample = {
      rss: m.rss, heapUsed: m.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6, reservations: relay.libp2p.services.relay.reservations.size,
      connections: relay.libp2p.getConnections().length, loopDelayP99Ms: loop.percentile(99) / 1e6, validation: relay.validators.stats(),
    }
    loop.reset()
    process.send!({ id: msg.id, sample, logged })
  })
  process.on('disconnect', () => void relay.stop().finally(() => process.exit(0)))
  process.send!({ id: 0, multiaddrs: relay.multiaddrs })
}

// ---- talking to children: requests carry an id, replies the same id ----
interface Child { proc: ChildProcess; ready: Promise<unknown>; request<T>(msg: Record<string, unknown>): Promise<T> }

function spawnChild(args: string[], execArgv: string[]): Child {
  const proc = fork(join(ROOT, args[0]), args.slice(1), { cwd: ROOT, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>()
  let nextId = 1
  let exited: Error | undefined
  proc.on('message', (m: { id: number; ok?: boolean; error?: string }) => {
    const w = waiting.get(m.id)
    waiting.delete(m.id)
    if (m.ok === false) w?.rej(new Error(`${args[0]}: ${m.error}`))
    else w?.res(m)
  })
  proc.once('exit', (code, sig) => {
    exited = new Error(`${args[0]} exited (${code ?? sig})`)
    for (const w of waiting.values()) w.rej(exited)
    waiting.clear()
  })
  return {
    proc, ready: new Promise((res, rej) => waiting.set(0, { res, rej })),
    request: <T>(msg: Record<string, unknown>) => new Promise<T>((res, rej) => {
      if (exited) return rej(exited)
      const id = nextId++
      waiting.set(id, { res: res as (v: unknown) => void, rej })
      proc.send({ ...msg, id })
    }),
  }
}

// ---- statistics ----
const quantile = (xs: number[], q: number) => (xs.length === 0 ? NaN : Float64Array.from(xs).sort()[Math.min(xs.length - 1, Math.floor(q * xs.length))])
const round = (x: number, digits = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : null)
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const MiB = 2 ** 20
/** Busy and total CPU time of the whole machine, for its load over a window. */
const machineCpu = () => cpus().reduce((a, c) => ({ busy: a.busy + c.times.user + c.times.nice + c.times.sys + c.times.irq, total: a.total + c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle }), { busy: 0, total: 0 })
/** Least-squares slope of y over x. */
const slope = (pts: [number, number][]) => {
  const mx = sum(pts.map((p) => p[0])) / pts.length
  const my = sum(pts.map((p) => p[1])) / pts.length
  return sum(pts.map(([x, y]) => (x - mx) * (y - my))) / sum(pts.map(([x]) => (x - mx) ** 2))
}
const tally = (into: Record<string, number>, from: Record<string, number>) => { for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v }

/** A relay measurement window: sampled after a GC, once a second, then once more after a GC. */
async function relayWindow(relay: Child, seconds: number) {
  const sample = async (gc = false) => relay.request<{ sample: RelaySample; logged: string[] }>({ gc })
  const first = (await sample(true)).sample // from a collected heap, as each window ends with one
  const m0 = machineCpu()
  const w0 = performance.now()
  const rss: number[] = []
  let loopDelayP99Ms = 0
  for (let i = 0; i < seconds; i++) {
    await sleep(1000)
    const s = (await sample()).sample
    rss.push(s.rss)
    loopDelayP99Ms = Math.max(loopDelayP99Ms, s.loopDelayP99Ms)
  }
  const wall = (performance.now() - w0) / 1000
  const m1 = machineCpu()
  const { sample: last, logged } = await sample(true)
  return { last, logged, wall, loopDelayP99Ms, rssMean: sum(rss) / rss.length, relayCpu: (last.cpuSeconds - first.cpuSeconds) / wall, machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total) }
}
type Window = Awaited<ReturnType<typeof relayWindow>>

/** One step of the ramp, as written to relay.json. */
interface Step {
  tabs: number; target: number; attempt: number; passed: boolean; requestedNewTabs: number; newTabs: number; reservationFailRate: number; reserveErrors: Record<string, number>; growSeconds: number; reserveP50Ms: number | null; reserveP99Ms: number | null
  /** Relay-side: reservations and connections it holds; tab-side: peers whose addresses show /p2p-circuit. */
  reservations: number; connections: number; tabsWithCircuitAddr: number
  advertBytes: number; advertsPublished: number; publishErrors: number; relayValidation: RelaySample['validation']
  /** Share of the window's adverts that reached a tab of another process (through the relay). */
  advertsThroughRelay: number | null
  /** First receipt of each advert in another process: the relay's push to its gossip mesh. */
  advertFirstP50Ms: number | null; advertFirstP99Ms: number | null
  /** Every receipt by every tab of another process: mesh pushes and gossip (IHAVE/IWANT) pulls. */
  advertEveryTabShare: number | null; advertEveryP50Ms: number | null; advertEveryP99Ms: number | null
  /** Tabs whose gossipsub mesh holds the relay, and the tabs' scores of the relay: below -10 (a broken IWANT promise costs 10) a tab ignores its gossip. */
  tabsMeshedWithRelay: number; relayScoreMedian: number | null; tabsIgnoringRelayGossip: number
  /** Tabs still connected to the relay whose gossip streams with it died (e.g. an RPC over their inbound limit): they hear and reach nobody. */
  tabsCutOffFromGossip: number
  signalAttempts: number; signalFailures: number; signalErrors: Record<string, number>; signalP50Ms: number | null; signalP99Ms: number | null
  relayRssMiB: number | null; relayHeapAfterGcMiB: number | null; relayCpuPct: number | null; relayLoopDelayP99Ms: number | null; relayLog: string[]
  memoryPerTabBytes: number; heapPerTabBytes: number; relayCpuSecondsPerTabSecond: number
  /** CPU of the whole machine (% of all its CPUs), of the peer processes and of everything else (% of one core: the machine's less the bench's, so a few % of accounting noise, even below 0). */
  machineBusyPct: number | null; load1: number | null; otherProcessesCpuPct: number | null; peerProcessesCpuPct: (number | null)[]; peerProcessesRssMiB: (number | null)[]
  ratios: { rssVsIdle: number | null; cpuVsIdle: number | null; advertFirstP99VsFirstStep: number | null; advertEveryP99VsFirstStep: number | null; signalP99VsFirstStep: number | null; reserveP99VsFirstStep: number | null }
}

/** Builds a step's record from what the peer processes and the relay reported. */
function analyse(target: number, add: number, grown: Omit<GrowReply, 'id'>[], growSeconds: number, measured: Omit<MeasureReply, 'id'>[], win: Window, idle: Window, peerCpu: number[], first?: Step): Step {
  const results = grown.flatMap((g) => g.results)
  const reserveMs = results.filter((r) => r.ok).map((r) => r.ms)
  const reserveErrors: Record<string, number> = {}
  for (const r of results) if (!r.ok) reserveErrors[r.error!] = (reserveErrors[r.error!] ?? 0) + 1
  const signalErrors: Record<string, number> = {}
  for (const m of measured) tally(signalErrors, m.signalErrors)
  const firstReceipt: Record<string, number> = {}
  for (const m of measured) for (const [k, v] of Object.entries(m.firstReceiptMs)) firstReceipt[k] = Math.min(v, firstReceipt[k] ?? Infinity)
  const firstLat = Object.values(firstReceipt)
  const every = measured.flatMap((m) => m.advertLatencyMs)
  const rtts = measured.flatMap((m) => m.signalRttMs)
  const scores = measured.flatMap((m) => m.relayScores)
  const tabs = sum(measured.map((m) => m.peers))
  const published = sum(measured.map((m) => m.advertsPublished))
  // a tab of process i can receive the adverts of the tabs of every other process
  const possible = sum(measured.map((m) => m.peers * (published - m.advertsPublished)))
  const p = (xs: number[], q: number) => round(quantile(xs, q))
  const s: Step = {
    tabs, target, attempt: 1, passed: false, requestedNewTabs: add, newTabs: results.length, reservationFailRate: (results.length - reserveMs.length) / Math.max(1, results.length), reserveErrors, growSeconds: round(growSeconds)!,
    reserveP50Ms: p(reserveMs, 0.5), reserveP99Ms: p(reserveMs, 0.99), reservations: win.last.reservations, connections: win.last.connections, tabsWithCircuitAddr: sum(measured.map((m) => m.holding)),
    advertBytes: grown.find((g) => g.advertBytes > 0)?.advertBytes ?? 0, advertsPublished: published, publishErrors: sum(measured.map((m) => m.publishErrors)), relayValidation: win.last.validation,
    advertsThroughRelay: round(firstLat.length / Math.max(1, published), 4), advertFirstP50Ms: p(firstLat, 0.5), advertFirstP99Ms: p(firstLat, 0.99),
    advertEveryTabShare: round(sum(measured.map((m) => m.crossAdverts)) / Math.max(1, possible), 4), advertEveryP50Ms: p(every, 0.5), advertEveryP99Ms: p(every, 0.99),
    tabsCutOffFromGossip: sum(measured.map((m) => m.cutOff)), tabsMeshedWithRelay: sum(measured.map((m) => m.meshedWithRelay)), relayScoreMedian: round(quantile(scores, 0.5), 2), tabsIgnoringRelayGossip: scores.filter((x) => x < -10).length,
    signalAttempts: sum(measured.map((m) => m.signalAttempts)), signalFailures: sum(measured.map((m) => m.signalFailures)), signalErrors, signalP50Ms: p(rtts, 0.5), signalP99Ms: p(rtts, 0.99),
    relayRssMiB: round(win.rssMean / MiB), relayHeapAfterGcMiB: round(win.last.heapUsed / MiB), relayCpuPct: round(win.relayCpu * 100), relayLoopDelayP99Ms: round(win.loopDelayP99Ms), relayLog: win.logged,
    memoryPerTabBytes: Math.round((win.rssMean - idle.rssMean) / tabs), heapPerTabBytes: Math.round((win.last.heapUsed - idle.last.heapUsed) / tabs), relayCpuSecondsPerTabSecond: (win.relayCpu - idle.relayCpu) / tabs,
    machineBusyPct: round(win.machineBusy * 100), load1: round(loadavg()[0], 2), otherProcessesCpuPct: round((win.machineBusy * cpus().length - win.relayCpu - sum(peerCpu)) * 100), peerProcessesCpuPct: peerCpu.map((c) => round(c * 100)), peerProcessesRssMiB: measured.map((m) => round(m.rss / MiB)),
    ratios: { rssVsIdle: round(win.rssMean / idle.rssMean, 2), cpuVsIdle: round(win.relayCpu / Math.max(idle.relayCpu, 1e-3), 1), advertFirstP99VsFirstStep: null, advertEveryP99VsFirstStep: null, signalP99VsFirstStep: null, reserveP99VsFirstStep: null },
  }
  const f = first ?? s
  const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : round(a / b, 2))
  Object.assign(s.ratios, { advertFirstP99VsFirstStep: ratio(s.advertFirstP99Ms, f.advertFirstP99Ms), advertEveryP99VsFirstStep: ratio(s.advertEveryP99Ms, f.advertEveryP99Ms), signalP99VsFirstStep: ratio(s.signalP99Ms, f.signalP99Ms), reserveP99VsFirstStep: ratio(s.reserveP99Ms, f.reserveP99Ms) })
  return s
}

/**
 * The criteria a step must meet. Adverts are judged on their first receipt (the relay's push to its
 * mesh) and on loss: with no WebRTC here, a tab's only neighbour is the relay, which pushes an
 * advert to its mesh (6-12 tabs) and offers it (IHAVE) to a quarter of the others at each 1 s
 * heartbeat for 3 heartbeats, so even an idle relay gets some adverts to some tabs 3 s late, or never;
 * the every-tab latency and share are reported, with their ratio to the first step.
 */
function judge(s: Step): string[] {
  return [
    s.reservationFailRate > 0.01 && `reservation failures ${(s.reservationFailRate * 100).toFixed(1)}% > 1% (${JSON.stringify(s.reserveErrors)})`,
    s.reservations < 0.99 * s.tabs && `the relay holds ${s.reservations} reservations for ${s.tabs} tabs`,
    s.tabsCutOffFromGossip > 0.01 * s.tabs && `${s.tabsCutOffFromGossip} tabs lost their gossip streams with the relay`,
    (s.advertsThroughRelay ?? 0) < 0.99 && `${(100 - (s.advertsThroughRelay ?? 0) * 100).toFixed(1)}% of adverts reached no tab of another process`,
    !((s.advertFirstP99Ms ?? Infinity) <= 2000) && `advert first-receipt p99 ${s.advertFirstP99Ms} ms > 2000 ms`,
    s.signalFailures > 0.01 * s.signalAttempts && `signalling failures ${s.signalFailures}/${s.signalAttempts} (${JSON.stringify(s.signalErrors)})`,
    s.signalAttempts > 0 && !((s.signalP99Ms ?? Infinity) <= 5000) && `signalling p99 ${s.signalP99Ms} ms > 5000 ms`,
    (s.relayCpuPct ?? 0) > 90 && `relay CPU ${s.relayCpuPct}% > 90% of one core`,
    s.newTabs < s.requestedNewTabs && `the time bound cut the growth (${s.newTabs} of ${s.requestedNewTabs} new tabs started)`,
  ].filter((f): f is string => typeof f === 'string')
}

async function main() {
  const { values: opt } = parseArgs({
    options: {
      'max-tabs': { type: 'string', default: '2000' }, 'step-seconds': { type: 'string', default: '15' }, 'max-seconds': { type: 'string', default: '280' },
      steps: { type: 'string', default: '25,50,75,100,150,200,300,400,600,800,1200,1600,2000' }, workers: { type: 'string', default: '2' }, 'max-reservations': { type: 'string' },
      'signal-fraction': { type: 'string', default: '0.02' }, 'tab-inbound-limit': { type: 'string' }, concurrency: { type: 'string', default: '4' },
    },
  })
  const maxTabs = Number(opt['max-tabs'])
  const stepSeconds = Number(opt['step-seconds'])
  const maxSeconds = Number(opt['max-seconds'])
  const workerCount = Math.max(1, Math.min(3, Number(opt.workers)))
  const maxReservations = Number(opt['max-reservations'] ?? Math.max(4096, 2 * maxTabs))
  const signalFraction = Number(opt['signal-fraction'])
  const plan = [...new Set([...opt.steps!.split(',').map(Number).filter((n) => n > 0 && n < maxTabs), maxTabs])].sort((a, b) => a - b)
  const t0 = Date.now()
  const elapsed = () => (Date.now() - t0) / 1000

  const relay = spawnChild(['bench/relay.ts', '--relay-child', String(maxReservations)], [...EXEC_ARGV, '--expose-gc'])
  const workers: Child[] = []
  const children = () => [relay, ...workers]
  const killAll = () => { for (const c of children()) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL') }
  process.once('SIGINT', () => { killAll(); process.exit(130) })
  process.once('SIGTERM', () => { killAll(); process.exit(143) })
  try {
    const relayAddr = ((await relay.ready) as { multiaddrs: string[] }).multiaddrs[0]
    for (let w = 0; w < workerCount; w++) workers.push(spawnChild(['bench/relay-peers.ts', relayAddr, opt['tab-inbound-limit'] ?? ''], [...EXEC_ARGV, '--max-old-space-size=8192']))
    await Promise.all(workers.map((w) => w.ready))
    console.error(`relay ${relayAddr} (maxReservations ${maxReservations}); ${workerCount} peer processes; steps ${plan.join(',')}; ${stepSeconds} s each; bound ${maxSeconds} s; ${cpus().length} CPUs, load ${loadavg()[0].toFixed(2)}`)

    await sleep(3000) // the relay's start-up work done
    const idle = await relayWindow(relay, Math.min(5, stepSeconds))
    const idleRow = { tabs: 0, relayRssMiB: round(idle.rssMean / MiB), relayHeapAfterGcMiB: round(idle.last.heapUsed / MiB), relayCpuPct: round(idle.relayCpu * 100), reservations: idle.last.reservations, connections: idle.last.connections, machineBusyPct: round(idle.machineBusy * 100), otherProcessesCpuPct: round((idle.machineBusy * cpus().length - idle.relayCpu) * 100), load1: round(loadavg()[0], 2) }
    const steps: Step[] = []
    const circuitAddrs: string[] = []
    let maxTabsHeld = 0
    let limitingFactor = `the cap of ${maxTabs} tabs was reached`
    let crashed: string | undefined
    let secondsPerNewTab = 0.05

    /** Grows to the step's count, lets the meshes settle, then holds it while the relay is sampled. */
    const runStep = async (add: number, deadline: number) => {
      const g0 = performance.now()
      const grown = await Promise.all(workers.map((w, k) => w.request<GrowReply>({ cmd: 'grow', count: Math.floor(add / workerCount) + (k < add % workerCount ? 1 : 0), concurrency: Number(opt.concurrency), deadline } satisfies Omit<Extract<PeersCommand, { cmd: 'grow' }>, 'id'>)))
      const growSeconds = (performance.now() - g0) / 1000
      circuitAddrs.push(...grown.flatMap((g) => g.circuitAddrs))
      await Promise.all(workers.map((w) => w.request({ cmd: 'targets', addrs: circuitAddrs })))
      await sleep(SETTLE_MS)
      const started = await Promise.all(workers.map((w) => w.request<{ cpuSeconds: number }>({ cmd: 'measure-start', signalFraction, at: Date.now() })))
      const w0 = performance.now()
      const win = await relayWindow(relay, stepSeconds)
      const end = Date.now()
      const measured = await Promise.all(workers.map((w) => w.request<MeasureReply>({ cmd: 'measure-end', at: end })))
      const peerCpu = measured.map((m, k) => (m.cpuSeconds - started[k].cpuSeconds) / ((performance.now() - w0) / 1000 - DRAIN_S))
      return { grown, growSeconds, win, measured, peerCpu }
    }

    let retried = false
    for (let i = 0; i < plan.length;) {
      const target = plan[i]
      const add = Math.max(0, target - (steps.at(-1)?.tabs ?? 0))
      const estimate = add * secondsPerNewTab + SETTLE_MS / 1000 + stepSeconds + DRAIN_S + 2
      if (elapsed() + estimate > maxSeconds) { limitingFactor = `the time bound (${maxSeconds} s): step ${target} would need ~${Math.round(estimate)} s more`; break }
      let run: Awaited<ReturnType<typeof runStep>>
      try {
        run = await runStep(add, t0 + (maxSeconds - stepSeconds - DRAIN_S - 4) * 1000)
      } catch (err) {
        // a process that died ends the ramp; what was measured is still written
        crashed = `at the ${target}-tab step: ${(err as Error).message}`
        limitingFactor = `a process exited ${crashed}`
        break
      }
      const { grown, growSeconds, win, measured, peerCpu } = run
      secondsPerNewTab = Math.max(secondsPerNewTab, growSeconds / Math.max(1, add))
      const s = analyse(target, add, grown, growSeconds, measured, win, idle, peerCpu, steps.find((x) => x.passed))
      steps.push(s)
      s.attempt = retried ? 2 : 1
      const failed = judge(s)
      s.passed = failed.length === 0
      console.error(`[${elapsed().toFixed(0)} s] ${s.tabs} tabs: relay holds ${s.reservations} reservations, RSS ${s.relayRssMiB} MiB, CPU ${s.relayCpuPct}%; advert first/every p99 ${s.advertFirstP99Ms}/${s.advertEveryP99Ms} ms; signal p99 ${s.signalP99Ms} ms; machine ${s.machineBusyPct}% busy${failed.length ? `; FAILED: ${failed.join('; ')}` : ''}`)
      // a step that fails once is held once more: other work on the machine comes in bursts; lost gossip streams stay lost
      if (failed.length && !retried && s.tabsCutOffFromGossip === 0) {
        retried = true
        console.error(`[${elapsed().toFixed(0)} s] holding ${s.tabs} tabs once more`)
        continue
      }
      if (failed.length) {
        const saturated = (s.machineBusyPct ?? 0) > 95 && (s.relayCpuPct ?? 0) <= 90 ? ` (the machine's CPUs were saturated: relay ${s.relayCpuPct}% of a core, peer processes ${s.peerProcessesCpuPct.join('% + ')}%, other processes ${s.otherProcessesCpuPct}%, load ${s.load1})` : ''
        limitingFactor = `at ${s.tabs} tabs: ${failed.join('; ')}${saturated}`
        break
      }
      maxTabsHeld = s.tabs
      retried = false
      i++
    }

    const best = steps.findLast((s) => s.passed && s.tabs === maxTabsHeld)
    // path checks: at some step the relay itself held the reservations and adverts crossed processes (their one path is the relay)
    const pathTaken = steps.some((s) => s.reservations > 0 && s.reservations >= 0.99 * s.tabs && (workerCount === 1 || Number(s.advertsThroughRelay) > 0.99))
    const pathFailure = steps.length > 0 && !pathTaken ? 'at no step did the relay hold the reservations and carry the adverts between processes' : undefined
    // memory per tab also as the slope over the idle relay and every step (one step's RSS is noisy: GC)
    const fit = (f: (s: Step) => number, idleValue: number) => (steps.length > 0 ? Math.round(slope([[0, idleValue], ...steps.map((s): [number, number] => [s.tabs, f(s)])])) : null)
    const result = {
      date: new Date().toISOString(), node: process.version, machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, totalMem: totalmem() },
      settings: { maxTabs, stepSeconds, maxSeconds, workers: workerCount, signalFraction, tabInboundLimitBytes: Number(opt['tab-inbound-limit']) || 'the tab\'s own (meshGossipsub)', growConcurrencyPerWorker: Number(opt.concurrency), relayMaxReservations: maxReservations, relayDefaultMaxReservations: RELAY_DEFAULT_MAX_RESERVATIONS, advertHeartbeatMs: 1000 },
      note: 'simulated tabs are Node libp2p peers (no WebRTC: the relay is every tab\'s only neighbour) on the same CPUs as the relay; see machineBusyPct, load1, peerProcessesCpuPct per step',
      idle: idleRow, steps, maxTabsHeld, memoryPerTabBytes: best?.memoryPerTabBytes ?? null, heapPerTabBytes: best?.heapPerTabBytes ?? null,
      memoryPerTabSlopeBytes: fit((s) => s.relayRssMiB! * MiB, idle.rssMean), heapPerTabSlopeBytes: fit((s) => s.relayHeapAfterGcMiB! * MiB, idle.last.heapUsed),
      relayCpuSecondsPerTabSecond: best?.relayCpuSecondsPerTabSecond ?? null, limitingFactor, pathFailure: pathFailure ?? null, crashed: crashed ?? null, runtimeSeconds: round(elapsed()),
    }
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
    writeFileSync(join(ROOT, 'bench/results/relay.json'), `${JSON.stringify(result, null, 2)}\n`)
    printTable(idleRow, steps)
    const kib = (b: number | null) => (b === null ? '-' : `${(b / 1024).toFixed(1)} KiB`)
    console.log(`max tabs held ${maxTabsHeld} (relay maxReservations ${maxReservations}; startRelayNode's default ${RELAY_DEFAULT_MAX_RESERVATIONS}); per tab: ${kib(result.memoryPerTabBytes)} relay RSS (x${best?.ratios.rssVsIdle ?? '-'} the idle relay's; slope over all steps ${kib(result.memoryPerTabSlopeBytes)}), ${kib(result.heapPerTabBytes)} heap after GC (slope ${kib(result.heapPerTabSlopeBytes)}), ${result.relayCpuSecondsPerTabSecond === null ? '-' : (result.relayCpuSecondsPerTabSecond * 1000).toFixed(2)} ms relay CPU per second; limited by: ${limitingFactor}; ${result.runtimeSeconds} s`)
    if (pathFailure) console.error(`FAILED path check: ${pathFailure}`)
    if (crashed) console.error(`FAILED: a process exited ${crashed}`)
    process.exitCode = pathFailure || crashed ? 1 : 0
  } finally {
    await Promise.all(workers.map((w) => w.request({ cmd: 'stop' }).catch(() => {})))
    // the relay stops when its IPC channel closes; whatever has not exited in 5 s is killed
    if (relay.proc.connected) relay.proc.disconnect()
    await Promise.all(children().map((c) => (c.proc.exitCode === null && c.proc.signalCode === null ? new Promise((r) => { c.proc.once('exit', r); setTimeout(r, 5000).unref() }) : undefined)))
    killAll()
  }
}

function printTable(idle: Record<string, number | null>, steps: Step[]) {
  const pair = (a: number | null, b: number | null) => `${a ?? '-'}/${b ?? '-'}`
  const rows: Record<string, Record<string, unknown>> = { 0: { 'relay resv': idle.reservations, 'relay RSS MiB': idle.relayRssMiB, 'relay CPU %': idle.relayCpuPct, 'machine % of all': idle.machineBusyPct, 'others % of 1 core': idle.otherProcessesCpuPct } }
  for (const s of steps) {
    rows[`${s.tabs}${s.attempt > 1 ? ' (again)' : ''}`] = {
      'relay resv': s.reservations, 'resv fail %': round(s.reservationFailRate * 100, 2), 'reserve p50/p99 ms': pair(s.reserveP50Ms, s.reserveP99Ms),
      'advert 1st p50/p99': pair(s.advertFirstP50Ms, s.advertFirstP99Ms), 'every-tab p50/p99': pair(s.advertEveryP50Ms, s.advertEveryP99Ms), 'every-tab share': s.advertEveryTabShare,
      'signal p50/p99 ms': pair(s.signalP50Ms, s.signalP99Ms), 'relay RSS MiB': `${s.relayRssMiB} (x${s.ratios.rssVsIdle})`, 'KiB/tab': round(s.memoryPerTabBytes / 1024),
      'relay CPU %': s.relayCpuPct, 'cut off': s.tabsCutOffFromGossip, 'p99 x 1st step (1st/every/sig)': `${s.ratios.advertFirstP99VsFirstStep}/${s.ratios.advertEveryP99VsFirstStep}/${s.ratios.signalP99VsFirstStep}`,
      'machine % of all': s.machineBusyPct, 'others % of 1 core': s.otherProcessesCpuPct,
    }
  }
  console.table(rows)
}

if (process.argv[2] === '--relay-child') await relayChild(Number(process.argv[3]))
else await main()
