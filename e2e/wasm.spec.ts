import { expect, test, type Page } from '@playwright/test'
import { CHROMIUM_ARGS, chromiumLaunchOptions } from '../lab/chromium.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

// The WASM engine in real Chromium, on the built site (cross-origin isolated, so onnxruntime-web
// runs its threads), driven through the lab page lab/pages/wasm.html.
const goldenIds = readGolden()

// precise heap numbers and window.gc for the allocation check
test.use({ launchOptions: { ...chromiumLaunchOptions, args: [...CHROMIUM_ARGS, '--enable-precise-memory-info', '--js-flags=--expose-gc'] } })

/** Same bound as the Node tests: max |wasm - ref| over max |ref|. */
const HIDDEN_TOLERANCE = 1e-5

let page: Page
const errors: string[] = []

test.describe.configure({ mode: 'serial' })

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage()
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto('/lab/pages/wasm.html')
  await page.waitForFunction(() => 'wasmLab' in window)
})

test.afterAll(async () => {
  await page.close()
  expect(errors).toEqual([])
})

test('onnxruntime-web loads offline from the site, with SIMD and a thread per core', async () => {
  const failed: string[] = []
  page.on('requestfailed', (r) => failed.push(r.url()))
  const info = await page.evaluate(() => window.wasmLab.init())
  expect(info.crossOriginIsolated).toBe(true)
  expect(info.simd).toBe(true)
  expect(info.ortThreads).toBe(info.hardwareConcurrency)
  expect(info.ortThreads).toBeGreaterThan(1)
  // the engine runs, which needs the .wasm file, served by the site itself
  expect(await page.evaluate(() => window.wasmLab.generate('stories260K', 'wasm', [1], 4))).toHaveLength(4)
  // the Emscripten glue (also the pthread workers' script) and the binary, both from the site
  const ortFiles = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => /ort-wasm-simd-threaded.*\.(wasm|mjs)$/.test(n)))
  expect(ortFiles.some((u) => u.endsWith('.mjs')) && ortFiles.some((u) => u.endsWith('.wasm'))).toBe(true)
  for (const url of ortFiles) expect(new URL(url).origin).toBe(new URL(page.url()).origin)
  expect(failed).toEqual([])
})

test('greedy output equals GOLDEN.md on stories260K', async () => {
  const ids = await page.evaluate(() => window.wasmLab.generate('stories260K', 'wasm', [1], 64))
  expect([1, ...ids]).toEqual(goldenIds)
})

test('greedy output equals the reference on the synthetic model with a separate classifier', async () => {
  const prompt = [1, 40, 7, 300, 12]
  const ref = await page.evaluate((p) => window.wasmLab.generate('separateClassifier', 'ref', p, 80), prompt)
  expect(ref.length).toBeGreaterThan(40)
  expect(await page.evaluate((p) => window.wasmLab.generate('separateClassifier', 'wasm', p, 80), prompt)).toEqual(ref)
})

test('layers [0, 2) on wasm and [2, 5) on the reference generate what the reference does', async () => {
  const prompt = [1, 403, 407, 261, 378]
  const ref = await page.evaluate((p) => window.wasmLab.generate('stories260K', 'ref', p, 100), prompt)
  expect(await page.evaluate((p) => window.wasmLab.generate('stories260K', 'wasm+ref', p, 100), prompt)).toEqual(ref)
})

test(`hidden states and logits stay within ${HIDDEN_TOLERANCE} (relative) of the reference on random prompts`, async () => {
  for (const name of ['stories260K', 'separateClassifier']) {
    const err = await page.evaluate((n) => window.wasmLab.hiddenError(n, 3, 7), name)
    expect(err.hidden).toBeLessThan(HIDDEN_TOLERANCE)
    expect(err.logits).toBeLessThan(HIDDEN_TOLERANCE)
  }
})

test(`Q8_0 / Q4_0 weights run on the SIMD kernels: greedy ids equal the reference on the same blocks, hidden states within ${HIDDEN_TOLERANCE}`, async () => {
  for (const name of ['stories260K-q8_0', 'multiHead-q4_0']) {
    const ref = await page.evaluate((n) => window.wasmLab.generate(n, 'ref', [1, 5, 9], 48), name)
    expect(ref).toHaveLength(48)
    expect(await page.evaluate((n) => window.wasmLab.generate(n, 'wasm', [1, 5, 9], 48), name)).toEqual(ref)
    const err = await page.evaluate((n) => window.wasmLab.hiddenError(n, 2, 9), name)
    expect(err.hidden).toBeLessThan(HIDDEN_TOLERANCE)
    expect(err.logits).toBeLessThan(HIDDEN_TOLERANCE)
  }
})

test('in a worker, the SIMD kernels split large products over helper threads and give the bits one thread gives', async () => {
  for (const name of ['llama15M-q8_0', 'llama15M-q4_0']) {
    const r = await page.evaluate((n) => window.wasmLab.inWorker('kernel-threads').kernelThreads(n, 8), name)
    console.log(`${name}: ${r.threads} threads, ${r.msPerToken.all.toFixed(1)} ms/token; 1 thread ${r.msPerToken.one.toFixed(1)} ms/token`)
    expect(r.threads).toBe(Math.min(4, r.hardwareConcurrency))
    expect(r.threads).toBeGreaterThan(1)
    expect(r.ids).toHaveLength(8)
    expect(r.identical).toBe(true)
  }
  await page.evaluate(() => window.wasmLab.closeWorker('kernel-threads'))
})

test('a prompt read in one batch matches one position at a time', async () => {
  const prompt = Array.from({ length: 48 }, (_, i) => (i * 37 + 5) % 512)
  expect(await page.evaluate((p) => window.wasmLab.batchedVsStepwise('stories260K', p), prompt)).toBeLessThan(HIDDEN_TOLERANCE)
})

test('heap sizes stay flat over 200 tokens', async () => {
  const heap = await page.evaluate(() => window.wasmLab.heapOverTokens('stories260K', 200))
  expect(heap.generated).toBe(200)
  expect(heap.wasmBefore).toBeGreaterThan(0)
  expect(heap.wasmAfter).toBe(heap.wasmBefore)
  expect(heap.jsAfter - heap.jsBefore).toBeLessThan(1 << 20)
})
