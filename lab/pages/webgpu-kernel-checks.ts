import { createRng } from '../../src/core/rng.ts'
import { createKernels, encodeDispatches, type KernelDispatch } from '../../src/engine/webgpu/kernels.ts'
import {
  argmaxRef, attentionRef, biasAddRef, embeddingRef, linearRef, residualAddRef, rmsnormRef, ropeRef, ropeTable, swigluRef,
} from '../../testing/webgpu-twins.ts'
import { gpuArray, gpuZeros, readFloats, readU32 } from './webgpu-gpu.ts'

/**
 * Runs one WGSL kernel and its TypeScript twin on the same seeded random inputs and measures the
 * largest error under the kernel's stated metric. Shapes come from the test; nothing is cached.
 */
export interface KernelCheck {
  kernel: string
  shape: Record<string, unknown>
  seed: number
  maxError: number
  tolerance: number
  metric: string
  ok: boolean
}

export type KernelShape = Record<string, number | number[] | boolean>

export async function checkKernel(device: GPUDevice, kernel: string, shape: KernelShape, seed: number): Promise<KernelCheck> {
  const rng = createRng(seed)
  const rand = (n: number, lo: number, hi: number) => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.nextF32()
    return a
  }
  const randInt = (lo: number, hi: number) => lo + Math.floor(rng.nextF32() * (hi - lo)) // [lo, hi)
  const num = (key: string) => shape[key] as number
  const k = createKernels(device)
  const buffers: GPUBuffer[] = []
  const arr = (data: Float32Array | Uint32Array) => { const b = gpuArray(device, data); buffers.push(b); return b }
  const zeros = (floats: number) => { const b = gpuZeros(device, floats); buffers.push(b); return b }
  const run = async (dispatches: KernelDispatch[], rows: number, maxPos: number) => {
    for (const d of dispatches) d.resize(rows, maxPos)
    k.arena.flush()
    const encoder = device.createCommandEncoder()
    const pass = encoder.beginComputePass()
    encodeDispatches(pass, dispatches)
    pass.end()
    device.queue.submit([encoder.finish()])
    await device.queue.onSubmittedWorkDone()
  }
  // largest |gpu - ref| / scale(i)
  const compare = (gpu: Float32Array, ref: Float32Array, count: number, scale: (i: number) => number) => {
    let worst = 0
    for (let i = 0; i < count; i++) {
      const e = Math.abs(gpu[i] - ref[i]) / scale(i)
      if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e
    }
    return worst
  }
  const result = (maxError: number, tolerance: number, metric: string): KernelCheck =>
    ({ kernel, shape, seed, maxError, tolerance, metric, ok: maxError <= tolerance })

  device.pushErrorScope('validation')
  try {
    const check = await runCheck()
    const error = await device.popErrorScope()
    if (error) throw new Error(`WebGPU validation error in ${kernel}: ${error.message}`)
    return check
  } finally {
    for (const b of buffers) b.destroy()
    k.arena.destroy()
  }

  async function runCheck(): Promise<KernelCheck> {
    switch (kernel) {
      case 'matvec':
      case 'matmul': {
        const rows = num('rows'), n = num('n'), kIn = num('k'), splits = num('splits') ?? 1
        const w = rand(n * kIn, -1, 1), x = rand(rows * kIn, -1, 1)
        const xb = arr(x), y = zeros(rows * n)
        const per = Math.ceil(n / splits)
        const dispatches: KernelDispatch[] = []
        for (let start = 0; start < n; start += per) {
          const count = Math.min(per, n - start)
          dispatches.push(k[kernel]({ w: arr(w.subarray(start * kIn, (start + count) * kIn)), x: xb, y, n: count, k: kIn, rowOffset: start, yStride: n }))
        }
        await run(dispatches, rows, 0)
        const ref = new Float32Array(rows * n)
        linearRef(ref, w, x, rows, n, kIn, 0, n)
        const gpu = await readFloats(device, y, rows * n)
        const magnitude = (i: number) => {
          const m = Math.floor(i / n), o = i % n
          let s = 0
          for (let j = 0; j < kIn; j++) s += Math.abs(w[o * kIn + j] * x[m * kIn + j])
          return s
        }
        return result(compare(gpu, ref, rows * n, magnitude), 1e-5, '|gpu - ref| / sum_j |w_j x_j|')
      }
      case 'rmsnorm': {
        const rows = num('rows'), dim = num('dim')
        const x = rand(rows * dim, -2, 2), weight = rand(dim, 0.5, 1.5)
        const out = zeros(rows * dim)
        await run([k.rmsnorm({ x: arr(x), weight: arr(weight), out, dim, eps: 1e-5 })], rows, 0)
        const ref = new Float32Array(rows * dim)
        rmsnormRef(ref, x, weight, rows, dim, 1e-5)
        return result(compare(await readFloats(device, out, rows * dim), ref, rows * dim, (i) => Math.max(1, Math.abs(ref[i]))), 1e-5, '|gpu - ref| / max(1, |ref|)')
      }
      case 'rope': {
        const rows = num('rows'), width = num('width'), headSize = num('headSize'), seqLen = num('seqLen')
        const positions = Uint32Array.from({ length: rows }, () => randInt(Math.max(0, seqLen - 2 * rows), seqLen))
        positions[0] = seqLen - 1
        // any frequencies: the kernel only reads the table (random ones stand for every RoPE scaling)
        const table = ropeTable(seqLen, rand(headSize / 2, 0, 1))
        const v = rand(rows * width, -1, 1)
        const vb = arr(v)
        await run([k.rope({ positions: arr(positions), cosSin: arr(table), v: vb, width, headSize })], rows, 0)
        const ref = v.slice()
        ropeRef(ref, positions, rows, width, headSize, table)
        return result(compare(await readFloats(device, vb, rows * width), ref, rows * width, () => 1), 1e-6, '|gpu - ref| (inputs in [-1, 1])')
      }
      case 'swiglu': {
        const count = num('count')
        const gate = rand(count, -10, 10), up = rand(count, -2, 2)
        const gb = arr(gate)
        await run([k.swiglu({ gate: gb, up: arr(up), width: count })], 1, 0)
        const ref = gate.slice()
        swigluRef(ref, up, count)
        return result(compare(await readFloats(device, gb, count), ref, count, (i) => Math.max(1, Math.abs(ref[i]))), 1e-5, '|gpu - ref| / max(1, |ref|)')
      }
      case 'biasAdd': {
        const rows = num('rows'), width = num('width')
        const x = rand(rows * width, -4, 4), bias = rand(width, -4, 4)
        const xb = arr(x)
        await run([k.biasAdd({ x: xb, bias: arr(bias), width })], rows, 0)
        const ref = x.slice()
        biasAddRef(ref, bias, rows, width)
        return result(compare(await readFloats(device, xb, rows * width), ref, rows * width, () => 1), 0, 'exact (one f32 addition)')
      }
      case 'residualAdd': {
        const count = num('count')
        const x = rand(count, -4, 4), delta = rand(count, -4, 4)
        const xb = arr(x)
        await run([k.residualAdd({ x: xb, delta: arr(delta), width: count })], 1, 0)
        const ref = x.slice()
        residualAddRef(ref, delta, count)
        return result(compare(await readFloats(device, xb, count), ref, count, () => 1), 0, 'exact')
      }
      case 'embedding': {
        const vocab = num('vocab'), dim = num('dim'), rows = num('rows'), splits = num('splits') ?? 1
        const table = rand(vocab * dim, -1, 1)
        const tokens = Uint32Array.from({ length: rows }, () => randInt(0, vocab))
        tokens[rows - 1] = vocab - 1
        const tb = arr(tokens), out = zeros(rows * dim)
        const per = Math.ceil(vocab / splits)
        const dispatches: KernelDispatch[] = []
        for (let start = 0; start < vocab; start += per) {
          const count = Math.min(per, vocab - start)
          dispatches.push(k.embedding({ tokens: tb, table: arr(table.subarray(start * dim, (start + count) * dim)), out, dim, rowStart: start, rowCount: count }))
        }
        await run(dispatches, rows, 0)
        const ref = new Float32Array(rows * dim)
        embeddingRef(ref, table, tokens, rows, dim)
        return result(compare(await readFloats(device, out, rows * dim), ref, rows * dim, () => 1), 0, 'exact')
      }
      case 'argmax': {
        const count = num('count')
        const values = rand(count, -5, 5)
        if (shape.ties) {
          // the largest value twice: the first index must win
          const a = randInt(0, count - 1), b = randInt(a + 1, count)
          values[a] = values[b] = 6
        }
        const result1 = zeros(1)
        await run([k.argmax({ values: arr(values), result: result1, count })], 1, 0)
        const gpu = (await readU32(device, result1, 1))[0]
        return result(gpu === argmaxRef(values, count) ? 0 : Infinity, 0, 'index equal')
      }
      case 'copy': {
        const count = num('count')
        const src = rand(count, -1, 1), dst = zeros(count)
        await run([k.copy({ src: arr(src), dst, count })], 1, 0)
        return result(compare(await readFloats(device, dst, count), src, count, () => 1), 0, 'exact')
      }
      case 'attentionDecode':
      case 'attentionPrefill': {
        const rows = num('rows'), nHeads = num('nHeads'), nKvHeads = num('nKvHeads'), headSize = num('headSize'), seqLen = num('seqLen'), chunk = num('chunk')
        const dim = nHeads * headSize, kvDim = nKvHeads * headSize
        const first = shape.firstPosition as number | undefined
        // prefill: consecutive positions (ending at the last one of the context unless firstPosition says);
        // decode: independent rows, the first at the end of the context
        const positions = kernel === 'attentionPrefill'
          ? Uint32Array.from({ length: rows }, (_, r) => (first ?? seqLen - rows) + r)
          : Uint32Array.from({ length: rows }, (_, r) => (r === 0 ? seqLen - 1 : randInt(0, seqLen)))
        const maxPos = Math.max(...positions)
        const maxChunks = Math.ceil(seqLen / chunk)
        // with `slots`, the cache holds that many slots of seqLen positions and each row reads one
        // (decode: a random slot per row; prefill: one random slot for all rows), its base after the positions
        const slots = (shape.slots as number | undefined) ?? 1
        const shared = randInt(0, slots)
        const rowSlots = Array.from({ length: rows }, () => (kernel === 'attentionPrefill' ? shared : randInt(0, slots)))
        const q = rand(rows * dim, -3, 3), keys = rand(slots * seqLen * kvDim, -1, 1), values = rand(slots * seqLen * kvDim, -1, 1)
        const withBases = slots > 1 ? Uint32Array.from([...positions, ...rowSlots.map((slot) => slot * seqLen)]) : positions
        const pb = arr(withBases), partO = zeros(rows * nHeads * maxChunks * headSize), partML = zeros(rows * nHeads * maxChunks * 2), out = zeros(rows * dim)
        const args = { positions: pb, q: arr(q), keys: arr(keys), values: arr(values), partO, partML, nHeads, nKvHeads, headSize, qStride: dim, chunk, maxChunks, cacheBases: slots > 1 ? rows : 0 }
        await run([k[kernel](args), k.attentionMerge({ positions: pb, partO, partML, out, nHeads, headSize, outStride: dim, chunk, maxChunks })], rows, maxPos)
        const ref = new Float32Array(rows * dim)
        const slotOf = (a: Float32Array, slot: number) => a.subarray(slot * seqLen * kvDim, (slot + 1) * seqLen * kvDim)
        if (kernel === 'attentionPrefill' || slots === 1) attentionRef(ref, q, slotOf(keys, rowSlots[0]), slotOf(values, rowSlots[0]), positions, rows, nHeads, nKvHeads, headSize, dim, dim)
        else for (let r = 0; r < rows; r++) attentionRef(ref.subarray(r * dim), q.subarray(r * dim), slotOf(keys, rowSlots[r]), slotOf(values, rowSlots[r]), positions.subarray(r, r + 1), 1, nHeads, nKvHeads, headSize, dim, dim)
        return result(compare(await readFloats(device, out, rows * dim), ref, rows * dim, () => 1), 1e-5, '|gpu - ref| (values in [-1, 1])')
      }
      default:
        throw new Error(`no kernel named ${kernel}`)
    }
  }
}
