/**
 * GGML blocks -> fp32: every type tabmesh reads (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q4_K, Q6_K), after llama.cpp's dequantize_row_*.
 */
import { TabmeshError } from '../../core/errors.ts'
import { bf16ToF32, F16_TABLE } from '../../core/f16.ts'
import { GGML_TYPE, ggmlByteSize, ggmlTypeInfo } from './ggml.ts'

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
