import { clip, TabmeshError } from '../../core/errors.ts'
import type { ByteSource } from '../source/byte-source.ts'
import { assembleSlice, finishConfig, type LoadOptions, type TensorLocation } from './llama-family.ts'
import { fullSpec, type ModelConfig, type ModelSlice, type RopeScaling, type SliceSpec } from '../model.ts'
import { GGML_TYPE, dequantize, ggmlByteSize, ggmlTypeInfo } from '../quant/index.ts'

/**
 * GGUF (llama.cpp's model format), versions 2 and 3, little-endian:
 *   magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
 *   metadata: { string key, u32 value_type, value }*,
 *   tensor infos: { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }*,
 *   padding to general.alignment (default 32), then tensor data (offsets relative to its start).
 * A string is u64 length + UTF-8 bytes; ne[0] is the innermost (fastest) dimension, so a
 * matrix (out, in) has ne = [in, out].
 *
 * The header is read front to back in growing chunks (it holds the vocabulary, up to megabytes);
 * then a slice reads only its tensors' byte ranges.
 */
export const GGUF_MAGIC = 0x46554747 // "GGUF" as a little-endian u32

export const GGUF_VALUE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const

export type GgufValue = number | boolean | string | GgufValue[] | Float32Array | Int32Array | Uint32Array

export interface GgufTensorInfo {
  name: string
  ne: number[] // GGML order: innermost first
  shape: number[] // row-major (ne reversed): a matrix is (out, in)
  type: number // GGML type id
  offset: number // absolute byte offset in the file
  byteSize: number
}

export interface GgufFile {
  source: ByteSource
  version: number
  metadata: Map<string, GgufValue>
  tensors: Map<string, GgufTensorInfo>
  alignment: number
  dataOffset: number // where tensor data starts
  headerBytesRead: number // bytes the header parse fetched
}

const MAX_COUNT = 1 << 24 // sanity bound on tensor and key counts

/**
 * The shortest decimal that is the same fp32 value: a scalar like rms epsilon written from 1e-5
 * reads back as 1e-5 (as config.json has it), not 9.99999974738e-6.
 */
function shortestF32(x: number): number {
  for (let digits = 1; digits < 10; digits++) {
    const v = Number(x.toPrecision(digits))
    if (Math.fround(v) === x) return v
  }
  return x
}

