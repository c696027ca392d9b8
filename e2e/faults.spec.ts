import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { expect, test } from '@playwright/test'
import type { HeadlessApi, TabChatRequest, TabContributeRequest } from '../src/cli-tab/main.ts'
import { headlessCall, loopbackOnly, openLoggedPage, ROOT, startRelayProcess, type LoggedPage, type RelayProcess } from '../lab/mesh-harness.ts'
import type { RogueMode, RogueStartOptions } from '../lab/pages/swarm-rogue.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * Faults injected into the real swarm: a relay process, every peer in its own Chromium process,
 * WebRTC on loopback inside a network namespace (npm run e2e:faults). Each case ends with the
 * reply finished (its ids those of the reference, upstream run.c's greedy stories260K) or with a
 * typed error within its deadline; afterwards no host holds a session or KV memory and no
 * Chromium process of the test is left.
 */
const goldenIds = readGolden()
const reference = (tokens: number) => goldenIds.slice(0, 1 + tokens) // BOS, then the greedy tokens
// Spot checks off: these cases pause at an exact token, start faults while paused and count the
// forwards a host got; checks hold tokens back until verified (the engine runs up to a few windows
// ahead of what is given out) and open verifier sessions on hosts. Checks have their own suite
// (e2e/trust.spec.ts), and their faults (a verifier that stalls or lies) are tested in src/swarm/trust.test.ts.
const greedy = { prompt: '', temperature: 0, topP: 0.9, seed: 1, verify: false }
const MODEL = 'stories260K'
const DIM = 64 // stories260K's hidden width

type Reply = Awaited<ReturnType<HeadlessApi['chat']>>
type Failover = Extract<Reply['events'][number], { type: 'failover' }>
type Outcome = { ok: true; ms: number; out: Reply } | { ok: false; ms: number; code: string | null; message: string }
const failovers = (o: Outcome) => (o.ok ? o.out.events.filter((e): e is Failover => e.type === 'failover') : [])

interface Tab extends LoggedPage {
  call: ReturnType<typeof headlessCall>
  kill(): void
  /** Every process of this tab's Chromium seen so far (pid and start time, so a reused pid is not mistaken for it). */
  seen: Map<number, string>
  contributes: boolean
}

// ---- processes -------------------------------------------------------------------------------

/** pid -> [ppid, start time] of every process now running. */
function processTable(): Map<number, [number, string]> {
  const table = new Map<number, [number, string]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // after "pid (comm) ": state ppid ...
      table.set(Number(name), [Number(fields[1]), fields[19]])
    } catch {
      // exited meanwhile
    }
  }
  return table
}

/** Adds the process tree under `root` (the browser process and all it started) to `seen`. */
function noteTree(root: number, seen: Map<number, string>): void {
  const table = processTable()
  const walk = (pid: number) => {
    const entry = table.get(pid)
    if (!entry) return
    seen.set(pid, entry[1])
    for (const [child, [ppid]] of table) if (ppid === pid) walk(child)
  }
  walk(root)
}

const stillRunning = (seen: Map<number, string>) => {
  const table = processTable()
  return [...seen].filter(([pid, start]) => table.get(pid)?.[1] === start).map(([pid]) => pid)
}

// ---- tabs --------------------------------------------------------------------------------------

let relay: RelayProcess
const tabs: Tab[] = []

async function tab(path = 'src/cli-tab/index.html'): Promise<Tab> {
  const logged = await openLoggedPage(new URL(path, relay.url).toString())
  const t: Tab = {
    ...logged,
    call: headlessCall(logged.page),
    seen: new Map(),
    contributes: false,
    kill() {
      noteTree(logged.chromium.process.pid!, t.seen)
      logged.chromium.process.kill('SIGKILL')
    },
  }
  tabs.push(t)
  await t.page.waitForFunction(() => document.body.dataset.ready === 'true' || 'rogueLab' in window, undefined, { timeout: 30_000 })
  noteTree(logged.chromium.process.pid!, t.seen)
  return t
}

async function contributor(layers: [number, number], limits?: TabContributeRequest['limits']): Promise<Tab> {
  const t = await tab()
  await t.call('contribute', { layers: { start: layers[0], end: layers[1] }, backend: 'ref', limits })
  t.contributes = true
  return t
}

const hostStats = async (t: Tab) => {
  const s = await t.call('contributorStats')
  if (!s) throw new Error('this tab does not contribute')
  return s
}

