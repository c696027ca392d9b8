import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { QuantBenchResult } from '../lab/pages/webgpu-quant-bench.ts'
import type {} from '../lab/pages/wasm.ts' // window.wasmLab's type
import { loadavg } from 'node:os'
import { openLabPage, PROJECT_ROOT } from './lab.ts'

/**
 * npm run bench:quant: what Q8_0 and Q4_0 weights buy, in headless Chromium, against f32 measured in
 * the same run.
 * 1. Kernels: matvec_q8_0 / matvec_q4_0 against matvec_f32 on this machine's WebGPU adapter, on the
 *    decode matrices of a 110M-shaped model (per-matrix GB/s and speed-ups).
 * 2. Engines: greedy decode of a 110M-shaped synthetic model (dim 768, 12 layers, vocab 32000) in
 *    F32, Q8_0 and Q4_0 on the wasm and webgpu engines, each in a fresh worker as the product runs
 *    them: weight bytes per token, tokens/s, and the bandwidth roofline (streaming-read bandwidth
 *    measured in the same page / weight bytes per token), plus the memory the weights take (the
 *    wasm heap, the GPU weight buffers).
 * Writes bench/results/quant.json. Needs a built site (npm run build:lab, or TABMESH_SITE_DIR);
 * `--quick` uses small shapes (a 15M-shaped model). On SwiftShader (a CPU emulation of a GPU) the
 * webgpu numbers measure the emulator.
 */
const quick = process.argv.includes('--quick')

const lab = await openLabPage('webgpu')
let result: QuantBenchResult
try {
  result = await lab.page.evaluate((q) => window.webgpuLab.benchQuantKernels({ quick: q }), quick)
} finally {
  await lab.close()
}

