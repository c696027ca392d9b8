import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import { goldenText as readGoldenText } from '../testing/golden.ts'
import type { Browser, Frame, Page } from 'playwright-core'
import type { TabmeshEngine } from '../src/embed/api.ts'
import { headlessCall, openLoggedPage, ROOT, startRelayProcess, type RelayProcess, saveLogsAndClose } from '../lab/mesh-harness.ts'

/**
 * embed.js on a third-party page: the page is served by a small server of its own on 127.0.0.1 (another
 * site than tabmesh's localhost), embeds the script, and talks to the tabmesh iframe only through
 * postMessage. Contributors run in Chromium processes of their own, as in the swarm suite.
 */
// the greedy text from BOS alone, 64 tokens
const goldenText = readGoldenText()

interface Tab {
  browser: Browser
  page: Page
  log: string[]
  close(): Promise<void>
}

let relay: RelayProcess
// the host pages, cross-site (127.0.0.1) to tabmesh (localhost), and the same pages same-site but cross-origin (localhost, another port)
let host: { server: Server; url: string; sameSiteUrl: string }
const tabs: Tab[] = []

/**
 * The test network: a namespace with loopback and a veth pair whose both ends stay inside it, so a
 * default route exists but leads nowhere outside (npm run e2e:embed sets it up). The veth is needed
 * because Chromium gathers ICE candidates on loopback only for frames with media permission, which a
 * cross-origin iframe never has; without it a frame uses its default-route interface, as on a real network.
 */
function isolatedNetwork(): boolean {
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.trim() !== '')
  return links.every((l) => /^\d+: (lo|tm0@tm1|tm1@tm0):/.test(l))
}

async function openPage(url: string): Promise<Tab> {
  const opened = await openLoggedPage(url)
  opened.page.on('frameattached', (f) => opened.log.push(`frame: ${f.url()}`))
  const tab = { browser: opened.chromium.browser, page: opened.page, log: opened.log, close: opened.close }
  tabs.push(tab)
  return tab
}

/** A headless tabmesh tab (contributor or observer) in its own browser. */
async function headless() {
  const tab = await openPage(new URL('src/cli-tab/index.html', relay.url).href)
  await tab.page.waitForFunction(() => document.body.dataset.ready === 'true')
  return { ...tab, call: headlessCall(tab.page) }
}
const contributor = async (start: number, end: number) => {
  const t = await headless()
  await t.call('contribute', { layers: { start, end }, backend: 'ref' })
  return t
}

