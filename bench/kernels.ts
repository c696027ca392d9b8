import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KernelBenchResult } from '../lab/pages/webgpu-bench.ts'
import { openLabPage, PROJECT_ROOT } from './lab.ts'

/**
 * npm run bench:kernels: every WGSL kernel timed on this machine's WebGPU adapter, in headless
 * Chromium, against the copy kernel's bandwidth measured in the same run. Prints a table and writes
 * bench/results/kernels.json. Needs a built site (npm run build:lab, or TABMESH_SITE_DIR); `--quick`
 * uses small shapes. On SwiftShader (a CPU emulation of a GPU) the numbers measure the emulator.
 */
const quick = process.argv.includes('--quick')

const lab = await openLabPage('webgpu')
let result: KernelBenchResult
try {
  result = await lab.page.evaluate((q) => window.webgpuLab.benchKernels({ quick: q }), quick)
} finally {
  await lab.close()
}

const a = result.adapter
console.log(`adapter: ${a.info.vendor} ${a.info.architecture} ${a.info.device} (${a.info.description})${a.isFallbackAdapter ? ', fallback (software) adapter' : ''}`)
console.log(`copy bandwidth (baseline): ${result.copyGBps.toFixed(2)} GB/s\n`)
const header = ['kernel', 'shape', 'ms/call', 'GFLOP/s', 'GB/s', 'x copy BW']
const lines = result.rows.map((r) => [r.kernel, r.shape, r.msPerCall.toFixed(3), r.gflops.toFixed(2), r.gbps.toFixed(2), r.fractionOfCopy.toFixed(2)])
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
const row = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
console.log(row(header))
console.log(widths.map((w) => '-'.repeat(w)).join('  '))
for (const l of lines) console.log(row(l))
console.log(`\nmatvec bandwidth / copy bandwidth: ${result.matvecFractionOfCopy.toFixed(2)} (target >= 0.6)`)
console.log(`matmul (64 rows) / matvec, work per weight byte: ${result.matmul64VsMatvecPerWeightByte.toFixed(2)}x (target >= 2)`)
if (a.isFallbackAdapter) console.log('note: a software adapter; these numbers prove the kernels run, not how fast a GPU runs them')

const outDir = join(PROJECT_ROOT, 'bench/results')
mkdirSync(outDir, { recursive: true })
const file = join(outDir, 'kernels.json')
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, ...result }, null, 2) + '\n')
console.log(`wrote ${file}`)
