// The WGSL kernels of shaders/, bundled as text by Vite's ?raw suffix. The matvec and matmul kernels
// are their format's loads followed by the shared row groups or tiling (WGSL has no includes).
import argmax from '../../../shaders/argmax_f32.wgsl?raw'
import attentionDecode from '../../../shaders/attention_decode_f32.wgsl?raw'
import attentionMerge from '../../../shaders/attention_merge_f32.wgsl?raw'
import attentionPrefill from '../../../shaders/attention_prefill_f32.wgsl?raw'
import biasAdd from '../../../shaders/bias_add_f32.wgsl?raw'
import copy from '../../../shaders/copy_f32.wgsl?raw'
import embedding from '../../../shaders/embedding_f32.wgsl?raw'
import matmulF32Loads from '../../../shaders/matmul_f32.wgsl?raw'
import matmulQ4_0Loads from '../../../shaders/matmul_q4_0.wgsl?raw'
import matmulQ8_0Loads from '../../../shaders/matmul_q8_0.wgsl?raw'
import matmulTiles from '../../../shaders/matmul_tiles.wgsl?raw'
import matvecF32Loads from '../../../shaders/matvec_f32.wgsl?raw'
import matvecBlocks from '../../../shaders/matvec_blocks.wgsl?raw'
import matvecQ4_0Loads from '../../../shaders/matvec_q4_0.wgsl?raw'
import matvecQ8_0Loads from '../../../shaders/matvec_q8_0.wgsl?raw'
import matvecRows from '../../../shaders/matvec_rows.wgsl?raw'
import residualAdd from '../../../shaders/residual_add_f32.wgsl?raw'
import rmsnorm from '../../../shaders/rmsnorm_f32.wgsl?raw'
import rope from '../../../shaders/rope_f32.wgsl?raw'
import swiglu from '../../../shaders/swiglu_f32.wgsl?raw'

const matvec = `${matvecF32Loads}\n${matvecRows}`
const matvecQ4_0 = `${matvecQ4_0Loads}\n${matvecBlocks}\n${matvecRows}`
const matvecQ8_0 = `${matvecQ8_0Loads}\n${matvecBlocks}\n${matvecRows}`
const matmul = `${matmulF32Loads}\n${matmulTiles}`
const matmulQ4_0 = `${matmulQ4_0Loads}\n${matmulTiles}`
const matmulQ8_0 = `${matmulQ8_0Loads}\n${matmulTiles}`

export const SHADERS = {
  argmax, attentionDecode, attentionMerge, attentionPrefill, biasAdd, copy, embedding, matmul, matmulQ4_0, matmulQ8_0, matvec, matvecQ4_0, matvecQ8_0, residualAdd, rmsnorm, rope, swiglu,
} as const

export type KernelName = keyof typeof SHADERS
