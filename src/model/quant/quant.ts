import { TabmeshError } from '../../core/errors.ts'
import type { ModelSlice } from '../model.ts'

/**
 * GGML tensor types: block layouts, conversion to fp32, and the two quantizers tabmesh writes
 * (Q8_0, Q4_0, after llama.cpp's reference `quantize_row_*_ref`). A `QuantizedTensor` keeps a
 * weight matrix in its blocks; `quantizedMatvec` is the plain-TypeScript twin of the GPU and WASM
 * kernels that read blocks directly (dequantizing in registers, never an fp32 copy).
 */

/** GGML type ids as stored in GGUF tensor infos. */
export const GGML_TYPE = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30,
} as const
export type GgmlTypeName = keyof typeof GGML_TYPE

interface GgmlTypeInfo {
  name: GgmlTypeName
  blockSize: number // elements per block
  blockBytes: number // bytes per block
}

const TYPE_INFO: Record<number, GgmlTypeInfo> = {
  [GGML_TYPE.F32]: { name: 'F32', blockSize: 1, blockBytes: 4 },
  [GGML_TYPE.F16]: { name: 'F16', blockSize: 1, blockBytes: 2 },
  [GGML_TYPE.BF16]: { name: 'BF16', blockSize: 1, blockBytes: 2 },
  [GGML_TYPE.Q4_0]: { name: 'Q4_0', blockSize: 32, blockBytes: 18 }, // f16 d, 16 bytes of nibbles
  [GGML_TYPE.Q4_1]: { name: 'Q4_1', blockSize: 32, blockBytes: 20 }, // f16 d, f16 m, nibbles
  [GGML_TYPE.Q5_0]: { name: 'Q5_0', blockSize: 32, blockBytes: 22 }, // f16 d, u32 high bits, nibbles
  [GGML_TYPE.Q5_1]: { name: 'Q5_1', blockSize: 32, blockBytes: 24 }, // f16 d, f16 m, u32 high bits, nibbles
  [GGML_TYPE.Q8_0]: { name: 'Q8_0', blockSize: 32, blockBytes: 34 }, // f16 d, 32 int8
  [GGML_TYPE.Q4_K]: { name: 'Q4_K', blockSize: 256, blockBytes: 144 }, // f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes
  [GGML_TYPE.Q6_K]: { name: 'Q6_K', blockSize: 256, blockBytes: 210 }, // 128 ql, 64 qh, 16 int8 scales, f16 d
}

/** Layout of a GGML type, or a TabmeshError naming the tensor when tabmesh cannot read it. */
export function ggmlTypeInfo(type: number, where: string): GgmlTypeInfo {
  const info = TYPE_INFO[type]
  if (!info) {
    const known = Object.entries(GGML_TYPE).map(([n, id]) => `${n} (${id})`).join(', ')
    throw new TabmeshError('model-format', `${where}: GGML tensor type ${type} is not supported (supported: ${known})`)
  }
  return info
}

/** Bytes of `elements` values of a type; elements must fill whole blocks. */
export function ggmlByteSize(type: number, elements: number, where: string): number {
  const info = ggmlTypeInfo(type, where)
  if (elements % info.blockSize !== 0) {
    throw new TabmeshError('model-format', `${where}: ${elements} elements do not fill whole ${info.name} blocks of ${info.blockSize}`)
  }
  return (elements / info.blockSize) * info.blockBytes
}

// ---- half floats ----

/** Every fp16 bit pattern as fp32, so a block scale is one table lookup. */
const F16_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536) // (65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const frac = h & 0x3ff
    if (exp === 0) table[h] = sign * frac * 2 ** -24
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15)
  }
  return table
})()

export const f16ToF32 = (bits: number): number => F16_TABLE[bits & 0xffff]

