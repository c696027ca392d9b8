import { SHADERS, type KernelName } from './shaders.ts'

/**
 * The WGSL kernels as reusable dispatches: each call below compiles nothing and binds once, returning
 * a `KernelDispatch` (pipeline, bind group, uniform parameters) that an engine or a benchmark records
 * into command encoders as often as it likes. Parameters that depend on the number of rows of a call
 * are updated by `resize`, which writes into a shared CPU mirror of the uniforms; nothing is allocated.
 */

/** Limits baked into the WGSL (keep in step with shaders/). */
export const KERNEL_LIMITS = {
  matvecOutputsPerWorkgroup: 64,
  matmulTile: 64,
  maxAttentionChunk: 256,
  maxDecodeHeadSize: 256,
  maxPrefillHeadSize: 128,
  maxPrefillRows: 64,
  maxWorkgroupsPerDimension: 65535,
} as const

export type Binding = GPUBuffer | GPUBufferBinding

export interface KernelDispatch {
  readonly kernel: KernelName
  readonly pipeline: GPUComputePipeline
  readonly bindGroup: GPUBindGroup
  readonly groups: Uint32Array // (3) workgroups to dispatch
  /** Sets the row-dependent parameters and workgroup counts for `rows` rows whose largest position is `maxPos`. */
  resize(rows: number, maxPos: number): void
}

const SLOT_BYTES = 256 // minUniformBufferOffsetAlignment is at most 256
const PAGE_SLOTS = 256

/**
 * Uniform parameters of many dispatches in a few buffers (64 KiB pages of 256-byte slots) with a CPU
 * mirror; `flush` uploads the pages that changed since the last flush.
 */
export class ParamArena {
  private readonly pages: { buffer: GPUBuffer; u32: Uint32Array<ArrayBuffer>; f32: Float32Array<ArrayBuffer>; dirty: boolean }[] = []
  private used = PAGE_SLOTS
  constructor(private readonly device: GPUDevice) {}

  slot(): { binding: GPUBufferBinding; u32: Uint32Array; f32: Float32Array; markDirty(): void } {
    if (this.used === PAGE_SLOTS) {
      const bytes = SLOT_BYTES * PAGE_SLOTS
      const buffer = this.device.createBuffer({ label: 'params', size: bytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST })
      const mirror = new ArrayBuffer(bytes)
      this.pages.push({ buffer, u32: new Uint32Array(mirror), f32: new Float32Array(mirror), dirty: true })
      this.used = 0
    }
    const page = this.pages[this.pages.length - 1]
    const offset = this.used++ * SLOT_BYTES
    return {
      binding: { buffer: page.buffer, offset, size: SLOT_BYTES },
      u32: page.u32.subarray(offset / 4, (offset + SLOT_BYTES) / 4),
      f32: page.f32.subarray(offset / 4, (offset + SLOT_BYTES) / 4),
      markDirty: () => { page.dirty = true },
    }
  }

  flush(): void {
    for (const page of this.pages) {
      if (!page.dirty) continue
      this.device.queue.writeBuffer(page.buffer, 0, page.u32)
      page.dirty = false
    }
  }

  destroy(): void {
    for (const page of this.pages) page.buffer.destroy()
  }
}

