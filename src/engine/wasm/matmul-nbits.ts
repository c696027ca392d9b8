import { TabmeshError } from '../../core/errors.ts'
import { f16ToF32, QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, type QuantizedTensor, type QuantType } from '../../model/quant/quant.ts'

/**
 * GGML Q8_0 / Q4_0 blocks rewritten as the inputs of onnxruntime's com.microsoft MatMulNBits
 * (block_size 32, no zero_points input so the default zero point 2^(bits-1) applies):
 *   B       uint8 (rows, cols / 32, blob): codes of one block, "packed low-first along K"
 *   scales  fp32 (rows * cols / 32): each block's f16 scale d, exactly
 * Q8_0 (w = d * q, q int8) -> bits 8, code q + 128, blob 32 bytes.
 * Q4_0 (w = d * (nibble - 8); GGML keeps element j in the low nibble of byte j and element j + 16
 *   in its high nibble) -> bits 4, element 2i in the low nibble of byte i and 2i + 1 in the high
 *   one, blob 16 bytes.
 * Both dequantize to the very fp32 values GGML's do: (code - zero point) is the same small integer
 * and d is the same float.
 */
export interface MatMulNBitsWeights {
  bits: 4 | 8
  rows: number
  cols: number
  blob: number // bytes per block of 32 codes
  codes: Uint8Array // (rows, cols / 32, blob)
  scales: Float32Array // (rows * cols / 32)
}

export const MATMUL_NBITS_BLOCK = QUANT_BLOCK_SIZE

const bitsOf = (type: QuantType): 4 | 8 => (type === 'q8_0' ? 8 : 4)

/**
 * The rows of `parts` stacked into one MatMulNBits weight (the fused q/k/v or w1/w3 product):
 * every part must be of one type and have `cols` inputs.
 */
export function packMatMulNBits(parts: readonly QuantizedTensor[], cols: number): MatMulNBitsWeights {
  const type = parts[0].type
  if (cols % MATMUL_NBITS_BLOCK !== 0) throw new TabmeshError('model-format', `${parts[0].name}: ${cols} inputs do not fill blocks of ${MATMUL_NBITS_BLOCK}`)
  const blocksPerRow = cols / MATMUL_NBITS_BLOCK
  let rows = 0
  for (const p of parts) {
    if (p.type !== 'q8_0' && p.type !== 'q4_0') throw new TabmeshError('model-format', `${p.name}: quantized type ${String(p.type)} is not Q8_0 or Q4_0`)
    if (p.type !== type) throw new TabmeshError('bad-argument', `${p.name}: ${p.type} cannot share a MatMulNBits weight with ${type}`)
    if (p.shape[1] !== cols) throw new TabmeshError('model-mismatch', `${p.name}: quantized shape (${p.shape.join(', ')}) has ${p.shape[1]} inputs, expected ${cols}`)
    const need = p.shape[0] * blocksPerRow * QUANT_BLOCK_BYTES[p.type]
    if (p.blocks.byteLength !== need) throw new TabmeshError('model-format', `${p.name}: ${p.blocks.byteLength} bytes of ${p.type} blocks, expected ${need} for shape (${p.shape.join(', ')})`)
    rows += p.shape[0]
  }
  const bits = bitsOf(type)
  const blob = (MATMUL_NBITS_BLOCK * bits) / 8
  const blockBytes = QUANT_BLOCK_BYTES[type]
  const codes = new Uint8Array(rows * blocksPerRow * blob) // (rows, cols / 32, blob)
  const scales = new Float32Array(rows * blocksPerRow) // (rows * cols / 32)
  let block = 0 // index of the output block
  for (const p of parts) {
    const src = p.blocks
    const count = p.shape[0] * blocksPerRow
    for (let b = 0; b < count; b++, block++) {
      const at = b * blockBytes
      scales[block] = f16ToF32(src[at] | (src[at + 1] << 8))
      const out = block * blob
      if (bits === 8) {
        // int8 two's complement + 128 is the byte with its top bit flipped
        for (let j = 0; j < 32; j++) codes[out + j] = src[at + 2 + j] ^ 0x80
      } else {
        // GGML byte j: element j (low), j + 16 (high); output byte i: element 2i (low), 2i + 1 (high)
        const q = at + 2
        for (let i = 0; i < 8; i++) {
          codes[out + i] = (src[q + 2 * i] & 0x0f) | ((src[q + 2 * i + 1] & 0x0f) << 4)
          codes[out + 8 + i] = (src[q + 2 * i] >> 4) | (src[q + 2 * i + 1] & 0xf0)
        }
      }
    }
  }
  return { bits, rows, cols, blob, codes, scales }
}
