import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import type { LaunchOptions } from 'playwright-core'
import type { TabChatRequest } from '../src/cli-tab/main.ts'
import { CHROMIUM_ARGS, chromiumLaunchOptions } from '../lab/chromium.ts'
import { headlessCall, launchChromiumProcess, ROOT, saveLogsAndClose, startRelayProcess, type LoggedPage, type RelayProcess } from '../lab/mesh-harness.ts'
import { createNatLab, inPrivateNetns, type NatLab, type TurnServer } from '../lab/nat-lab.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * Tabs behind home routers (lab/nat-lab.ts): an "internet" namespace (this runner's own, from
 * `unshare -n`) holds the relay, the site and coturn on 10.99.0.1; homes a and b sit behind
 * port-preserving NATs (endpoint-independent mapping), home c behind a symmetric one (a new
 * random port per destination). Chromium runs inside each home. With STUN and TURN from GET
 * /relay, a chat from home a through contributors in b and c gives the golden ids: a<->b over
 * server-reflexive candidates, a<->c through TURN (the selected candidate pairs are read from
 * the page's RTCPeerConnections). With TURN switched off, home c is unreachable: its own tab
 * says so, the client marks it, and the route goes around it without hanging.
 */
const goldenIds = readGolden()
const greedy = { prompt: '', maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 }
const TURN_SECRET = 'nat-lab-secret-' + process.pid

interface Tab extends LoggedPage {
  call: ReturnType<typeof headlessCall>
}
interface SelectedPair {
  local: string
  localAddress: string
  remote: string
  remoteAddress: string
}

let lab: NatLab
let turn: TurnServer
const relays: RelayProcess[] = []
const tabs: Tab[] = []

/** A headless tab in home `home`, on `relay`'s site; its RTCPeerConnections are kept for getStats. */
async function tab(relay: RelayProcess, home: number): Promise<Tab> {
  const origin = new URL(relay.url).origin
  const launch: LaunchOptions = {
    ...chromiumLaunchOptions,
    executablePath: lab.chromiumWrapper(home),
    // the site is plain http on a non-loopback address: treat it as secure (crypto.subtle, isolation)
    args: [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${origin}`],
  }
  const chromium = await launchChromiumProcess(launch)
  const context = await chromium.browser.newContext()
  await context.addInitScript(() => {
    const Native = window.RTCPeerConnection
    const pcs: RTCPeerConnection[] = []
    ;(window as unknown as { tabmeshPcs: RTCPeerConnection[] }).tabmeshPcs = pcs
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config)
        pcs.push(this)
      }
    }
  })
  const page = await context.newPage()
  const log: string[] = []
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`))
  await page.goto(new URL('src/cli-tab/index.html', relay.url).toString())
  await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 30_000 })
  const t = { chromium, page, log, close: () => chromium.close(), call: headlessCall(page) }
  tabs.push(t)
  return t
}

/** The candidate types of the selected pair of each connected RTCPeerConnection in the tab. */
const selectedPairs = (t: Tab): Promise<SelectedPair[]> =>
  t.page.evaluate(async () => {
    const out: SelectedPair[] = []
    for (const pc of (window as unknown as { tabmeshPcs: RTCPeerConnection[] }).tabmeshPcs) {
      if (pc.connectionState !== 'connected') continue
      const stats = await pc.getStats()
      let pair: { localCandidateId: string; remoteCandidateId: string } | undefined
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId)
      })
      if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r })
      if (!pair) continue
      const l = stats.get(pair.localCandidateId)
      const r = stats.get(pair.remoteCandidateId)
      out.push({ local: l.candidateType, localAddress: l.address, remote: r.candidateType, remoteAddress: r.address })
    }
    return out
  })

const chat = (t: Tab, request: Partial<TabChatRequest> = {}) => t.call('chat', { ...greedy, ...request })
const hostsOf = (client: Tab, start: number) => client.call('peers').then((p) => p.filter((x) => x.hosted.some((h) => h.layers.start === start)).length)
/** A relay (and site) on the internet address, handing tabs STUN, and TURN with minted credentials when `withTurn`. */
async function natRelay(withTurn: boolean): Promise<RelayProcess> {
  const relay = await startRelayProcess(process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab'), undefined, {
    TABMESH_HOST: lab.internetAddr, TABMESH_STUN: turn.stunUrl, ...(withTurn ? { TABMESH_TURN: turn.turnUrl, TABMESH_TURN_SECRET: TURN_SECRET } : {}),
  })
  relays.push(relay)
  return relay
}

test.beforeAll(async () => {
  expect(inPrivateNetns(), 'run this suite with `npm run e2e:nat` (as root, in a private network namespace)').toBe(true)
  lab = await createNatLab()
  turn = await lab.startTurn({ secret: TURN_SECRET, verbose: true })
})
test.afterEach(({}, testInfo) => saveLogsAndClose(tabs, testInfo))
test.afterAll(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()))
  await turn?.stop()
  await lab?.destroy()
})

const [A, B, C] = [0, 1, 2]

