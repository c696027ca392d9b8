import { TabmeshError } from '../../core/errors.ts'
import { QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, type QuantizedTensor } from '../../model/quant/index.ts'
import kernelWasm, { shared as sharedKernelWasm } from './kernels/quant-matvec.as.ts?wasm-bytes'
import { controlLength, doneSlot, JOB, KERNEL, postSlot, runChunks, SPIN_MS, type KernelExports } from './kernels/thread-control.ts'

/**
 * The Q8_0 / Q4_0 SIMD kernels (kernels/quant-matvec.as.ts) with their memory: one instance per
 * realm (page or worker). Each quantized matrix's GGML blocks are copied into the kernels' memory
 * once, the first time it is used, and stay there as blocks (no fp32 copy), shared by every engine
 * of the realm that holds the same QuantizedTensor; a matrix nobody references any more gives its
 * bytes back. The fp32 matrices a quantized model keeps (a classifier tied to the embedding table,
 * rows that do not fill blocks) are copied likewise, keyed by their Float32Array, for the fp32
 * kernel. Inputs and outputs pass through one scratch region that grows to the largest call seen,
 * so a call allocates nothing. In a cross-origin isolated worker, helper threads
 * (kernels/kernel-thread.worker.ts) on a shared memory take chunks of each large product's weight
 * rows (kernels/thread-control.ts); rows are computed alike on any thread, so the results do not
 * depend on who took which.
 */
export interface QuantKernels {
  /** The kernels' memory: blocks of every uploaded matrix plus scratch (it only grows). */
  readonly memory: WebAssembly.Memory
  /** Bytes of weights held for the realm's matrices (blocks, and fp32 values of fp32 matrices). */
  readonly weightBytes: number
  /** Threads a large product is split over (this one and helper threads), by weight rows. */
  readonly threads: number
  /** Uses at most n threads per product (tests, benchmarks); the helpers stay. */
  setThreads(n: number): void
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

const PAGE = 65536
const MAX_PAGES = 65536 // 4 GiB: wasm32's limit
const ALIGN = 16
const F16_TABLE_BYTES = 65536 * 4 // (65536) f32: every block scale's value
/** Threads one product may use (the owner and its helpers), at most: decode soon becomes bound by memory bandwidth, and every helper polls between products. */
const MAX_THREADS = 4
/** Products smaller than this many weights stay on one thread: waking a helper costs tens of microseconds. */
const SPLIT_MIN_WEIGHTS = 1 << 17
/** Chunks of rows per thread of a split product: a late or slow thread leaves its share to the others. */
const CHUNKS_PER_THREAD = 4
const HELPER_START_MS = 10_000
const HELPER_ANSWER_MS = 30_000

export interface QuantKernelOptions {
  /** Helper threads besides the caller's (default: up to MAX_THREADS - 1 when this realm can block on Atomics.wait: a cross-origin isolated worker). */
  helpers?: number
  /** Build on a shared memory even without helpers (default: when helpers are used). */
  shared?: boolean
}

let kernels: Promise<QuantKernels> | undefined

/** The realm's kernels, instantiated on first call, with helper threads where the realm allows them. */
export function loadQuantKernels(): Promise<QuantKernels> {
  kernels ??= createQuantKernels().catch((err: unknown) => {
    kernels = undefined
    throw err
  })
  return kernels
}

/**
 * Helper threads need a worker (only a worker may block in Atomics.wait while they run),
 * SharedArrayBuffer (cross-origin isolation) and more than one core.
 */
function helperThreadsHere(): number {
  const g = globalThis as { WorkerGlobalScope?: unknown; crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } }
  if (g.WorkerGlobalScope === undefined || g.crossOriginIsolated !== true || typeof Worker === 'undefined' || typeof SharedArrayBuffer === 'undefined') return 0
  return Math.max(0, Math.min(MAX_THREADS, g.navigator?.hardwareConcurrency ?? 1) - 1)
}