/** The third-party pages, each a script tag (and for some, the page's own script). */
function hostPages(tabmesh: string): Record<string, { html: string; headers?: Record<string, string> }> {
  const embed = (attrs: string) => `<script src="${tabmesh}embed.js" ${attrs}></script>`
  const page = (body: string) => `<!doctype html><html><head><meta charset="utf-8"><title>a blog</title></head><body><h1>A third-party page</h1>${body}</body></html>`
  return {
    '/contribute.html': { html: page(embed('data-mode="contribute" data-backend="ref"')) },
    '/chat.html': { html: page(embed('data-mode="chat" data-chat-mode="swarm" data-temperature="0" data-max-tokens="64"')) },
    '/coep.html': {
      html: page(embed('data-mode="contribute"')),
      headers: { 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Opener-Policy': 'same-origin' },
    },
    // the page's own script, written as it would be for WebLLM's engine
    '/api.html': {
      html: page(`${embed('')}
<script type="module">
  async function readStream(engine, request, stopAfter) {
    const chunks = await engine.chat.completions.create({ ...request, stream: true })
    let text = '', count = 0, finish = null, usage = null
    for await (const chunk of chunks) {
      text += chunk.choices[0]?.delta.content || ''
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
      if (++count === stopAfter) engine.interruptGenerate()
    }
    return { text, count, finish, usage, object: chunks.object }
  }
  window.hostDemo = async (relay) => {
    const engine = await tabmesh.connect({ relay, model: 'stories260K', mode: 'swarm' })
    const user = (content) => [{ role: 'user', content }]
    const streamed = await readStream(engine, { messages: user(''), temperature: 0, top_p: 0.9, max_tokens: 64 })
    const reply = await engine.chat.completions.create({ messages: user('Once upon a time'), temperature: 0, max_tokens: 20 })
    const again = await readStream(engine, { messages: user(''), temperature: 0, top_p: 0.9, max_tokens: 64 })
    const interrupted = await readStream(engine, { messages: user(''), temperature: 0.8, seed: 7, max_tokens: 300 }, 3)
    const lastMessage = await engine.getMessage()
    return { streamed, reply, again, interrupted, lastMessage, status: await engine.status() }
  }
</script>`),
    },
    // a page that sends the iframe garbage
    '/hostile.html': {
      html: page(`${embed('data-mode="chat" data-chat-mode="local" data-temperature="0" data-max-tokens="16"')}
<script type="module">
  window.hostile = async () => {
    await tabmesh.widget
    const frame = document.querySelector('iframe[data-tabmesh]')
    const origin = new URL(frame.src).origin
    const replies = []
    addEventListener('message', (e) => { if (e.source === frame.contentWindow) replies.push(e.data) })
    const protocol = 'tabmesh-embed/1'
    let deep = { protocol, type: 'status', id: 'deep' }
    for (let i = 0; i < 100; i++) deep = { protocol, type: 'status', id: 'deep', x: deep }
    const garbage = [
      'hello', null, 42, [], {},
      { protocol: 'other/1', type: 'status', id: 'p1' },
      { protocol, type: 'nope', id: 'p2' },
      { protocol, type: 'chat', id: 'p3', request: { messages: [] } },
      { protocol, type: 'chat', id: 'p4', request: { messages: [{ role: 'user', content: 'x'.repeat(300000) }] } },
      { protocol, type: 'chat', id: 'p5', request: { messages: Array.from({ length: 20000 }, () => ({ role: 'user', content: 'hi' })) } },
      { protocol, type: 'chat', id: 'p6', request: { messages: [{ role: 'user', content: '' }], max_tokens: -1 } },
      { protocol, type: 'chat', id: 'p7', request: { messages: [{ role: 'tool', content: '' }] } },
      { protocol, type: 'contribute', id: 'p8', enabled: true, sneaky: 'start now' },
      { protocol, type: 'contribute', id: 'p9', enabled: true, memoryBudget: 1e15 },
      { protocol, type: 'status', id: 'p10', buffer: new ArrayBuffer(1 << 20) },
      deep,
      { protocol, type: 'status', id: 'x'.repeat(100) },
    ]
    for (const m of garbage) frame.contentWindow.postMessage(m, origin)
    const started = Date.now()
    while (replies.length < garbage.length && Date.now() - started < 10000) await new Promise((r) => setTimeout(r, 50))
    return { sent: garbage.length, replies }
  }
</script>`),
    },
  }
}

function startHostServer(pages: ReturnType<typeof hostPages>): Promise<typeof host> {
  const server = createServer((req, res) => {
    const p = pages[new URL(req.url ?? '/', 'http://x').pathname]
    if (!p) { res.writeHead(404); res.end('not found'); return }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', ...p.headers })
    res.end(p.html)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port
    resolve({ server, url: `http://127.0.0.1:${port}`, sameSiteUrl: `http://localhost:${port}` })
  }))
}

const widgetFrame = async (page: Page): Promise<Frame> => {
  await page.evaluate(() => (window as unknown as { tabmesh: { widget: Promise<unknown> } }).tabmesh.widget)
  const frame = page.frames().find((f) => f.url().includes('/src/embed/frame.html'))
  if (!frame) throw new Error('no tabmesh iframe')
  return frame
}
type WidgetEngine = Pick<TabmeshEngine, 'status' | 'contribute'>
const widget = <T>(page: Page, fn: (engine: WidgetEngine, arg: unknown) => Promise<T>, arg?: unknown) =>
  page.evaluate(async ([source, a]) => {
    const engine = await (window as unknown as { tabmesh: { widget: Promise<WidgetEngine> } }).tabmesh.widget
    // eslint-disable-next-line no-new-func
    return (new Function(`return (${source})`)() as (e: WidgetEngine, x: unknown) => Promise<T>)(engine, a)
  }, [fn.toString(), arg] as const)

test.beforeAll(async () => {
  expect(isolatedNetwork(), 'run this suite with `npm run e2e:embed` (a network namespace with no way out)').toBe(true)
  const siteDir = process.env.TABMESH_SITE_DIR ?? mkdtempSync(join(tmpdir(), 'tabmesh-embed-site-'))
  const built = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '-c', 'lab/vite.embed.config.ts', '--outDir', siteDir, '--emptyOutDir', '--logLevel', 'warn'], { cwd: ROOT, encoding: 'utf8' })
  if (built.status !== 0) throw new Error(`vite build failed:\n${built.stdout}\n${built.stderr}`)
  relay = await startRelayProcess(siteDir)
  host = await startHostServer(hostPages(relay.url))
})
test.afterEach(({}, testInfo) => saveLogsAndClose(tabs, testInfo))
test.afterAll(async () => {
  await relay?.kill()
  host?.server.close()
})

