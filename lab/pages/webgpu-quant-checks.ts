import { createReferenceEngine } from '../../src/engine/reference/reference.ts'
import type { WebGpuEngine, WebGpuEngineOptions } from '../../src/engine/webgpu/engine.ts'
import { createKernels, encodeDispatches, type KernelDispatch } from '../../src/engine/webgpu/kernels.ts'
import { createRng } from '../../src/core/rng.ts'
import { memorySource } from '../../src/model/source/byte-source.ts'
import { loadGguf } from '../../src/model/formats/gguf.ts'
import { modelToGguf } from '../../src/model/formats/gguf-writer.ts'
import type { ModelSlice } from '../../src/model/model.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, dequantizeTensor, quantizeTensor, type QuantType, type QuantizedTensor } from '../../src/model/quant/index.ts'
import { quantizedMatvec } from '../../src/engine/reference/quant-matvec.ts'
import { gpuArray, gpuZeros, readFloats } from './webgpu-gpu.ts'
import { greedyIds, teacherForced } from './engine-compare.ts'

/**
 * matvec_q8_0 / matvec_q4_0 (decode) and matmul_q8_0 / matmul_q4_0 (prefill) against the reference's
 * quantizedMatvec twin applied to every row: seeded random fp32 weights are quantized, the blocks
 * uploaded as they are (split by rows into several bindings when asked), and the GPU output compared
 * with the twin's on the same blocks and inputs.
 */
export type QuantKernelKind = 'matvec' | 'matmul'

export interface QuantKernelCheck {
  type: QuantType
  kernel: QuantKernelKind
  shape: QuantShape
  seed: number
  maxError: number
  tolerance: number
  metric: string
  maxAbsRef: number // shows the outputs are not trivially zero
  weightBytes: number // bytes of blocks bound to the kernel (the quantized size)
  ok: boolean
}

export interface QuantShape {
  rows: number // input vectors
  n: number // output rows
  k: number // input width, a multiple of 32
  splits?: number // weight bindings (by rows)
}

/** A storage buffer holding `bytes` as they are, padded to a whole number of 16-byte units. */
export function gpuBytes(device: GPUDevice, bytes: Uint8Array): GPUBuffer {
  const b = device.createBuffer({ size: Math.max(16, Math.ceil(bytes.byteLength / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, mappedAtCreation: true })
  new Uint8Array(b.getMappedRange()).set(bytes)
  b.unmap()
  return b
}

const QUANT_KERNELS = {
  matvec: { q8_0: 'matvecQ8_0', q4_0: 'matvecQ4_0' },
  matmul: { q8_0: 'matmulQ8_0', q4_0: 'matmulQ4_0' },
} as const

export async function checkQuantKernel(device: GPUDevice, type: QuantType, shape: QuantShape, seed: number, kernel: QuantKernelKind = 'matvec'): Promise<QuantKernelCheck> {
  const { rows, n, k: kIn } = shape
  const splits = shape.splits ?? 1
  const rng = createRng(seed)
  const rand = (count: number) => Float32Array.from({ length: count }, () => 2 * rng.nextF32() - 1)
  const w: QuantizedTensor = quantizeTensor('w', [n, kIn], rand(n * kIn), type)
  const x = rand(rows * kIn)
  const kernels = createKernels(device)
  const buffers: GPUBuffer[] = []
  const keep = (b: GPUBuffer) => { buffers.push(b); return b }
  device.pushErrorScope('validation')
  try {
    const xb = keep(gpuArray(device, x)), y = keep(gpuZeros(device, rows * n))
    const rowBytes = (kIn / QUANT_BLOCK_SIZE) * QUANT_BLOCK_BYTES[type]
    const per = Math.ceil(n / splits)
    const dispatches: KernelDispatch[] = []
    let weightBytes = 0
    for (let start = 0; start < n; start += per) {
      const count = Math.min(per, n - start)
      const blocks = w.blocks.subarray(start * rowBytes, (start + count) * rowBytes)
      weightBytes += blocks.byteLength
      const args = { w: keep(gpuBytes(device, blocks)), x: xb, y, n: count, k: kIn, rowOffset: start, yStride: n }
      dispatches.push(kernels[QUANT_KERNELS[kernel][type]](args))
    }
    for (const d of dispatches) d.resize(rows, 0)
    kernels.arena.flush()
    const encoder = device.createCommandEncoder()
    const pass = encoder.beginComputePass()
    encodeDispatches(pass, dispatches)
    pass.end()
    device.queue.submit([encoder.finish()])
    const gpu = await readFloats(device, y, rows * n)
    const error = await device.popErrorScope()
    if (error) throw new Error(`WebGPU validation error in ${kernel} ${type}: ${error.message}`)

    const ref = new Float32Array(rows * n) // (rows, n)
    for (let m = 0; m < rows; m++) quantizedMatvec(ref.subarray(m * n, (m + 1) * n), x.subarray(m * kIn, (m + 1) * kIn), w)
    // error relative to sum_j |w_j x_j| of the dequantized weights, as for matvec_f32 and matmul_f32
    const wf = dequantizeTensor(w)
    let maxError = 0, maxAbsRef = 0
    for (let m = 0; m < rows; m++) {
      for (let o = 0; o < n; o++) {
        let scale = 0
        for (let j = 0; j < kIn; j++) scale += Math.abs(wf[o * kIn + j] * x[m * kIn + j])
        const i = m * n + o
        const e = Math.abs(gpu[i] - ref[i]) / Math.max(scale, 1e-30)
        if (!(e <= maxError)) maxError = Number.isNaN(e) ? Infinity : e
        maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[i]))
      }
    }
    const tolerance = 1e-5
    return { type, kernel, shape, seed, maxError, tolerance, metric: '|gpu - twin| / sum_j |w_j x_j|', maxAbsRef, weightBytes, ok: maxError <= tolerance }
  } finally {
    for (const b of buffers) b.destroy()
    kernels.arena.destroy()
  }
}

