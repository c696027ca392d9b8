import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import type { TabChatRequest } from '../src/cli-tab/main.ts'
import { headlessCall, loopbackOnly, openLoggedPage, ROOT, saveLogsAndClose, startRelayProcess, type LoggedPage, type RelayProcess } from '../lab/mesh-harness.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * Several relays: tabs link to every relay GET /relay lists and hold a reservation on each, so
 * killing one relay leaves running sessions untouched and a new tab joins through another.
 * Real relay processes, Chromium processes, WebRTC, in a loopback-only network namespace.
 */
const goldenIds = readGolden()
const greedy = { prompt: '', maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 }

interface Tab extends LoggedPage {
  call: ReturnType<typeof headlessCall>
}
const tabs: Tab[] = []
async function tab(siteUrl: string): Promise<Tab> {
  const t = await openLoggedPage(new URL('src/cli-tab/index.html', siteUrl).toString())
  await t.page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 30_000 })
  const full = { ...t, call: headlessCall(t.page) }
  tabs.push(full)
  return full
}
const chat = (t: Tab, request: Partial<TabChatRequest> = {}) => t.call('chat', { ...greedy, ...request })
const hostsOf = (client: Tab, start: number) => client.call('peers').then((p) => p.filter((x) => x.hosted.some((h) => h.layers.start === start)).length)

const relays: RelayProcess[] = []
test.beforeAll(() => {
  expect(loopbackOnly(), 'run this suite with `npm run e2e:mesh` (a loopback-only network namespace)').toBe(true)
})
test.afterEach(({}, testInfo) => saveLogsAndClose(tabs, testInfo))
test.afterAll(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()))
})

test('killing one of two relays: a running chat finishes with the golden ids, and a new tab joins through the other', async () => {
  const siteDir = process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist-lab')
  const second = await startRelayProcess(siteDir)
  const first = await startRelayProcess(siteDir, undefined, { TABMESH_OTHER_RELAYS: second.multiaddrs.join(',') })
  relays.push(first, second)
  // every tab loads from the first relay's site, which lists both relays
  const hosts = [await tab(first.url), await tab(first.url)]
  await hosts[0].call('contribute', { layers: { start: 0, end: 3 }, backend: 'ref' })
  await hosts[1].call('contribute', { layers: { start: 3, end: 5 }, backend: 'ref' })
  const client = await tab(first.url)
  await client.call('join')
  for (const t of [...hosts, client]) {
    // linked to both relays, and dialable through both (a reservation on each)
    await expect.poll(async () => (await t.call('meshStats')).relays.map((r) => r.connected), { timeout: 20_000 }).toEqual([true, true])
  }
  await expect.poll(() => Promise.all([hostsOf(client, 0), hostsOf(client, 3)]), { timeout: 30_000 }).toEqual([1, 1])

  const run = chat(client, { pauseAtToken: 8, hopTimeoutMs: 10_000 })
  await expect.poll(() => client.call('chatState').then((s) => s.paused), { timeout: 60_000 }).toBe(true)
  await first.kill()
  await client.call('resume')
  const out = await run
  expect([...out.promptTokens, ...out.tokens]).toEqual(goldenIds)
  expect(out.events.filter((e) => e.type === 'failover')).toEqual([]) // the session never noticed

  for (const t of [...hosts, client]) {
    await expect.poll(async () => (await t.call('meshStats')).relays.map((r) => r.connected), { timeout: 20_000 }).toEqual([false, true])
  }
  // a newcomer reaches the swarm through the relay that is left: it loads the second site (the
  // first is gone with its relay), hears the hosts' adverts and dials them through their
  // reservations on the second relay
  const newcomer = await tab(second.url)
  await newcomer.call('join')
  await expect.poll(() => Promise.all([hostsOf(newcomer, 0), hostsOf(newcomer, 3)]), { timeout: 30_000 }).toEqual([1, 1])
  const again = await chat(newcomer)
  expect([...again.promptTokens, ...again.tokens]).toEqual(goldenIds)
  const stats = await newcomer.call('meshStats')
  expect(stats.relays).toEqual([{ addr: second.multiaddrs[0], connected: true }])
  expect(stats.reachability).toBe('direct')

  // a relay list whose first entry is dead: the tab joins through the live one without waiting
  // on the dead one, shows it as down, and keeps trying it in the background
  const listed = await tab(second.url)
  await listed.call('configure', { relay: [...first.multiaddrs, ...second.multiaddrs] })
  const joinStarted = Date.now()
  await listed.call('join')
  expect(Date.now() - joinStarted).toBeLessThan(15_000)
  await expect.poll(async () => (await listed.call('meshStats')).relays.map((r) => r.connected), { timeout: 20_000 }).toEqual([false, true])
  await expect.poll(() => Promise.all([hostsOf(listed, 0), hostsOf(listed, 3)]), { timeout: 30_000 }).toEqual([1, 1])
})
