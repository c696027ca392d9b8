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

// The engine on quantized weights (GGUF written by the project, loaded with keepQuantized) against
// the reference engine on the same weights dequantized: the only difference left is fp32 summation
// order, so greedy ids are equal and logits agree to 1e-4 of the largest logit.
const ENGINE_RUNS = [
  // stories260K: wq..wo, w1, w3 quantized (w2's rows of 172 are not whole blocks and stay fp32; tied classifier fp32)
  { model: 'stories260K', type: 'Q8_0', engine: {} },
  { model: 'stories260K', type: 'Q4_0', engine: { maxBindingBytes: 4096 } }, // blocks split across bindings
  // every matrix quantized, the separate classifier too
  { model: 'quantSynthetic', type: 'Q8_0', engine: { maxBindingBytes: 2000 } },
  { model: 'quantSynthetic', type: 'Q4_0', engine: {} },
] as const

for (const run of ENGINE_RUNS) {
  test(`webgpu engine on ${run.type} ${run.model}${'maxBindingBytes' in run.engine ? ' (split bindings)' : ''}: equals the reference on the dequantized weights; weight memory stays at the quantized size`, async ({ page }) => {
    test.setTimeout(180_000)
    await openLab(page)
    const seed = Math.floor(Math.random() * 2 ** 31)
    const r = await page.evaluate(([run, seed]) => window.webgpuLab.quantizedEngine({
      model: run.model, type: run.type, prompt: [1, 403, 407, 261], maxTokens: 40, rowsPerCall: [9, 1, 1, 5], seed, engine: run.engine,
    }), [run, seed] as const)
    expect(r.quantizedMatrices).toBeGreaterThan(0)
    expect(r.greedy.webgpu.length).toBeGreaterThan(10)
    expect(r.greedy.webgpu).toEqual(r.greedy.reference)
    expect(r.teacherForced.maxLogitDiff, `seed ${seed}`).toBeLessThanOrEqual(1e-4 * Math.max(1, r.teacherForced.maxLogit))
    expect(r.teacherForced.argmaxMismatches, `seed ${seed}`).toBe(0)
    const m = r.memory
    if (!('maxBindingBytes' in run.engine)) {
      // counted at the device: the quantized engine creates exactly the fp32 matrices' bytes minus the blocks' bytes less
      expect(m.f32EngineBytes - m.quantizedEngineBytes).toBe(m.expectedSaving)
      expect(m.f32WeightBytes - m.quantizedWeightBytes).toBe(m.expectedSaving)
    }
    // and the blocks are 34/128 (Q8_0) or 18/128 (Q4_0) of the fp32 bytes they replace
    expect(m.blockBytes).toBeLessThan(m.expectedSaving / 2)
  })
}
