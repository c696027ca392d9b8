import { probeWebGpu } from '../../src/engine/webgpu/device.ts'
import { createKernels, encodeDispatches, type KernelDispatch } from '../../src/engine/webgpu/kernels.ts'
import { quantizeQ4_0, quantizeQ8_0 } from '../../src/model/quant/index.ts'
import { gpuArray, gpuZeros } from './webgpu-gpu.ts'
import { gpuBytes } from './webgpu-quant-checks.ts'

/**
 * matvec_f32, matvec_q8_0 and matvec_q4_0 on the same adapter and the same matrices (the decode
 * matrices of a llama2.c 110M-shaped model: dim 768, hidden 2048, 12 layers, vocab 32000), timed as
 * lab/pages/webgpu-bench.ts times kernels (one submission of many repetitions after a warm-up, best
 * of interleaved rounds). Per kernel: GB/s of bytes actually read (blocks or floats, x, y); per
 * model: weight bytes per decoded token and the matvec time per token. Prefill: the layer matrices
 * times 64 rows through matmul_f32, matmul_q8_0 / q4_0, and matvec_q8_0 / q4_0 (what quantized
 * prefill ran on before the quantized matmul), in GFLOP/s.
 */
export type MatvecFormat = 'f32' | 'q8_0' | 'q4_0'

export interface QuantBenchRow {
  format: MatvecFormat
  matrix: string // name and (out, in)
  weightBytes: number
  msPerCall: number
  gbps: number // (weight + x + y bytes) / time
  speedupVsF32: number // f32 time / this time, same matrix
}

export interface QuantBenchModelRow {
  format: MatvecFormat
  weightBytesPerToken: number // every matrix of every layer plus the classifier, read once per decoded token
  matvecMsPerToken: number // sum of the matrices' matvec times (no attention, norms, ...)
  matvecTokensPerSecond: number
  bytesVsF32: number
  speedupVsF32: number
}

export type PrefillKernel = 'matmul_f32' | 'matmul_q8_0' | 'matmul_q4_0' | 'matvec_q8_0' | 'matvec_q4_0'

export interface QuantPrefillRow {
  kernel: PrefillKernel
  matrix: string // name and (out, in)
  rows: number // input rows per call
  msPerCall: number
  gflops: number // 2 * rows * out * in / time
  speedupVsF32: number // matmul_f32 time / this time, same matrix
}

export interface QuantBenchResult {
  adapter: Awaited<ReturnType<typeof probeWebGpu>>
  model: { dim: number; hiddenDim: number; nLayers: number; vocabSize: number }
  rounds: number
  rows: QuantBenchRow[]
  model_rows: QuantBenchModelRow[]
  prefill_rows: QuantPrefillRow[]
}

const TARGET_MS = 300
const ROUNDS = 3
const FORMATS: MatvecFormat[] = ['f32', 'q8_0', 'q4_0']
const PREFILL_ROWS = 64
const PREFILL_KERNELS: PrefillKernel[] = ['matmul_f32', 'matmul_q8_0', 'matmul_q4_0', 'matvec_q8_0', 'matvec_q4_0']

