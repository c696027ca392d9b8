import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { TabmeshError } from '../../core/errors.ts'
import type { HeadlessApi } from '../../cli-tab/main.ts'
import { CHROMIUM_PATH, chromiumLaunchOptions } from '../chromium.ts'
import { PROJECT_ROOT, resolveModelsDir, scanModels } from '../models-dir.ts'
import { onForcedStop } from './lifetime.ts'
import { startHttpServer } from '../relay/http-server.ts'

/**
 * The CLI's browser half: headless Chromium on the site's headless page (src/cli-tab), driven
 * through page.evaluate. Each tab gets its own browser context, so its own identity and caches.
 */
export interface HeadlessTab {
  readonly page: Page
  call<K extends keyof HeadlessApi>(name: K, ...args: Parameters<HeadlessApi[K]>): Promise<Awaited<ReturnType<HeadlessApi[K]>>>
}

export interface HeadlessBrowser {
  open(): Promise<HeadlessTab>
  close(): Promise<void>
}

/** Errors thrown in the page arrive as "page.evaluate: TabmeshError: <message>": keep the message. */
function pageError(err: unknown): Error {
  if (err instanceof TabmeshError) return err
  const message = (err as Error).message.split('\n')[0].replace(/^page\.evaluate: (\w*Error: )*/, '')
  return new TabmeshError('backend', message)
}

export async function launchHeadless(siteUrl: string): Promise<HeadlessBrowser> {
  if (!existsSync(CHROMIUM_PATH)) throw new TabmeshError('bad-argument', `no Chromium at ${CHROMIUM_PATH}; install it (apt-get install chromium) or set TABMESH_CHROMIUM`)
  // Signals are ours (lifetime.ts): Playwright's own handlers would close the browser under a
  // contributor that is still leaving the swarm, or exit before it has.
  const browser: Browser = await chromium.launch({ ...chromiumLaunchOptions, handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false })
  const unregister = onForcedStop(() => browser.close())
  return {
    async open() {
      const page = await (await browser.newContext()).newPage()
      page.on('console', (m) => { if (process.env.TABMESH_DEBUG) console.error(`[page] ${m.text()}`) })
      await page.goto(new URL('src/cli-tab/index.html', siteUrl).toString())
      await page.waitForSelector('body[data-ready="true"]', { state: 'attached', timeout: 30_000 })
      return {
        page,
        call: (name, ...args) => page.evaluate(([n, a]) => (window as unknown as { tabmeshHeadless: Record<string, (...x: unknown[]) => unknown> }).tabmeshHeadless[n as string](...(a as unknown[])), [name, args] as const).catch((err) => { throw pageError(err) }) as never,
      }
    },
    close: async () => {
      unregister()
      await browser.close()
    },
  }
}

/**
 * Runs `work` on a headless tab. The site comes from `siteUrl` (a running tabmesh server) or, when
 * none is given, from a server started here over the built site and the models directory.
 */
export async function withHeadlessTab<T>(options: { siteUrl?: string; modelsDir?: string; siteDir?: string }, work: (tab: HeadlessTab) => Promise<T>): Promise<T> {
  let stopServer = async () => {}
  let siteUrl = options.siteUrl
  if (!siteUrl) {
    const siteDir = options.siteDir ?? process.env.TABMESH_SITE_DIR ?? join(PROJECT_ROOT, 'dist')
    if (!existsSync(join(siteDir, 'src/cli-tab/index.html'))) throw new TabmeshError('bad-argument', `${siteDir} holds no built site; run \`npm run build\` first`)
    const modelsDir = resolveModelsDir(options.modelsDir)
    const { server, url } = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir, modelsDir, registry: { models: await scanModels(modelsDir) } })
    siteUrl = url
    stopServer = async () => { server.closeAllConnections(); server.close() }
  }
  let browser: HeadlessBrowser | undefined
  try {
    browser = await launchHeadless(siteUrl)
    return await work(await browser.open())
  } finally {
    await browser?.close().catch(() => {})
    await stopServer()
  }
}