/** A forward-only reader that fetches the source in growing chunks as the parser needs bytes. */
function createChunkReader(source: ByteSource, size: number) {
  let buffer = new Uint8Array(0)
  let bufferStart = 0 // file offset of buffer[0]
  let pos = 0 // file offset of the next byte to parse
  let chunk = 16 << 10 // doubles per read: a 10 MB vocabulary takes ~10 reads, a tiny header one
  let fetched = 0
  const utf8 = new TextDecoder('utf-8')

  async function need(n: number, what: string): Promise<void> {
    if (pos + n <= bufferStart + buffer.byteLength) return
    if (pos + n > size) throw new TabmeshError('model-format', `${source.name}: the GGUF header is cut short reading ${what} at byte ${pos} (the file has ${size} bytes)`)
    const keepFrom = pos - bufferStart
    const start = bufferStart + buffer.byteLength
    const want = Math.min(size - start, Math.max(chunk, pos + n - start))
    const more = await source.read(start, want)
    fetched += want
    chunk = Math.min(chunk * 2, 16 << 20)
    const next = new Uint8Array(buffer.byteLength - keepFrom + more.byteLength)
    next.set(buffer.subarray(keepFrom))
    next.set(more, buffer.byteLength - keepFrom)
    buffer = next
    bufferView = new DataView(next.buffer)
    bufferStart = pos
  }
  let bufferView = new DataView(buffer.buffer)
  const view = () => bufferView
  const at = () => pos - bufferStart

  return {
    get pos() { return pos },
    get fetched() { return fetched },
    async u8(what: string) { await need(1, what); return buffer[pos++ - bufferStart] },
    async u32(what: string) { await need(4, what); const v = view().getUint32(at(), true); pos += 4; return v },
    async u64(what: string) {
      await need(8, what)
      const lo = view().getUint32(at(), true)
      const hi = view().getUint32(at() + 4, true)
      pos += 8
      if (hi >= 1 << 21) throw new TabmeshError('model-format', `${source.name}: ${what} = ${hi} * 2^32 + ${lo} at byte ${pos - 8} is beyond any plausible file; the header is corrupt`)
      return hi * 2 ** 32 + lo
    },
    /** A string already in the buffer, without awaiting (vocabularies hold ~10^5 of them); undefined if not buffered. */
    stringNow(): string | undefined {
      const o = pos - bufferStart
      if (o + 8 > buffer.byteLength) return undefined
      const hi = bufferView.getUint32(o + 4, true)
      const length = bufferView.getUint32(o, true)
      if (hi !== 0 || o + 8 + length > buffer.byteLength) return undefined
      pos += 8 + length
      return utf8.decode(buffer.subarray(o + 8, o + 8 + length))
    },
    async string(what: string) {
      const length = await this.u64(`length of ${what}`)
      if (pos + length > size) throw new TabmeshError('model-format', `${source.name}: ${what} claims ${length} bytes at byte ${pos}, past the end of the file`)
      await need(length, what)
      const s = utf8.decode(buffer.subarray(at(), at() + length))
      pos += length
      return s
    },
    /** `count` fixed-size numbers of one kind, as a typed array or plain numbers. */
    async numbers(type: number, count: number, what: string): Promise<GgufValue> {
      const width = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][type]
      if (pos + count * width > size) throw new TabmeshError('model-format', `${source.name}: ${what} claims ${count} values at byte ${pos}, past the end of the file`)
      await need(count * width, what)
      const v = view()
      const o = at()
      pos += count * width
      switch (type) {
        case GGUF_VALUE.FLOAT32: {
          const values = Float32Array.from({ length: count }, (_, i) => v.getFloat32(o + i * 4, true))
          return count === 1 ? [shortestF32(values[0])] : values
        }
        case GGUF_VALUE.INT32: return Int32Array.from({ length: count }, (_, i) => v.getInt32(o + i * 4, true))
        case GGUF_VALUE.UINT32: return Uint32Array.from({ length: count }, (_, i) => v.getUint32(o + i * 4, true))
      }
      const out: GgufValue[] = []
      for (let i = 0; i < count; i++) {
        const p = o + i * width
        switch (type) {
          case GGUF_VALUE.UINT8: out.push(v.getUint8(p)); break
          case GGUF_VALUE.INT8: out.push(v.getInt8(p)); break
          case GGUF_VALUE.UINT16: out.push(v.getUint16(p, true)); break
          case GGUF_VALUE.INT16: out.push(v.getInt16(p, true)); break
          case GGUF_VALUE.BOOL: out.push(v.getUint8(p) !== 0); break
          case GGUF_VALUE.UINT64: case GGUF_VALUE.INT64: {
            const value = Number(type === GGUF_VALUE.UINT64 ? v.getBigUint64(p, true) : v.getBigInt64(p, true))
            out.push(value)
            break
          }
          case GGUF_VALUE.FLOAT64: out.push(v.getFloat64(p, true)); break
        }
      }
      return out
    },
    skipTo(offset: number) { pos = offset },
  }
}

type ChunkReader = ReturnType<typeof createChunkReader>

async function readValue(r: ChunkReader, type: number, fullKey: string, name: string, depth = 0): Promise<GgufValue> {
  const key = clip(fullKey) // as messages name it
  switch (type) {
    case GGUF_VALUE.STRING: return r.string(`metadata ${key}`)
    case GGUF_VALUE.ARRAY: {
      if (depth > 2) throw new TabmeshError('model-format', `${name}: metadata ${key} nests arrays too deeply`)
      const elementType = await r.u32(`element type of ${key}`)
      const count = await r.u64(`length of ${key}`)
      if (elementType === GGUF_VALUE.STRING) {
        const out: string[] = []
        for (let i = 0; i < count; i++) out.push(r.stringNow() ?? await r.string(`metadata ${key}[${i}]`))
        return out
      }
      if (elementType === GGUF_VALUE.ARRAY) {
        const out: GgufValue[] = []
        for (let i = 0; i < count; i++) out.push(await readValue(r, elementType, `${key}[${i}]`, name, depth + 1))
        return out
      }
      if (elementType > GGUF_VALUE.FLOAT64) throw new TabmeshError('model-format', `${name}: metadata ${key} has unknown element type ${elementType}`)
      return r.numbers(elementType, count, `metadata ${key}`)
    }
    default: {
      if (type > GGUF_VALUE.FLOAT64) throw new TabmeshError('model-format', `${name}: metadata ${key} has unknown value type ${type}`)
      const v = await r.numbers(type, 1, `metadata ${key}`)
      return (v as ArrayLike<number | boolean>)[0] as number | boolean
    }
  }
}

