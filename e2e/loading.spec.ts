import { expect, test, type Page } from '@playwright/test'
import { LAYER_TENSORS, elementCount, layerTensorShape } from '../src/model/model.ts'
import type { HeadlessApi } from '../src/cli-tab/main.ts'

// A contributor's slice: Range requests checked against the registry's part hashes, kept in Cache Storage.
const call = <K extends keyof HeadlessApi>(page: Page, name: K, ...args: Parameters<HeadlessApi[K]>) =>
  page.evaluate(([n, a]) => (window as unknown as { tabmeshHeadless: Record<string, (...x: unknown[]) => unknown> }).tabmeshHeadless[n as string](...(a as unknown[])), [name, args] as const) as Promise<Awaited<ReturnType<HeadlessApi[K]>>>

const STORIES = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headSize: 8, kvDim: 32 } as Parameters<typeof layerTensorShape>[0]
const layerBytes = LAYER_TENSORS.reduce((n, t) => n + elementCount(layerTensorShape(STORIES, t)) * 4, 0)

test.beforeEach(async ({ page }) => {
  await page.goto('/src/cli-tab/index.html')
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  await page.evaluate(() => caches.delete('tabmesh-models-v1'))
})

test('a slice is downloaded once; a reload reads it from Cache Storage with no network', async ({ page }) => {
  const ranges: string[] = []
  page.on('request', (r) => { if (r.url().includes('stories260K.bin')) ranges.push(r.headers().range ?? 'none') })
  const first = await call(page, 'load', { layers: { start: 1, end: 3 }, backend: 'ref' })
  expect(first.bytesDownloaded).toBe(28 + 2 * layerBytes) // the header and exactly layers [1, 3)
  expect(ranges.every((r) => r.startsWith('bytes='))).toBe(true)
  await page.reload()
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' })
  ranges.length = 0
  const second = await call(page, 'load', { layers: { start: 1, end: 3 }, backend: 'ref' })
  expect(second).toMatchObject({ bytesDownloaded: 0, bytesFromCache: 28 + 2 * layerBytes })
  expect(ranges).toEqual([])
})

test('corrupt bytes are refused against the registry hash and leave nothing in the cache', async ({ page }) => {
  await page.route('**/models/stories260K/stories260K.bin', async (route) => {
    const response = await route.fetch()
    const body = Buffer.from(await response.body())
    if (body.length > 100) body[body.length - 7] ^= 0x40 // flip one bit inside the weights
    await route.fulfill({ response, body })
  })
  await expect(call(page, 'load', { layers: { start: 0, end: 2 }, backend: 'ref' })).rejects.toThrow(/layer\.\d of stories260K does not match the registry/)
  expect(await page.evaluate(async () => (await (await caches.open('tabmesh-models-v1')).keys()).length)).toBe(0)
  await page.unroute('**/models/stories260K/stories260K.bin')
  const clean = await call(page, 'load', { layers: { start: 0, end: 2 }, backend: 'ref' })
  expect(clean.bytesDownloaded).toBe(28 + 2 * layerBytes) // downloaded again, not served from a poisoned cache
})
