import { TabmeshError } from '../../core/errors.ts'
import { GGUF_MAGIC, GGUF_VALUE, ggufTensorName } from './gguf.ts'
import { halfSplitRotaryRows } from './llama-family.ts'
import { LAYER_BIAS_TENSORS, LAYER_TENSORS, elementCount, getTensor, layerTensorName, type ModelSlice } from '../model.ts'
import { f32ToBf16, f32ToF16 } from '../../core/f16.ts'
import { GGML_TYPE, quantizeQ4_0, quantizeQ4_K, quantizeQ6_K, quantizeQ8_0 } from '../quant/index.ts'
import { GGUF_TOKEN_TYPE, type SpmVocab } from '../tokenizer/spm-vocab.ts'

/**
 * Writes GGUF v3 files: the project's own fixtures (stories260K and synthetic models in F32,
 * F16, Q8_0, Q4_0 and K-quants), made at test time. Not a general converter.
 */

export type GgufMetaValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'f32s'; value: ArrayLike<number> }
  | { type: 'i32s'; value: ArrayLike<number> }

export interface GgufTensorOut {
  name: string
  shape: number[] // row-major: a matrix is (out, in)
  type: number // GGML type id
  data: Uint8Array // encoded values
}

class ByteWriter {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  length = 0
  private grow(n: number) {
    if (this.length + n <= this.buf.byteLength) return
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n))
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }
  u8(v: number) { this.grow(1); this.view.setUint8(this.length, v); this.length += 1 }
  u32(v: number) { this.grow(4); this.view.setUint32(this.length, v, true); this.length += 4 }
  i32(v: number) { this.grow(4); this.view.setInt32(this.length, v, true); this.length += 4 }
  f32(v: number) { this.grow(4); this.view.setFloat32(this.length, v, true); this.length += 4 }
  u64(v: number) { this.grow(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8 }
  bytes(b: Uint8Array) { this.grow(b.byteLength); this.buf.set(b, this.length); this.length += b.byteLength }
  string(s: string) { const b = new TextEncoder().encode(s); this.u64(b.byteLength); this.bytes(b) }
  pad(alignment: number) { while (this.length % alignment !== 0) this.u8(0) }
  result() { return this.buf.slice(0, this.length) }
}

/** Serializes metadata and tensors; tensor data is aligned to `alignment`. */
export function writeGguf(metadata: [string, GgufMetaValue][], tensors: GgufTensorOut[], options: { alignment?: number; version?: number } = {}): Uint8Array {
  const alignment = options.alignment ?? 32
  const w = new ByteWriter()
  w.u32(GGUF_MAGIC)
  w.u32(options.version ?? 3)
  w.u64(tensors.length)
  const meta = alignment === 32 ? metadata : [...metadata, ['general.alignment', { type: 'u32', value: alignment }] as [string, GgufMetaValue]]
  w.u64(meta.length)
  for (const [key, v] of meta) {
    w.string(key)
    switch (v.type) {
      case 'u32': w.u32(GGUF_VALUE.UINT32); w.u32(v.value); break
      case 'i32': w.u32(GGUF_VALUE.INT32); w.i32(v.value); break
      case 'f32': w.u32(GGUF_VALUE.FLOAT32); w.f32(v.value); break
      case 'u64': w.u32(GGUF_VALUE.UINT64); w.u64(v.value); break
      case 'bool': w.u32(GGUF_VALUE.BOOL); w.u8(v.value ? 1 : 0); break
      case 'string': w.u32(GGUF_VALUE.STRING); w.string(v.value); break
      case 'strings': w.u32(GGUF_VALUE.ARRAY); w.u32(GGUF_VALUE.STRING); w.u64(v.value.length); v.value.forEach((s) => w.string(s)); break
      case 'f32s': w.u32(GGUF_VALUE.ARRAY); w.u32(GGUF_VALUE.FLOAT32); w.u64(v.value.length); Array.from(v.value, (x) => w.f32(x)); break
      case 'i32s': w.u32(GGUF_VALUE.ARRAY); w.u32(GGUF_VALUE.INT32); w.u64(v.value.length); Array.from(v.value, (x) => w.i32(x)); break
    }
  }
  let offset = 0
  const offsets: number[] = []
  for (const t of tensors) {
    offsets.push(offset)
    offset = Math.ceil((offset + t.data.byteLength) / alignment) * alignment
  }
  tensors.forEach((t, i) => {
    w.string(t.name)
    w.u32(t.shape.length)
    for (const d of [...t.shape].reverse()) w.u64(d)
    w.u32(t.type)
    w.u64(offsets[i])
  })
  w.pad(alignment)
  for (const t of tensors) {
    w.bytes(t.data)
    w.pad(alignment)
  }
  return w.result()
}

/** Encodes fp32 values as a GGML type. */
export function encodeTensor(data: Float32Array, type: number): Uint8Array {
  switch (type) {
    case GGML_TYPE.F32: return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
    case GGML_TYPE.F16:
    case GGML_TYPE.BF16: {
      const out = new Uint16Array(data.length)
      for (let i = 0; i < data.length; i++) out[i] = type === GGML_TYPE.F16 ? f32ToF16(data[i]) : f32ToBf16(data[i])
      return new Uint8Array(out.buffer)
    }
    case GGML_TYPE.Q8_0: return quantizeQ8_0(data)
    case GGML_TYPE.Q4_0: return quantizeQ4_0(data)
    case GGML_TYPE.Q4_K: return quantizeQ4_K(data)
    case GGML_TYPE.Q6_K: return quantizeQ6_K(data)
  }
  throw new TabmeshError('bad-argument', `cannot encode GGML type ${type}`)
}