/** Parses the header: metadata, tensor infos (offsets, sizes and types checked), data offset. */
export async function readGguf(source: ByteSource): Promise<GgufFile> {
  const name = source.name
  const size = await source.size()
  const r = createChunkReader(source, size)
  if (size < 24) throw new TabmeshError('model-format', `${name}: ${size} bytes is too short for a GGUF header`)
  const magic = await r.u32('magic')
  if (magic !== GGUF_MAGIC) {
    const text = String.fromCharCode(magic & 0xff, (magic >> 8) & 0xff, (magic >> 16) & 0xff, magic >>> 24)
    throw new TabmeshError('model-format', `${name}: bad magic ${JSON.stringify(text)} (0x${magic.toString(16)}); a GGUF file starts with "GGUF"`)
  }
  const version = await r.u32('version')
  if (version !== 2 && version !== 3) throw new TabmeshError('model-format', `${name}: GGUF version ${version} is not supported (only 2 and 3)`)
  const tensorCount = await r.u64('tensor_count')
  const kvCount = await r.u64('metadata_kv_count')
  if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT) throw new TabmeshError('model-format', `${name}: ${tensorCount} tensors and ${kvCount} metadata keys is implausible; the header is corrupt`)

  const metadata = new Map<string, GgufValue>()
  for (let i = 0; i < kvCount; i++) {
    const key = await r.string(`metadata key ${i}`)
    const type = await r.u32(`type of ${clip(key)}`)
    metadata.set(key, await readValue(r, type, key, name))
  }
  const alignment = metadata.has('general.alignment') ? Number(metadata.get('general.alignment')) : 32
  if (!(Number.isInteger(alignment) && alignment > 0 && alignment % 8 === 0 && alignment <= 1 << 16)) {
    throw new TabmeshError('model-format', `${name}: general.alignment = ${alignment} is not a multiple of 8`)
  }

  const infos: Omit<GgufTensorInfo, 'offset' | 'byteSize'>[] = []
  const relative: number[] = []
  for (let i = 0; i < tensorCount; i++) {
    const tname = clip(await r.string(`name of tensor ${i}`), 200) // names are short; a longer one is corrupt and only ever appears in messages
    const nDims = await r.u32(`dimensions of ${tname}`)
    if (nDims < 1 || nDims > 4) throw new TabmeshError('model-format', `${name}: tensor ${tname} has ${nDims} dimensions (GGUF allows 1-4)`)
    const ne: number[] = []
    for (let d = 0; d < nDims; d++) ne.push(await r.u64(`dimension ${d} of ${tname}`))
    const type = await r.u32(`type of ${tname}`)
    relative.push(await r.u64(`offset of ${tname}`))
    infos.push({ name: tname, ne, shape: [...ne].reverse(), type })
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment
  const tensors = new Map<string, GgufTensorInfo>()
  infos.forEach((info, i) => {
    const where = `${name}: tensor ${info.name}`
    if (relative[i] % alignment !== 0) throw new TabmeshError('model-format', `${where}: data offset ${relative[i]} is not aligned to ${alignment} bytes`)
    const elements = info.ne.reduce((a, b) => a * b, 1)
    ggmlTypeInfo(info.type, where) // unknown types are refused here, by name
    if (info.ne[0] % ggmlTypeInfo(info.type, where).blockSize !== 0) {
      throw new TabmeshError('model-format', `${where}: rows of ${info.ne[0]} values do not fill whole ${ggmlTypeInfo(info.type, where).name} blocks`)
    }
    const byteSize = ggmlByteSize(info.type, elements, where)
    const offset = dataOffset + relative[i]
    if (offset + byteSize > size) {
      throw new TabmeshError('model-format', `${where}: its ${byteSize} bytes at ${offset} run past the end of the file (${size} bytes); the file is truncated`)
    }
    if (tensors.has(info.name)) throw new TabmeshError('model-format', `${name}: tensor ${info.name} appears twice`)
    tensors.set(info.name, { ...info, offset, byteSize })
  })
  return { source, version, metadata, tensors, alignment, dataOffset, headerBytesRead: r.fetched }
}

