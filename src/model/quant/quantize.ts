/**
 * fp32 -> GGML blocks: the quantizers tabmesh writes (Q8_0, Q4_0 after llama.cpp's reference
 * `quantize_row_*_ref`; simple Q4_K and Q6_K writers for fixtures), and `QuantizedTensor`, a
 * weight matrix kept in its blocks, with the slice-level helpers tests and benchmarks use.
 */
import { TabmeshError } from '../../core/errors.ts'
import { f16ToF32, f32ToF16 } from '../../core/f16.ts'
import type { ModelSlice } from '../model.ts'
import { dequantize } from './dequantize.ts'
import { GGML_TYPE } from './ggml.ts'

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
