import { type LayerRange } from '../../core/vocabulary.ts'
import { TabmeshError } from '../../core/errors.ts'
import type { ByteSource } from '../source/byte-source.ts'
import { LAYER_TENSORS, elementCount, layerTensorName, layerTensorShape, type LayerTensorName, type ModelConfig, type ModelSlice, type SliceSpec, type Tensor } from '../model.ts'

/**
 * llama2.c checkpoints ("legacy v0"): seven little-endian int32
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate classifier), seq_len
 * then fp32 tensors, each stacked over all layers:
 *   token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim),
 *   wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
 *   w3 (L, hidden, dim), rms_final (dim), freq_cis_real (seq_len, head/2), freq_cis_imag (same),
 *   [wcls (vocab, dim) when vocab_size < 0].
 * The stored RoPE tables are unused (RoPE is computed, as in run.c).
 *
 * llama2.c's export.py also writes versioned files: a 256-byte header (uint32 magic "ak42",
 * int32 version, the seven int32 above with vocab_size positive, u8 shared_classifier, and for
 * version 2 an int32 group size right after it, unaligned), then
 *   version 1 (fp32, run.c's weights): rms_att (L, dim), rms_ffn (L, dim), rms_final (dim),
 *     token_embedding, wq, wk, wv, wo, w1, w2, w3 (each stacked over layers), [wcls];
 *   version 2 (runq.c's Q8_0): the three norms in fp32, then token_embedding, wq (layer by layer),
 *     wk, wv, wo, w1, w2, w3, [wcls], each tensor as int8 values followed by one fp32 scale per
 *     group of `group size` values. Loaded as fp32 (q * scale): the weights runq.c multiplies with.
 */
export const LLAMA2C_HEADER_BYTES = 28
export const LLAMA2C_MAGIC = 0x616b3432 // "ak42"
export const LLAMA2C_VERSIONED_HEADER_BYTES = 256

/** How a checkpoint stores its tensors: legacy (0), export.py's version 1 (fp32) or 2 (int8 groups). */
export interface Llama2cEncoding {
  version: 0 | 1 | 2
  groupSize: number // version 2: values per fp32 scale; else 0
}
const LEGACY: Llama2cEncoding = { version: 0, groupSize: 0 }
const MAX_DIMENSION = 1 << 20 // a sanity bound so a garbage header cannot ask for petabytes

export interface Llama2cLayout {
  encoding: Llama2cEncoding
  embedding: number // byte offset of token_embedding
  layer: Record<LayerTensorName, number> // byte offset of layer 0 of each stacked tensor
  finalNorm: number
  classifier: number // == embedding when shared
  fileBytes: number // exact size a valid file has
}

export function parseLlama2cHeader(header: Uint8Array, name = 'checkpoint'): ModelConfig {
  return parseLlama2cHeaderWithEncoding(header, name).config
}