test('embed.js is one classic script that adds only window.tabmesh', async () => {
  const source = await (await fetch(new URL('embed.js', relay.url))).text()
  expect(source).not.toMatch(/^\s*(import|export)\b/m)
  const t = await openPage(`${host.url}/contribute.html`)
  await widgetFrame(t.page)
  const added = await t.page.evaluate(() => {
    const probe = document.createElement('iframe')
    document.body.append(probe)
    const fresh = new Set(Object.getOwnPropertyNames(probe.contentWindow))
    probe.remove()
    return Object.getOwnPropertyNames(window).filter((k) => !fresh.has(k) && !/^\d+$/.test(k)) // minus window[0], the widget
  })
  expect(added).toEqual(['tabmesh'])
})

test('contribute mode joins the swarm only after a click inside the widget', async () => {
  const observer = await headless()
  await observer.call('join')
  const t = await openPage(`${host.url}/contribute.html`)
  const frame = await widgetFrame(t.page)
  // the host page asks; that alone starts nothing
  expect(await widget(t.page, (e) => e.contribute({ enabled: true }))).toEqual({ state: 'awaiting-click' })
  // and it cannot reach into the iframe to click for the visitor
  expect(await t.page.evaluate(() => document.querySelector<HTMLIFrameElement>('iframe[data-tabmesh]')!.contentDocument)).toBeNull()
  await t.page.waitForTimeout(3000)
  expect(await widget(t.page, (e) => e.status())).toMatchObject({ joined: false, contribution: { state: 'awaiting-click' } })
  expect((await observer.call('peers')).filter((p) => p.hosted.length > 0)).toEqual([])

  await frame.getByRole('button', { name: 'Click to contribute' }).click()
  await expect.poll(() => widget(t.page, (e) => e.status()).then((s) => s.contribution.state), { timeout: 60_000 }).toMatch(/contributing|failed/)
  const status = await widget(t.page, (e) => e.status())
  expect(status).toMatchObject({ joined: true, contribution: { state: 'contributing', modelId: 'stories260K' } })
  await expect.poll(() => observer.call('peers').then((ps) => ps.find((p) => p.peerId === status.contribution.peerId)?.hosted), { timeout: 30_000 })
    .toEqual([expect.objectContaining({ modelId: 'stories260K', layers: status.contribution.layers })])
  await expect(frame.getByRole('button', { name: 'Stop contributing' })).toBeVisible()
})

test('chat mode streams the golden reply through contributors in other browsers; the host cannot read tabmesh storage', async () => {
  await contributor(0, 2)
  await contributor(2, 5)
  // same-site, so the browser gives the iframe storage at all (cross-site it may block third-party storage; see the README)
  const t = await openPage(`${host.sameSiteUrl}/chat.html`)
  const frame = await widgetFrame(t.page)
  const output = frame.locator('.output')
  const lengths: number[] = []
  const watch = setInterval(() => void output.textContent().then((s) => lengths.push(s?.length ?? 0), () => {}), 20)
  await frame.getByRole('button', { name: 'Send' }).click()
  await expect(output).toHaveAttribute('data-state', 'done', { timeout: 120_000 })
  clearInterval(watch)
  expect(await output.textContent()).toBe(goldenText)
  // streamed: the reply was seen part-written
  expect(lengths.some((n) => n > 0 && n < goldenText.length)).toBe(true)

  // the model cache and the identity are the iframe's...
  const inFrame = await frame.evaluate(async () => ({ caches: await caches.keys(), databases: (await indexedDB.databases()).map((d) => d.name) }))
  expect(inFrame.caches).toContain('tabmesh-models-v1')
  expect(inFrame.databases).toContain('tabmesh-identity')
  // ...and out of the host page's reach
  const fromHost = await t.page.evaluate(async () => {
    const iframe = document.querySelector<HTMLIFrameElement>('iframe[data-tabmesh]')!
    const attempt = (f: () => unknown) => { try { f(); return 'read' } catch (e) { return (e as Error).name } }
    return {
      caches: await caches.keys(),
      databases: (await indexedDB.databases()).map((d) => d.name),
      frameDocument: iframe.contentDocument === null ? 'null' : 'readable',
      frameIndexedDB: attempt(() => (iframe.contentWindow as unknown as { indexedDB: IDBFactory }).indexedDB.databases()),
      frameCaches: attempt(() => (iframe.contentWindow as unknown as { caches: CacheStorage }).caches.keys()),
    }
  })
  expect(fromHost).toEqual({ caches: [], databases: [], frameDocument: 'null', frameIndexedDB: 'SecurityError', frameCaches: 'SecurityError' })
})