export interface Kernels {
  readonly device: GPUDevice
  readonly arena: ParamArena
  /** y[m, rowOffset + o] = W[o, :] . x[m, :]; W (n, k), x (rows, k), y (rows, yStride). k % 4 == 0. */
  matvec(a: LinearArgs): KernelDispatch
  /**
   * matvec with W in GGML Q8_0 / Q4_0 blocks (src/model/quant layout), read as words and
   * dequantized in registers: w is (n, k / 32) blocks of 34 / 18 bytes, its binding padded to 4 bytes.
   * k % 32 == 0. Twin: quantizedMatvec.
   */
  matvecQ8_0(a: LinearArgs): KernelDispatch
  matvecQ4_0(a: LinearArgs): KernelDispatch
  /** Same contract as matvec, register-tiled for many rows. */
  matmul(a: LinearArgs): KernelDispatch
  /**
   * matmul with W in Q8_0 / Q4_0 blocks (layout as matvecQ8_0), dequantized while the W tile is
   * staged in workgroup memory. k % 32 == 0. Twin: quantizedMatvec per row.
   */
  matmulQ8_0(a: LinearArgs): KernelDispatch
  matmulQ4_0(a: LinearArgs): KernelDispatch
  /** x[r, :] += bias for every row r of x (rows, width). */
  biasAdd(a: { x: Binding; bias: Binding; width: number }): KernelDispatch
  rmsnorm(a: { x: Binding; weight: Binding; out: Binding; dim: number; eps: number }): KernelDispatch
  rope(a: { positions: Binding; cosSin: Binding; v: Binding; width: number; headSize: number }): KernelDispatch
  swiglu(a: { gate: Binding; up: Binding; width: number }): KernelDispatch
  residualAdd(a: { x: Binding; delta: Binding; width: number }): KernelDispatch
  embedding(a: { tokens: Binding; table: Binding; out: Binding; dim: number; rowStart: number; rowCount: number }): KernelDispatch
  attentionDecode(a: AttentionArgs): KernelDispatch
  attentionPrefill(a: AttentionArgs): KernelDispatch
  attentionMerge(a: { positions: Binding; partO: Binding; partML: Binding; out: Binding; nHeads: number; headSize: number; outStride: number; chunk: number; maxChunks: number }): KernelDispatch
  /** Ignores `rows`: always one workgroup over `count` values. */
  argmax(a: { values: Binding; result: Binding; count: number }): KernelDispatch
  /** Copies `count` floats (count % 4 == 0); ignores `rows`. */
  copy(a: { src: Binding; dst: Binding; count: number }): KernelDispatch
}

/** The kernels with the LinearArgs contract. */
export type LinearKernel = 'matvec' | 'matmul' | 'matvecQ8_0' | 'matvecQ4_0' | 'matmulQ8_0' | 'matmulQ4_0'

export interface LinearArgs {
  w: Binding
  x: Binding
  y: Binding
  n: number // output rows (rows of W)
  k: number // input width
  rowOffset: number
  yStride: number
}

export interface AttentionArgs {
  /** (rows) u32 positions; with cacheBases, also each row's cache base (u32) at index cacheBases + r. */
  positions: Binding
  q: Binding // (rows, qStride)
  keys: Binding // (slots * seqLen, kvDim)
  values: Binding // (slots * seqLen, kvDim)
  partO: Binding // (rows, nHeads, maxChunks, headSize)
  partML: Binding // (rows, nHeads, maxChunks, 2)
  nHeads: number
  nKvHeads: number
  headSize: number
  qStride: number
  chunk: number
  maxChunks: number
  /**
   * Where the rows' cache bases start in `positions` (a row reads keys and values from position
   * base_r on: its slot in a cache of many slots); 0 or absent: every base is 0. attentionDecode
   * reads a base per row, attentionPrefill row 0's for every row (all rows in one slot).
   */
  cacheBases?: number
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b)