/** The header's config and how the tensors after it are stored. */
export function parseLlama2cHeaderWithEncoding(header: Uint8Array, name = 'checkpoint'): { config: ModelConfig; encoding: Llama2cEncoding } {
  if (header.byteLength < LLAMA2C_HEADER_BYTES) {
    throw new TabmeshError('model-format', `${name}: ${header.byteLength} bytes is too short for a llama2.c header (${LLAMA2C_HEADER_BYTES} bytes)`)
  }
  const whole = new DataView(header.buffer, header.byteOffset, header.byteLength)
  let encoding = LEGACY
  let fieldsAt = 0
  let shared: boolean | undefined
  if (whole.getUint32(0, true) === LLAMA2C_MAGIC) {
    if (header.byteLength < LLAMA2C_VERSIONED_HEADER_BYTES) throw new TabmeshError('model-format', `${name}: ${header.byteLength} bytes is too short for a versioned llama2.c header (${LLAMA2C_VERSIONED_HEADER_BYTES} bytes)`)
    const version = whole.getInt32(4, true)
    if (version !== 1 && version !== 2) throw new TabmeshError('model-format', `${name}: llama2.c export version ${version}; this reader knows versions 1 (fp32) and 2 (Q8_0 groups)`)
    fieldsAt = 8
    const flag = whole.getUint8(36)
    if (flag > 1) throw new TabmeshError('model-format', `${name}: shared_classifier flag ${flag} is not 0 or 1`)
    shared = flag === 1
    const groupSize = version === 2 ? whole.getInt32(37, true) : 0
    if (version === 2 && !(groupSize > 0 && groupSize <= MAX_DIMENSION)) throw new TabmeshError('model-format', `${name}: group size ${groupSize} is not a plausible size`)
    encoding = { version, groupSize }
  }
  const view = new DataView(header.buffer, header.byteOffset + fieldsAt, LLAMA2C_HEADER_BYTES)
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, signedVocab, seqLen] = Array.from({ length: 7 }, (_, i) => view.getInt32(i * 4, true))
  const vocabSize = Math.abs(signedVocab)
  const fields = { dim, hidden_dim: hiddenDim, n_layers: nLayers, n_heads: nHeads, n_kv_heads: nKvHeads, vocab_size: vocabSize, seq_len: seqLen }
  for (const [field, value] of Object.entries(fields)) {
    if (!(value > 0 && value <= MAX_DIMENSION)) {
      throw new TabmeshError('model-format', `${name}: header field ${field} = ${value} is not a plausible size; this is not a llama2.c checkpoint or it is corrupt`)
    }
  }
  if (dim % nHeads !== 0) throw new TabmeshError('model-format', `${name}: dim ${dim} is not divisible by n_heads ${nHeads}`)
  if (nHeads % nKvHeads !== 0) throw new TabmeshError('model-format', `${name}: n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`)
  const headSize = dim / nHeads
  if (headSize % 2 !== 0) throw new TabmeshError('model-format', `${name}: head size ${headSize} is odd; RoPE needs pairs`)
  if (encoding.version === 2) {
    for (const [what, n] of [['dim', dim], ['hidden_dim', hiddenDim]] as const) {
      if (n % encoding.groupSize !== 0) throw new TabmeshError('model-format', `${name}: ${what} ${n} is not a multiple of the group size ${encoding.groupSize}`)
    }
  }
  const config: ModelConfig = {
    architecture: 'llama',
    dim, hiddenDim, nLayers, nHeads, nKvHeads, headSize,
    kvDim: nKvHeads * headSize,
    vocabSize, seqLen,
    sharedClassifier: shared ?? signedVocab > 0,
    ropeTheta: 10000,
    normEps: 1e-5,
    bosId: 1,
    eosId: 2,
  }
  return { config, encoding }
}

const NORMS: LayerTensorName[] = ['attention_norm', 'ffn_norm']
const isNorm = (t: LayerTensorName) => NORMS.includes(t)
/** Bytes one layer's (or one whole) tensor of `elements` values takes: fp32, or version 2's int8 plus a scale per group. */
const tensorBytes = (e: Llama2cEncoding, elements: number, quantized: boolean) => (e.version === 2 && quantized ? elements + (elements / e.groupSize) * 4 : elements * 4)

export function llama2cLayout(c: ModelConfig, encoding: Llama2cEncoding = LEGACY): Llama2cLayout {
  let offset = encoding.version === 0 ? LLAMA2C_HEADER_BYTES : LLAMA2C_VERSIONED_HEADER_BYTES
  const take = (bytes: number): number => {
    const at = offset
    offset += bytes
    return at
  }
  const layer = {} as Record<LayerTensorName, number>
  const stacked = (t: LayerTensorName) => { layer[t] = take(c.nLayers * tensorBytes(encoding, elementCount(layerTensorShape(c, t)), !isNorm(t))) }
  const table = c.vocabSize * c.dim
  if (encoding.version === 0) {
    const embedding = take(table * 4)
    for (const t of LAYER_TENSORS) stacked(t)
    const finalNorm = take(c.dim * 4)
    take(c.seqLen * c.headSize / 2 * 4) // freq_cis_real, unused
    take(c.seqLen * c.headSize / 2 * 4) // freq_cis_imag, unused
    const classifier = c.sharedClassifier ? embedding : take(table * 4)
    return { encoding, embedding, layer, finalNorm, classifier, fileBytes: offset }
  }
  for (const t of NORMS) stacked(t)
  const finalNorm = take(c.dim * 4)
  const embedding = take(tensorBytes(encoding, table, true))
  for (const t of LAYER_TENSORS) if (!isNorm(t)) stacked(t)
  const classifier = c.sharedClassifier ? embedding : take(tensorBytes(encoding, table, true))
  return { encoding, embedding, layer, finalNorm, classifier, fileBytes: offset }
}

/** Reads the header and checks the file size it implies against the real size. */
export async function readLlama2cConfig(source: ByteSource): Promise<ModelConfig> {
  return (await readLlama2cHeader(source)).config
}