/** New kernels with their own memory (loadQuantKernels keeps one per realm; tests make others). */
export async function createQuantKernels(options: QuantKernelOptions = {}): Promise<QuantKernels> {
  const wantHelpers = typeof Worker === 'undefined' ? 0 : options.helpers ?? helperThreadsHere()
  const shared = options.shared ?? wantHelpers > 0
  let memory: WebAssembly.Memory
  let module: WebAssembly.Module
  let k: KernelExports
  try {
    memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared })
    module = await WebAssembly.compile(shared ? sharedKernelWasm : kernelWasm)
    k = (await WebAssembly.instantiate(module, { env: { memory } })).exports as unknown as KernelExports
  } catch (err) {
    throw new TabmeshError('backend', `the WASM SIMD kernels could not start (WebAssembly SIMD needed${shared ? ', and shared memory' : ''}): ${(err as Error).message}`)
  }
  const arena = createArena(memory)
  const f16Table = arena.alloc(F16_TABLE_BYTES)
  k.init(f16Table, true)
  const started = wantHelpers > 0 ? await startHelpers(module, memory, f16Table, wantHelpers) : undefined
  const helpers = started?.workers.length ?? 0
  const control = started?.control ?? new Int32Array(0) // (controlLength(helpers)) the job and each helper's slots
  let threads = 1 + helpers // threads a product uses
  let jobId = 0
  let heap = new Float32Array(memory.buffer) // (memory bytes / 4) views the memory; remade when it grows
  let heapBytes = new Uint8Array(memory.buffer)
  let viewsOf = arena.grows
  const views = () => {
    if (viewsOf !== arena.grows) {
      heap = new Float32Array(memory.buffer)
      heapBytes = new Uint8Array(memory.buffer)
      viewsOf = arena.grows
    }
  }

  const uploaded = new WeakMap<QuantizedTensor | Float32Array, KernelMatrix>()
  let weightBytes = 0
  // a matrix garbage-collected with its QuantizedTensor (or Float32Array) frees its bytes
  const forget = new FinalizationRegistry<{ at: number; bytes: number }>(({ at, bytes }) => {
    arena.free(at, bytes)
    weightBytes -= bytes
  })
  const keep = (key: QuantizedTensor | Float32Array, m: KernelMatrix, bytes: number): KernelMatrix => {
    weightBytes += bytes
    uploaded.set(key, m)
    forget.register(key, { at: m.at, bytes })
    return m
  }

  // scratch, one region: x (rows, cols), out (rows, out), per thread the widened codes of one weight row (cols + cols / 32)
  let scratch = { at: 0, bytes: 0 }
  const ensureScratch = (bytes: number) => {
    if (bytes <= scratch.bytes) return
    if (scratch.bytes) arena.free(scratch.at, scratch.bytes)
    scratch = { at: arena.alloc(bytes), bytes }
  }

  /** Helper h claimed job `id`: it is running its last chunk. */
  const waitFor = (h: number, id: number) => {
    const slot = doneSlot(h)
    const until = performance.now() + SPIN_MS
    while (Atomics.load(control, slot) !== id && performance.now() < until) { /* poll */ }
    for (let done = Atomics.load(control, slot); done !== id; done = Atomics.load(control, slot)) {
      if (Atomics.wait(control, slot, done, HELPER_ANSWER_MS) === 'timed-out' && Atomics.load(control, slot) !== id) {
        throw new TabmeshError('backend', `a WASM kernel thread did not answer within ${HELPER_ANSWER_MS / 1000} s`)
      }
    }
  }

  return {
    memory,
    get weightBytes() { return weightBytes },
    get threads() { return threads },
    setThreads(n) {
      if (!(Number.isInteger(n) && n >= 1)) throw new TabmeshError('bad-argument', `threads: ${n} is not a positive integer`)
      threads = Math.min(n, 1 + helpers)
    },
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
      const widened = rows > 1 && w.type !== 'f32' ? n + n / QUANT_BLOCK_SIZE : 0 // f32 per thread
      ensureScratch(4 * (xCount + outCount + widened * (1 + helpers)))
      views()
      const xAt = scratch.at >> 2
      const outAt = xAt + xCount
      const widenAt = (outAt + outCount) << 2
      if (x.length === xCount) heap.set(x, xAt)
      else for (let i = 0; i < xCount; i++) heap[xAt + i] = x[i]
      const used = d * n >= SPLIT_MIN_WEIGHTS ? Math.min(threads, d) : 1 // threads this product may use
      if (used === 1) {
        if (w.type === 'f32') k.matvecF32(w.at, xAt << 2, outAt << 2, rows, d, n, 0, d)
        else (w.type === 'q8_0' ? k.matvecQ8_0 : k.matvecQ4_0)(w.at, xAt << 2, outAt << 2, rows, d, n, widenAt, 0, d)
      } else {
        control[JOB.kernel] = KERNEL[w.type]
        control[JOB.w] = w.at
        control[JOB.x] = xAt << 2
        control[JOB.out] = outAt << 2
        control[JOB.rows] = rows
        control[JOB.outDim] = d
        control[JOB.inDim] = n
        control[JOB.scratch] = widenAt
        control[JOB.scratchStride] = 4 * widened
        control[JOB.chunks] = Math.min(d, used * CHUNKS_PER_THREAD)
        Atomics.store(control, JOB.next, 0)
        jobId = jobId >= 0x3fffffff ? 1 : jobId + 1
        for (let h = 0; h < used - 1; h++) {
          Atomics.store(control, postSlot(h), jobId)
          Atomics.notify(control, postSlot(h))
        }
        runChunks(k, control, 0)
        // a helper that has not claimed the job by now is not needed: withdraw it; wait for those running a chunk
        for (let h = 0; h < used - 1; h++) if (Atomics.compareExchange(control, postSlot(h), jobId, 0) !== jobId) waitFor(h, jobId)
      }
      for (let i = 0; i < outCount; i++) out[i] = heap[outAt + i]
    },
  }
}

/** Starts up to `count` helper threads on the shared memory, in order; the first that does not answer in time ends the list. */
async function startHelpers(module: WebAssembly.Module, memory: WebAssembly.Memory, f16Table: number, count: number): Promise<{ workers: Worker[]; control: Int32Array }> {
  const control = new Int32Array(new SharedArrayBuffer(controlLength(count) * 4))
  const workers: Worker[] = []
  for (let helper = 0; helper < count; helper++) {
    const worker = new Worker(new URL('./kernels/kernel-thread.worker.ts', import.meta.url), { type: 'module', name: `tabmesh-kernel-thread-${helper + 1}` })
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), HELPER_START_MS)
      worker.onmessage = () => { clearTimeout(timer); resolve(true) }
      worker.onerror = () => { clearTimeout(timer); resolve(false) }
      worker.postMessage({ module, memory, control: control.buffer, helper, f16Table })
    })
    if (!ready) {
      worker.terminate()
      break
    }
    workers.push(worker)
  }
  return { workers, control }
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
    /** How many times the memory grew (its buffer, and views of it, change each time). */
    grows: 0,
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
          this.grows++
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
