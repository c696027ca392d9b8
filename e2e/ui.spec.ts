import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { goldenIds, goldenText } from '../testing/golden.ts'
import { join } from 'node:path'
import { expect, test, type BrowserContext, type Page } from '@playwright/test'
import { loopbackOnly, openLoggedPage, ROOT, startRelayProcess, type RelayProcess } from '../lab/mesh-harness.ts'

/**
 * The product, driven only through its UI: two visitors switch Contribute on (each hosting part of
 * stories260K's 5 layers), a third chats through them and gets the reference greedy story; the
 * settings and the conversation survive a reload; with the network cut the shell still loads and a
 * downloaded model still answers. Screenshots of each view land in e2e/screenshots/.
 */
const golden = { ids: goldenIds().slice(1).join(' '), text: goldenText() } // generated ids (BOS dropped) and their text

const SHOTS = join(ROOT, 'e2e/screenshots')
mkdirSync(SHOTS, { recursive: true })

interface Visitor {
  context: BrowserContext
  page: Page
  log: string[]
  close(): Promise<void>
}

let relay: RelayProcess
const visitors: Visitor[] = []

async function visit(path: string): Promise<Visitor> {
  const opened = await openLoggedPage(new URL(path, relay.url).toString(), { viewport: { width: 1280, height: 900 } }) // a Chromium process per visitor
  const v = { context: opened.page.context(), page: opened.page, log: opened.log, close: opened.close }
  visitors.push(v)
  return v
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })

/** The entries of the tab's audit log, straight from IndexedDB (database 'tabmesh-audit', store 'entries', keyed by seq). */
function auditEntries(page: Page): Promise<{ seq: number; kind: string; data: Record<string, unknown>; hash: string }[]> {
  return page.evaluate(async () => {
    // opening a database that does not exist would create it without its store: look first
    if (!(await indexedDB.databases()).some((d) => d.name === 'tabmesh-audit')) return []
    return new Promise((resolve, reject) => {
      const open = indexedDB.open('tabmesh-audit')
      open.onerror = () => reject(open.error)
      open.onsuccess = () => {
        const db = open.result
        const all = db.transaction('entries').objectStore('entries').getAll()
        all.onsuccess = () => { db.close(); resolve(all.result) }
        all.onerror = () => { db.close(); reject(all.error) }
      }
    })
  })
}

/** Switches Contribute on through the UI, hosting layers [first, last]. */
async function contribute(page: Page, first: number, last: number, backend: string) {
  await page.getByRole('link', { name: 'Contribute' }).click()
  await page.getByLabel('Backend').selectOption(backend)
  await page.getByLabel('These layers:').check()
  await page.getByLabel('Last layer').fill(String(last))
  await page.getByLabel('First layer').fill(String(first))
  const toggle = page.getByRole('switch', { name: 'Contribute this tab' })
  await toggle.focus()
  await page.keyboard.press('Space') // the switch works from the keyboard
  await expect(toggle).toBeChecked()
  await expect(page.getByTestId('contribute-status')).toHaveAttribute('data-state', 'on', { timeout: 90_000 })
  await expect(page.getByTestId('hosted-layers')).toHaveText(first === last ? `layer ${first}` : `layers ${first}–${last}`)
}

const lastReply = (page: Page) => page.locator('[data-role="assistant"]').last()

async function sendEmptyPrompt(page: Page) {
  await page.getByLabel('Message', { exact: true }).fill('')
  await page.getByRole('button', { name: 'Send', exact: true }).click()
}

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  expect(loopbackOnly(), 'run this suite with `npm run e2e:ui` (a loopback-only network namespace)').toBe(true)
  relay = await startRelayProcess(process.env.TABMESH_SITE_DIR ?? join(ROOT, 'dist'))
})
test.afterEach(async ({}, testInfo) => {
  if (testInfo.status !== testInfo.expectedStatus) {
    for (const [i, v] of visitors.entries()) writeFileSync(testInfo.outputPath(`visitor-${i}.log`), v.log.join('\n'))
  }
})
test.afterAll(async () => {
  await Promise.all(visitors.splice(0).map((v) => v.close()))
  await relay?.kill()
})

let chatter: Visitor
let first: Visitor

test('with nobody contributing, a swarm chat says there is no route', async () => {
  chatter = await visit('/')
  const page = chatter.page
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true)
  await expect(page.getByRole('link', { name: 'Contribute' })).toBeVisible()
  await expect(page.getByRole('switch', { name: 'Contribute this tab' })).toHaveCount(0) // the chat view first
  // keyboard: a skip link first, then the views
  await page.keyboard.press('Tab')
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused()
  await page.keyboard.press('Tab')
  await expect(page.getByRole('link', { name: 'Chat' })).toBeFocused()
  await page.getByLabel('Run on').selectOption('swarm')
  await page.getByLabel('Temperature').fill('0')
  await page.getByLabel('Max tokens').fill('64')
  await page.getByLabel('Message', { exact: true }).press('Enter') // Enter sends (an empty prompt: a story from nothing)
  await expect(lastReply(page)).toHaveAttribute('data-status', 'error', { timeout: 60_000 })
  await expect(page.getByTestId('reply-error')).toHaveAttribute('data-code', 'no-route')
  await expect(page.getByTestId('reply-error')).toContainText('No route')
})