/**
 * A whole model through the webgpu engine on quantized weights: the model is written as a Q8_0 or
 * Q4_0 GGUF and loaded with keepQuantized (the real loading path), then run on the GPU from its
 * blocks, against the reference engine on the same weights dequantized to fp32. Also counts the bytes
 * of every GPU buffer each engine creates: the quantized engine's matrices must cost their block size.
 */
export interface QuantEngineRun {
  quantizedMatrices: number
  greedy: { reference: number[]; webgpu: number[] }
  teacherForced: { calls: number; maxLogitDiff: number; maxLogit: number; argmaxMismatches: number }
  memory: {
    quantizedEngineBytes: number // all GPU buffers of the engine on quantized weights
    f32EngineBytes: number // all GPU buffers of the engine on the dequantized weights
    expectedSaving: number // sum over quantized matrices of padded fp32 bytes - padded block bytes
    quantizedWeightBytes: number // engine.weightBytes
    f32WeightBytes: number
    blockBytes: number // bytes of the quantized matrices' blocks
  }
}

type EngineFactory = (slice: ModelSlice, options: WebGpuEngineOptions) => Promise<WebGpuEngine>

export async function runQuantizedEngine(
  makeDevice: () => Promise<GPUDevice>, createEngine: EngineFactory, f32: ModelSlice, type: 'Q8_0' | 'Q4_0',
  o: { prompt: number[]; maxTokens: number; rowsPerCall: number[]; seed: number; engine?: Omit<WebGpuEngineOptions, 'device'> },
): Promise<QuantEngineRun> {
  const quantized = await loadGguf(memorySource(modelToGguf(f32, { type })), undefined, { keepQuantized: true })
  const dequantized: ModelSlice = { config: quantized.config, spec: quantized.spec, tensors: new Map(quantized.tensors) }
  let blockBytes = 0, expectedSaving = 0
  const pad16 = (bytes: number) => Math.max(16, Math.ceil(bytes / 16) * 16)
  for (const [name, q] of quantized.quantized ?? []) {
    dequantized.tensors.set(name, { name, shape: [...q.shape], data: dequantizeTensor(q) })
    blockBytes += q.blocks.byteLength
    expectedSaving += pad16(q.shape[0] * q.shape[1] * 4) - pad16(q.blocks.byteLength)
  }
  const reference = createReferenceEngine(dequantized)

  // GPU bytes created while building an engine, counted at the device
  const measure = async (slice: ModelSlice) => {
    const d = await makeDevice()
    let bytes = 0
    const createBuffer = d.createBuffer.bind(d)
    d.createBuffer = (desc) => { bytes += desc.size; return createBuffer(desc) }
    const e = await createEngine(slice, { device: d })
    const weightBytes = e.weightBytes
    e.destroy()
    d.destroy()
    return { bytes, weightBytes }
  }
  const mq = await measure(quantized), mf = await measure(dequantized)

  const device = await makeDevice()
  const gpu = await createEngine(quantized, { ...o.engine, device })
  try {
    const greedy = { reference: await greedyIds(reference, o.prompt, o.maxTokens, 8), webgpu: await greedyIds(gpu, o.prompt, o.maxTokens, 8) }
    const { calls, maxLogitDiff, maxLogit, argmaxMismatches } = await teacherForced(reference, gpu, o.rowsPerCall, o.seed)
    return {
      quantizedMatrices: quantized.quantized?.size ?? 0,
      greedy,
      teacherForced: { calls, maxLogitDiff, maxLogit, argmaxMismatches },
      memory: { quantizedEngineBytes: mq.bytes, f32EngineBytes: mf.bytes, expectedSaving, quantizedWeightBytes: mq.weightBytes, f32WeightBytes: mf.weightBytes, blockBytes },
    }
  } finally {
    gpu.destroy()
    device.destroy()
  }
}