/** The header, and the file size it implies checked against the real size. */
export async function readLlama2cHeader(source: ByteSource): Promise<{ config: ModelConfig; encoding: Llama2cEncoding }> {
  const size = await source.size()
  // a legacy header is 28 bytes; a versioned one (its magic first) 256
  let bytes = await source.read(0, Math.min(size, LLAMA2C_HEADER_BYTES))
  if (bytes.byteLength >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === LLAMA2C_MAGIC) bytes = await source.read(0, Math.min(size, LLAMA2C_VERSIONED_HEADER_BYTES))
  const header = parseLlama2cHeaderWithEncoding(bytes, source.name)
  const { config, encoding } = header
  const { fileBytes } = llama2cLayout(config, encoding)
  if (fileBytes !== size) {
    const what = size < fileBytes ? 'truncated' : 'longer than its header says'
    throw new TabmeshError('model-format', `${source.name}: the header describes a ${fileBytes}-byte file but it has ${size} bytes (${what})`)
  }
  return header
}

/** Refuses a layer range outside the model (a loader's model-mismatch; an engine's bad-argument). */
export function checkLayerRange(config: ModelConfig, range: LayerRange, code: 'model-mismatch' | 'bad-argument' = 'model-mismatch'): void {
  const { start, end } = range
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > config.nLayers || start > end) {
    throw new TabmeshError(code, `layer range [${start}, ${end}) is not inside the model's ${config.nLayers} layers`)
  }
}

function toFloats(bytes: Uint8Array, name: string, shape: number[], file: string): Tensor {
  const data = new Float32Array(bytes.byteLength / 4) // copied so the data is 4-byte aligned and owned
  new Uint8Array(data.buffer).set(bytes)
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new TabmeshError('model-format', `${file}: tensor ${name} holds a non-finite value (${data[i]}) at element ${i}; the weights are corrupt`)
  }
  return { name, shape, data }
}

/**
 * Loads the parts of a checkpoint that `spec` asks for, reading only their bytes: one contiguous
 * read per stacked tensor for the whole layer range.
 */
export async function loadLlama2c(source: ByteSource, spec?: SliceSpec): Promise<ModelSlice> {
  const { config, encoding } = await readLlama2cHeader(source)
  const want = spec ?? { layers: { start: 0, end: config.nLayers }, embedding: true, head: true }
  checkLayerRange(config, want.layers)
  const layout = llama2cLayout(config, encoding)
  const tensors = new Map<string, Tensor>()
  /** `count` tensors of `elements` values each, stored one after another at `offset`, as fp32. */
  const decode = async (name: string, offset: number, elements: number, count: number, quantized: boolean): Promise<Tensor> => {
    const bytes = await source.read(offset, count * tensorBytes(encoding, elements, quantized))
    if (encoding.version !== 2 || !quantized) return toFloats(bytes, name, [count * elements], source.name)
    return dequantizeGroups(bytes, elements, count, encoding.groupSize, name, source.name)
  }
  const readTensor = async (name: string, offset: number, shape: number[], quantized: boolean) => {
    const t = { ...(await decode(name, offset, elementCount(shape), 1, quantized)), shape }
    tensors.set(name, t)
    return t
  }

  const { start, end } = want.layers
  if (end > start) {
    for (const t of LAYER_TENSORS) {
      const shape = layerTensorShape(config, t)
      const perLayer = elementCount(shape)
      const all = await decode(`${t}[${start}:${end}]`, layout.layer[t] + start * tensorBytes(encoding, perLayer, !isNorm(t)), perLayer, end - start, !isNorm(t))
      for (let l = start; l < end; l++) {
        const name = layerTensorName(l, t)
        tensors.set(name, { name, shape, data: all.data.subarray((l - start) * perLayer, (l - start + 1) * perLayer) })
      }
    }
  }
  const embeddingShape = [config.vocabSize, config.dim]
  let embedding: Tensor | undefined
  if (want.embedding || (want.head && config.sharedClassifier)) embedding = await readTensor('token_embedding', layout.embedding, embeddingShape, true)
  if (want.head) {
    await readTensor('final_norm', layout.finalNorm, [config.dim], false)
    if (config.sharedClassifier) tensors.set('classifier', { ...embedding!, name: 'classifier' })
    else await readTensor('classifier', layout.classifier, embeddingShape, true)
  }
  if (!want.embedding) tensors.delete('token_embedding')
  return { config, spec: want, tensors }
}

/** Version 2's tensors: per tensor, `elements` int8 values then elements / groupSize fp32 scales; as fp32 (q * scale). */
function dequantizeGroups(bytes: Uint8Array, elements: number, count: number, groupSize: number, name: string, file: string): Tensor {
  const out = new Float32Array(count * elements)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const per = elements + (elements / groupSize) * 4
  for (let k = 0; k < count; k++) {
    const base = k * per
    for (let g = 0; g < elements / groupSize; g++) {
      const scale = view.getFloat32(base + elements + g * 4, true)
      if (!Number.isFinite(scale)) throw new TabmeshError('model-format', `${file}: tensor ${name} has a non-finite scale (${scale}) in group ${g}; the weights are corrupt`)
      for (let i = g * groupSize; i < (g + 1) * groupSize; i++) out[k * elements + i] = Math.fround(view.getInt8(base + i) * scale)
    }
  }
  return { name, shape: [count * elements], data: out }
}