// ---- metadata access ----

export function ggufNumber(file: GgufFile, key: string): number | undefined
export function ggufNumber(file: GgufFile, key: string, required: true): number
export function ggufNumber(file: GgufFile, key: string, required = false): number | undefined {
  const v = file.metadata.get(key)
  if (v === undefined) {
    if (required) throw new TabmeshError('model-format', `${file.source.name}: metadata ${key} is missing`)
    return undefined
  }
  if (typeof v !== 'number') throw new TabmeshError('model-format', `${file.source.name}: metadata ${key} should be a number, is ${typeof v}`)
  return v
}

export function ggufString(file: GgufFile, key: string): string | undefined {
  const v = file.metadata.get(key)
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new TabmeshError('model-format', `${file.source.name}: metadata ${key} should be a string`)
  return v
}

/** Architectures whose GGUF tensors tabmesh maps; the value says how wq/wk rows are ordered. */
const ARCHITECTURES: Record<string, 'interleaved' | 'half-split'> = {
  llama: 'interleaved', // convert_hf_to_gguf permutes q/k back to interleaved pairs (llama.cpp ROPE_TYPE_NORM)
  qwen2: 'half-split', // stored as in Hugging Face; llama.cpp uses ROPE_TYPE_NEOX
}

const LAYER_NAMES = {
  attention_norm: 'attn_norm', wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output',
  ffn_norm: 'ffn_norm', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up',
  bq: 'attn_q.bias', bk: 'attn_k.bias', bv: 'attn_v.bias',
} as Record<string, string>

/** The GGUF tensor name of a tabmesh tensor name. */
export function ggufTensorName(name: string): string {
  const m = /^layers\.(\d+)\.(\w+)$/.exec(name)
  if (m) {
    const base = LAYER_NAMES[m[2]]
    return base.endsWith('.bias') ? `blk.${m[1]}.${base}` : `blk.${m[1]}.${base}.weight`
  }
  return { token_embedding: 'token_embd.weight', final_norm: 'output_norm.weight', classifier: 'output.weight' }[name] ?? name
}

