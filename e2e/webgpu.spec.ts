import { expect, test, type Page } from '@playwright/test'
import type { RopeScaling } from '../src/model/model.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * The WebGPU backend in real Chromium (SwiftShader here): every WGSL kernel against its TypeScript
 * twin on fresh random inputs, and whole-model output against the reference engine and GOLDEN.md.
 * The lab page (lab/pages/webgpu.ts) does the work; these tests choose shapes and check results.
 */

const goldenIds = readGolden().slice(1)

async function openLab(page: Page): Promise<void> {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto('/lab/pages/webgpu.html')
  await page.waitForFunction(() => 'webgpuLab' in window)
  expect(errors).toEqual([])
}

// Shapes: sizes that are not multiples of the tiles (matvec 8 rows x 64 lanes, matmul 64 x 64 x 16),
// weights split across several bindings, grouped-query heads, positions at the end of the context,
// attention split into chunks.
const KERNEL_SHAPES: Record<string, Record<string, number | boolean>[]> = {
  matvec: [
    { rows: 1, n: 37, k: 172 }, { rows: 1, n: 1000, k: 388, splits: 3 }, { rows: 3, n: 517, k: 68, splits: 2 }, { rows: 1, n: 2049, k: 1028 },
  ],
  matmul: [
    { rows: 5, n: 70, k: 100 }, { rows: 64, n: 130, k: 516, splits: 2 }, { rows: 63, n: 65, k: 12 }, { rows: 1, n: 64, k: 64 }, { rows: 33, n: 1000, k: 260, splits: 3 },
  ],
  rmsnorm: [{ rows: 1, dim: 48 }, { rows: 7, dim: 100 }, { rows: 64, dim: 1028 }],
  rope: [
    { rows: 1, width: 64, headSize: 8, seqLen: 512 }, { rows: 13, width: 48, headSize: 8, seqLen: 96 },
    { rows: 5, width: 16, headSize: 8, seqLen: 96 }, { rows: 64, width: 384, headSize: 128, seqLen: 2048 },
  ],
  swiglu: [{ count: 172 }, { count: 6401 }, { count: 64 * 1000 + 3 }],
  residualAdd: [{ count: 64 }, { count: 3001 }],
  biasAdd: [{ rows: 1, width: 48 }, { rows: 7, width: 100 }, { rows: 64, width: 1028 }],
  embedding: [{ vocab: 512, dim: 64, rows: 1 }, { vocab: 1000, dim: 48, rows: 64, splits: 3 }],
  argmax: [{ count: 3 }, { count: 512 }, { count: 32000, ties: true }],
  copy: [{ count: 4 }, { count: 100004 }],
  attentionDecode: [
    { rows: 1, nHeads: 8, nKvHeads: 4, headSize: 8, seqLen: 512, chunk: 256 },
    { rows: 1, nHeads: 6, nKvHeads: 2, headSize: 8, seqLen: 96, chunk: 16 },
    { rows: 3, nHeads: 12, nKvHeads: 3, headSize: 64, seqLen: 1000, chunk: 256 },
    { rows: 2, nHeads: 4, nKvHeads: 1, headSize: 128, seqLen: 300, chunk: 37 },
    // a KV cache of several slots (the batch engine): each row reads its own, from its base on
    { rows: 9, nHeads: 6, nKvHeads: 2, headSize: 8, seqLen: 96, chunk: 16, slots: 5 },
  ],
  attentionPrefill: [
    { rows: 37, nHeads: 6, nKvHeads: 2, headSize: 8, seqLen: 300, chunk: 32 },
    { rows: 64, nHeads: 4, nKvHeads: 4, headSize: 128, seqLen: 300, chunk: 256 },
    { rows: 13, firstPosition: 0, nHeads: 6, nKvHeads: 2, headSize: 12, seqLen: 50, chunk: 5 },
    { rows: 1, nHeads: 8, nKvHeads: 4, headSize: 8, seqLen: 512, chunk: 256 },
    { rows: 21, nHeads: 6, nKvHeads: 2, headSize: 8, seqLen: 96, chunk: 16, slots: 4 }, // every row in one slot of several
  ],
}

