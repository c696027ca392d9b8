import { TabmeshError } from '../../errors.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, type QuantizedTensor } from '../../model/quant.ts'
import kernelWasm from './kernels/quant-matvec.as.ts?wasm-bytes'

/**
 * The Q8_0 / Q4_0 SIMD kernels (kernels/quant-matvec.as.ts) with their memory: one instance per
 * realm (page or worker). Each quantized matrix's GGML blocks are copied into the kernels' memory
 * once, the first time it is used, and stay there as blocks (no fp32 copy), shared by every engine
 * of the realm that holds the same QuantizedTensor; a matrix nobody references any more gives its
 * bytes back. The fp32 matrices a quantized model keeps (a classifier tied to the embedding table,
 * rows that do not fill blocks) are copied likewise, keyed by their Float32Array, for the fp32
 * kernel. Inputs and outputs pass through one scratch region that grows to the largest call seen,
 * so a call allocates nothing.
 */
export interface QuantKernels {
  /** The kernels' memory: blocks of every uploaded matrix plus scratch (it only grows). */
  readonly memory: WebAssembly.Memory
  /** Bytes of weights held for the realm's matrices (blocks, and fp32 values of fp32 matrices). */
  readonly weightBytes: number
  /** The matrix's blocks in kernel memory, copied on first use. Throws on blocks that do not match its shape. */
  upload(w: QuantizedTensor): KernelMatrix
  /** An fp32 matrix (rows, cols) in kernel memory, copied on first use of `data`. */
  uploadF32(name: string, data: Float32Array, rows: number, cols: number): KernelMatrix
  /**
   * out (rows, w.rows) = x (rows, w.cols) @ W^T; x and out may be longer than that (the first
   * values are used). Multi-row calls read the weights once for all rows.
   */
  matvec(w: KernelMatrix, x: Float32Array, rows: number, out: Float32Array): void
}

/** A weight matrix (out = rows, in = cols) living in kernel memory. */
export interface KernelMatrix {
  readonly name: string
  readonly type: QuantizedTensor['type'] | 'f32'
  readonly rows: number
  readonly cols: number
  readonly at: number // byte offset of its blocks in kernel memory
}

interface KernelExports {
  init(f16Table: number): void
  matvecQ8_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number): void
  matvecQ4_0(w: number, x: number, out: number, rows: number, outDim: number, inDim: number, scratch: number): void
  matvecF32(w: number, x: number, out: number, rows: number, outDim: number, inDim: number): void
}

const PAGE = 65536
const MAX_PAGES = 65536 // 4 GiB: wasm32's limit
const ALIGN = 16
const F16_TABLE_BYTES = 65536 * 4 // (65536) f32: every block scale's value

let kernels: Promise<QuantKernels> | undefined

/** The realm's kernels, instantiated on first call. */
export function loadQuantKernels(): Promise<QuantKernels> {
  kernels ??= instantiate().catch((err: unknown) => {
    kernels = undefined
    throw new TabmeshError('backend', `the WASM SIMD kernels could not start (WebAssembly SIMD needed): ${(err as Error).message}`)
  })
  return kernels
}