test('two visitors contribute through the UI and a third chats the reference story through them', async () => {
  first = await visit('/')
  const second = await visit('/')
  await Promise.all([contribute(first.page, 0, 2, 'auto'), contribute(second.page, 3, 4, 'wasm')])
  await expect(first.page.getByTestId('backend')).not.toBeEmpty()

  const page = chatter.page
  // wait until this visitor's swarm view shows every layer served, then chat
  await page.getByRole('link', { name: 'Swarm' }).click()
  await expect(page.getByTestId('coverage-stories260K')).toHaveAttribute('data-counts', '1 1 1 1 1', { timeout: 30_000 })
  await page.getByRole('link', { name: 'Chat' }).click()
  await page.getByRole('button', { name: 'New', exact: true }).click()
  await sendEmptyPrompt(page)
  const reply = lastReply(page)
  await expect(reply).toHaveAttribute('data-status', 'done', { timeout: 120_000 })
  expect(await reply.getAttribute('data-ids')).toBe(golden.ids)
  await expect(reply.getByTestId('reply-text')).toHaveText(golden.text)
  // per reply: tokens/s, and speculative decoding's drafts accepted (greedy drafts by prompt lookup; the ids above are plain decoding's)
  await expect(reply.getByTestId('reply-stats')).toContainText(/\d+ tokens · [\d.]+ tok\/s/)
  await expect(reply.getByTestId('reply-acceptance')).toHaveText(/ · \d+% of drafts accepted/)

  // the route, on demand: two peers, layers 0-2 then 3-4
  await reply.getByText(/^Route/).click()
  const rows = reply.getByTestId('route-table').locator('tbody tr')
  await expect(rows).toHaveCount(2)
  await expect(rows.nth(0).locator('td').nth(1)).toHaveText('layers 0–2')
  await expect(rows.nth(1).locator('td').nth(1)).toHaveText('layers 3–4')

  // each contributor counts the session and the tokens it served
  for (const v of [first, second]) {
    await expect(v.page.getByTestId('sessions-served')).toHaveText(/^[1-9]/, { timeout: 10_000 })
    await expect.poll(async () => Number(await v.page.getByTestId('tokens-processed').textContent())).toBeGreaterThanOrEqual(64)
  }

  await shot(page, 'chat')
  await shot(first.page, 'contribute')
  await page.getByRole('link', { name: 'Swarm' }).click()
  await expect(page.getByTestId('peer-table').locator('tbody tr')).toHaveCount(2)
  await expect(page.getByTestId('coverage-stories260K')).toHaveAttribute('data-counts', '1 1 1 1 1')
  // the network panel: the one relay, connected; direct WebRTC worked (the chat went over it)
  await expect(page.getByTestId('relay-list').locator('li[data-connected="true"]')).toHaveCount(1)
  await expect(page.getByTestId('reachability')).toHaveAttribute('data-state', 'direct')

  // trust: the chatter spot-checked both contributors, and they passed every check
  const trustRows = page.getByTestId('trust-table').locator('tbody tr')
  await expect(trustRows).toHaveCount(2, { timeout: 30_000 })
  for (const v of [first, second]) {
    const peerId = (await v.page.getByTestId('contribution-stats').locator('code').getAttribute('title'))!
    const row = page.locator(`[data-testid="trust-table"] tr[data-peer="${peerId}"]`)
    await expect(row.locator('code')).toHaveText(`…${peerId.slice(-8)}`)
    await expect(row.locator('code')).toHaveAttribute('title', peerId)
    await expect.poll(async () => Number(await row.getByTestId('trust-passed').textContent()), { timeout: 30_000 }).toBeGreaterThan(0)
    await expect(row.getByTestId('trust-failed')).toHaveText('0')
    await expect(row).not.toHaveAttribute('data-status', 'revoked')
  }
  await expect(page.getByTestId('audit-head')).toHaveText(/^[0-9a-f]{16}$/)
  await expect(page.getByTestId('audit-head')).not.toHaveText('0'.repeat(16))
  await expect(page.getByTestId('audit-head')).toHaveAttribute('title', /^[0-9a-f]{64}$/)
  expect(Number(await page.getByTestId('audit-size').textContent())).toBeGreaterThan(1)
  await page.getByRole('button', { name: 'Verify log' }).click()
  await expect(page.getByTestId('audit-verdict')).toHaveText(/^Chain intact: \d+ entries$/)
  await expect(page.getByTestId('audit-load-problem')).toHaveCount(0)
  await page.waitForTimeout(2000) // a few chart samples
  await shot(page, 'swarm')
  await page.setViewportSize({ width: 375, height: 800 })
  await shot(page, 'swarm-375')
  await page.getByRole('link', { name: 'Chat' }).click()
  await shot(page, 'chat-375')
  await page.setViewportSize({ width: 1280, height: 900 })
})