test('the adapter probe reports info, limits, features and whether it is a fallback adapter', async ({ page }) => {
  await openLab(page)
  const probe = await page.evaluate(() => window.webgpuLab.probe())
  expect(probe.available).toBe(true)
  expect(typeof probe.isFallbackAdapter).toBe('boolean')
  expect(probe.limits.maxStorageBufferBindingSize).toBeGreaterThan(0)
  expect(probe.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384)
  expect(Array.isArray(probe.features)).toBe(true)
  // here the adapter is SwiftShader, which Chromium marks as a fallback adapter
  if (probe.info.architecture === 'swiftshader') expect(probe.isFallbackAdapter).toBe(true)
})

for (const [kernel, shapes] of Object.entries(KERNEL_SHAPES)) {
  test(`kernel ${kernel} matches its TypeScript twin`, async ({ page }) => {
    await openLab(page)
    for (const shape of shapes) {
      const seed = Math.floor(Math.random() * 2 ** 31) // fresh inputs every run; the seed is in the message
      const r = await page.evaluate(([k, s, seed]) => window.webgpuLab.checkKernel(k, s, seed), [kernel, shape, seed] as const)
      expect(r.maxError, `${kernel} ${JSON.stringify(shape)} seed ${seed}: ${r.metric} = ${r.maxError} > ${r.tolerance}`).toBeLessThanOrEqual(r.tolerance)
    }
  })
}

test('stories260K: greedy output of the webgpu engine is GOLDEN.md and equals the reference engine', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.greedy({ model: 'stories260K', prompt: [1], maxTokens: 64 }))
  expect(r.webgpu).toEqual(goldenIds)
  expect(r.reference).toEqual(goldenIds)
})

test('stories260K: a prompt read in chunks (prefill kernels) then greedy decode equals the reference', async ({ page }) => {
  await openLab(page)
  const prompt = goldenIds.slice(0, 20)
  prompt.unshift(1)
  const r = await page.evaluate((p) => window.webgpuLab.greedy({ model: 'stories260K', prompt: p, maxTokens: 40, prefillChunk: 7 }), prompt)
  expect(r.webgpu.length).toBeGreaterThan(0)
  expect(r.webgpu).toEqual(r.reference)
})

test('synthetic model with a separate classifier and 7 layers: greedy output equals the reference, with weights split and attention chunked', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.greedy({
    model: 'separateClassifier', prompt: [1, 5, 9, 300, 17, 44, 70, 71, 72], maxTokens: 80, prefillChunk: 4,
    engine: { attentionChunk: 16, maxBindingBytes: 16384 },
  }))
  expect(r.webgpu.length).toBeGreaterThan(20)
  expect(r.webgpu).toEqual(r.reference)
})

test('teacher-forced over the whole context, mixed batch sizes: logits track the reference to the last position', async ({ page }) => {
  test.setTimeout(240_000)
  await openLab(page)
  const seed = Math.floor(Math.random() * 2 ** 31)
  const stories = await page.evaluate((seed) => window.webgpuLab.teacherForced({ model: 'stories260K', rowsPerCall: [64, 7, 1, 1, 13, 1, 40], seed }), seed)
  const synthetic = await page.evaluate((seed) => window.webgpuLab.teacherForced({
    model: 'separateClassifier', rowsPerCall: [5, 1, 1, 17], seed, engine: { attentionChunk: 16, maxBindingBytes: 16384 },
  }), seed)
  for (const r of [stories, synthetic]) {
    expect(r.lastPosition).toBe(r.seqLen - 1)
    // tolerance: 1e-4 of the largest logit (measured: about 1e-6 of it)
    expect(r.maxLogitDiff, `seed ${seed}`).toBeLessThanOrEqual(1e-4 * Math.max(1, r.maxLogit))
    expect(r.argmaxMismatches, `seed ${seed}`).toBe(0)
  }
})

