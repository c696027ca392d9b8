import { TabmeshError } from '../../core/errors.ts'
import type { ByteSource } from '../source/byte-source.ts'
import { checkLayerRange } from './llama2c.ts'
import {
  LAYER_BIAS_TENSORS, LAYER_TENSORS, elementCount, layerTensorName, layerTensorShape,
  type ModelConfig, type ModelSlice, type SliceSpec, type Tensor,
} from '../model.ts'
import { GGML_TYPE, dequantize, ggmlByteSize, ggmlTypeInfo, type QuantType, type QuantizedTensor } from '../quant/index.ts'

/**
 * What GGUF and safetensors loading share: given where each tensor of a llama-family model lies
 * (file, byte range, type, stored shape), load the tensors a slice needs under tabmesh's names,
 * reading only their bytes, converting them to fp32 (or keeping Q8_0/Q4_0 blocks), and putting
 * the rows of wq/wk (and bq/bk) into the interleaved RoPE order the engines use.
 */

/**
 * Where a tensor's bytes are. `rotary: 'half-split'` marks wq/wk/bq/bk stored for RoPE over the
 * two halves of each head (Hugging Face rotate_half, llama.cpp NEOX): row h*hs + p*hs/2 + i holds
 * what tabmesh keeps at row h*hs + 2i + p.
 */
export interface TensorLocation {
  source: ByteSource
  storedName: string // the tensor's name in its file, for error messages
  offset: number // absolute byte offset in source
  byteSize: number
  type: number // GGML type id (safetensors F32/F16/BF16 map onto F32/F16/BF16)
  shape: number[] // row-major as stored: a matrix is (out, in)
  rotary?: 'half-split'
  heads?: number // with rotary: heads in this tensor's rows
}

export interface LoadOptions {
  /** Keep Q8_0 and Q4_0 weight matrices as blocks in slice.quantized instead of fp32 (default false). */
  keepQuantized?: boolean
  /** Cap the context window (real models declare 32K-128K positions; the KV cache grows with it). */
  maxSeqLen?: number
  /** Upper bound on one read when neighbouring tensors are read together (default 64 MiB). */
  maxReadBytes?: number
}

export type TensorLocator = (name: string) => TensorLocation | undefined

/** The tabmesh tensor names a slice needs, with the shapes the config implies. */
export function sliceTensorShapes(c: ModelConfig, spec: SliceSpec): Map<string, number[]> {
  return new Map(sliceTensors(c, spec))
}

/**
 * The same, one at a time: a loader checks each against the file as it goes, so a config that
 * claims millions of layers fails at the first layer the file lacks instead of listing them all.
 */
function* sliceTensors(c: ModelConfig, spec: SliceSpec): Generator<[string, number[]]> {
  for (let l = spec.layers.start; l < spec.layers.end; l++) {
    for (const t of LAYER_TENSORS) yield [layerTensorName(l, t), layerTensorShape(c, t)]
    if (c.attentionBias) {
      for (const b of LAYER_BIAS_TENSORS) yield [`layers.${l}.${b}`, [b === 'bq' ? c.dim : c.kvDim]]
    }
  }
  if (spec.embedding || (spec.head && c.sharedClassifier)) yield ['token_embedding', [c.vocabSize, c.dim]]
  if (spec.head) {
    yield ['final_norm', [c.dim]]
    if (!c.sharedClassifier) yield ['classifier', [c.vocabSize, c.dim]]
  }
}

const QUANT_KEEP: Record<number, QuantType> = { [GGML_TYPE.Q8_0]: 'q8_0', [GGML_TYPE.Q4_0]: 'q4_0' }

/**
 * Reorders the rows (each `rowBytes` long) of each head between half-split RoPE order (HF: row i
 * pairs with row i + head_size/2) and interleaved pairs (rows 2i, 2i+1, as the engines rotate).
 */
function permuteRotaryRows(src: Uint8Array, rows: number, rowBytes: number, heads: number, toInterleaved: boolean): Uint8Array {
  const out = new Uint8Array(src.byteLength)
  const headSize = rows / heads
  const half = headSize / 2
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const split = h * headSize + p * half + i
        const paired = h * headSize + 2 * i + p
        const [from, to] = toInterleaved ? [split, paired] : [paired, split]
        out.set(src.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes)
      }
    }
  }
  return out
}

/** Half-split RoPE rows to interleaved pairs (what the engines use). */
export const interleaveRotaryRows = (src: Uint8Array, rows: number, rowBytes: number, heads: number) => permuteRotaryRows(src, rows, rowBytes, heads, true)

/** The inverse: interleaved pairs to half-split order (what writers of HF-layout files need). */
export const halfSplitRotaryRows = (src: Uint8Array, rows: number, rowBytes: number, heads: number) => permuteRotaryRows(src, rows, rowBytes, heads, false)

interface PlannedRead {
  source: ByteSource
  offset: number
  length: number
  tensors: string[]
}

/** Groups the byte ranges of `names` into few reads: neighbours in one file within 64 bytes (alignment padding) are read together. */
export function planReads(names: string[], locate: (name: string) => TensorLocation, maxReadBytes: number): PlannedRead[] {
  const sorted = [...names].sort((a, b) => {
    const la = locate(a), lb = locate(b)
    return la.source === lb.source ? la.offset - lb.offset : la.source.name < lb.source.name ? -1 : 1
  })
  const reads: PlannedRead[] = []
  for (const name of sorted) {
    const loc = locate(name)
    const last = reads.at(-1)
    const gap = last ? loc.offset - (last.offset + last.length) : -1
    if (last && last.source === loc.source && gap >= 0 && gap < 64 && last.length + gap + loc.byteSize <= maxReadBytes) {
      last.length += gap + loc.byteSize
      last.tensors.push(name)
    } else {
      reads.push({ source: loc.source, offset: loc.offset, length: loc.byteSize, tensors: [name] })
    }
  }
  return reads
}

