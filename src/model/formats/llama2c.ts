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
 */
export const LLAMA2C_HEADER_BYTES = 28
const MAX_DIMENSION = 1 << 20 // a sanity bound so a garbage header cannot ask for petabytes

export interface Llama2cLayout {
  embedding: number // byte offset of token_embedding
  layer: Record<LayerTensorName, number> // byte offset of layer 0 of each stacked tensor
  finalNorm: number
  classifier: number // == embedding when shared
  fileBytes: number // exact size a valid file has
}

export function parseLlama2cHeader(header: Uint8Array, name = 'checkpoint'): ModelConfig {
  if (header.byteLength < LLAMA2C_HEADER_BYTES) {
    throw new TabmeshError('model-format', `${name}: ${header.byteLength} bytes is too short for a llama2.c header (${LLAMA2C_HEADER_BYTES} bytes)`)
  }
  const view = new DataView(header.buffer, header.byteOffset, LLAMA2C_HEADER_BYTES)
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
  return {
    architecture: 'llama',
    dim, hiddenDim, nLayers, nHeads, nKvHeads, headSize,
    kvDim: nKvHeads * headSize,
    vocabSize, seqLen,
    sharedClassifier: signedVocab > 0,
    ropeTheta: 10000,
    normEps: 1e-5,
    bosId: 1,
    eosId: 2,
  }
}

export function llama2cLayout(c: ModelConfig): Llama2cLayout {
  let offset = LLAMA2C_HEADER_BYTES
  const take = (elements: number): number => {
    const at = offset
    offset += elements * 4
    return at
  }
  const embedding = take(c.vocabSize * c.dim)
  const layer = {} as Record<LayerTensorName, number>
  for (const t of LAYER_TENSORS) layer[t] = take(c.nLayers * elementCount(layerTensorShape(c, t)))
  const finalNorm = take(c.dim)
  take(c.seqLen * c.headSize / 2) // freq_cis_real, unused
  take(c.seqLen * c.headSize / 2) // freq_cis_imag, unused
  const classifier = c.sharedClassifier ? embedding : take(c.vocabSize * c.dim)
  return { embedding, layer, finalNorm, classifier, fileBytes: offset }
}

/** Reads the header and checks the file size it implies against the real size. */
export async function readLlama2cConfig(source: ByteSource): Promise<ModelConfig> {
  const size = await source.size()
  const config = parseLlama2cHeader(await source.read(0, Math.min(size, LLAMA2C_HEADER_BYTES)), source.name)
  const { fileBytes } = llama2cLayout(config)
  if (fileBytes !== size) {
    const what = size < fileBytes ? 'truncated' : 'longer than its header says'
    throw new TabmeshError('model-format', `${source.name}: the header describes a ${fileBytes}-byte file but it has ${size} bytes (${what})`)
  }
  return config
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
  const config = await readLlama2cConfig(source)
  const want = spec ?? { layers: { start: 0, end: config.nLayers }, embedding: true, head: true }
  checkLayerRange(config, want.layers)
  const layout = llama2cLayout(config)
  const tensors = new Map<string, Tensor>()
  const readTensor = async (name: string, offset: number, shape: number[]) => {
    const t = toFloats(await source.read(offset, elementCount(shape) * 4), name, shape, source.name)
    tensors.set(name, t)
    return t
  }

  const { start, end } = want.layers
  if (end > start) {
    for (const t of LAYER_TENSORS) {
      const shape = layerTensorShape(config, t)
      const perLayer = elementCount(shape)
      const all = toFloats(await source.read(layout.layer[t] + start * perLayer * 4, (end - start) * perLayer * 4), `${t}[${start}:${end}]`, [end - start, ...shape], source.name)
      for (let l = start; l < end; l++) {
        const name = layerTensorName(l, t)
        tensors.set(name, { name, shape, data: all.data.subarray((l - start) * perLayer, (l - start + 1) * perLayer) })
      }
    }
  }
  const embeddingShape = [config.vocabSize, config.dim]
  let embedding: Tensor | undefined
  if (want.embedding || (want.head && config.sharedClassifier)) embedding = await readTensor('token_embedding', layout.embedding, embeddingShape)
  if (want.head) {
    await readTensor('final_norm', layout.finalNorm, [config.dim])
    if (config.sharedClassifier) tensors.set('classifier', { ...embedding!, name: 'classifier' })
    else await readTensor('classifier', layout.classifier, embeddingShape)
  }
  if (!want.embedding) tensors.delete('token_embedding')
  return { config, spec: want, tensors }
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
