import { probeWebGpu } from '../../src/engine/webgpu/device.ts'
import { createKernels, encodeDispatches, type KernelDispatch, type Kernels } from '../../src/engine/webgpu/kernels.ts'
import { ropeTable } from '../../src/engine/rope.ts'
import { gpuArray, gpuZeros } from './webgpu-gpu.ts'

/**
 * Times every WGSL kernel on this adapter (wall clock around one submission of many repetitions,
 * after a warm-up; best of several interleaved rounds) and sets each against copy_f32's bandwidth
 * measured in the same run.
 */
export interface KernelBenchRow {
  kernel: string
  shape: string
  msPerCall: number
  gflops: number // useful floating-point work per second
  gbps: number // minimal bytes read + written per second
  fractionOfCopy: number // gbps / copy's gbps
  iterations: number
}

export interface KernelBenchResult {
  adapter: Awaited<ReturnType<typeof probeWebGpu>>
  copyGBps: number
  rounds: number // timed rounds, interleaved across kernels; each row is its kernel's best
  rows: KernelBenchRow[]
  matvecFractionOfCopy: number // the largest matvec's bandwidth / copy bandwidth (target >= 0.6)
  matmul64VsMatvecPerWeightByte: number // work per second per weight byte, matmul(64 rows) / matvec, same matrix (target >= 2)
}

const TARGET_MS = 400
const ROUNDS = 3

