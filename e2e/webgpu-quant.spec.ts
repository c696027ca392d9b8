import { expect, test, type Page } from '@playwright/test'

/**
 * The quantized matvec kernels (shaders/matvec_q8_0.wgsl, matvec_q4_0.wgsl) in real Chromium
 * (SwiftShader here), each against quant.ts's quantizedMatvec twin on fresh random inputs. The lab
 * page (e2e/pages/webgpu-quant-checks.ts) quantizes, uploads the blocks as they are and compares.
 */

async function openLab(page: Page): Promise<void> {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto('/e2e/pages/webgpu.html')
  await page.waitForFunction(() => 'webgpuLab' in window)
  expect(errors).toEqual([])
}

// Output rows that are not multiples of the 64-row workgroup or the 8-row group; an odd number of
// blocks per row (rows then start half a word into the buffer); several input vectors; weights split
// across bindings; one wide shape (k = 2048, n = 1000).
const SHAPES = [
  { rows: 1, n: 37, k: 32 },
  { rows: 1, n: 517, k: 96 },
  { rows: 3, n: 130, k: 160, splits: 2 },
  { rows: 1, n: 1000, k: 2048, splits: 3 },
  { rows: 2, n: 65, k: 1056 },
]

for (const type of ['q8_0', 'q4_0'] as const) {
  test(`kernel matvec_${type} matches the quantizedMatvec twin`, async ({ page }) => {
    await openLab(page)
    for (const shape of SHAPES) {
      const seed = Math.floor(Math.random() * 2 ** 31) // fresh inputs every run; the seed is in the message
      const r = await page.evaluate(([t, s, seed]) => window.webgpuLab.checkQuantKernel(t, s, seed), [type, shape, seed] as const)
      const what = `${type} ${JSON.stringify(shape)} seed ${seed}: ${r.metric} = ${r.maxError}`
      // tolerance 1e-5: fp32 summation-order differences only (the GPU adds blocks in another order)
      expect(r.maxError, what).toBeLessThanOrEqual(r.tolerance)
      expect(r.maxAbsRef, what).toBeGreaterThan(0)
      // the kernel was bound to the blocks themselves: 34 or 18 bytes per 32 weights
      expect(r.weightBytes).toBe((shape.n * shape.k / 32) * (type === 'q8_0' ? 34 : 18))
    }
  })
}