export function createKernels(device: GPUDevice): Kernels {
  const arena = new ParamArena(device)
  const pipelines = new Map<KernelName, GPUComputePipeline>()
  const pipeline = (name: KernelName) => {
    let p = pipelines.get(name)
    if (!p) {
      const module = device.createShaderModule({ label: name, code: SHADERS[name] })
      p = device.createComputePipeline({ label: name, layout: 'auto', compute: { module, entryPoint: 'main' } })
      pipelines.set(name, p)
    }
    return p
  }
  const asEntry = (b: Binding): GPUBindingResource => ('buffer' in b ? b : { buffer: b })

  /** A dispatch whose params slot holds `fields` (u32, or f32 where `floats` says so). */
  function make(kernel: KernelName, bindings: Binding[], fields: number[], floats: number[], resize: (rows: number, maxPos: number, params: Uint32Array, groups: Uint32Array) => void): KernelDispatch {
    const slot = arena.slot()
    fields.forEach((v, i) => { if (floats.includes(i)) slot.f32[i] = v; else slot.u32[i] = v })
    const pl = pipeline(kernel)
    const bindGroup = device.createBindGroup({
      label: kernel,
      layout: pl.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: slot.binding }, ...bindings.map((b, i) => ({ binding: i + 1, resource: asEntry(b) }))],
    })
    const groups = new Uint32Array([1, 1, 1])
    const params = slot.u32
    return {
      kernel, pipeline: pl, bindGroup, groups,
      resize(rows, maxPos) {
        const before = params[0]
        resize(rows, maxPos, params, groups)
        if (params[0] !== before) slot.markDirty()
      },
    }
  }

  const linear = (kernel: LinearKernel, a: LinearArgs) => {
    const tiled = kernel === 'matmul' || kernel === 'matmulQ8_0' || kernel === 'matmulQ4_0'
    const perGroup = tiled ? KERNEL_LIMITS.matmulTile : KERNEL_LIMITS.matvecOutputsPerWorkgroup
    const width = kernel === 'matvec' || kernel === 'matmul' ? a.k / 4 : a.k / 32 // vec4s or blocks per row
    return make(kernel, [a.w, a.x, a.y], [0, a.n, width, a.rowOffset, a.yStride], [], (rows, _, params, groups) => {
      params[0] = rows
      groups[0] = ceilDiv(a.n, perGroup)
      groups[1] = tiled ? ceilDiv(rows, KERNEL_LIMITS.matmulTile) : rows
    })
  }

  const attention = (kernel: 'attentionDecode' | 'attentionPrefill', a: AttentionArgs) =>
    make(kernel, [a.positions, a.q, a.keys, a.values, a.partO, a.partML],
      [0, a.nHeads, a.nHeads / a.nKvHeads, a.headSize / 4, (a.nKvHeads * a.headSize) / 4, a.qStride / 4, a.chunk, a.maxChunks, 1 / Math.sqrt(a.headSize), a.cacheBases ?? 0], [8],
      (rows, maxPos, params, groups) => {
        params[0] = rows
        groups[0] = a.nHeads
        groups[1] = Math.floor(maxPos / a.chunk) + 1
        groups[2] = kernel === 'attentionDecode' ? rows : 1
      })

  return {
    device, arena,
    matvec: (a) => linear('matvec', a),
    matmul: (a) => linear('matmul', a),
    matvecQ8_0: (a) => linear('matvecQ8_0', a),
    matvecQ4_0: (a) => linear('matvecQ4_0', a),
    matmulQ8_0: (a) => linear('matmulQ8_0', a),
    matmulQ4_0: (a) => linear('matmulQ4_0', a),
    biasAdd: (a) => make('biasAdd', [a.x, a.bias], [0, a.width], [], (rows, _, params, groups) => {
      params[0] = rows * a.width
      groups[0] = ceilDiv(rows * a.width, 256)
    }),
    rmsnorm: (a) => make('rmsnorm', [a.x, a.weight, a.out], [0, a.dim, a.eps], [2], (rows, _, params, groups) => {
      params[0] = rows
      groups[0] = rows
    }),
    rope: (a) => make('rope', [a.positions, a.cosSin, a.v], [0, a.width, a.headSize / 2], [], (rows, _, params, groups) => {
      params[0] = rows
      groups[0] = ceilDiv((rows * a.width) / 2, 64)
    }),
    swiglu: (a) => make('swiglu', [a.gate, a.up], [0], [], (rows, _, params, groups) => {
      params[0] = rows * a.width
      groups[0] = ceilDiv(rows * a.width, 256)
    }),
    residualAdd: (a) => make('residualAdd', [a.x, a.delta], [0], [], (rows, _, params, groups) => {
      params[0] = rows * a.width
      groups[0] = ceilDiv(rows * a.width, 256)
    }),
    embedding: (a) => make('embedding', [a.tokens, a.table, a.out], [0, a.dim, a.rowStart, a.rowCount], [], (rows, _, params, groups) => {
      params[0] = rows
      groups[0] = ceilDiv(a.dim, 64)
      groups[1] = rows
    }),
    attentionDecode: (a) => attention('attentionDecode', a),
    attentionPrefill: (a) => attention('attentionPrefill', a),
    attentionMerge: (a) => make('attentionMerge', [a.positions, a.partO, a.partML, a.out],
      [0, a.nHeads, a.headSize / 4, a.outStride / 4, a.chunk, a.maxChunks], [], (rows, _, params, groups) => {
        params[0] = rows
        groups[0] = a.nHeads
        groups[1] = rows
      }),
    argmax: (a) => make('argmax', [a.values, a.result], [a.count], [], () => {}),
    copy: (a) => {
      const count4 = a.count / 4
      const total = ceilDiv(count4, 1024) // blocks of 1024 vec4s
      const perRow = Math.min(total, KERNEL_LIMITS.maxWorkgroupsPerDimension)
      const d = make('copy', [a.src, a.dst], [count4, perRow], [], () => {})
      d.groups[0] = perRow
      d.groups[1] = ceilDiv(total, perRow)
      return d
    },
  }
}

/** Records dispatches into one compute pass. */
export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: readonly KernelDispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline)
    pass.setBindGroup(0, d.bindGroup)
    pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2])
  }
}