test('the audit log exports as JSON, and an entry rewritten in IndexedDB is named by Verify log', async ({}, testInfo) => {
  const page = chatter.page
  await page.getByRole('link', { name: 'Swarm' }).click()
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export log' }).click()])
  expect(download.suggestedFilename()).toBe('tabmesh-audit.json')
  const saved = testInfo.outputPath('tabmesh-audit.json')
  await download.saveAs(saved)
  const exported = JSON.parse(readFileSync(saved, 'utf8')) as { format: string; head: string; entries: { seq: number; hash: string }[] }
  expect(exported.format).toBe('tabmesh-audit')
  expect(exported.entries.length).toBeGreaterThan(1)
  expect(exported.head).toBe(exported.entries.at(-1)!.hash)
  expect(await page.getByTestId('audit-head').getAttribute('title')).toBe(exported.head)

  // rewrite entry seq 1 behind the log's back, as someone with the tab's storage could
  const changed = await page.evaluate(() => new Promise<string>((resolve, reject) => {
    const open = indexedDB.open('tabmesh-audit')
    open.onerror = () => reject(open.error)
    open.onsuccess = () => {
      const db = open.result
      const tx = db.transaction('entries', 'readwrite')
      const store = tx.objectStore('entries')
      const get = store.get(1)
      get.onsuccess = () => {
        const entry = get.result as { data: Record<string, unknown> }
        const key = Object.keys(entry.data).sort()[0] ?? 'note'
        entry.data[key] = 'rewritten'
        store.put(entry)
        tx.oncomplete = () => { db.close(); resolve(key) }
      }
      tx.onerror = () => reject(tx.error)
    }
  }))
  expect(changed).not.toBe('')

  await page.reload()
  await page.getByRole('link', { name: 'Swarm' }).click()
  await expect(page.getByTestId('audit-load-problem')).toContainText('entry 1 (seq 1) was changed after it was written')
  await page.getByRole('button', { name: 'Verify log' }).click()
  const verdict = page.getByTestId('audit-verdict')
  await expect(verdict).toHaveAttribute('data-ok', 'false')
  await expect(verdict).toHaveText('entry 1 (seq 1) was changed after it was written: its hash does not match its content')
  await page.getByRole('link', { name: 'Chat' }).click()
})

test('settings and conversations survive a reload; a contributor resumes by itself', async () => {
  const page = chatter.page
  await page.reload()
  await expect(page.getByTestId('conversation-list').locator('li')).toHaveCount(2)
  await expect(page.getByLabel('Temperature')).toHaveValue('0')
  await expect(page.getByLabel('Run on')).toHaveValue('swarm')
  await expect(lastReply(page)).toHaveAttribute('data-ids', golden.ids) // the newest conversation opens
  await expect(lastReply(page).getByTestId('reply-text')).toHaveText(golden.text)

  await first.page.reload()
  await expect(first.page.getByRole('switch', { name: 'Contribute this tab' })).toBeChecked()
  await expect(first.page.getByTestId('contribute-status')).toHaveAttribute('data-state', 'on', { timeout: 90_000 })
  await expect(first.page.getByTestId('hosted-layers')).toHaveText('layers 0–2')
  await expect(first.page.getByLabel('Backend')).toHaveValue('auto')
  await first.page.setViewportSize({ width: 375, height: 800 })
  await shot(first.page, 'contribute-375')
  await first.page.setViewportSize({ width: 1280, height: 900 })
})