/** The model config a GGUF file describes (llama-family architectures). */
export async function ggufConfig(file: GgufFile, options: LoadOptions = {}): Promise<ModelConfig> {
  const name = file.source.name
  const arch = ggufString(file, 'general.architecture')
  if (!arch) throw new TabmeshError('model-format', `${name}: metadata general.architecture is missing`)
  if (!Object.hasOwn(ARCHITECTURES, arch)) throw new TabmeshError('model-format', `${name}: general.architecture ${JSON.stringify(clip(arch))} is not a llama-family architecture tabmesh runs (${Object.keys(ARCHITECTURES).join(', ')})`)
  const n = (key: string) => ggufNumber(file, `${arch}.${key}`, true)
  const opt = (key: string) => ggufNumber(file, `${arch}.${key}`)
  const embedding = file.tensors.get('token_embd.weight')
  if (!embedding) throw new TabmeshError('model-format', `${name}: tensor token_embd.weight is missing`)
  const nHeads = n('attention.head_count')
  const headSize = opt('attention.key_length')
  const ropeDims = opt('rope.dimension_count')
  if (ropeDims !== undefined && ropeDims !== (headSize ?? n('embedding_length') / nHeads)) {
    throw new TabmeshError('model-format', `${name}: ${arch}.rope.dimension_count = ${ropeDims} rotates only part of each head; tabmesh engines rotate whole heads`)
  }
  const seqLen = Math.min(n('context_length'), options.maxSeqLen ?? Infinity)

  let ropeScaling: RopeScaling | undefined
  const scalingType = ggufString(file, `${arch}.rope.scaling.type`)
  const factor = opt('rope.scaling.factor')
  const freqs = file.tensors.get('rope_freqs.weight')
  if (freqs) {
    if (freqs.type !== GGML_TYPE.F32) throw new TabmeshError('model-format', `${name}: rope_freqs.weight should be F32`)
    // as many as the file holds (ne[0] alone could claim gigabytes beside a zero dimension); checked against the head size below
    const values = new Float32Array(freqs.byteSize / 4)
    dequantize(freqs.type, await file.source.read(freqs.offset, freqs.byteSize), values.length, values, 0, `${name}: rope_freqs.weight`)
    ropeScaling = { type: 'factors', factors: Array.from(values) }
  } else if (scalingType === 'linear' && factor && factor !== 1) {
    ropeScaling = { type: 'linear', factor }
  } else if (scalingType && scalingType !== 'none' && scalingType !== 'linear') {
    throw new TabmeshError('model-format', `${name}: ${arch}.rope.scaling.type ${JSON.stringify(clip(scalingType))} is not supported (none, linear, or rope_freqs)`)
  }

  const bosId = ggufNumber(file, 'tokenizer.ggml.bos_token_id') ?? -1
  const eosId = ggufNumber(file, 'tokenizer.ggml.eos_token_id') ?? -1
  const extraEos = ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id'].map((k) => ggufNumber(file, k)).filter((v): v is number => v !== undefined && v !== eosId)
  const config = finishConfig({
    dim: n('embedding_length'),
    hiddenDim: n('feed_forward_length'),
    nLayers: n('block_count'),
    nHeads,
    nKvHeads: opt('attention.head_count_kv') ?? nHeads,
    headSize,
    vocabSize: embedding.shape[0],
    seqLen,
    sharedClassifier: !file.tensors.has('output.weight'),
    ropeTheta: opt('rope.freq_base') ?? 10000,
    normEps: n('attention.layer_norm_rms_epsilon'),
    bosId,
    eosId,
    eosIds: extraEos.length > 0 ? [eosId, ...extraEos] : undefined,
    ropeScaling,
    attentionBias: file.tensors.has('blk.0.attn_q.bias') || undefined,
  }, name)
  if (ropeScaling?.type === 'factors') {
    const { factors } = ropeScaling
    if (factors.length !== config.headSize / 2 || !factors.every((f) => Number.isFinite(f) && f > 0)) {
      throw new TabmeshError('model-format', `${name}: rope_freqs.weight should hold ${config.headSize / 2} positive factors (one per pair of a ${config.headSize}-wide head), holds ${factors.length}${factors.length === config.headSize / 2 ? ' with a non-positive or non-finite one' : ''}`)
    }
  }
  return config
}

/**
 * Loads the parts of a GGUF model that `spec` asks for (all of it by default), reading only
 * their bytes after the header. Pass a parsed `GgufFile` to reuse its header.
 */
export async function loadGguf(input: ByteSource | GgufFile, spec?: SliceSpec, options: LoadOptions = {}): Promise<ModelSlice> {
  const file = 'metadata' in input ? input : await readGguf(input)
  const config = await ggufConfig(file, options)
  const layout = ARCHITECTURES[ggufString(file, 'general.architecture')!]
  const locate = (name: string): TensorLocation | undefined => {
    const info = file.tensors.get(ggufTensorName(name))
    if (!info) return undefined
    const rotary = /\.(wq|wk|bq|bk)$/.exec(name)
    const loc: TensorLocation = { source: file.source, storedName: info.name, offset: info.offset, byteSize: info.byteSize, type: info.type, shape: info.shape }
    if (rotary && layout === 'half-split') {
      loc.rotary = 'half-split'
      loc.heads = rotary[1].endsWith('q') ? config.nHeads : config.nKvHeads
    }
    return loc
  }
  return assembleSlice(config, spec ?? fullSpec(config), locate, options, file.source.name)
}
