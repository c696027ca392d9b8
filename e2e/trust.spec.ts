import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import type { TabChatRequest, TabContributeRequest } from '../src/cli-tab/main.ts'
import { CAUGHT_APP_SCORE } from '../src/swarm/mesh-swarm-engine.ts'
import { REVOKE_BELOW } from '../src/trust/reputation.ts'
import { headlessCall, loopbackOnly, openLoggedPage, ROOT, startRelayProcess, type LoggedPage, type RelayProcess, saveLogsAndClose } from '../lab/mesh-harness.ts'
import type { LiarStartOptions } from '../lab/pages/swarm-liar.ts'
import { ATTACKS, type Attack } from '../testing/liars.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * Trust across browser processes: honest contributors hosting stories260K's 5 layers, one lying
 * contributor per attack mode (lab/pages/swarm-liar.ts, routes prefer it), and a client that
 * spot-checks every hop. Each liar is caught, banned, revoked and graylisted, and the reply is
 * the golden generation id for id. An honest swarm on mixed backends is never accused.
 */
const goldenIds = readGolden()
const greedy = { prompt: '', maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 }

interface Tab extends LoggedPage {
  call: ReturnType<typeof headlessCall>
}

let relay: RelayProcess
const tabs: Tab[] = []
async function tab(path = 'src/cli-tab/index.html'): Promise<Tab> {
  const t = await openLoggedPage(new URL(path, relay.url).toString())
  await t.page.waitForFunction(() => document.body.dataset.ready === 'true' || 'trustLab' in window, undefined, { timeout: 30_000 })
  const full = { ...t, call: headlessCall(t.page) }
  tabs.push(full)
  return full
}
const contributor = async (layers: [number, number], backend: TabContributeRequest['backend'] = 'ref') => {
  const t = await tab()
  await t.call('contribute', { layers: { start: layers[0], end: layers[1] }, backend })
  return t
}
const chat = (t: Tab, request: Partial<TabChatRequest> = {}) => t.call('chat', { ...greedy, ...request })
type TrustLab = { start(o: LiarStartOptions): Promise<{ peerId: string }>; lies(): number }
const startLiar = async (attack: Attack, honestForwards: number, fast = true) => {
  const t = await tab('lab/pages/swarm-liar.html')
  const { peerId } = await t.page.evaluate((o) => (window as unknown as { trustLab: TrustLab }).trustLab.start(o), { modelId: 'stories260K', layers: { start: 2, end: 4 }, attack, honestForwards, seed: 11, fast })
  return { tab: t, peerId, lies: () => t.page.evaluate(() => (window as unknown as { trustLab: TrustLab }).trustLab.lies()) }
}
const hostsOf = (client: Tab, start: number) => client.call('peers').then((p) => p.filter((x) => x.hosted.some((h) => h.layers.start === start)).length)