test('the OpenAI-style API works from the host page\'s own script', async () => {
  await contributor(0, 3)
  await contributor(3, 5)
  const reference = await headless()
  const expectedReply = (await reference.call('generate', { prompt: 'Once upon a time', maxTokens: 20, temperature: 0, topP: 1, seed: 1, backend: 'ref' })).text
  const t = await openPage(`${host.url}/api.html`)
  const out = await t.page.evaluate((r) => (window as unknown as { hostDemo(r: string): Promise<any> }).hostDemo(r), relay.url) // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(out.streamed.text).toBe(goldenText)
  expect(out.streamed.count).toBeGreaterThan(10)
  expect(out.streamed.finish).toBe('length')
  expect(out.streamed.usage).toMatchObject({ prompt_tokens: 1, completion_tokens: 64, total_tokens: 65 })
  // greedy replies draft by prompt lookup: usage says how many drafts were accepted (the text is plain decoding's)
  expect(out.streamed.usage.extra).toMatchObject({ draft_tokens: expect.any(Number), draft_acceptance_rate: expect.any(Number) })
  expect(out.streamed.usage.extra.cached).toBeUndefined()
  // the same greedy request again: answered from the tab's reply cache, without the swarm
  expect(out.again.text).toBe(goldenText)
  expect(out.again.usage.extra.cached).toBe(true)
  expect(out.reply).toMatchObject({ object: 'chat.completion', model: 'stories260K', choices: [{ index: 0, message: { role: 'assistant', content: expectedReply }, finish_reason: 'length' }] })
  expect(out.interrupted.finish).toBe('abort')
  expect(out.interrupted.usage.completion_tokens).toBeLessThan(300)
  expect(out.lastMessage).toBe(out.interrupted.text)
  expect(out.status).toMatchObject({ model: 'stories260K', engine: 'tabmesh', joined: true, contribution: { state: 'off' } })
})

test('a hostile host page posting malformed or oversized messages gets errors back, not crashes', async () => {
  const t = await openPage(`${host.url}/hostile.html`)
  const frame = await widgetFrame(t.page)
  const out = await t.page.evaluate(() => (window as unknown as { hostile(): Promise<{ sent: number; replies: { type: string; id: string | null; code: string; message: string }[] }> }).hostile())
  expect(out.replies).toHaveLength(out.sent)
  for (const r of out.replies) {
    expect(r.type).toBe('error')
    expect(['protocol', 'bad-argument']).toContain(r.code)
  }
  const byId = Object.fromEntries(out.replies.filter((r) => r.id).map((r) => [r.id, r]))
  expect(byId.p4.message).toMatch(/larger than/)
  expect(byId.p5.message).toMatch(/larger than/)
  expect(byId.p8.message).toMatch(/sneaky/)
  expect(byId.p10.message).toMatch(/binary/)
  // the iframe still works: it answers, still waits for a click, and chats (whole model in the iframe here)
  expect(await widget(t.page, (e) => e.status())).toMatchObject({ joined: false, contribution: { state: 'off' } })
  await frame.getByRole('button', { name: 'Send' }).click()
  await expect(frame.locator('.output')).toHaveAttribute('data-state', 'done', { timeout: 60_000 })
  const reply = (await frame.locator('.output').textContent())!
  expect(reply.length).toBeGreaterThan(20)
  expect(goldenText.startsWith(reply)).toBe(true)
  expect(t.log.filter((l) => l.startsWith('pageerror'))).toEqual([])
})

test('the widget loads in a host page that is cross-origin isolated itself (COEP require-corp)', async () => {
  const t = await openPage(`${host.url}/coep.html`)
  expect(await t.page.evaluate(() => crossOriginIsolated)).toBe(true)
  const frame = await widgetFrame(t.page)
  await expect(frame.getByRole('button', { name: 'Contribute' })).toBeVisible()
})
