/**
 * Shared by the mesh e2e suite and the mesh benchmark: build the mesh lab page, run the relay
 * process, and launch browser peers, each in its own Chromium process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium, type Browser, type BrowserContextOptions, type LaunchOptions, type Page } from 'playwright-core'
import type { HeadlessApi } from '../src/cli-tab/main.ts'
import { chromiumLaunchOptions } from './chromium.ts'
import type { MeshLabStartOptions } from './pages/mesh.ts'

export const ROOT = resolve(import.meta.dirname, '..')

/** Builds the mesh lab page into $TABMESH_SITE_DIR (or a fresh temp dir); returns the dir. */
export function buildMeshSite(): string {
  const outDir = process.env.TABMESH_SITE_DIR ?? mkdtempSync(join(tmpdir(), 'tabmesh-mesh-site-'))
  if (!process.env.TABMESH_SITE_DIR) process.once('exit', () => rmSync(outDir, { recursive: true, force: true }))
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'lab/vite.mesh.config.ts', '--outDir', outDir, '--logLevel', 'warn'], { cwd: ROOT, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`vite build failed:\n${r.stdout}\n${r.stderr}`)
  return outDir
}

export interface RelayProcess {
  url: string
  peerId: string
  multiaddrs: string[]
  process: ChildProcess
  /** SIGKILLs the relay (as a crash would) and waits for it to exit. */
  kill(): Promise<void>
}