test.beforeAll(async () => {
  expect(loopbackOnly(), 'run this suite with `npm run e2e:trust` (a loopback-only network namespace)').toBe(true)
  relay = await startRelayProcess(process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab'))
})
test.afterEach(({}, testInfo) => saveLogsAndClose(tabs, testInfo))
test.afterAll(async () => {
  await relay?.kill()
})

const browserAttacks: Attack[] = ATTACKS.filter((a) => a !== 'collude') // collusion needs two liars: below

for (const attack of browserAttacks) {
  test(`a contributor that lies (${attack}) is caught, banned and graylisted; the reply is the golden`, async () => {
    await Promise.all([contributor([0, 2]), contributor([2, 4]), contributor([4, 5])])
    const liar = await startLiar(attack, attack === 'fraction' ? 0 : 6) // the lie starts mid-session, after the route has history
    const liarId = liar.peerId
    const client = await tab()
    await client.call('join')
    await expect.poll(() => hostsOf(client, 2), { timeout: 30_000 }).toBe(2)
    // routes prefer the liar (it claims to be fastest); a first WebRTC dial can time out on a loaded
    // machine, so chat until it has been on a route and lied
    for (let attempt = 0; attempt < 4; attempt++) {
      // (speculative decoding is on, as in the product; a fraction liar lies on one forward in ten, and
      // a lie in rows of a rejected draft is rolled back unused, so it drafts nothing: every lie counts)
      const out = await chat(client, attack === 'fraction' ? { speculate: false } : {})
      expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
      const lies = await liar.lies()
      if (lies === 0) continue
      // it lied on the route (caught, replaced) or as a verifier of the honest host's work (found out by the referee)
      const onRoute = out.events.some((e) => (e.type === 'route' || e.type === 'failover') && (e.type === 'route' ? e.hops : e.replacement).some((h) => h.peerId === liarId))
      if (onRoute) {
        const caught = out.events.find((e) => e.type === 'caught')
        expect(caught, `the liar lied ${lies} times on the route and was not caught`).toMatchObject({ type: 'caught', peerId: liarId, outcome: 'failed' })
        expect(out.checks?.failed).toBeGreaterThan(0)
      } else {
        expect(out.checks?.verifierLied, `the liar lied ${lies} times as a verifier and was not found out`).toBeGreaterThan(0)
      }
      const state = await client.call('trustState')
      const record = state.peers.find((p) => p.peerId === liarId)
      expect(record?.score).toBeLessThanOrEqual(REVOKE_BELOW)
      expect(record?.revoked).toBe(true)
      // nobody honest was accused
      expect(state.peers.filter((p) => p.peerId !== liarId).every((p) => p.failed === 0)).toBe(true)
      expect(state.audit.verdict.ok).toBe(true)
      // a hop caught on the route is also banned (and replaced); a lying verifier is revoked
      expect(state.audit.kinds).toEqual(expect.arrayContaining(['session', 'hop', 'check', 'verdict', ...(onRoute ? ['ban'] : [])]))
      // the router caches scores for a moment (its heartbeat): poll
      await expect.poll(() => client.call('gossipScore', liarId), { timeout: 10_000 }).toBeLessThanOrEqual(CAUGHT_APP_SCORE / 2)
      // the next session routes around the revoked liar from the start
      const again = await chat(client)
      expect([...again.promptTokens, ...again.tokens]).toEqual(goldenIds)
      expect(again.routes.flat().some((h) => h.peerId === liarId)).toBe(false)
      return
    }
    throw new Error('the lying contributor was never on a route')
  })
}

test('two colluding identities vouch for each other; the client\'s own checks catch both', async () => {
  await Promise.all([contributor([0, 2]), contributor([4, 5])])
  // the only hosts of [2, 4), telling the same lie: each is the other's only possible peer verifier
  const [a, b] = [await startLiar('collude', 0), await startLiar('collude', 0, false)]
  const client = await tab()
  await client.call('join')
  await expect.poll(() => hostsOf(client, 2), { timeout: 30_000 }).toBe(2)
  // no honest host of [2, 4) exists: the chat must end in a typed error, never in their text
  let caught = false
  for (let attempt = 0; attempt < 4 && !caught; attempt++) {
    const error = await chat(client, { selfCheckShare: 0.5 }).then(() => '', (err: Error) => err.message)
    if (await a.lies() + await b.lies() === 0) continue
    expect(error).toMatch(/no-route|no peers cover layers \[2, 4\)/)
    expect(error).toMatch(/differs from the client's own execution/)
    caught = true
  }
  expect(caught, 'the colluders were never on a route').toBe(true)
  const state = await client.call('trustState')
  for (const id of [a.peerId, b.peerId]) expect(state.peers.find((p) => p.peerId === id)?.revoked).toBe(true)
  // an honest host of [2, 4) joins: the next chat is the golden, routed around both
  await contributor([2, 4])
  await expect.poll(() => hostsOf(client, 2), { timeout: 30_000 }).toBe(3)
  const out = await chat(client)
  expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
  expect(out.routes.flat().some((h) => h.peerId === a.peerId || h.peerId === b.peerId)).toBe(false)
})

test('an honest swarm on ref, wasm and webgpu: many checked sessions, no accusation', async () => {
  await Promise.all([contributor([0, 2], 'wasm'), contributor([0, 2], 'webgpu'), contributor([2, 5], 'ref'), contributor([2, 5], 'wasm')])
  const client = await tab()
  await client.call('join')
  await expect.poll(() => client.call('peers').then((p) => p.length), { timeout: 30_000 }).toBe(4)
  let checks = 0
  const backendOf = new Map((await client.call('peers')).map((p) => [p.peerId, p.backend]))
  const spread = new Map<string, number>() // 'checked/verifier' backends -> the largest passed distance
  for (let session = 0; session < 4; session++) {
    const out = await chat(client, { selfCheckShare: 0 })
    expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
    expect(out.events.filter((e) => e.type === 'caught')).toEqual([])
    expect(out.checks).toMatchObject({ failed: 0, inconclusive: 0, verifierLied: 0 })
    checks += out.checks?.checks ?? 0
    for (const e of out.events) {
      if (e.type !== 'check' || e.check.outcome !== 'passed') continue
      const pair = `${backendOf.get(e.check.peerId)}/${e.check.verifier === 'self' ? 'js (client)' : backendOf.get(e.check.verifier)}`
      spread.set(pair, Math.max(spread.get(pair) ?? 0, e.check.distance))
    }
  }
  console.log(`honest spread per pair (checked/verifier: largest distance): ${[...spread].map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`)
  expect(checks).toBeGreaterThan(8)
  const state = await client.call('trustState')
  expect(state.peers.every((p) => p.failed === 0 && !p.revoked)).toBe(true)
  console.log(`honest mixed-backend swarm: ${checks} checks over 4 sessions, ${state.peers.length} peers checked, no accusation`)
})
