import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type {} from '../lab/pages/wasm.ts' // window.wasmLab's type
import { openLabPage, PROJECT_ROOT } from './lab.ts'

/**
 * `npm run bench:engine`: decode speed of each engine backend in headless Chromium (lab page
 * lab/pages/wasm.html), on stories260K and on a synthetic model shaped like stories110M made inside
 * the page, against the machine's streaming-read bandwidth measured in the same page and run.
 * Prints a table and writes bench/results/engine.json.
 *
 * The wasm roofline fraction is (weight bytes per token / seconds per token) / bandwidth, with the
 * best bandwidth measured (all threads): a bandwidth-bound decode reads every weight once per token.
 * TABMESH_SITE_DIR: a built site to use; without it the site is built into a temporary directory.
 */
process.env.TABMESH_BENCH_PORT ??= '4412'
if (!process.env.TABMESH_SITE_DIR) {
  const out = join(tmpdir(), 'tabmesh-bench-engine-site')
  console.error(`building the site into ${out} ...`)
  const build = spawnSync('npx', ['vite', 'build', '-c', 'lab/vite.config.ts', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], { cwd: PROJECT_ROOT, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('vite build failed')
  process.env.TABMESH_SITE_DIR = out
}

type Backend = 'ref' | 'wasm' | 'webgpu'
interface DecodeResult {
  backend: Backend
  model: string
  tokens: number
  msPerToken: number
  tokensPerSecond: number
  weightBytesPerToken: number
}

const lab = await openLabPage('wasm')
try {
  const { page } = lab
  page.setDefaultTimeout(0)
  const info = await page.evaluate(() => window.wasmLab.info())
  const hasWebGpu = await page.evaluate(() => window.wasmLab.inWorker('all').hasWebGpu())
  console.error(`crossOriginIsolated ${info.crossOriginIsolated}, ${info.hardwareConcurrency} cores, webgpu engine ${hasWebGpu ? 'yes' : 'no'}`)

  // bandwidth is measured at the start and again beside the 110M wasm decode (the machine may be
  // shared); each thread count keeps its best, and the roofline uses the best of all
  const threadCounts = [...new Set([1, info.hardwareConcurrency])]
  const bandwidth: { threads: number; bytes: number; gbPerSecond: number }[] = []
  const measureBandwidth = async () => {
    for (const threads of threadCounts) {
      const b = await page.evaluate((t) => window.wasmLab.bandwidth(t, 512), threads)
      const seen = bandwidth.find((x) => x.threads === threads)
      if (!seen) bandwidth.push(b)
      else if (b.gbPerSecond > seen.gbPerSecond) Object.assign(seen, b)
    }
  }
  await measureBandwidth()

  // engines run in dedicated workers, as in the product: 'all' with onnxruntime's default here
  // (a thread per core), 'one' with a single thread, for comparison on a shared machine
  const plan: { model: string; backend: Backend; tokens: number; worker: 'all' | 'one' }[] = [
    { model: 'stories260K', backend: 'ref', tokens: 200, worker: 'all' },
    { model: 'stories260K', backend: 'wasm', tokens: 200, worker: 'all' },
    ...(hasWebGpu ? [{ model: 'stories260K', backend: 'webgpu' as const, tokens: 50, worker: 'all' as const }] : []),
    { model: 'llama110M', backend: 'wasm', tokens: 100, worker: 'all' },
    { model: 'llama110M', backend: 'ref', tokens: 4, worker: 'all' },
    ...(hasWebGpu ? [{ model: 'llama110M', backend: 'webgpu' as const, tokens: 4, worker: 'all' as const }] : []),
    { model: 'stories260K', backend: 'wasm', tokens: 200, worker: 'one' },
    { model: 'llama110M', backend: 'wasm', tokens: 100, worker: 'one' },
  ]
  const workerThreads = { all: 0, one: 0 }
  workerThreads.all = (await page.evaluate(() => window.wasmLab.inWorker('all').init())).ortThreads
  const results: (DecodeResult & { threads: number; vsRef: number; effectiveGBps: number; rooflineFraction: number })[] = []
  for (const { model, backend, tokens, worker } of plan) {
    if (worker === 'one' && !workerThreads.one) {
      await page.evaluate(() => window.wasmLab.closeWorker('all')) // frees the first worker's models
      workerThreads.one = (await page.evaluate(() => window.wasmLab.inWorker('one').init(1))).ortThreads
    }
    const threads = backend === 'wasm' ? workerThreads[worker] : 1
    console.error(`${model} ${backend} (${threads} thread${threads > 1 ? 's' : ''}): ${tokens} tokens ...`)
    if (model === 'llama110M' && backend === 'wasm') {
      await page.evaluate(([w]) => window.wasmLab.inWorker(w).decode('llama110M', 'wasm', 1, 1), [worker] as const) // make the model and engine first
      await measureBandwidth()
    }
    const r = await page.evaluate(([w, m, b, t]) => window.wasmLab.inWorker(w).decode(m, b, t), [worker, model, backend, tokens] as const) as DecodeResult
    results.push({ ...r, threads, vsRef: 1, effectiveGBps: r.weightBytesPerToken / (r.msPerToken / 1000) / 1e9, rooflineFraction: 0 })
  }
  await page.evaluate(() => window.wasmLab.closeWorker('one'))
  const bestBandwidth = Math.max(...bandwidth.map((b) => b.gbPerSecond)) * 1e9 // bytes/s
  const bandwidthFor = (threads: number) => (bandwidth.find((b) => b.threads === threads)?.gbPerSecond ?? bestBandwidth / 1e9) * 1e9
  for (const r of results) {
    const ref = results.find((x) => x.model === r.model && x.backend === 'ref')!
    r.vsRef = r.tokensPerSecond / ref.tokensPerSecond
    // a single-threaded engine is held against single-threaded bandwidth, the rest against the best
    r.rooflineFraction = (r.effectiveGBps * 1e9) / (r.backend === 'wasm' && r.threads === 1 ? bandwidthFor(1) : bestBandwidth)
  }
  const wasm110M = results.find((r) => r.model === 'llama110M' && r.backend === 'wasm' && r.threads === workerThreads.all)!

  const fmt = (n: number, d = 1) => n.toFixed(d)
  console.log(`\nstreaming read: ${bandwidth.map((b) => `${fmt(b.gbPerSecond)} GB/s on ${b.threads} thread${b.threads > 1 ? 's' : ''}`).join(', ')} (${bandwidth[0].bytes >> 20} MiB buffer)`)
  console.log('')
  const rows = [['model', 'backend', 'threads', 'tok/s', 'ms/token', 'x ref', 'weights MB/token', 'GB/s', 'roofline']]
  for (const r of results) {
    rows.push([r.model, r.backend, String(r.threads), fmt(r.tokensPerSecond), fmt(r.msPerToken, 2), fmt(r.vsRef, 2), fmt(r.weightBytesPerToken / 1e6), fmt(r.effectiveGBps), fmt(r.rooflineFraction, 2)])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  for (const row of rows) console.log(row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
  const wasm110MOne = results.find((r) => r.model === 'llama110M' && r.backend === 'wasm' && r.threads === 1)
  console.log(`\nwasmRooflineFraction110M = ${fmt(wasm110M.rooflineFraction, 3)} with ${wasm110M.threads} threads (target >= 0.7)${wasm110MOne ? `; ${fmt(wasm110MOne.rooflineFraction, 3)} with 1 thread against 1-thread bandwidth` : ''}`)
  console.log(`load average during the run: ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores (a shared machine makes every number noisy)`)

  const json = {
    date: new Date().toISOString(),
    machine: { crossOriginIsolated: info.crossOriginIsolated, hardwareConcurrency: info.hardwareConcurrency, simd: info.simd, hasWebGpu, userAgent: await page.evaluate(() => navigator.userAgent) },
    bandwidth,
    bandwidthForRooflineGBps: bestBandwidth / 1e9,
    results,
    wasmRooflineFraction110M: wasm110M.rooflineFraction,
    wasmRooflineFraction110MOneThread: wasm110MOne?.rooflineFraction,
    loadAverage: loadavg(),
    notes: 'engines run in dedicated workers of the lab page; decode = head + argmax + embed + forward per token from position 1 (after 3 warm-up steps); 110M-shaped model: dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000, seq_len 256, shared classifier, seeded random weights made in the page; weight bytes per token count every layer, the final norm and the classifier (fp32).',
  }
  mkdirSync(join(PROJECT_ROOT, 'bench/results'), { recursive: true })
  writeFileSync(join(PROJECT_ROOT, 'bench/results/engine.json'), JSON.stringify(json, null, 2) + '\n')
  console.log('wrote bench/results/engine.json')
} finally {
  await lab.close()
}