/** fp32 -> fp16 bits, rounding to nearest even (as GGML_FP32_TO_FP16 does). */
export function f32ToF16(value: number): number {
  const f = Math.fround(value)
  const sign = f < 0 || Object.is(f, -0) ? 0x8000 : 0
  const a = Math.abs(f)
  if (Number.isNaN(f)) return 0x7e00
  if (a >= 65520) return sign | 0x7c00 // overflows to infinity
  if (a < 2 ** -14) {
    // subnormal: multiples of 2^-24, round half to even
    const m = a / 2 ** -24
    let r = Math.round(m)
    if (r - m === 0.5 && r % 2 === 1) r -= 1
    return sign | r
  }
  let exp = Math.floor(Math.log2(a))
  if (2 ** exp > a) exp -= 1
  if (2 ** (exp + 1) <= a) exp += 1
  const m = (a / 2 ** exp - 1) * 1024
  let r = Math.floor(m)
  const rest = m - r
  if (rest > 0.5 || (rest === 0.5 && r % 2 === 1)) r += 1
  if (r === 1024) { r = 0; exp += 1 }
  if (exp + 15 >= 31) return sign | 0x7c00
  return sign | ((exp + 15) << 10) | r
}

export const bf16ToF32 = (bits: number): number => {
  BITS_U32[0] = (bits & 0xffff) << 16
  return BITS_F32[0]
}
const BITS_F32 = new Float32Array(1)
const BITS_U32 = new Uint32Array(BITS_F32.buffer)

/** fp32 -> bf16 bits, rounding to nearest even. */
export function f32ToBf16(value: number): number {
  BITS_F32[0] = value
  const u = BITS_U32[0]
  if (Number.isNaN(value)) return 0x7fc0
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff
}

// ---- dequantization ----

/** K-quant 6-bit scale and min of sub-block j (llama.cpp get_scale_min_k4). */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63]
  return [(q[at + j + 4] & 0xf) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)]
}

/**
 * Converts `count` values of GGML type `type` from `bytes` (starting at a block boundary) into
 * `out` at `outOffset`.
 */