async function instantiate(): Promise<QuantKernels> {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES })
  const instance = await WebAssembly.instantiate(await WebAssembly.compile(kernelWasm), { env: { memory } })
  const k = instance.exports as unknown as KernelExports
  const arena = createArena(memory)
  k.init(arena.alloc(F16_TABLE_BYTES))
  let heap = new Float32Array(memory.buffer) // (memory bytes / 4) views the memory; remade when it grows
  let heapBytes = new Uint8Array(memory.buffer)
  const views = () => {
    if (heap.buffer !== memory.buffer) {
      heap = new Float32Array(memory.buffer)
      heapBytes = new Uint8Array(memory.buffer)
    }
  }

  const uploaded = new WeakMap<QuantizedTensor | Float32Array, KernelMatrix>()
  let weightBytes = 0
  // a matrix garbage-collected with its QuantizedTensor (or Float32Array) frees its bytes
  const forget = new FinalizationRegistry<{ at: number; bytes: number }>(({ at, bytes }) => {
    arena.free(at, bytes)
    weightBytes -= bytes
  })

  // scratch, one region: x (rows, cols), out (rows, out), widened codes of one weight row (cols + cols / 32)
  let scratch = { at: 0, bytes: 0 }
  const ensureScratch = (bytes: number) => {
    if (bytes <= scratch.bytes) return
    if (scratch.bytes) arena.free(scratch.at, scratch.bytes)
    scratch = { at: arena.alloc(bytes), bytes }
  }

  const keep = (key: QuantizedTensor | Float32Array, m: KernelMatrix, bytes: number): KernelMatrix => {
    weightBytes += bytes
    uploaded.set(key, m)
    forget.register(key, { at: m.at, bytes })
    return m
  }

  return {
    memory,
    get weightBytes() { return weightBytes },
    upload(w) {
      const known = uploaded.get(w)
      if (known) return known
      const [rows, cols] = w.shape
      if (w.type !== 'q8_0' && w.type !== 'q4_0') throw new TabmeshError('model-format', `${w.name}: quantized type ${String(w.type)} is not Q8_0 or Q4_0`)
      if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0 && cols % QUANT_BLOCK_SIZE === 0)) {
        throw new TabmeshError('model-format', `${w.name}: quantized shape (${w.shape.join(', ')}) is not rows of whole blocks of ${QUANT_BLOCK_SIZE}`)
      }
      const bytes = rows * (cols / QUANT_BLOCK_SIZE) * QUANT_BLOCK_BYTES[w.type]
      if (w.blocks.byteLength !== bytes) throw new TabmeshError('model-format', `${w.name}: ${w.blocks.byteLength} bytes of ${w.type} blocks, expected ${bytes} for shape (${w.shape.join(', ')})`)
      const at = arena.alloc(bytes)
      views()
      heapBytes.set(w.blocks, at)
      return keep(w, { name: w.name, type: w.type, rows, cols, at }, bytes)
    },
    uploadF32(name, data, rows, cols) {
      const known = uploaded.get(data)
      if (known) return known
      if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0 && data.length === rows * cols)) {
        throw new TabmeshError('model-mismatch', `${name}: ${data.length} values, expected (${rows}, ${cols})`)
      }
      const at = arena.alloc(data.byteLength)
      views()
      heap.set(data, at >> 2)
      return keep(data, { name, type: 'f32', rows, cols, at }, data.byteLength)
    },
    matvec(w, x, rows, out) {
      const { rows: d, cols: n } = w
      if (!(Number.isInteger(rows) && rows >= 1 && x.length >= rows * n && out.length >= rows * d)) {
        throw new TabmeshError('bad-argument', `${w.name}: ${rows} rows need x of ${rows} x ${n} and out of ${rows} x ${d} values (got ${x.length}, ${out.length})`)
      }
      const xCount = rows * n
      const outCount = rows * d
      ensureScratch(4 * (xCount + outCount + (rows > 1 && w.type !== 'f32' ? n + n / QUANT_BLOCK_SIZE : 0)))
      views()
      const xAt = scratch.at >> 2
      const outAt = xAt + xCount
      if (x.length === xCount) heap.set(x, xAt)
      else for (let i = 0; i < xCount; i++) heap[xAt + i] = x[i]
      if (w.type === 'f32') k.matvecF32(w.at, xAt << 2, outAt << 2, rows, d, n)
      else (w.type === 'q8_0' ? k.matvecQ8_0 : k.matvecQ4_0)(w.at, xAt << 2, outAt << 2, rows, d, n, (outAt + outCount) << 2)
      for (let i = 0; i < outCount; i++) out[i] = heap[outAt + i]
    },
  }
}

/**
 * First-fit allocation of byte regions in `memory`, 16-byte aligned, growing it as needed; freed
 * regions merge with free neighbours and the free end of memory.
 */
function createArena(memory: WebAssembly.Memory) {
  const holes: { at: number; bytes: number }[] = [] // free regions below `top`, by address
  let top = 0 // end of the highest region in use
  const round = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN
  return {
    alloc(size: number): number {
      const bytes = round(size)
      for (let i = 0; i < holes.length; i++) {
        const h = holes[i]
        if (h.bytes < bytes) continue
        const at = h.at
        if (h.bytes === bytes) holes.splice(i, 1)
        else { h.at += bytes; h.bytes -= bytes }
        return at
      }
      const at = top
      const end = at + bytes
      if (end > memory.buffer.byteLength) {
        const pages = Math.ceil((end - memory.buffer.byteLength) / PAGE)
        try {
          memory.grow(pages)
        } catch {
          throw new TabmeshError('backend', `the WASM kernels' memory cannot grow to ${end} bytes (out of memory)`)
        }
      }
      top = end
      return at
    },
    free(at: number, size: number) {
      const bytes = round(size)
      let i = 0
      while (i < holes.length && holes[i].at < at) i++
      holes.splice(i, 0, { at, bytes })
      // merge with the next hole, then the previous one
      if (i + 1 < holes.length && holes[i].at + holes[i].bytes === holes[i + 1].at) {
        holes[i].bytes += holes[i + 1].bytes
        holes.splice(i + 1, 1)
      }
      if (i > 0 && holes[i - 1].at + holes[i - 1].bytes === holes[i].at) {
        holes[i - 1].bytes += holes[i].bytes
        holes.splice(i, 1)
        i--
      }
      // a hole at the end gives its bytes back to `top`
      if (holes[i].at + holes[i].bytes === top) {
        top = holes[i].at
        holes.splice(i, 1)
      }
    },
  }
}
