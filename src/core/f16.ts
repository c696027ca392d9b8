/**
 * IEEE half floats (fp16) and bfloat16 <-> fp32: GGUF block scales, fp16/bf16 weights, and f16
 * activation transfers all convert here (no Float16Array in Node 20).
 */

/** Every fp16 bit pattern as fp32, so a block scale is one table lookup. */
export const F16_TABLE: Float32Array = (() => {
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