test('a downloaded model answers with the network cut, and the shell reloads offline', async () => {
  const page = chatter.page
  await page.getByRole('link', { name: 'Models' }).click()
  const row = page.getByTestId('model-stories260K')
  await row.getByRole('button', { name: 'Download' }).click()
  await expect(row).toHaveAttribute('data-cached', 'true', { timeout: 60_000 })
  await shot(page, 'models')
  await page.evaluate(() => navigator.serviceWorker.ready)
  await expect.poll(() => page.evaluate(() => !!navigator.serviceWorker.controller)).toBe(true)

  await chatter.context.setOffline(true)
  await page.reload()
  await expect(page.getByRole('link', { name: 'Chat' })).toBeVisible()
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true) // COOP/COEP kept by the service worker
  await expect(page.getByTestId('model-stories260K')).toHaveAttribute('data-cached', 'true')
  await page.getByRole('link', { name: 'Chat' }).click()
  await page.getByLabel('Run on').selectOption('local')
  await page.getByRole('button', { name: 'New', exact: true }).click()
  await sendEmptyPrompt(page)
  const reply = lastReply(page)
  await expect(reply).toHaveAttribute('data-status', 'done', { timeout: 60_000 })
  expect(await reply.getAttribute('data-ids')).toBe(golden.ids)
  await shot(page, 'chat-offline')
  await chatter.context.setOffline(false)

  // one click clears the model cache
  await page.getByRole('link', { name: 'Models' }).click()
  await page.getByRole('button', { name: 'Clear cache' }).click()
  await expect(page.getByTestId('model-stories260K')).toHaveAttribute('data-cached', 'false')
  await expect(page.getByTestId('model-stories260K')).toContainText('not cached')
  await page.setViewportSize({ width: 375, height: 800 })
  await shot(page, 'models-375')
  await page.setViewportSize({ width: 1280, height: 900 })
  await page.getByRole('link', { name: 'Chat' }).click()
})

test('switching Contribute off mid-reply hands the session to a standby; the reply is unchanged', async () => {
  const standby = await visit('/')
  await contribute(standby.page, 0, 2, 'wasm')
  const page = chatter.page
  await page.getByRole('link', { name: 'Swarm' }).click()
  await expect(page.getByTestId('coverage-stories260K')).toHaveAttribute('data-counts', '2 2 2 1 1', { timeout: 30_000 })
  await page.getByRole('link', { name: 'Chat' }).click()
  await page.getByLabel('Max tokens').fill('400')

  // the reference: the same request, the whole model in this tab
  await page.getByLabel('Run on').selectOption('local')
  await page.getByRole('button', { name: 'New', exact: true }).click()
  await sendEmptyPrompt(page)
  await expect(lastReply(page)).toHaveAttribute('data-status', 'done', { timeout: 60_000 })
  const reference = await lastReply(page).getAttribute('data-ids')
  expect(reference!.split(' ').length).toBeGreaterThan(64)

  await page.getByLabel('Run on').selectOption('swarm')
  await page.getByRole('button', { name: 'New', exact: true }).click()
  const auditedBefore = (await auditEntries(page)).length
  await sendEmptyPrompt(page)
  const reply = lastReply(page)
  await expect(reply.getByTestId('reply-text')).not.toBeEmpty({ timeout: 60_000 })
  // whichever layers-0-2 host serves this reply switches off while it streams. Both hosts may have
  // an active session (the other one spot-checks the first's work), so the route is read from the
  // chatter's audit log, where every route the swarm engine takes is written.
  const hosts = new Map<string, Visitor>()
  for (const v of [first, standby]) hosts.set((await v.page.getByTestId('contribution-stats').locator('code').getAttribute('title'))!, v)
  let serving: Visitor | undefined
  await expect.poll(async () => {
    const hop = (await auditEntries(page)).slice(auditedBefore).filter((e) => e.kind === 'hop').at(-1)
    const peerId = (hop?.data.route as { peerId: string; layers: number[] }[] | undefined)?.find((h) => h.layers[0] === 0 && h.layers[1] === 3)?.peerId
    serving = peerId === undefined ? undefined : hosts.get(peerId)
    return serving !== undefined
  }, { timeout: 10_000, intervals: [100] }).toBe(true)
  expect(await reply.getAttribute('data-status')).toBe('streaming')
  await serving!.page.getByRole('switch', { name: 'Contribute this tab' }).uncheck()
  await expect(serving!.page.getByTestId('contribute-status')).toHaveAttribute('data-state', 'off', { timeout: 30_000 })

  await expect(reply).toHaveAttribute('data-status', 'done', { timeout: 120_000 })
  expect(await reply.getAttribute('data-ids')).toBe(reference)
  await reply.getByText(/^Route/).click()
  await expect(reply.getByTestId('route-table').locator('tbody tr').filter({ hasText: 'layers 0–2' })).toHaveCount(2) // the host that left, and the standby

  // regenerate replaces the reply; stop ends it early and keeps what came
  await page.getByRole('button', { name: 'Regenerate' }).click()
  const again = lastReply(page)
  await expect(again.getByTestId('reply-text')).not.toBeEmpty({ timeout: 60_000 })
  await page.getByRole('button', { name: 'Stop' }).click()
  await expect(again).toHaveAttribute('data-status', 'stopped')
  const partial = (await again.getAttribute('data-ids'))!
  expect(partial.split(' ').length).toBeLessThan(400)
  expect(reference!.split(' ').slice(0, partial.split(' ').length).join(' ')).toBe(partial)
  await expect(page.locator('[data-role="assistant"]')).toHaveCount(1)
})
