import { expect, test, type Page } from '@playwright/test'

/**
 * The quantized kernels (shaders/matvec_q8_0.wgsl, matvec_q4_0.wgsl for decode, matmul_q8_0.wgsl,
 * matmul_q4_0.wgsl for prefill) in real Chromium (SwiftShader here), each against the reference's
 * quantizedMatvec twin (per row) on fresh random inputs. The lab page (lab/pages/webgpu-quant-checks.ts)
 * quantizes, uploads the blocks as they are and compares.
 */

async function openLab(page: Page): Promise<void> {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto('/lab/pages/webgpu.html')
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

// matmul (prefill): 1, 7 and 64 rows (odd row counts leave the 64-row tile part empty), output rows
// not multiples of the 64-wide tile, odd numbers of blocks per row, weights split across bindings.
const MATMUL_SHAPES = [
  { rows: 1, n: 37, k: 32 },
  { rows: 7, n: 130, k: 160, splits: 2 },
  { rows: 64, n: 200, k: 96 },
  { rows: 64, n: 1000, k: 1056, splits: 3 },
  { rows: 13, n: 65, k: 2048 },
]

for (const [kernel, shapes] of [['matvec', SHAPES], ['matmul', MATMUL_SHAPES]] as const) for (const type of ['q8_0', 'q4_0'] as const) {
  test(`kernel ${kernel}_${type} matches the quantizedMatvec twin`, async ({ page }) => {
    await openLab(page)
    for (const shape of shapes) {
      const seed = Math.floor(Math.random() * 2 ** 31) // fresh inputs every run; the seed is in the message
      const r = await page.evaluate(([t, s, seed, k]) => window.webgpuLab.checkQuantKernel(t, s, seed, k), [type, shape, seed, kernel] as const)
      const what = `${kernel} ${type} ${JSON.stringify(shape)} seed ${seed}: ${r.metric} = ${r.maxError}`
      // tolerance 1e-5: fp32 summation-order differences only (the GPU adds blocks in another order;
      // measured: below 3e-7 for both kernels)
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

// A slice whose every layer matrix and classifier are kept as blocks (quantizeTensor), read by the
// prefill kernels (matmul_q8_0 / q4_0, calls of 13 and 6 rows) and decode kernels, against the
// reference on dequantizeTensor of the same blocks: the weights are numerically identical, so the
// tolerance is tight, 2e-5 of the largest logit / hidden value (measured: about 1e-6).
const QUANT_FAMILY_RUNS = [
  { type: 'q8_0', bias: false, engine: {} },
  { type: 'q4_0', bias: false, engine: {} },
  // a quantized Qwen2-like slice: biases and llama3 scaling on top, blocks split across bindings
  { type: 'q4_0', bias: true, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 32 }, engine: { maxBindingBytes: 1000 } },
] as const

for (const run of QUANT_FAMILY_RUNS) {
  test(`${run.type} slice${run.bias ? ' with biases and llama3 scaling (split bindings)' : ''}: prefill of 13 rows and decode equal the reference on the dequantized weights`, async ({ page }) => {
    await openLab(page)
    const seed = Math.floor(Math.random() * 2 ** 31)
    const { type, ...o } = run
    const r = await page.evaluate(([o, type, seed]) => window.webgpuLab.family({ ...o, quant: type, prefillRows: [13, 6], decodeSteps: 8, greedyTokens: 16, seed }), [o, type, seed] as const)
    const what = `seed ${seed}`
    expect(r.quantizedMatrices).toBe(3 * 7 + 1)
    expect(r.prefill.rows).toBe(19)
    expect(r.prefill.maxHiddenDiff, what).toBeLessThanOrEqual(2e-5 * Math.max(1, r.prefill.maxHidden))
    const tolerance = 2e-5 * Math.max(1, r.prefill.maxLogit, r.decode.maxLogit)
    expect(r.prefill.maxLogitDiff, what).toBeLessThanOrEqual(tolerance)
    expect(r.decode.maxLogitDiff, what).toBeLessThanOrEqual(tolerance)
    expect(r.prefill.argmaxMismatches + r.decode.argmaxMismatches, what).toBe(0)
    expect(r.greedy.webgpu, what).toEqual(r.greedy.reference)
    if (run.bias) expect(r.withoutBias, what).toBeGreaterThan(100 * tolerance)
  })
}