export async function benchKernels(device: GPUDevice, quick: boolean): Promise<KernelBenchResult> {
  const k = createKernels(device)
  const buffers: GPUBuffer[] = []
  const rand = (n: number, lo = -1, hi = 1) => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * Math.random()
    return a
  }
  const arr = (data: Float32Array | Uint32Array) => { const b = gpuArray(device, data); buffers.push(b); return b }
  const zeros = (floats: number) => { const b = gpuZeros(device, floats); buffers.push(b); return b }

  const submitRepeated = async (dispatches: KernelDispatch[], times: number) => {
    const encoder = device.createCommandEncoder()
    const pass = encoder.beginComputePass()
    for (let i = 0; i < times; i++) encodeDispatches(pass, dispatches)
    pass.end()
    const t0 = performance.now()
    device.queue.submit([encoder.finish()])
    await device.queue.onSubmittedWorkDone()
    return performance.now() - t0
  }
  /** Sets the dispatch up, warms it (pipeline compilation, first touch of memory) and picks repetitions for about TARGET_MS. */
  const calibrate = async (dispatches: KernelDispatch[], rows: number, maxPos: number) => {
    for (const d of dispatches) d.resize(rows, maxPos)
    k.arena.flush()
    await submitRepeated(dispatches, 1)
    const once = await submitRepeated(dispatches, 1)
    return Math.max(quick ? 1 : 3, Math.min(200, Math.ceil((quick ? TARGET_MS / 8 : TARGET_MS) / Math.max(once, 0.01))))
  }

  interface Case { kernel: string; shape: string; dispatches: KernelDispatch[]; rows: number; maxPos: number; flops: number; bytes: number; iterations: number; best: number }
  const cases: Case[] = []
  const record = (kernel: string, shape: string, dispatches: KernelDispatch[], r: number, maxPos: number, flops: number, bytes: number) => {
    cases.push({ kernel, shape, dispatches, rows: r, maxPos, flops, bytes, iterations: 0, best: Infinity })
  }

  try {
    // baseline: copy
    const copyCount = quick ? 1 << 20 : 1 << 24
    record('copy', `${copyCount} f32 (${(copyCount * 4) >> 20} MiB)`, [k.copy({ src: arr(rand(copyCount)), dst: zeros(copyCount), count: copyCount })], 1, 0, 0, 2 * copyCount * 4)

    const linearShapes: [number, number][] = quick ? [[256, 256], [1024, 1024]] : [[1024, 1024], [4096, 4096], [32000, 768]]
    for (const [n, kIn] of linearShapes) {
      const w = arr(rand(n * kIn))
      for (const [mode, r] of [['matvec', 1], ['matmul', 64]] as const) {
        if (mode === 'matmul' && n === 32000) continue
        const x = arr(rand(r * kIn)), y = zeros(r * n)
        record(mode, `${r} x (${n}, ${kIn})`, [k[mode]({ w, x, y, n, k: kIn, rowOffset: 0, yStride: n })], r, 0, 2 * r * n * kIn, (n * kIn + r * kIn + r * n) * 4)
      }
    }

    // attention: 110M-like heads, a long context
    const nHeads = 12, headSize = 64, seqLen = quick ? 512 : 2048, chunk = 256
    const dim = nHeads * headSize, maxChunks = seqLen / chunk
    const keys = arr(rand(seqLen * dim)), values = arr(rand(seqLen * dim))
    for (const [kernel, r] of [['attentionDecode', 1], ['attentionPrefill', 64]] as const) {
      const positions = Uint32Array.from({ length: r }, (_, i) => seqLen - r + i)
      const pb = arr(positions), partO = zeros(r * nHeads * maxChunks * headSize), partML = zeros(r * nHeads * maxChunks * 2), out = zeros(r * dim)
      const attention = k[kernel]({ positions: pb, q: arr(rand(r * dim)), keys, values, partO, partML, nHeads, nKvHeads: nHeads, headSize, qStride: dim, chunk, maxChunks })
      const merge = k.attentionMerge({ positions: pb, partO, partML, out, nHeads, headSize, outStride: dim, chunk, maxChunks })
      let flops = 0
      for (const p of positions) flops += 4 * headSize * (p + 1) * nHeads
      record(`${kernel}+merge`, `${r} rows, ${nHeads} heads x ${headSize}, positions to ${seqLen - 1}`, [attention, merge], r, seqLen - 1, flops, (2 * seqLen * dim + 2 * r * dim) * 4)
    }

    const r = 64, width = quick ? 1024 : 4096, hidden = quick ? 2816 : 11008
    const positions = arr(Uint32Array.from({ length: r }, (_, i) => i))
    const x = arr(rand(r * width))
    record('rmsnorm', `(${r}, ${width})`, [k.rmsnorm({ x, weight: arr(rand(width)), out: zeros(r * width), dim: width, eps: 1e-5 })], r, 0, 3 * r * width, (2 * r * width + width) * 4)
    record('rope', `(${r}, ${width}), head 128`, [k.rope({ positions, cosSin: arr(ropeTable(r, Float32Array.from({ length: 64 }, (_, i) => 1 / 10000 ** (i / 64)))), v: zeros(r * width), width, headSize: 128 })], r, 0, 3 * r * width, 3 * r * width * 4)
    record('swiglu', `(${r}, ${hidden})`, [k.swiglu({ gate: arr(rand(r * hidden)), up: arr(rand(r * hidden)), width: hidden })], r, 0, 5 * r * hidden, 3 * r * hidden * 4)
    record('residualAdd', `(${r}, ${width})`, [k.residualAdd({ x: zeros(r * width), delta: arr(rand(r * width)), width })], r, 0, r * width, 3 * r * width * 4)
    const vocab = quick ? 4096 : 32000, eDim = 768
    const tokens = arr(Uint32Array.from({ length: r }, () => Math.floor(Math.random() * vocab)))
    record('embedding', `${r} rows of (${vocab}, ${eDim})`, [k.embedding({ tokens, table: arr(rand(vocab * eDim)), out: zeros(r * eDim), dim: eDim, rowStart: 0, rowCount: vocab })], r, 0, 0, 2 * r * eDim * 4)
    record('argmax', `${vocab}`, [k.argmax({ values: arr(rand(vocab)), result: zeros(1), count: vocab })], 1, 0, vocab, vocab * 4)

    // rounds interleave the kernels so a burst of load elsewhere on the machine hits them alike;
    // each kernel keeps its best round
    for (const c of cases) c.iterations = await calibrate(c.dispatches, c.rows, c.maxPos)
    for (let round = 0; round < (quick ? 1 : ROUNDS); round++) {
      for (const c of cases) c.best = Math.min(c.best, (await submitRepeated(c.dispatches, c.iterations)) / c.iterations)
    }
    const copyGBps = cases[0].bytes / cases[0].best / 1e6
    const rows: KernelBenchRow[] = cases.map((c) => ({
      kernel: c.kernel, shape: c.shape, msPerCall: c.best, gflops: c.flops / c.best / 1e6, gbps: c.bytes / c.best / 1e6,
      fractionOfCopy: c.bytes / c.best / 1e6 / copyGBps, iterations: c.iterations,
    }))
    const big = linearShapes[1]
    const find = (kernel: string) => rows.find((r) => r.kernel === kernel && r.shape.endsWith(`(${big[0]}, ${big[1]})`))!
    return {
      adapter: await probeWebGpu(),
      copyGBps,
      rounds: quick ? 1 : ROUNDS,
      rows,
      matvecFractionOfCopy: find('matvec').gbps / copyGBps,
      matmul64VsMatvecPerWeightByte: find('matmul').gflops / find('matvec').gflops,
    }
  } finally {
    for (const b of buffers) b.destroy()
    ;(k as Kernels).arena.destroy()
  }
}