export function dequantize(type: number, bytes: Uint8Array, count: number, out: Float32Array, outOffset = 0, where = 'tensor'): void {
  const info = ggmlTypeInfo(type, where)
  const need = ggmlByteSize(type, count, where)
  if (bytes.byteLength < need) throw new TabmeshError('model-format', `${where}: ${bytes.byteLength} bytes hold fewer than ${count} ${info.name} values (${need} bytes)`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const nBlocks = count / info.blockSize
  let o = outOffset
  switch (type) {
    case GGML_TYPE.F32:
      for (let i = 0; i < count; i++) out[o++] = view.getFloat32(i * 4, true)
      return
    case GGML_TYPE.F16:
      for (let i = 0; i < count; i++) out[o++] = F16_TABLE[view.getUint16(i * 2, true)]
      return
    case GGML_TYPE.BF16:
      for (let i = 0; i < count; i++) out[o++] = bf16ToF32(view.getUint16(i * 2, true))
      return
    case GGML_TYPE.Q8_0:
      for (let b = 0; b < nBlocks; b++) {
        const at = b * 34
        const d = F16_TABLE[view.getUint16(at, true)]
        for (let j = 0; j < 32; j++) out[o++] = view.getInt8(at + 2 + j) * d
      }
      return
    case GGML_TYPE.Q4_0:
    case GGML_TYPE.Q4_1:
      for (let b = 0; b < nBlocks; b++) {
        const q41 = type === GGML_TYPE.Q4_1
        const at = b * info.blockBytes
        const d = F16_TABLE[view.getUint16(at, true)]
        const m = q41 ? F16_TABLE[view.getUint16(at + 2, true)] : 0
        const qs = at + (q41 ? 4 : 2)
        const bias = q41 ? 0 : -8
        for (let j = 0; j < 16; j++) {
          const byte = bytes[qs + j]
          out[o + j] = ((byte & 0xf) + bias) * d + m
          out[o + j + 16] = ((byte >> 4) + bias) * d + m
        }
        o += 32
      }
      return
    case GGML_TYPE.Q5_0:
    case GGML_TYPE.Q5_1:
      for (let b = 0; b < nBlocks; b++) {
        const q51 = type === GGML_TYPE.Q5_1
        const at = b * info.blockBytes
        const d = F16_TABLE[view.getUint16(at, true)]
        const m = q51 ? F16_TABLE[view.getUint16(at + 2, true)] : 0
        const qh = view.getUint32(at + (q51 ? 4 : 2), true)
        const qs = at + (q51 ? 8 : 6)
        const bias = q51 ? 0 : -16
        for (let j = 0; j < 16; j++) {
          const byte = bytes[qs + j]
          const h0 = ((qh >>> j) << 4) & 0x10
          const h1 = (qh >>> (j + 12)) & 0x10
          out[o + j] = (((byte & 0xf) | h0) + bias) * d + m
          out[o + j + 16] = (((byte >> 4) | h1) + bias) * d + m
        }
        o += 32
      }
      return
    case GGML_TYPE.Q4_K:
      for (let b = 0; b < nBlocks; b++) {
        const at = b * 144
        const d = F16_TABLE[view.getUint16(at, true)]
        const dmin = F16_TABLE[view.getUint16(at + 2, true)]
        const scales = at + 4
        let q = at + 16
        for (let sub = 0; sub < 8; sub += 2) {
          const [sc1, m1] = scaleMinK4(sub, bytes, scales)
          const [sc2, m2] = scaleMinK4(sub + 1, bytes, scales)
          const d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2
          for (let l = 0; l < 32; l++) out[o + l] = d1 * (bytes[q + l] & 0xf) - min1
          for (let l = 0; l < 32; l++) out[o + 32 + l] = d2 * (bytes[q + l] >> 4) - min2
          o += 64
          q += 32
        }
      }
      return
    case GGML_TYPE.Q6_K:
      for (let b = 0; b < nBlocks; b++) {
        const at = b * 210
        const d = F16_TABLE[view.getUint16(at + 208, true)]
        let ql = at, qh = at + 128, sc = at + 192
        for (let half = 0; half < 2; half++) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4
            const h = bytes[qh + l]
            const q1 = ((bytes[ql + l] & 0xf) | ((h & 3) << 4)) - 32
            const q2 = ((bytes[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32
            const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32
            const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32
            out[o + l] = d * view.getInt8(sc + is) * q1
            out[o + l + 32] = d * view.getInt8(sc + is + 2) * q2
            out[o + l + 64] = d * view.getInt8(sc + is + 4) * q3
            out[o + l + 96] = d * view.getInt8(sc + is + 6) * q4
          }
          o += 128
          ql += 64
          qh += 32
          sc += 8
        }
      }
      return
    default:
      throw new TabmeshError('model-format', `${where}: cannot dequantize ${info.name}`)
  }
}

// ---- quantization (for writing fixtures) ----

/** llama.cpp's quantize_row_q8_0_ref: per 32 values, d = amax / 127, q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new TabmeshError('bad-argument', `Q8_0 needs a multiple of 32 values, got ${x.length}`)
  const out = new Uint8Array((x.length / 32) * 34)
  const view = new DataView(out.buffer)
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]))
    const d = Math.fround(amax / 127)
    const id = d ? Math.fround(1 / d) : 0
    view.setUint16(b * 34, f32ToF16(d), true)
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j] * id)
      view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v))) // roundf: half away from zero
    }
  }
  return out
}

/** llama.cpp's quantize_row_q4_0_ref: d = (signed value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new TabmeshError('bad-argument', `Q4_0 needs a multiple of 32 values, got ${x.length}`)
  const out = new Uint8Array((x.length / 32) * 18)
  const view = new DataView(out.buffer)
  const level = (v: number) => Math.min(15, Math.trunc(Math.fround(v + 8.5)))
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j]
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v }
    }
    const d = Math.fround(max / -8)
    const id = d ? Math.fround(1 / d) : 0
    view.setUint16(b * 18, f32ToF16(d), true)
    for (let j = 0; j < 16; j++) {
      const lo = level(Math.fround(x[b * 32 + j] * id))
      const hi = level(Math.fround(x[b * 32 + 16 + j] * id))
      out[b * 18 + 2 + j] = lo | (hi << 4)
    }
  }
  return out
}

/**
 * Simple K-quant writers (min/max per sub-block, no error search like llama.cpp's): enough to make
 * Q4_K and Q6_K fixtures whose dequantized values are checked against the fp32 originals.
 */
export function quantizeQ4_K(x: Float32Array): Uint8Array {
  if (x.length % 256 !== 0) throw new TabmeshError('bad-argument', `Q4_K needs a multiple of 256 values, got ${x.length}`)
  const out = new Uint8Array((x.length / 256) * 144)
  const view = new DataView(out.buffer)
  const scales = new Float32Array(8) // (8) sub-block scale
  const mins = new Float32Array(8) // (8) sub-block min, stored negated (value = d*q - min)
  for (let b = 0; b < x.length / 256; b++) {
    const base = b * 256
    for (let s = 0; s < 8; s++) {
      let lo = Infinity, hi = -Infinity
      for (let j = 0; j < 32; j++) { const v = x[base + s * 32 + j]; lo = Math.min(lo, v); hi = Math.max(hi, v) }
      lo = Math.min(lo, 0)
      scales[s] = (hi - lo) / 15
      mins[s] = -lo
    }
    const maxScale = Math.max(...scales), maxMin = Math.max(...mins)
    const d = f16ToF32(f32ToF16(maxScale / 63)), dmin = f16ToF32(f32ToF16(maxMin / 63))
    view.setUint16(b * 144, f32ToF16(d), true)
    view.setUint16(b * 144 + 2, f32ToF16(dmin), true)
    const ls = new Uint8Array(8), lm = new Uint8Array(8)
    for (let s = 0; s < 8; s++) {
      ls[s] = d ? Math.min(63, Math.ceil(scales[s] / d)) : 0 // round up so the range is covered
      lm[s] = dmin ? Math.min(63, Math.round(mins[s] / dmin)) : 0
    }
    const sc = b * 144 + 4
    for (let j = 0; j < 4; j++) {
      out[sc + j] = ls[j] | ((ls[j + 4] >> 4) << 6)
      out[sc + j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6)
      out[sc + j + 8] = (ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4)
    }
    for (let s = 0; s < 8; s++) {
      const step = d * ls[s], min = dmin * lm[s]
      for (let j = 0; j < 32; j++) {
        const q = step ? Math.max(0, Math.min(15, Math.round((x[base + s * 32 + j] + min) / step))) : 0
        const at = b * 144 + 16 + (s >> 1) * 32 + j
        out[at] |= s & 1 ? q << 4 : q
      }
    }
  }
  return out
}

export function quantizeQ6_K(x: Float32Array): Uint8Array {
  if (x.length % 256 !== 0) throw new TabmeshError('bad-argument', `Q6_K needs a multiple of 256 values, got ${x.length}`)
  const out = new Uint8Array((x.length / 256) * 210)
  const view = new DataView(out.buffer)
  const scales = new Float32Array(16) // (16) sub-block scales
  const levels = new Uint8Array(256) // (256) q + 32
  for (let b = 0; b < x.length / 256; b++) {
    const base = b * 256
    for (let s = 0; s < 16; s++) {
      let amax = 0
      for (let j = 0; j < 16; j++) amax = Math.max(amax, Math.abs(x[base + s * 16 + j]))
      scales[s] = amax / 31
    }
    const maxScale = Math.max(...scales)
    const d = f16ToF32(f32ToF16(maxScale / 127))
    view.setUint16(b * 210 + 208, f32ToF16(d), true)
    for (let s = 0; s < 16; s++) {
      const ls = d ? Math.min(127, Math.ceil(scales[s] / d)) : 0
      view.setInt8(b * 210 + 192 + s, ls)
      const step = d * ls
      for (let j = 0; j < 16; j++) {
        const q = step ? Math.max(-32, Math.min(31, Math.round(x[base + s * 16 + j] / step))) : 0
        levels[s * 16 + j] = q + 32
      }
    }
    for (let half = 0; half < 2; half++) {
      const L = half * 128, ql = b * 210 + half * 64, qh = b * 210 + 128 + half * 32
      for (let l = 0; l < 32; l++) {
        out[ql + l] = (levels[L + l] & 0xf) | ((levels[L + l + 64] & 0xf) << 4)
        out[ql + l + 32] = (levels[L + l + 32] & 0xf) | ((levels[L + l + 96] & 0xf) << 4)
        out[qh + l] = (levels[L + l] >> 4) | ((levels[L + l + 32] >> 4) << 2) | ((levels[L + l + 64] >> 4) << 4) | ((levels[L + l + 96] >> 4) << 6)
      }
    }
  }
  return out
}

// ---- quantized tensors kept as blocks ----

export type QuantType = 'q8_0' | 'q4_0'
export const QUANT_GGML_TYPE: Record<QuantType, number> = { q8_0: GGML_TYPE.Q8_0, q4_0: GGML_TYPE.Q4_0 }
export const QUANT_BLOCK_BYTES: Record<QuantType, number> = { q8_0: 34, q4_0: 18 }
export const QUANT_BLOCK_SIZE = 32

/**
 * A weight matrix (out, in) in GGML blocks: row r is blocks [r * in/32, (r+1) * in/32), each
 * 32 consecutive inputs. Q8_0 block: f16 d, int8 q[32], x = d * q. Q4_0 block: f16 d, 16 bytes;
 * x[j] = d * ((byte[j] & 15) - 8), x[j + 16] = d * ((byte[j] >> 4) - 8).
 */
export interface QuantizedTensor {
  name: string
  shape: [number, number] // (out, in); in is a multiple of 32
  type: QuantType
  blocks: Uint8Array // (out, in / 32, block bytes)
}

export function quantizeTensor(name: string, shape: [number, number], data: Float32Array, type: QuantType): QuantizedTensor {
  return { name, shape, type, blocks: type === 'q8_0' ? quantizeQ8_0(data) : quantizeQ4_0(data) }
}

/**
 * `slice` with every weight matrix whose rows fill blocks of 32 (layer matrices, classifier; the
 * embedding table stays fp32 for row lookups) kept as `type` blocks, as a loader keeps a quantized
 * GGUF. Tests and benchmarks make quantized models with it.
 */
export function quantizeSlice(slice: ModelSlice, type: QuantType): ModelSlice {
  const tensors = new Map(slice.tensors)
  const quantized = new Map<string, QuantizedTensor>()
  for (const [name, t] of slice.tensors) {
    if (t.shape.length !== 2 || t.shape[1] % QUANT_BLOCK_SIZE !== 0 || name === 'token_embedding') continue
    quantized.set(name, quantizeTensor(name, [t.shape[0], t.shape[1]], t.data, type))
    tensors.delete(name)
  }
  return { ...slice, tensors, quantized }
}

/** The same numbers in fp32: every quantized matrix of `slice` dequantized (what the fp32 oracle runs). */
export function dequantizeSlice(slice: ModelSlice): ModelSlice {
  const tensors = new Map(slice.tensors)
  for (const [name, q] of slice.quantized ?? []) tensors.set(name, { name, shape: [...q.shape], data: dequantizeTensor(q) })
  return { config: slice.config, spec: slice.spec, tensors }
}

export function dequantizeTensor(q: QuantizedTensor): Float32Array {
  const out = new Float32Array(q.shape[0] * q.shape[1]) // (out, in)
  dequantize(QUANT_GGML_TYPE[q.type], q.blocks, out.length, out, 0, q.name)
  return out
}

/**
 * out[outOffset..] (d) = W (d, n) @ x[xOffset..] (n) with W in blocks: the TypeScript twin of the quantized kernels.
 * Sums in the order a kernel would: per block, the int products times x, then times the scale.
 */
export function quantizedMatvec(out: Float32Array, x: Float32Array, w: QuantizedTensor, outOffset = 0, xOffset = 0): void {
  const [d, n] = w.shape
  const blocksPerRow = n / QUANT_BLOCK_SIZE
  const bytes = w.blocks
  if (w.type === 'q8_0') {
    for (let i = 0; i < d; i++) {
      let sum = 0
      for (let b = 0; b < blocksPerRow; b++) {
        const at = (i * blocksPerRow + b) * 34
        const scale = F16_TABLE[bytes[at] | (bytes[at + 1] << 8)]
        const xo = xOffset + b * 32
        let block = 0
        for (let j = 0; j < 32; j++) block += ((bytes[at + 2 + j] << 24) >> 24) * x[xo + j]
        sum += block * scale
      }
      out[outOffset + i] = sum
    }
  } else {
    for (let i = 0; i < d; i++) {
      let sum = 0
      for (let b = 0; b < blocksPerRow; b++) {
        const at = (i * blocksPerRow + b) * 18
        const scale = F16_TABLE[bytes[at] | (bytes[at + 1] << 8)]
        const xo = xOffset + b * 32
        let block = 0
        for (let j = 0; j < 16; j++) {
          const byte = bytes[at + 2 + j]
          block += ((byte & 0xf) - 8) * x[xo + j] + ((byte >> 4) - 8) * x[xo + j + 16]
        }
        sum += block * scale
      }
      out[outOffset + i] = sum
    }
  }
}