const table = (header: string[], lines: string[][], leftColumns: number) => {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const row = (cells: string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  console.log(row(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const l of lines) console.log(row(l))
}
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2)

const a = result.adapter
const m = result.model
console.log(`adapter: ${a.info.vendor} ${a.info.architecture} ${a.info.device} (${a.info.description})${a.isFallbackAdapter ? ', fallback (software) adapter' : ''}`)
console.log(`model shape: dim ${m.dim}, hidden ${m.hiddenDim}, ${m.nLayers} layers, vocab ${m.vocabSize}; best of ${result.rounds} interleaved rounds\n`)
table(['matrix', 'format', 'weight MiB', 'ms/call', 'GB/s', 'x f32 speed'],
  result.rows.map((r) => [r.matrix, r.format, mib(r.weightBytes), r.msPerCall.toFixed(3), r.gbps.toFixed(2), r.speedupVsF32.toFixed(2)]), 2)
console.log('\nper decoded token (every layer matrix and the classifier, read once):')
table(['format', 'weight MiB/token', 'x f32 bytes', 'matvec ms/token', 'matvec tokens/s', 'x f32 speed'],
  result.model_rows.map((r) => [r.format, mib(r.weightBytesPerToken), r.bytesVsF32.toFixed(3), r.matvecMsPerToken.toFixed(2), r.matvecTokensPerSecond.toFixed(2), r.speedupVsF32.toFixed(2)]), 1)
console.log(`\nprefill: ${result.prefill_rows[0]?.rows ?? 0} rows per call (matmul kernels, and the matvec kernels they replace):`)
table(['matrix', 'kernel', 'ms/call', 'GFLOP/s', 'x matmul_f32 speed'],
  result.prefill_rows.map((r) => [r.matrix, r.kernel, r.msPerCall.toFixed(3), r.gflops.toFixed(2), r.speedupVsF32.toFixed(2)]), 2)
if (a.isFallbackAdapter) console.log('\nnote: a software adapter; these numbers prove the kernels run, not how fast a GPU runs them')

// ---- engines: decode on F32 / Q8_0 / Q4_0 weights ----
const base = quick ? 'llama15M' : 'llama110M'
const FORMATS = [['f32', base], ['q8_0', `${base}-q8_0`], ['q4_0', `${base}-q4_0`]] as const
interface EngineRow {
  backend: 'wasm' | 'webgpu'
  format: (typeof FORMATS)[number][0]
  tokens: number
  tokensPerSecond: number
  weightBytesPerToken: number
  bytesVsF32: number
  speedupVsF32: number
  rooflineTokensPerSecond: number // bandwidth / weight bytes per token
  rooflineFraction: number
  weightMemoryBytes: number // wasm: the worker's wasm heap after loading (onnxruntime's: weights, arena, code; for Q8_0 / Q4_0 the SIMD kernels' memory); webgpu: the engine's weight buffers
}
const engines = await openLabPage('wasm')
const engineRows: EngineRow[] = []
let bandwidthGBps = 0
try {
  const { page } = engines
  page.setDefaultTimeout(0)
  const hasWebGpu = await page.evaluate(() => window.wasmLab.inWorker('probe').hasWebGpu())
  const threads = (await page.evaluate(() => window.wasmLab.inWorker('probe').init())).ortThreads
  const measureBandwidth = async () => {
    const b = await page.evaluate((t) => window.wasmLab.inWorker('probe').bandwidth(t, 512), threads)
    bandwidthGBps = Math.max(bandwidthGBps, b.gbPerSecond)
  }
  await measureBandwidth()
  await page.evaluate(() => window.wasmLab.closeWorker('probe'))
  for (const backend of hasWebGpu ? ['wasm', 'webgpu'] as const : ['wasm'] as const) {
    for (const [format, model] of FORMATS) {
      // a fresh worker per engine: its wasm heap then holds this model's weights only
      const key = `${backend}-${format}`
      const tokens = backend === 'webgpu' ? (quick ? 16 : 6) : backend === 'wasm' ? (quick ? 64 : 32) : (quick ? 16 : 8)
      console.error(`${model} on ${backend}: ${tokens} tokens ...`)
      await page.evaluate(([k, m, b]) => window.wasmLab.inWorker(k).decode(m, b, 1, 1), [key, model, backend] as const) // make model and engine
      if (backend === 'wasm' && format === 'f32') await measureBandwidth() // again, beside a loaded model (the machine may be shared)
      const r = await page.evaluate(([k, m, b, t]) => window.wasmLab.inWorker(k).decode(m, b, t), [key, model, backend, tokens] as const)
      await page.evaluate((k) => window.wasmLab.closeWorker(k), key)
      engineRows.push({
        backend, format, tokens, tokensPerSecond: r.tokensPerSecond, weightBytesPerToken: r.weightBytesPerToken, bytesVsF32: 1, speedupVsF32: 1,
        rooflineTokensPerSecond: 0, rooflineFraction: 0, weightMemoryBytes: backend === 'webgpu' ? r.engineWeightBytes ?? NaN : r.wasmHeapBytes,
      })
    }
  }
} finally {
  await engines.close()
}
for (const r of engineRows) {
  const f32 = engineRows.find((x) => x.backend === r.backend && x.format === 'f32')!
  r.bytesVsF32 = r.weightBytesPerToken / f32.weightBytesPerToken
  r.speedupVsF32 = r.tokensPerSecond / f32.tokensPerSecond
  r.rooflineTokensPerSecond = (bandwidthGBps * 1e9) / r.weightBytesPerToken
  r.rooflineFraction = r.tokensPerSecond / r.rooflineTokensPerSecond
}
console.log(`\ndecode on the ${base}-shaped model; roofline = streaming-read bandwidth ${bandwidthGBps.toFixed(1)} GB/s / weight bytes per token`)
table(['backend', 'format', 'weight MiB/token', 'x f32 bytes', 'tok/s', 'x f32 speed', 'roofline tok/s', 'of roofline', 'memory MiB'],
  engineRows.map((r) => [r.backend, r.format, mib(r.weightBytesPerToken), r.bytesVsF32.toFixed(3), r.tokensPerSecond.toFixed(2), r.speedupVsF32.toFixed(2),
    r.rooflineTokensPerSecond.toFixed(1), r.rooflineFraction.toFixed(2), mib(r.weightMemoryBytes)]), 2)
console.log(`load average: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (a shared machine makes every number noisy)`)

const outDir = join(PROJECT_ROOT, 'bench/results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, 'quant.json')
writeFileSync(file, JSON.stringify({
  date: new Date().toISOString(), quick, webgpu: result,
  engines: { model: base, bandwidthGBps, rows: engineRows, loadAverage: loadavg() },
}, null, 2) + '\n')
console.log(`wrote ${file}`)
