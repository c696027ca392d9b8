import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { chromiumLaunchOptions } from '../lab/chromium.ts'

/**
 * Opens a lab page (lab/pages/<name>.html) of a built site in headless Chromium, served by
 * `tabmesh start`, for benchmark scripts. TABMESH_SITE_DIR picks the built site (default dist-lab/, npm run build:lab),
 * TABMESH_BENCH_PORT the port (default 4399).
 */
export const PROJECT_ROOT = resolve(import.meta.dirname, '..')

export interface LabSession {
  page: Page
  close(): Promise<void>
}

export async function openLabPage(name: string): Promise<LabSession> {
  const siteDir = resolve(process.env.TABMESH_SITE_DIR ?? join(PROJECT_ROOT, 'dist-lab'))
  if (!existsSync(join(siteDir, 'lab/pages', `${name}.html`))) {
    throw new Error(`${siteDir} has no lab/pages/${name}.html: run \`npm run build:lab\` first (or set TABMESH_SITE_DIR to a built site)`)
  }
  const port = Number(process.env.TABMESH_BENCH_PORT ?? 4399)
  const server: ChildProcess = spawn(process.execPath, [join(PROJECT_ROOT, 'src/nodejs/cli/bin.mjs'), 'start', '--port', String(port), '--site-dir', siteDir, '--contributors', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let browser: Browser | undefined
  const close = async () => {
    await browser?.close()
    server.kill()
  }
  try {
    await new Promise<void>((ok, fail) => {
      server.once('exit', (code) => fail(new Error(`tabmesh start exited with ${code}`)))
      server.stdout!.on('data', (d: Buffer) => { if (String(d).includes('open ')) ok() })
    })
    browser = await chromium.launch(chromiumLaunchOptions)
    const page = await browser.newPage()
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`))
    await page.goto(`http://localhost:${port}/lab/pages/${name}.html`)
    await page.waitForFunction(`'${name}Lab' in window`)
    return { page, close }
  } catch (err) {
    await close()
    throw err
  }
}