// Llama-family variations on a synthetic model (head size 16, grouped-query 2:1): Qwen2 q/k/v biases
// and each kind of RoPE scaling, against the reference engine on the same slice. Tolerance 2e-5 of the
// largest logit / hidden value (measured: about 5e-7; the weights are equal, only fp32 summation order
// differs). Each run also measures the reference without the bias / the scaling: it must move the
// logits by over 100 times the tolerance, so an engine that ignored either could not pass.
const FAMILY_RUNS: { name: string; bias: boolean; scaling: RopeScaling; engine?: { maxBindingBytes: number } }[] = [
  { name: 'Qwen2 biases and llama3 RoPE scaling', bias: true, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 32 } },
  { name: 'linear RoPE scaling', bias: false, scaling: { type: 'linear', factor: 4 } },
  { name: 'per-pair RoPE factors and biases, weights split across bindings', bias: true, scaling: { type: 'factors', factors: [1, 1, 2, 3, 5, 8, 8, 8] }, engine: { maxBindingBytes: 4096 } },
]

for (const run of FAMILY_RUNS) {
  test(`${run.name}: webgpu logits (prefill and decode) and greedy ids equal the reference`, async ({ page }) => {
    await openLab(page)
    const seed = Math.floor(Math.random() * 2 ** 31)
    const { name: _, ...o } = run
    const r = await page.evaluate(([o, seed]) => window.webgpuLab.family({ ...o, prefillRows: [13, 7, 2], decodeSteps: 16, greedyTokens: 16, seed }), [o, seed] as const)
    const tolerance = 2e-5 * Math.max(1, r.prefill.maxLogit, r.decode.maxLogit)
    const what = `seed ${seed}`
    expect(r.prefill.maxHiddenDiff, what).toBeLessThanOrEqual(2e-5 * Math.max(1, r.prefill.maxHidden))
    expect(r.prefill.maxLogitDiff, what).toBeLessThanOrEqual(tolerance)
    expect(r.decode.maxLogitDiff, what).toBeLessThanOrEqual(tolerance)
    expect(r.prefill.argmaxMismatches + r.decode.argmaxMismatches, what).toBe(0)
    // a random model may sample BOS/EOS before 16 tokens (generation then ends, as in the reference)
    expect(r.greedy.reference.length, what).toBeGreaterThan(0)
    expect(r.greedy.webgpu, what).toEqual(r.greedy.reference)
    if (run.bias) {
      expect(r.withoutBias, what).toBeGreaterThan(100 * tolerance)
      // the biases are weights: engine.weightBytes counts them
      expect(r.biasWeightBytes?.counted).toBe(r.biasWeightBytes?.expected)
    }
    expect(r.withoutScaling, what).toBeGreaterThan(100 * tolerance)
  })
}

// The batch engine (many sessions over one copy of the weights, each with its own KV cache slot)
// against the reference batch engine on the same layers, row for row over one script
// (lab/pages/webgpu-batch-checks.ts): three sessions with prompts of different lengths fed in calls
// that mix one session's prefill chunk with other sessions' decode rows (rows interleaved at random,
// seeded), calls of one row and of one session's rows, a session closed mid-way and a new one in its
// slot while the others go on, a call split into two sub-ranges of the held layers, one session to the
// last position of the context, copyCache, refusal when every slot is open, and bad calls.
// Tolerance: 2e-5 of the largest hidden value (as the family tests; only fp32 summation order differs).
const BATCH_RUNS = [
  { name: 'stories260K', model: 'stories260K', maxCaches: 4 },
  {
    name: 'synthetic model with 7 layers, layers [1, 7) held, attention chunked and weights split',
    model: 'separateClassifier', layers: { start: 1, end: 7 }, maxCaches: 4, engine: { attentionChunk: 16, maxBindingBytes: 16384 },
  },
  { name: 'Q8_0 synthetic slice', model: 'quant', quant: 'q8_0', maxCaches: 4 },
  { name: 'Q4_0 synthetic slice, blocks split across bindings', model: 'quant', quant: 'q4_0', maxCaches: 5, engine: { maxBindingBytes: 1000 } },
] as const