/** Runs `requests` as concurrent chats in one tab; each resolves to its reply or its typed error, with its duration. */
function chats(t: Tab, requests: Partial<TabChatRequest>[]): Promise<Outcome[]> {
  return t.page.evaluate((rs) => Promise.all(rs.map(async (r) => {
    const headless = (window as unknown as { tabmeshHeadless: { chat(r: unknown): Promise<unknown> } }).tabmeshHeadless
    const started = performance.now()
    try {
      const out = await headless.chat(r)
      return { ok: true, ms: performance.now() - started, out }
    } catch (err) {
      const e = err as { code?: string; message?: string }
      return { ok: false, ms: performance.now() - started, code: e.code ?? null, message: String(e.message ?? err) }
    }
  })), requests.map((r) => ({ ...greedy, ...r }))) as Promise<Outcome[]>
}
const chat = async (t: Tab, request: Partial<TabChatRequest>) => (await chats(t, [request]))[0]

const ids = (o: Outcome) => (o.ok ? [...o.out.promptTokens, ...o.out.tokens] : `${o.code}: ${o.message}`)

/** How many peers the tab's table lists as hosting `layer`. */
const hostsOf = (t: Tab, layer: number) => t.call('peers').then((p) => p.filter((x) => x.status !== 'draining' && x.hosted.some((h) => h.layers.start <= layer && layer < h.layers.end)).length)

type RogueLab = { start(o: RogueStartOptions): Promise<{ peerId: string }>; forwards(): number; faults(): number; sessions(): number }
const rogueCall = <K extends keyof RogueLab>(t: Tab, name: K) =>
  t.page.evaluate((n) => (window as unknown as { rogueLab: Record<string, () => number> }).rogueLab[n](), name) as Promise<number>

// ---- loss and delay on loopback ------------------------------------------------------------

/**
 * netem on the swarm's WebRTC traffic (UDP on lo): this machine's kernel has no sch_netem (`tc
 * qdisc add dev lo root netem ...` answers "Specified qdisc kind is unknown"), so an iptables rule
 * sends the packets to an NFQUEUE where lab/nfqueue-netem.py holds each for the delay or drops it.
 * The relay's WebSocket and the test's own connection to the browsers (TCP) are left alone.
 */
