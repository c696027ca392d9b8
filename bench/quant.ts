import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { QuantBenchResult } from '../e2e/pages/webgpu-quant-bench.ts'
import { openLabPage, PROJECT_ROOT } from './lab.ts'

/**
 * npm run bench:quant: matvec_q8_0 and matvec_q4_0 against matvec_f32 on this machine's WebGPU
 * adapter, in headless Chromium, on the decode matrices of a 110M-shaped model. Prints per-matrix
 * GB/s and speed-ups, and per-token weight bytes and matvec time; writes bench/results/quant.json.
 * Needs a built site (npm run build, or TABMESH_SITE_DIR); `--quick` uses a small model shape. On
 * SwiftShader (a CPU emulation of a GPU) the numbers measure the emulator.
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
if (a.isFallbackAdapter) console.log('\nnote: a software adapter; these numbers prove the kernels run, not how fast a GPU runs them')

const outDir = join(PROJECT_ROOT, 'bench/results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, 'quant.json')
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, webgpu: result }, null, 2) + '\n')
console.log(`wrote ${file}`)
