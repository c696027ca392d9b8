import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { TabmeshError } from '../errors.ts'
import type { HeadlessApi } from '../headless/main.ts'
import { CHROMIUM_PATH, chromiumLaunchOptions } from '../node/chromium.ts'
import { PROJECT_ROOT, resolveModelsDir, scanModels } from '../node/models-dir.ts'
import { startHttpServer } from '../relay/http-server.ts'

/**
 * Runs CLI work in headless Chromium: serves the built site and the models on a free loopback
 * port, opens the headless page (src/headless) and hands it to `work`.
 */
export async function withHeadlessPage<T>(options: { modelsDir?: string; siteDir?: string }, work: (page: Page, api: HeadlessApiHandle) => Promise<T>): Promise<T> {
  const siteDir = options.siteDir ?? process.env.TABMESH_SITE_DIR ?? join(PROJECT_ROOT, 'dist')
  if (!existsSync(join(siteDir, 'src/headless/index.html'))) throw new TabmeshError('bad-argument', `${siteDir} holds no built site; run \`npm run build\` first`)
  if (!existsSync(CHROMIUM_PATH)) throw new TabmeshError('bad-argument', `no Chromium at ${CHROMIUM_PATH}; install it (apt-get install chromium) or set TABMESH_CHROMIUM`)
  const modelsDir = resolveModelsDir(options.modelsDir)
  const { server, url } = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir, modelsDir, registry: { models: await scanModels(modelsDir) } })
  let browser: Browser | undefined
  try {
    browser = await chromium.launch(chromiumLaunchOptions)
    const page = await browser.newPage()
    await page.goto(`${url}src/headless/index.html`)
    await page.waitForSelector('body[data-ready="true"]')
    return await work(page, {
      generate: (request) => page.evaluate((r) => (window as unknown as { tabmeshHeadless: HeadlessApi }).tabmeshHeadless.generate(r), request),
    })
  } catch (err) {
    if (err instanceof TabmeshError) throw err
    // errors thrown in the page arrive as "page.evaluate: Error: <message>"
    const message = (err as Error).message.split('\n')[0].replace(/^page\.evaluate: (\w*Error: )*/, '')
    throw new TabmeshError('backend', message)
  } finally {
    await browser?.close()
    server.closeAllConnections()
    server.close()
  }
}

export interface HeadlessApiHandle {
  generate: HeadlessApi['generate']
}