for (const run of BATCH_RUNS) {
  test(`batch engine on ${run.name}: interleaved sessions, closed and reused slots, sub-ranges and copyCache equal the reference batch engine`, async ({ page }) => {
    test.setTimeout(240_000)
    await openLab(page)
    const seed = Math.floor(Math.random() * 2 ** 31)
    const { name: _, ...o } = run
    const r = await page.evaluate(([o, seed]) => window.webgpuLab.batch({ ...o, seed }), [o, seed] as const)
    const what = `seed ${seed}`
    expect(r.maxHiddenDiff, what).toBeLessThanOrEqual(2e-5 * Math.max(1, r.maxHidden))
    expect(r.mixedCalls, what).toBeGreaterThan(10)
    expect(r.subRangeCalls).toBe(2)
    expect(r.lastPosition).toBe(r.seqLen - 1)
    expect(r.reusedSlot).toBe(true)
    // the copied prefix continued equals the original rolled back to it and continued (same call, same kernels: bitwise)
    expect(r.copyRows).toBe(4)
    expect(r.copyVsOriginal, what).toBe(0)
    expect(r.refused).toBe('refused')
    expect(r.openAfterClose).toBe(true)
    expect(r.cacheBytes.reported).toBe(r.cacheBytes.expected)
    expect(r.errors).toEqual({ closedSlot: 'bad-argument', pastLength: 'context-window', falling: 'bad-argument', badRange: 'bad-argument' })
    // every buffer and bind group is made with the engine, none per call
    expect(r.createdAfterEngine).toEqual({ buffers: 0, bindGroups: 0 })
  })
}

test('mixed composition: layers [0, 2) on the reference engine and [2, 5) on webgpu equal the reference', async ({ page }) => {
  await openLab(page)
  const prompt = [1, ...goldenIds.slice(0, 17)]
  const r = await page.evaluate((p) => window.webgpuLab.mixed({ prompt: p, maxTokens: 64 }), prompt)
  expect(r.mixed.length).toBeGreaterThan(0)
  expect(r.mixed).toEqual(r.reference)
  expect(r.maxLogitDiff).toBeLessThan(1e-3)
})

test('GPU buffers and bind groups are created once: none over 200 decoded tokens', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.allocationsOverDecode(200))
  expect(r.tokens).toBe(200)
  expect(r.afterCreate.buffers).toBeGreaterThan(0)
  expect(r.afterPrefill).toEqual(r.afterCreate)
  expect(r.afterAll).toEqual(r.afterCreate)
})

test('headArgmax (argmax on the GPU) picks the same token as argmax over the logits', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.headArgmaxAgrees(40))
  expect(r.mismatches).toEqual([])
})

test('device loss gives a typed device-lost error, and a new engine on a new device works', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.deviceLoss())
  expect(r.afterLoss?.code).toBe('device-lost')
  expect(r.laterCall?.code).toBe('device-lost')
  expect(r.recoveredToken).toBe(goldenIds[0])
})

test('bad input gets typed errors and the engine keeps working', async ({ page }) => {
  await openLab(page)
  const r = await page.evaluate(() => window.webgpuLab.badInput())
  expect(r.noEmbedding?.code).toBe('bad-argument')
  expect(r.noHead?.code).toBe('bad-argument')
  expect(r.tooManyRows?.code).toBe('bad-argument')
  expect(r.wrongWidth?.code).toBe('bad-argument')
  expect(r.pastContext?.code).toBe('context-window')
  expect(r.badChunk?.code).toBe('bad-argument')
  expect(r.missingBias?.code).toBe('model-format')
  expect(r.shortRopeFactors?.code).toBe('model-format')
  expect(r.partialBlocks?.code).toBe('model-format')
  expect(r.stillWorks).toBe(true)
})
