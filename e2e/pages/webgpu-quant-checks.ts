import { createKernels, encodeDispatches, type KernelDispatch } from '../../src/engine/webgpu/kernels.ts'
import { createRng } from '../../src/lib/rng.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, dequantizeTensor, quantizeTensor, quantizedMatvec, type QuantType, type QuantizedTensor } from '../../src/model/quant.ts'
import { gpuArray, gpuZeros, readFloats } from './webgpu-gpu.ts'

/**
 * matvec_q8_0 / matvec_q4_0 against quant.ts's quantizedMatvec twin: seeded random fp32 weights are
 * quantized, the blocks uploaded as they are (split by rows into several bindings when asked), and
 * the GPU output compared with the twin's on the same blocks and inputs.
 */
export interface QuantKernelCheck {
  type: QuantType
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

export async function checkQuantKernel(device: GPUDevice, type: QuantType, shape: QuantShape, seed: number): Promise<QuantKernelCheck> {
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
      dispatches.push(type === 'q8_0' ? kernels.matvecQ8_0(args) : kernels.matvecQ4_0(args))
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
    if (error) throw new Error(`WebGPU validation error in matvec ${type}: ${error.message}`)

    const ref = new Float32Array(rows * n) // (rows, n)
    for (let m = 0; m < rows; m++) quantizedMatvec(ref.subarray(m * n, (m + 1) * n), x.subarray(m * kIn, (m + 1) * kIn), w)
    // error relative to sum_j |w_j x_j| of the dequantized weights, as for matvec_f32
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
    return { type, shape, seed, maxError, tolerance, metric: '|gpu - twin| / sum_j |w_j x_j|', maxAbsRef, weightBytes, ok: maxError <= tolerance }
  } finally {
    for (const b of buffers) b.destroy()
    kernels.arena.destroy()
  }
}