const NETEM_RULE = ['OUTPUT', '-o', 'lo', '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '7', '--queue-bypass']
let netemProcess: ChildProcess | undefined

function iptables(...args: string[]): void {
  const r = spawnSync('iptables', args, { encoding: 'utf8' })
  if (r.error || r.status !== 0) throw new Error(`iptables ${args.join(' ')}: ${r.error?.message ?? r.stderr} (the loss and delay case needs iptables: apt-get install iptables)`)
}

async function startNetem(o: { delayMs: number; loss: number }): Promise<() => Promise<{ packets: number; dropped: number; delayed: number }>> {
  const child = spawn('python3', [join(ROOT, 'lab/nfqueue-netem.py'), '--queue', '7', '--delay-ms', String(o.delayMs), '--loss', String(o.loss), '--seed', '1'], { stdio: ['pipe', 'pipe', 'inherit'] })
  netemProcess = child
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const ready = await lines.next()
  if (ready.done) throw new Error('lab/nfqueue-netem.py exited before it was ready')
  iptables('-A', ...NETEM_RULE)
  return async () => {
    iptables('-D', ...NETEM_RULE)
    child.kill('SIGTERM')
    const stats = await lines.next()
    netemProcess = undefined
    if (stats.done) throw new Error('lab/nfqueue-netem.py ended without its counts')
    return JSON.parse(stats.value) as { packets: number; dropped: number; delayed: number }
  }
}

function stopNetemIfLeft(): void {
  spawnSync('iptables', ['-D', ...NETEM_RULE])
  netemProcess?.kill('SIGTERM')
  netemProcess = undefined
}

// ---- the suite -----------------------------------------------------------------------------------

test.beforeAll(async () => {
  expect(loopbackOnly(), 'run this suite with `npm run e2e:faults` (a loopback-only network namespace)').toBe(true)
  relay = await startRelayProcess(process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab'))
})

test.afterEach(async ({}, testInfo) => {
  stopNetemIfLeft() // in case a case failed with the loss and delay on
  if (testInfo.status !== testInfo.expectedStatus) {
    for (const [i, t] of tabs.entries()) writeFileSync(testInfo.outputPath(`tab-${i}.log`), t.log.join('\n'))
  }
  const open = tabs.splice(0)
  try {
    if (testInfo.status === testInfo.expectedStatus) {
      // no leaked sessions or KV memory on any host still running
      for (const t of open.filter((x) => x.contributes && x.chromium.process.exitCode === null && x.chromium.process.signalCode === null)) {
        await expect.poll(() => hostStats(t).then((s) => ({ activeSessions: s.activeSessions, kvBytes: s.kvBytes })), { timeout: 10_000 }).toEqual({ activeSessions: 0, kvBytes: 0 })
      }
    }
  } finally {
    for (const t of open) if (t.chromium.process.exitCode === null && t.chromium.process.signalCode === null) noteTree(t.chromium.process.pid!, t.seen)
    await Promise.all(open.map((t) => t.close()))
  }
  // and no Chromium process of this test is left
  const seen = new Map(open.flatMap((t) => [...t.seen]))
  await expect.poll(() => stillRunning(seen), { timeout: 10_000, message: 'Chromium processes left after teardown' }).toEqual([])
})

test.afterAll(async () => {
  await relay?.kill()
})

test('2% loss and 50 ms delay on loopback mid-generation: the reply keeps the reference ids', async () => {
  // every layer on two peers, so a hop lost to the fault has somewhere to fail over to
  await contributor([0, 3])
  await contributor([3, 5])
  await contributor([0, 5])
  const client = await tab()
  await client.call('join')
  await expect.poll(() => Promise.all([hostsOf(client, 0), hostsOf(client, 4)]), { timeout: 30_000 }).toEqual([2, 2])
  const maxTokens = 24
  const run = chat(client, { maxTokens, pauseAtToken: 4, hopTimeoutMs: 10_000 })
  await expect.poll(() => client.call('chatState').then((s) => s.paused), { timeout: 60_000 }).toBe(true)
  const stopNetem = await startNetem({ delayMs: 50, loss: 0.02 })
  let out: Outcome
  let ms: number
  let netem: Awaited<ReturnType<typeof stopNetem>>
  try {
    const started = Date.now()
    await client.call('resume')
    out = await run
    ms = Date.now() - started
  } finally {
    netem = await stopNetem()
  }
  expect(ids(out)).toEqual(reference(maxTokens))
  expect(ms).toBeLessThan(90_000) // the deadline
  // the fault was really there: packets were lost, and every hop after the pause paid the delay both ways
  expect(netem.dropped).toBeGreaterThan(0)
  const hopMs = out.ok ? out.out.routes.slice(5).flat().map((h) => h.ms).sort((a, b) => a - b) : []
  expect(hopMs.length).toBeGreaterThan(0)
  expect(hopMs[0]).toBeGreaterThanOrEqual(95)
  console.log(`loss 2% delay 50ms on WebRTC: ${maxTokens - 4} tokens in ${ms} ms; ${netem.packets} packets, ${netem.dropped} dropped; hop ${hopMs[0].toFixed(0)}-${hopMs[hopMs.length - 1].toFixed(0)} ms (median ${hopMs[hopMs.length >> 1].toFixed(0)}); ${failovers(out).length} failover(s)`)
})

const rogueCases: { mode: RogueMode; what: string; reason: RegExp }[] = [
  { mode: 'stall', what: 'stops answering mid-session', reason: /no answer within 2000 ms/ },
  { mode: 'truncate', what: 'closes its stream mid-frame', reason: /closed the stream/ },
  { mode: 'wrong-id', what: 'answers for a request it was never given', reason: /answered hidden #\d+ to forward #\d+/ },
]

for (const { mode, what, reason } of rogueCases) {
  test(`a host that ${what}: a typed error when no one can take over, a failover with the reference ids when a standby can`, async () => {
    const honestForwards = 4 // the prefill and 3 tokens: the fault comes mid-session
    const rogue = await tab('lab/pages/swarm-rogue.html')
    const { peerId: rogueId } = await rogue.page.evaluate((o) => (window as unknown as { rogueLab: RogueLab }).rogueLab.start(o), { modelId: MODEL, layers: { start: 0, end: 5 }, mode, dim: DIM, honestForwards })
    const client = await tab()
    await client.call('join')
    await expect.poll(() => hostsOf(client, 0), { timeout: 30_000 }).toBe(1)

    // the rogue alone: its fault leaves no route, and the client says so with a typed error in time
    const alone = await chat(client, { maxTokens: 12, hopTimeoutMs: 2000 })
    expect(alone).toMatchObject({ ok: false, code: 'hop-failed', message: expect.stringMatching(reason) })
    expect(alone.ms).toBeLessThan(30_000)
    expect(await rogueCall(rogue, 'faults')).toBe(1)

    // mid-session with a standby: routed through the rogue (the only host when the route is made),
    // paused before the fault while the standby joins, then failed over and replayed there
    const maxTokens = 12
    const run = chat(client, { maxTokens, pauseAtToken: 2, hopTimeoutMs: 2000 })
    await expect.poll(() => client.call('chatState').then((s) => s.paused), { timeout: 60_000 }).toBe(true)
    await contributor([0, 5])
    await expect.poll(() => hostsOf(client, 0), { timeout: 30_000 }).toBe(2)
    const started = Date.now()
    await client.call('resume')
    const out = await run
    const ms = Date.now() - started
    expect(ids(out)).toEqual(reference(maxTokens))
    expect(ms).toBeLessThan(30_000)
    expect(await rogueCall(rogue, 'faults')).toBe(2)
    const failover = failovers(out)[0]
    expect(failover).toMatchObject({ peerId: rogueId, reason: expect.stringMatching(reason) })
    console.log(`${mode}: typed error after ${alone.ms.toFixed(0)} ms alone; with a standby the reply finished ${ms} ms after the pause, the failover said "${failover?.reason}"`)
  })
}

test('a client SIGKILLed mid-generation: the host frees its session and KV cache within the idle timeout and serves the next client', async () => {
  const idleTimeoutMs = 4000
  const host = await contributor([0, 5], { idleTimeoutMs })
  const before = await hostStats(host)
  expect(before).toMatchObject({ activeSessions: 0, kvBytes: 0 })
  const doomed = await tab()
  void chat(doomed, { maxTokens: 400 }).catch(() => {}) // ends with the browser
  await expect.poll(() => doomed.call('chatState').then((s) => s.tokens), { timeout: 60_000 }).toBeGreaterThanOrEqual(8)
  const during = await hostStats(host)
  expect(during.activeSessions).toBe(1)
  expect(during.kvBytes).toBeGreaterThan(0)
  doomed.kill()
  const killedAt = Date.now()
  // back to the values from before the session, within the idle timeout (counted from the last forward, before the kill) and a poll
  await expect.poll(() => hostStats(host).then((s) => ({ activeSessions: s.activeSessions, kvBytes: s.kvBytes })), { timeout: idleTimeoutMs + 1000, intervals: [100] })
    .toEqual({ activeSessions: before.activeSessions, kvBytes: before.kvBytes })
  const freedMs = Date.now() - killedAt
  console.log(`client killed at token >= 8 with ${during.kvBytes} KV bytes held: freed ${freedMs} ms later (idle timeout ${idleTimeoutMs} ms)`)

  const next = await tab()
  const out = await chat(next, { maxTokens: 16 })
  expect(ids(out)).toEqual(reference(16))
  expect(await hostStats(host)).toMatchObject({ sessionsServed: 2 })
})

test('more chats than the host admits: the admitted finish with the reference ids, the rest are refused promptly', async () => {
  const maxSessions = 2
  const host = await contributor([0, 5], { maxSessions })
  const client = await tab()
  const maxTokens = 64
  await chats(client, [{ maxTokens: 1 }]) // joins the mesh and dials the host, so the chat alone is timed warm
  const [alone] = await chats(client, [{ maxTokens }])
  expect(ids(alone)).toEqual(reference(maxTokens))
  const servedBefore = (await hostStats(host)).sessionsServed
  const outcomes = await chats(client, Array.from({ length: 5 }, () => ({ maxTokens })))
  const admitted = outcomes.filter((o) => o.ok)
  const refused = outcomes.filter((o) => !o.ok)
  for (const o of admitted) expect(ids(o)).toEqual(reference(maxTokens))
  for (const o of refused) {
    expect(o).toMatchObject({ code: 'refused', message: expect.stringMatching(/host is full \(2 sessions\)/) })
    expect(o.ms).toBeLessThan(15_000) // promptly: nothing waits for the admitted sessions to finish
  }
  expect(admitted.length).toBeGreaterThanOrEqual(maxSessions)
  expect(refused.length).toBeGreaterThanOrEqual(1)
  expect((await hostStats(host)).sessionsServed - servedBefore).toBe(admitted.length)
  const fmt = (xs: Outcome[]) => xs.map((o) => o.ms.toFixed(0)).join(', ')
  console.log(`host admits ${maxSessions}: one chat alone ${alone.ms.toFixed(0)} ms; 5 at once: ${admitted.length} admitted in ${fmt(admitted)} ms, ${refused.length} refused after ${fmt(refused)} ms`)
})