export interface LlamaGgufOptions {
  /** Type of the weight matrices; norms stay F32, and a matrix whose rows do not fill whole blocks falls back to F32 (as llama.cpp falls back). */
  type?: 'F32' | 'F16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K'
  /** 'llama' stores wq/wk in interleaved RoPE order; 'qwen2' in half-split order with q/k/v biases. */
  architecture?: 'llama' | 'qwen2'
  vocab?: SpmVocab // written as tokenizer.ggml.* (model "llama", sentencepiece)
  chatTemplate?: string
  name?: string
}

/** A whole model (a full ModelSlice) as a GGUF file in llama.cpp's tensor naming. */
export function modelToGguf(model: ModelSlice, options: LlamaGgufOptions = {}): Uint8Array {
  const c = model.config
  const arch = options.architecture ?? 'llama'
  const matrixType = GGML_TYPE[options.type ?? 'F32']
  const blockSize = matrixType === GGML_TYPE.Q4_K || matrixType === GGML_TYPE.Q6_K ? 256 : matrixType === GGML_TYPE.F32 || matrixType === GGML_TYPE.F16 ? 1 : 32
  const meta: [string, GgufMetaValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: options.name ?? 'tabmesh fixture' }],
    [`${arch}.context_length`, { type: 'u32', value: c.seqLen }],
    [`${arch}.embedding_length`, { type: 'u32', value: c.dim }],
    [`${arch}.block_count`, { type: 'u32', value: c.nLayers }],
    [`${arch}.feed_forward_length`, { type: 'u32', value: c.hiddenDim }],
    [`${arch}.attention.head_count`, { type: 'u32', value: c.nHeads }],
    [`${arch}.attention.head_count_kv`, { type: 'u32', value: c.nKvHeads }],
    [`${arch}.rope.dimension_count`, { type: 'u32', value: c.headSize }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: c.ropeTheta }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: c.normEps }],
    ['general.file_type', { type: 'u32', value: { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K: 15, Q6_K: 18 }[options.type ?? 'F32'] }],
  ]
  if (c.ropeScaling?.type === 'linear') {
    meta.push([`${arch}.rope.scaling.type`, { type: 'string', value: 'linear' }], [`${arch}.rope.scaling.factor`, { type: 'f32', value: c.ropeScaling.factor }])
  }
  if (options.vocab) {
    const v = options.vocab
    meta.push(
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'strings', value: v.pieces }],
      ['tokenizer.ggml.scores', { type: 'f32s', value: v.scores }],
      ['tokenizer.ggml.token_type', { type: 'i32s', value: v.kinds.map((k) => GGUF_TOKEN_TYPE[k]) }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: c.bosId }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: c.eosId }],
      ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: v.kinds.indexOf('unknown') }],
      ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
      ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: true }],
    )
  }
  if (options.chatTemplate !== undefined) meta.push(['tokenizer.chat_template', { type: 'string', value: options.chatTemplate }])

  const tensors: GgufTensorOut[] = []
  const add = (name: string, data: Float32Array, shape: number[], matrix: boolean) => {
    const type = matrix && shape[shape.length - 1] % blockSize === 0 ? matrixType : GGML_TYPE.F32
    tensors.push({ name: ggufTensorName(name), shape, type, data: encodeTensor(data, type) })
  }
  const rotaryRows = (data: Float32Array, rows: number, heads: number) => arch === 'qwen2'
    ? new Float32Array(halfSplitRotaryRows(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), rows, data.byteLength / rows, heads).buffer)
    : data
  const emb = getTensor(model, 'token_embedding')
  add('token_embedding', emb.data, emb.shape, true)
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of LAYER_TENSORS) {
      const tensor = getTensor(model, layerTensorName(l, t))
      let data = tensor.data
      if (t === 'wq') data = rotaryRows(data, c.dim, c.nHeads)
      if (t === 'wk') data = rotaryRows(data, c.kvDim, c.nKvHeads)
      add(tensor.name, data, tensor.shape, tensor.shape.length === 2)
    }
    if (arch === 'qwen2') {
      for (const b of LAYER_BIAS_TENSORS) {
        const name = `layers.${l}.${b}`
        const size = b === 'bq' ? c.dim : c.kvDim
        let data = model.tensors.get(name)?.data ?? new Float32Array(size)
        if (b !== 'bv') data = rotaryRows(data, size, b === 'bq' ? c.nHeads : c.nKvHeads)
        add(name, data, [size], false)
      }
    }
  }
  const norm = getTensor(model, 'final_norm')
  add('final_norm', norm.data, norm.shape, false)
  if (!c.sharedClassifier) {
    const cls = getTensor(model, 'classifier')
    add('classifier', cls.data, cls.shape, true)
  }
  if (c.ropeScaling?.type === 'factors') tensors.push({ name: 'rope_freqs.weight', shape: [c.headSize / 2], type: GGML_TYPE.F32, data: encodeTensor(Float32Array.from(c.ropeScaling.factors), GGML_TYPE.F32) })
  if (tensors.some((t) => elementCount(t.shape) === 0)) throw new TabmeshError('bad-argument', 'empty tensor')
  return writeGguf(meta, tensors)
}
