import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type {} from '../e2e/pages/wasm.ts' // window.wasmLab's type
import { openLabPage, PROJECT_ROOT } from './lab.ts'

/**
 * `npm run bench:engine`: decode speed of each engine backend in headless Chromium (lab page
 * e2e/pages/wasm.html), on stories260K and on a synthetic model shaped like stories110M made inside
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
  const build = spawnSync('npx', ['vite', 'build', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], { cwd: PROJECT_ROOT, stdio: 'inherit' })
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
  const info = await page.evaluate(() => window.wasmLab.init())
  const hasWebGpu = await page.evaluate(() => window.wasmLab.hasWebGpu())
  console.error(`crossOriginIsolated ${info.crossOriginIsolated}, onnxruntime threads ${info.ortThreads}, webgpu engine ${hasWebGpu ? 'yes' : 'no'}`)

  const bandwidth = []
  for (const threads of [...new Set([1, info.hardwareConcurrency])]) {
    bandwidth.push(await page.evaluate((t) => window.wasmLab.bandwidth(t, 512), threads))
  }
  const bestBandwidth = Math.max(...bandwidth.map((b) => b.gbPerSecond)) * 1e9 // bytes/s

  const plan: { model: string; backend: Backend; tokens: number }[] = [
    { model: 'stories260K', backend: 'ref', tokens: 200 },
    { model: 'stories260K', backend: 'wasm', tokens: 200 },
    ...(hasWebGpu ? [{ model: 'stories260K', backend: 'webgpu' as const, tokens: 50 }] : []),
    { model: 'llama110M', backend: 'wasm', tokens: 64 },
    { model: 'llama110M', backend: 'ref', tokens: 4 },
    ...(hasWebGpu ? [{ model: 'llama110M', backend: 'webgpu' as const, tokens: 4 }] : []),
  ]
  const results: (DecodeResult & { vsRef: number; effectiveGBps: number; rooflineFraction: number })[] = []
  for (const { model, backend, tokens } of plan) {
    console.error(`${model} ${backend}: ${tokens} tokens ...`)
    const r = await page.evaluate(([m, b, t]) => window.wasmLab.decode(m, b, t), [model, backend, tokens] as const) as DecodeResult
    const ref = results.find((x) => x.model === model && x.backend === 'ref')
    const bytesPerSecond = r.weightBytesPerToken / (r.msPerToken / 1000)
    results.push({ ...r, vsRef: ref ? r.tokensPerSecond / ref.tokensPerSecond : 1, effectiveGBps: bytesPerSecond / 1e9, rooflineFraction: bytesPerSecond / bestBandwidth })
  }
  // the reference on the big model runs after the wasm engine: put ratios against it afterwards
  for (const r of results) {
    const ref = results.find((x) => x.model === r.model && x.backend === 'ref')!
    r.vsRef = r.tokensPerSecond / ref.tokensPerSecond
  }
  const wasm110M = results.find((r) => r.model === 'llama110M' && r.backend === 'wasm')!

  const fmt = (n: number, d = 1) => n.toFixed(d)
  console.log(`\nstreaming read: ${bandwidth.map((b) => `${fmt(b.gbPerSecond)} GB/s on ${b.threads} thread${b.threads > 1 ? 's' : ''}`).join(', ')} (${bandwidth[0].bytes >> 20} MiB buffer)`)
  console.log(`onnxruntime-web threads: ${info.ortThreads}\n`)
  const rows = [['model', 'backend', 'tok/s', 'ms/token', 'x ref', 'weights MB/token', 'GB/s', 'roofline']]
  for (const r of results) {
    rows.push([r.model, r.backend, fmt(r.tokensPerSecond), fmt(r.msPerToken, 2), fmt(r.vsRef, 2), fmt(r.weightBytesPerToken / 1e6), fmt(r.effectiveGBps), fmt(r.rooflineFraction, 2)])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  for (const row of rows) console.log(row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
  console.log(`\nwasmRooflineFraction110M = ${fmt(wasm110M.rooflineFraction, 3)} (target >= 0.7)`)

  const json = {
    date: new Date().toISOString(),
    machine: { ...info, hasWebGpu, userAgent: await page.evaluate(() => navigator.userAgent) },
    bandwidth,
    bandwidthForRooflineGBps: bestBandwidth / 1e9,
    results,
    wasmRooflineFraction110M: wasm110M.rooflineFraction,
    notes: 'decode = head + argmax + embed + forward per token from position 1 (after 3 warm-up steps); 110M-shaped model: dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000, seq_len 256, shared classifier, seeded random weights made in the page; weight bytes per token count every layer, the final norm and the classifier (fp32).',
  }
  mkdirSync(join(PROJECT_ROOT, 'bench/results'), { recursive: true })
  writeFileSync(join(PROJECT_ROOT, 'bench/results/engine.json'), JSON.stringify(json, null, 2) + '\n')
  console.log('wrote bench/results/engine.json')
} finally {
  await lab.close()
}