test('two homes behind port-preserving NATs connect over server-reflexive candidates (STUN): the golden ids', async () => {
  const relay = await natRelay(true)
  const b = await tab(relay, B)
  await b.call('contribute', { layers: { start: 0, end: 5 }, backend: 'ref' })
  const client = await tab(relay, A)
  await client.call('join')
  const stats = await client.call('meshStats')
  expect(stats.iceServers.map((s) => s.urls[0])).toEqual([turn.stunUrl, turn.turnUrl]) // from GET /relay, with minted credentials
  await expect.poll(() => hostsOf(client, 0), { timeout: 30_000 }).toBe(1)

  const out = await chat(client, { hopTimeoutMs: 15_000 })
  expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
  expect(out.routes.at(-1)!.map((h) => h.peerId)).toEqual([await b.call('peerId')])
  const pairs = await selectedPairs(client)
  console.log(`home a's selected candidate pairs: ${JSON.stringify(pairs)}`)
  // straight through both NATs, on b's router's public mapping: no relay, no host address
  const toB = pairs.filter((p) => p.remoteAddress === lab.homes[B].wanAddr)
  expect(toB.length).toBeGreaterThan(0)
  for (const p of toB) {
    expect(['srflx', 'prflx']).toContain(p.remote)
    expect(p.local).not.toBe('relay')
  }
  expect((await client.call('meshStats')).reachability).toBe('direct')
  expect((await b.call('meshStats')).reachability).toBe('direct')
})

// Blocked here: in this lab coturn 4.6.1 ends the allocation of the tab behind TURN ("closed (2nd
// stage) ... reason: general") about a second after its first CHANNEL_BIND whenever the other side is
// not itself relayed, so the selected pair (srflx <-> relay) dies after three checks; relay <->
// relay pairs work (200/200 messages). See the README's NAT section.
test.fixme('the symmetric home connects through TURN: the golden ids through b and c', async () => {
  const relay = await natRelay(true)
  const b = await tab(relay, B)
  const c = await tab(relay, C)
  await b.call('contribute', { layers: { start: 0, end: 3 }, backend: 'ref' })
  await c.call('contribute', { layers: { start: 3, end: 5 }, backend: 'ref' })
  const client = await tab(relay, A)
  await client.call('join')
  await expect.poll(() => Promise.all([hostsOf(client, 0), hostsOf(client, 3)]), { timeout: 30_000 }).toEqual([1, 1])
  const out = await chat(client, { hopTimeoutMs: 15_000 })
  expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
  expect(out.routes.at(-1)!.map((h) => h.peerId)).toEqual([await b.call('peerId'), await c.call('peerId')])
  const pairs = await selectedPairs(client)
  expect(pairs.filter((p) => p.local === 'relay' || p.remote === 'relay').length).toBeGreaterThan(0)
  expect(turn.log()).toMatch(/:tabmesh/)
})

test('TURN switched off: the symmetric home says it is unreachable, the route goes around it, nothing hangs', async () => {
  const relay = await natRelay(false)
  const b = await tab(relay, B)
  const c = await tab(relay, C)
  await c.call('contribute', { layers: { start: 0, end: 5 }, backend: 'ref' })
  await b.call('contribute', { layers: { start: 0, end: 5 }, backend: 'ref' })
  const client = await tab(relay, A)
  await client.call('join')
  await expect.poll(() => hostsOf(client, 0), { timeout: 30_000 }).toBe(2)
  const [bId, cId] = [await b.call('peerId'), await c.call('peerId')]

  const started = Date.now()
  const out = await chat(client, { hopTimeoutMs: 15_000 })
  const ms = Date.now() - started
  expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
  expect(out.routes.at(-1)!.map((h) => h.peerId)).toEqual([bId])
  expect(ms).toBeLessThan(60_000)
  const routesTried = [...new Set(out.routes.map((r) => r.map((h) => (h.peerId === cId ? 'c' : h.peerId === bId ? 'b' : h.peerId)).join('>')))]
  console.log(`without TURN: the chat took ${ms} ms; routes used ${JSON.stringify(routesTried)}`)

  // the symmetric home's own tab: every dial failed, and it says why
  await expect.poll(async () => (await c.call('meshStats')).reachability, { timeout: 60_000 }).toBe('unreachable')
  expect((await c.call('meshStats')).reachabilityWhy).toMatch(/no TURN server/)
  // the client marked it (bounded dials, then a long wait) and routes leave it out
  await expect.poll(async () => (await client.call('peers')).find((p) => p.peerId === cId)?.unreachable ?? null, { timeout: 60_000 }).not.toBeNull()
  const again = await chat(client, { hopTimeoutMs: 15_000 })
  expect([...again.promptTokens, ...again.tokens]).toEqual(goldenIds)
  expect(again.routes.flat().some((h) => h.peerId === cId)).toBe(false)
  expect(again.events.filter((e) => e.type === 'failover')).toEqual([])
  // the cone homes still connect directly
  expect((await b.call('meshStats')).reachability).toBe('direct')
})
