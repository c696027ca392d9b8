/**
 * GGML tensor types as stored in GGUF tensor infos: type ids, block sizes and byte sizes.
 */
import { TabmeshError } from '../../core/errors.ts'

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
