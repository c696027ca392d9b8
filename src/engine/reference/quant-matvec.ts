/**
 * The TypeScript twin of the quantized GPU and WASM kernels: a matvec that reads a weight matrix in
 * its GGML Q8_0 / Q4_0 blocks directly (dequantizing in registers, never an fp32 copy). The
 * reference engine runs quantized slices with it, and the kernels are checked against it.
 */
import { F16_TABLE } from '../../core/f16.ts'
import { QUANT_BLOCK_SIZE, type QuantizedTensor } from '../../model/quant/index.ts'

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