function checkFinite(data: Float32Array, loc: TensorLocation): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new TabmeshError('model-format', `${loc.source.name}: tensor ${loc.storedName} holds a non-finite value (${data[i]}) at element ${i}; the weights are corrupt`)
    }
  }
}

/**
 * Loads the tensors `spec` needs. Shapes are checked against the config before anything is
 * read; a tensor the config needs but the files lack is a clear error naming it.
 */
export async function assembleSlice(config: ModelConfig, spec: SliceSpec, locator: TensorLocator, options: LoadOptions = {}, fileName = 'model'): Promise<ModelSlice> {
  checkLayerRange(config, spec.layers)
  const shapes = new Map<string, number[]>()
  const locations = new Map<string, TensorLocation>()
  for (const [name, shape] of sliceTensors(config, spec)) {
    shapes.set(name, shape)
    const loc = locator(name)
    if (!loc) throw new TabmeshError('model-format', `${fileName}: has no tensor for ${name}, which the model's config needs`)
    const stored = loc.shape.length === shape.length ? loc.shape : loc.shape.filter((d) => d !== 1)
    if (stored.length !== shape.length || stored.some((d, i) => d !== shape[i])) {
      throw new TabmeshError('model-mismatch', `${loc.source.name}: tensor ${loc.storedName} has shape [${loc.shape}] but the config needs [${shape}] for ${name}`)
    }
    const expectBytes = ggmlByteSize(loc.type, elementCount(shape), `${loc.source.name}: tensor ${loc.storedName}`)
    if (expectBytes !== loc.byteSize) {
      throw new TabmeshError('model-format', `${loc.source.name}: tensor ${loc.storedName} spans ${loc.byteSize} bytes but ${elementCount(shape)} ${ggmlTypeInfo(loc.type, loc.storedName).name} values take ${expectBytes}`)
    }
    locations.set(name, loc)
  }

  const tensors = new Map<string, Tensor>()
  const quantized = new Map<string, QuantizedTensor>()
  const reads = planReads([...locations.keys()], (n) => locations.get(n)!, options.maxReadBytes ?? 64 << 20)
  for (const read of reads) {
    const bytes = await read.source.read(read.offset, read.length)
    for (const name of read.tensors) {
      const loc = locations.get(name)!
      const shape = shapes.get(name)!
      let raw = bytes.subarray(loc.offset - read.offset, loc.offset - read.offset + loc.byteSize)
      if (loc.rotary === 'half-split') {
        const heads = loc.heads!
        raw = interleaveRotaryRows(raw, shape[0], loc.byteSize / shape[0], heads)
      }
      const keep = QUANT_KEEP[loc.type]
      if (options.keepQuantized && keep && shape.length === 2 && name !== 'token_embedding') {
        quantized.set(name, { name, shape: [shape[0], shape[1]], type: keep, blocks: raw.slice() })
        continue
      }
      const data = new Float32Array(elementCount(shape)) // shape
      dequantize(loc.type, raw, data.length, data, 0, `${loc.source.name}: tensor ${loc.storedName}`)
      checkFinite(data, loc)
      tensors.set(name, { name, shape, data })
    }
  }
  if (spec.head && config.sharedClassifier) tensors.set('classifier', { ...tensors.get('token_embedding')!, name: 'classifier' })
  if (!spec.embedding) tensors.delete('token_embedding')
  const slice: ModelSlice = { config, spec, tensors }
  if (quantized.size > 0) slice.quantized = quantized
  return slice
}

/** Checks the numbers every llama-family config needs and derives headSize and kvDim. */
export function finishConfig(fields: Omit<ModelConfig, 'architecture' | 'headSize' | 'kvDim'> & { headSize?: number }, fileName: string): ModelConfig {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen } = fields
  const sizes = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen }
  for (const [field, value] of Object.entries(sizes)) {
    if (!(Number.isInteger(value) && value > 0 && value <= 1 << 24)) {
      throw new TabmeshError('model-format', `${fileName}: ${field} = ${value} is not a plausible size`)
    }
  }
  const headSize = fields.headSize ?? dim / nHeads
  if (!Number.isInteger(headSize) || headSize * nHeads !== dim) {
    throw new TabmeshError('model-format', `${fileName}: head size ${headSize} times ${nHeads} heads is not the model width ${dim}; tabmesh engines need n_heads * head_dim == hidden size`)
  }
  if (headSize % 2 !== 0) throw new TabmeshError('model-format', `${fileName}: head size ${headSize} is odd; RoPE needs pairs`)
  if (nHeads % nKvHeads !== 0) throw new TabmeshError('model-format', `${fileName}: ${nHeads} query heads are not a multiple of ${nKvHeads} key/value heads`)
  if (!(fields.normEps > 0 && fields.normEps < 1)) throw new TabmeshError('model-format', `${fileName}: rms epsilon ${fields.normEps} is not plausible`)
  if (!(fields.ropeTheta > 0)) throw new TabmeshError('model-format', `${fileName}: rope theta ${fields.ropeTheta} is not plausible`)
  const config: ModelConfig = { architecture: 'llama', ...fields, headSize, kvDim: nKvHeads * headSize }
  for (const key of Object.keys(config) as (keyof ModelConfig)[]) if (config[key] === undefined) delete config[key]
  return config
}