export async function benchQuantKernels(device: GPUDevice, quick: boolean): Promise<QuantBenchResult> {
  const model = quick ? { dim: 256, hiddenDim: 768, nLayers: 4, vocabSize: 4096 } : { dim: 768, hiddenDim: 2048, nLayers: 12, vocabSize: 32000 }
  const { dim, hiddenDim } = model
  // the distinct matrix shapes of one decode step and how many of each a token reads
  const matrices: { name: string; n: number; k: number; perToken: number }[] = [
    { name: 'wq/wk/wv/wo', n: dim, k: dim, perToken: 4 * model.nLayers },
    { name: 'w1/w3', n: hiddenDim, k: dim, perToken: 2 * model.nLayers },
    { name: 'w2', n: dim, k: hiddenDim, perToken: model.nLayers },
    { name: 'classifier', n: model.vocabSize, k: dim, perToken: 1 },
  ]
  const k = createKernels(device)
  const buffers: GPUBuffer[] = []
  const keep = (b: GPUBuffer) => { buffers.push(b); return b }
  const rand = (n: number) => Float32Array.from({ length: n }, () => 2 * Math.random() - 1)

  const submitRepeated = async (d: KernelDispatch, times: number) => {
    const encoder = device.createCommandEncoder()
    const pass = encoder.beginComputePass()
    for (let i = 0; i < times; i++) encodeDispatches(pass, [d])
    pass.end()
    const t0 = performance.now()
    device.queue.submit([encoder.finish()])
    await device.queue.onSubmittedWorkDone()
    return performance.now() - t0
  }

  interface Case { format: MatvecFormat; matrix: (typeof matrices)[number]; dispatch: KernelDispatch; weightBytes: number; iterations: number; best: number }
  const cases: Case[] = []
  interface PrefillCase { kernel: PrefillKernel; matrix: (typeof matrices)[number]; dispatch: KernelDispatch; iterations: number; best: number }
  const prefill: PrefillCase[] = []
  try {
    for (const m of matrices) {
      const w = rand(m.n * m.k)
      const x = keep(gpuArray(device, rand(m.k))), y = keep(gpuZeros(device, m.n))
      for (const format of FORMATS) {
        const bytes = format === 'f32' ? new Uint8Array(w.buffer) : format === 'q8_0' ? quantizeQ8_0(w) : quantizeQ4_0(w)
        const args = { w: keep(gpuBytes(device, bytes)), x, y, n: m.n, k: m.k, rowOffset: 0, yStride: m.n }
        const dispatch = format === 'f32' ? k.matvec(args) : format === 'q8_0' ? k.matvecQ8_0(args) : k.matvecQ4_0(args)
        dispatch.resize(1, 0)
        cases.push({ format, matrix: m, dispatch, weightBytes: bytes.byteLength, iterations: 0, best: Infinity })
      }
    }
    // prefill: the layer matrices (the classifier only ever sees the last row) times 64 rows
    for (const m of matrices.filter((m) => m.name !== 'classifier')) {
      const w = rand(m.n * m.k)
      const x = keep(gpuArray(device, rand(PREFILL_ROWS * m.k))), y = keep(gpuZeros(device, PREFILL_ROWS * m.n))
      const f32 = keep(gpuBytes(device, new Uint8Array(w.buffer))), q8 = keep(gpuBytes(device, quantizeQ8_0(w))), q4 = keep(gpuBytes(device, quantizeQ4_0(w)))
      const args = (weights: GPUBuffer) => ({ w: weights, x, y, n: m.n, k: m.k, rowOffset: 0, yStride: m.n })
      const dispatches: Record<PrefillKernel, KernelDispatch> = {
        matmul_f32: k.matmul(args(f32)), matmul_q8_0: k.matmulQ8_0(args(q8)), matmul_q4_0: k.matmulQ4_0(args(q4)),
        matvec_q8_0: k.matvecQ8_0(args(q8)), matvec_q4_0: k.matvecQ4_0(args(q4)),
      }
      for (const kernel of PREFILL_KERNELS) {
        dispatches[kernel].resize(PREFILL_ROWS, 0)
        prefill.push({ kernel, matrix: m, dispatch: dispatches[kernel], iterations: 0, best: Infinity })
      }
    }
    k.arena.flush()
    for (const c of [...cases, ...prefill]) {
      await submitRepeated(c.dispatch, 1) // pipeline compilation, first touch of memory
      const once = await submitRepeated(c.dispatch, 1)
      c.iterations = Math.max(quick ? 1 : 3, Math.min(200, Math.ceil((quick ? TARGET_MS / 8 : TARGET_MS) / Math.max(once, 0.01))))
    }
    const rounds = quick ? 1 : ROUNDS
    // interleaved rounds so load elsewhere on the machine hits every format alike; each keeps its best
    for (let round = 0; round < rounds; round++) {
      for (const c of [...cases, ...prefill]) c.best = Math.min(c.best, (await submitRepeated(c.dispatch, c.iterations)) / c.iterations)
    }
    const f32Case = (m: (typeof matrices)[number]) => cases.find((c) => c.matrix === m && c.format === 'f32')!
    const rows: QuantBenchRow[] = cases.map((c) => ({
      format: c.format,
      matrix: `${c.matrix.name} (${c.matrix.n}, ${c.matrix.k})`,
      weightBytes: c.weightBytes,
      msPerCall: c.best,
      gbps: (c.weightBytes + (c.matrix.k + c.matrix.n) * 4) / c.best / 1e6,
      speedupVsF32: f32Case(c.matrix).best / c.best,
    }))
    const perToken = (format: MatvecFormat) => {
      let bytes = 0, ms = 0
      for (const c of cases) if (c.format === format) { bytes += c.weightBytes * c.matrix.perToken; ms += c.best * c.matrix.perToken }
      return { bytes, ms }
    }
    const f32 = perToken('f32')
    const model_rows = FORMATS.map((format) => {
      const t = perToken(format)
      return { format, weightBytesPerToken: t.bytes, matvecMsPerToken: t.ms, matvecTokensPerSecond: 1000 / t.ms, bytesVsF32: t.bytes / f32.bytes, speedupVsF32: f32.ms / t.ms }
    })
    const prefillF32 = (m: (typeof matrices)[number]) => prefill.find((c) => c.matrix === m && c.kernel === 'matmul_f32')!
    const prefill_rows: QuantPrefillRow[] = prefill.map((c) => ({
      kernel: c.kernel,
      matrix: `${c.matrix.name} (${c.matrix.n}, ${c.matrix.k})`,
      rows: PREFILL_ROWS,
      msPerCall: c.best,
      gflops: (2 * PREFILL_ROWS * c.matrix.n * c.matrix.k) / c.best / 1e6,
      speedupVsF32: prefillF32(c.matrix).best / c.best,
    }))
    return { adapter: await probeWebGpu(), model, rounds, rows, model_rows, prefill_rows }
  } finally {
    for (const b of buffers) b.destroy()
    k.arena.destroy()
  }
}