/**
 * Writes a checkpoint in the same format (tests make synthetic models with it). `tensors` must
 * hold every tensor of a full model under the names loadLlama2c gives them.
 */
export function writeLlama2c(config: ModelConfig, tensor: (name: string, shape: number[]) => Float32Array): Uint8Array {
  const layout = llama2cLayout(config)
  const out = new Uint8Array(layout.fileBytes)
  const view = new DataView(out.buffer)
  const header = [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads,
    config.sharedClassifier ? config.vocabSize : -config.vocabSize, config.seqLen]
  header.forEach((v, i) => view.setInt32(i * 4, v, true))
  const put = (offset: number, data: Float32Array) => out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset)
  put(layout.embedding, tensor('token_embedding', [config.vocabSize, config.dim]))
  for (const t of LAYER_TENSORS) {
    const shape = layerTensorShape(config, t)
    for (let l = 0; l < config.nLayers; l++) put(layout.layer[t] + l * elementCount(shape) * 4, tensor(layerTensorName(l, t), shape))
  }
  put(layout.finalNorm, tensor('final_norm', [config.dim]))
  if (!config.sharedClassifier) put(layout.classifier, tensor('classifier', [config.vocabSize, config.dim]))
  return out
}

/** Bytes of weights a slice needs (what loading it downloads, header aside). */
export function sliceWeightBytes(c: ModelConfig, spec: SliceSpec): number {
  const perLayer = LAYER_TENSORS.reduce((n, t) => n + elementCount(layerTensorShape(c, t)) * 4, 0)
  const table = c.vocabSize * c.dim * 4
  const embedding = spec.embedding || (spec.head && c.sharedClassifier) ? table : 0
  const head = spec.head ? c.dim * 4 + (c.sharedClassifier ? 0 : table) : 0
  return (spec.layers.end - spec.layers.start) * perLayer + embedding + head
}

/** torch.round: halves to even (export.py rounds its int8 values with it). */
const roundHalfEven = (x: number) => {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/**
 * Writes export.py's version 1 (fp32) or version 2 (int8 in groups, quantized as export.py's
 * quantize_q80 does) from a full model's tensors, named as loadLlama2c names them (tests).
 */
export function writeLlama2cVersioned(config: ModelConfig, tensor: (name: string, shape: number[]) => Float32Array, version: 1 | 2, groupSize = 64): Uint8Array {
  let gs = version === 2 ? groupSize : 0
  while (version === 2 && config.dim % gs !== 0) gs /= 2 // export.py's backoff
  const encoding: Llama2cEncoding = { version, groupSize: gs }
  const layout = llama2cLayout(config, encoding)
  const out = new Uint8Array(layout.fileBytes)
  const view = new DataView(out.buffer)
  view.setUint32(0, LLAMA2C_MAGIC, true)
  view.setInt32(4, version, true)
  ;[config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, config.vocabSize, config.seqLen].forEach((v, i) => view.setInt32(8 + i * 4, v, true))
  view.setUint8(36, config.sharedClassifier ? 1 : 0)
  if (version === 2) view.setInt32(37, gs, true)
  /** Writes one tensor at `offset`; returns the bytes written. */
  const put = (offset: number, data: Float32Array, quantized: boolean): number => {
    if (version === 1 || !quantized) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset)
      return data.byteLength
    }
    const groups = data.length / gs
    for (let g = 0; g < groups; g++) {
      let max = 0
      for (let i = g * gs; i < (g + 1) * gs; i++) max = Math.max(max, Math.abs(data[i]))
      const scale = Math.fround(max / 127)
      for (let i = g * gs; i < (g + 1) * gs; i++) view.setInt8(offset + i, scale === 0 ? 0 : roundHalfEven(Math.fround(data[i] / scale)))
      view.setFloat32(offset + data.length + g * 4, scale, true)
    }
    return data.length + groups * 4
  }
  for (const t of LAYER_TENSORS) {
    const shape = layerTensorShape(config, t)
    let at = layout.layer[t]
    for (let l = 0; l < config.nLayers; l++) at += put(at, tensor(layerTensorName(l, t), shape), !isNorm(t))
  }
  put(layout.finalNorm, tensor('final_norm', [config.dim]), false)
  put(layout.embedding, tensor('token_embedding', [config.vocabSize, config.dim]), true)
  if (!config.sharedClassifier) put(layout.classifier, tensor('classifier', [config.vocabSize, config.dim]), true)
  return out
}