/** The relay's ports, from its url and first multiaddr (to start another one on the same ports). */
export function relayPorts(relay: Pick<RelayProcess, 'url' | 'multiaddrs'>): { port: number; relayPort: number } {
  return { port: Number(new URL(relay.url).port), relayPort: Number(/\/tcp\/(\d+)\//.exec(relay.multiaddrs[0])![1]) }
}

/**
 * Starts the relay process (site and libp2p relay) on free ports, or on `ports` (a relay started
 * again where a killed one ran). It makes a new identity each time, as `tabmesh start` does.
 */
export async function startRelayProcess(siteDir: string, ports?: { port: number; relayPort: number }, env: Record<string, string> = {}): Promise<RelayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lab/mesh-server.ts')], {
    // stdin stays open as a lifeline: the relay exits when this process dies
    cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TABMESH_SITE_DIR: siteDir, ...(ports ? { TABMESH_E2E_PORT: String(ports.port), TABMESH_RELAY_PORT: String(ports.relayPort) } : {}), ...env },
  })
  const line = await new Promise<string>((resolveLine, reject) => {
    const rl = createInterface({ input: child.stdout! })
    rl.once('line', resolveLine)
    child.once('exit', (code) => reject(new Error(`relay exited with ${code} before it was ready`)))
  })
  const info = JSON.parse(line) as { url: string; peerId: string; multiaddrs: string[] }
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  return {
    ...info,
    process: child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

export interface BrowserPeer {
  browser: Browser
  /** The peer's own Chromium process (SIGKILL it to crash the tab). */
  process: ChildProcess
  page: Page
  peerId: string
  /** Console lines of the page, for diagnosing failures. */
  console: string[]
  close(): Promise<void>
}

export interface ChromiumProcess {
  browser: Browser
  process: ChildProcess
  close(): Promise<void>
}

/** Starts a Chromium process of its own (launchServer, so the test can get at the process). */
export async function launchChromiumProcess(launch: LaunchOptions = chromiumLaunchOptions): Promise<ChromiumProcess> {
  const server = await chromium.launchServer(launch)
  const browser = await chromium.connect(server.wsEndpoint())
  return {
    browser,
    process: server.process(),
    async close() {
      await browser.close().catch(() => {})
      await server.close().catch(() => {})
    },
  }
}

/**
 * Opens the mesh lab page in `chromium` and starts its node: by the driver after load, or with
 * `autostart` by the page itself at load (so timings from navigation include no driver round trip).
 */
export async function openMeshPeer(chromiumProcess: ChromiumProcess, siteUrl: string, options: MeshLabStartOptions = {}, autostart = false): Promise<BrowserPeer> {
  const context = await chromiumProcess.browser.newContext()
  const page = await context.newPage()
  const lines: string[] = []
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`))
  const url = new URL('lab/pages/mesh.html', siteUrl)
  if (autostart) url.searchParams.set('autostart', JSON.stringify(options))
  await page.goto(url.toString())
  await page.waitForFunction(() => window.meshLab !== undefined)
  const { peerId } = autostart
    ? ((await page.evaluate(() => (window as unknown as { meshLabStarted: Promise<unknown> }).meshLabStarted)) as { peerId: string })
    : await page.evaluate((o) => window.meshLab.start(o), options)
  return { browser: chromiumProcess.browser, process: chromiumProcess.process, page, peerId, console: lines, close: () => chromiumProcess.close() }
}

/** Launches a Chromium process, opens the mesh lab page and starts its node. */
export async function launchPeer(siteUrl: string, options: MeshLabStartOptions = {}): Promise<BrowserPeer> {
  return openMeshPeer(await launchChromiumProcess(), siteUrl, options)
}

/** Whether this process runs in a network namespace whose only interface is loopback. */
export function loopbackOnly(): boolean {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
  const links = r.stdout.split('\n').filter((l) => l.trim() !== '')
  return links.length === 1 && /: lo:/.test(links[0])
}

export interface RogueReport {
  peerId: string
  marker: string
  sent: Record<string, number>
  process: ChildProcess
  stderr: string[]
}

/** Runs the rogue peer against the tabs; resolves once it has sent everything. */
export async function runRogue(relayAddr: string, tabAddrs: string[]): Promise<RogueReport> {
  const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', '--import', 'tsx', join(ROOT, 'lab/mesh-rogue.ts'), relayAddr, ...tabAddrs], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], // stdin: lifeline, as for the relay
  })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l))
  const line = await new Promise<string>((resolveLine, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolveLine)
    child.once('exit', (code) => reject(new Error(`rogue exited with ${code}:\n${stderr.join('\n')}`)))
  })
  return { ...(JSON.parse(line) as Omit<RogueReport, 'process' | 'stderr'>), process: child, stderr }
}

export interface LoggedPage {
  chromium: ChromiumProcess
  page: Page
  /** The page's console lines and errors, written out when a test fails. */
  log: string[]
  close(): Promise<void>
}

/** Opens `url` in a Chromium process of its own, keeping the page's console for failure reports. */
export async function openLoggedPage(url: string, contextOptions: BrowserContextOptions = {}, launch: LaunchOptions = chromiumLaunchOptions): Promise<LoggedPage> {
  const process = await launchChromiumProcess(launch)
  const page = await (await process.browser.newContext(contextOptions)).newPage()
  const log: string[] = []
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`))
  await page.goto(url)
  return { chromium: process, page, log, close: () => process.close() }
}

/** After a test: the pages' console logs into the test's output folder when it failed (`name`-i.log), then every page closed and the list emptied. */
export async function saveLogsAndClose(pages: Pick<LoggedPage, 'log' | 'close'>[], testInfo: { status?: string; expectedStatus: string; outputPath(name: string): string }, name = 'tab'): Promise<void> {
  if (testInfo.status !== testInfo.expectedStatus) {
    for (const [i, t] of pages.entries()) writeFileSync(testInfo.outputPath(`${name}-${i}.log`), t.log.join('\n'))
  }
  await Promise.all(pages.splice(0).map((t) => t.close()))
}

/** Calls the headless page's API (src/cli-tab/main.ts) in `page`. */
export const headlessCall = (page: Page) =>
  <K extends keyof HeadlessApi>(name: K, ...args: Parameters<HeadlessApi[K]>): Promise<Awaited<ReturnType<HeadlessApi[K]>>> =>
    page.evaluate(([n, a]) => (window as unknown as { tabmeshHeadless: Record<string, (...x: unknown[]) => unknown> }).tabmeshHeadless[n as string](...(a as unknown[])), [name, args] as const) as never
