import { z } from 'zod'
import { clip, TabmeshError } from '../../core/errors.ts'
import type { ByteSource } from '../source/byte-source.ts'
import { assembleSlice, finishConfig, type LoadOptions, type TensorLocation } from './llama-family.ts'
import { fullSpec, type ModelConfig, type ModelSlice, type RopeScaling, type SliceSpec } from '../model.ts'
import { GGML_TYPE } from '../quant/index.ts'

/**
 * Hugging Face safetensors with config.json (Llama, Mistral, Qwen2, SmolLM2, TinyLlama...).
 * A safetensors file is a u64 header length N, N bytes of JSON
 *   { "<name>": { "dtype": "BF16", "shape": [out, in], "data_offsets": [begin, end] }, "__metadata__": {...} }
 * and the tensor data (offsets relative to 8 + N). A large model is split over several files
 * (model-00001-of-00002.safetensors, with an index); tabmesh reads every file's header and then
 * only the byte ranges of the tensors a slice needs.
 *
 * Hugging Face stores wq/wk for rotate_half (the two halves of each head); the loader reorders
 * their rows into the interleaved pairs the engines rotate.
 */
export const SAFETENSORS_DTYPES: Record<string, { type: number; bytes: number }> = {
  F32: { type: GGML_TYPE.F32, bytes: 4 },
  F16: { type: GGML_TYPE.F16, bytes: 2 },
  BF16: { type: GGML_TYPE.BF16, bytes: 2 },
}

export interface SafetensorsTensorInfo {
  name: string
  dtype: string
  shape: number[]
  offset: number // absolute in the file
  byteSize: number
  source: ByteSource
}

export interface SafetensorsFile {
  source: ByteSource
  tensors: Map<string, SafetensorsTensorInfo>
  metadata: Record<string, string>
  dataOffset: number
}

const MAX_HEADER_BYTES = 100 << 20 // the format's own limit

const headerEntry = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
})

/** Reads and checks one file's header (two small reads: the length, then the JSON). */
export async function readSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const name = source.name
  const size = await source.size()
  if (size < 8) throw new TabmeshError('model-format', `${name}: ${size} bytes is too short for a safetensors file`)
  const lengthBytes = await source.read(0, 8)
  const view = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8)
  const headerLength = view.getUint32(4, true) * 2 ** 32 + view.getUint32(0, true)
  if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
    throw new TabmeshError('model-format', `${name}: header length ${headerLength} is impossible for a ${size}-byte file; this is not a safetensors file or it is truncated`)
  }
  const headerBytes = await source.read(8, headerLength)
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes))
  } catch (err) {
    throw new TabmeshError('model-format', `${name}: the safetensors header is not valid JSON (${(err as Error).message})`)
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new TabmeshError('model-format', `${name}: the safetensors header is not a JSON object`)
  const dataOffset = 8 + headerLength
  const tensors = new Map<string, SafetensorsTensorInfo>()
  let metadata: Record<string, string> = {}
  for (const [key, value] of Object.entries(header)) {
    const tensor = clip(key) // as messages name it: a corrupt header can hold a name of any length
    if (key === '__metadata__') {
      metadata = value as Record<string, string>
      continue
    }
    const parsed = headerEntry.safeParse(value)
    if (!parsed.success) throw new TabmeshError('model-format', `${name}: header entry for tensor ${tensor} is malformed (${parsed.error.issues[0]?.message})`)
    const { dtype, shape, data_offsets: [begin, end] } = parsed.data
    const dt = Object.hasOwn(SAFETENSORS_DTYPES, dtype) ? SAFETENSORS_DTYPES[dtype] : undefined
    if (!dt) throw new TabmeshError('model-format', `${name}: tensor ${tensor} has dtype ${clip(dtype)}, which tabmesh does not read (${Object.keys(SAFETENSORS_DTYPES).join(', ')})`)
    const byteSize = shape.reduce((a, b) => a * b, 1) * dt.bytes
    if (end - begin !== byteSize) throw new TabmeshError('model-format', `${name}: tensor ${tensor} spans ${end - begin} bytes but ${dtype} [${clip(shape.join(','))}] takes ${byteSize}`)
    if (dataOffset + end > size) throw new TabmeshError('model-format', `${name}: tensor ${tensor} ends at byte ${dataOffset + end}, past the end of the file (${size} bytes); the file is truncated`)
    tensors.set(key, { name: key, dtype, shape, offset: dataOffset + begin, byteSize, source })
  }
  return { source, tensors, metadata, dataOffset }
}

// ---- config.json ----

const tokenIds = z.union([z.number().int(), z.array(z.number().int()), z.null()]).optional()

/** The config.json fields tabmesh reads (other fields are ignored). */
export const hfConfigSchema = z.object({
  model_type: z.string(),
  hidden_size: z.number().int(),
  intermediate_size: z.number().int(),
  num_hidden_layers: z.number().int(),
  num_attention_heads: z.number().int(),
  num_key_value_heads: z.number().int().optional(),
  head_dim: z.number().int().nullable().optional(),
  vocab_size: z.number().int(),
  max_position_embeddings: z.number().int(),
  rms_norm_eps: z.number(),
  rope_theta: z.number().optional(),
  rope_scaling: z.record(z.string(), z.unknown()).nullable().optional(),
  partial_rotary_factor: z.number().optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  hidden_act: z.string().optional(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
})
export type HfConfig = z.infer<typeof hfConfigSchema>

const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2']

function ropeScalingOf(raw: Record<string, unknown> | null | undefined, name: string): RopeScaling | undefined {
  if (!raw) return undefined
  const type = (raw.rope_type ?? raw.type) as string | undefined
  const num = (key: string): number => {
    const v = raw[key]
    if (typeof v !== 'number') throw new TabmeshError('model-format', `${name}: rope_scaling.${key} is missing or not a number`)
    return v
  }
  switch (type) {
    case undefined:
    case 'default': return undefined
    case 'linear': return { type: 'linear', factor: num('factor') }
    case 'llama3': return { type: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'), originalContext: num('original_max_position_embeddings') }
    default: throw new TabmeshError('model-format', `${name}: rope_scaling type ${JSON.stringify(clip(String(type)))} is not supported (default, linear, llama3)`)
  }
}

/** config.json as a tabmesh ModelConfig; `hasClassifier` says whether lm_head.weight exists. */
export function hfConfig(json: unknown, hasClassifier: boolean, options: LoadOptions = {}, name = 'config.json'): ModelConfig {
  const parsed = hfConfigSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new TabmeshError('model-format', `${name}: field ${issue?.path.join('.') || '(root)'}: ${issue?.message}`)
  }
  const c = parsed.data
  if (!LLAMA_FAMILY.includes(c.model_type)) throw new TabmeshError('model-format', `${name}: model_type "${c.model_type}" is not a llama-family model tabmesh runs (${LLAMA_FAMILY.join(', ')})`)
  if (c.hidden_act && c.hidden_act !== 'silu') throw new TabmeshError('model-format', `${name}: hidden_act "${c.hidden_act}" is not supported (silu)`)
  if (c.mlp_bias) throw new TabmeshError('model-format', `${name}: mlp_bias is not supported`)
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== 1) throw new TabmeshError('model-format', `${name}: partial_rotary_factor ${c.partial_rotary_factor} is not supported`)
  const tied = c.tie_word_embeddings ?? !hasClassifier
  if (!tied && !hasClassifier) throw new TabmeshError('model-format', `${name}: tie_word_embeddings is false but the weights have no lm_head.weight`)
  const ids = (v: HfConfig['bos_token_id']) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v])
  const eos = ids(c.eos_token_id)
  return finishConfig({
    dim: c.hidden_size,
    hiddenDim: c.intermediate_size,
    nLayers: c.num_hidden_layers,
    nHeads: c.num_attention_heads,
    nKvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headSize: c.head_dim ?? undefined,
    vocabSize: c.vocab_size,
    seqLen: Math.min(c.max_position_embeddings, options.maxSeqLen ?? Infinity),
    sharedClassifier: tied,
    ropeTheta: c.rope_theta ?? 10000,
    normEps: c.rms_norm_eps,
    bosId: ids(c.bos_token_id)[0] ?? -1,
    eosId: eos[0] ?? -1,
    eosIds: eos.length > 1 ? eos : undefined,
    ropeScaling: ropeScalingOf(c.rope_scaling, name),
    attentionBias: c.model_type === 'qwen2' || c.attention_bias || undefined,
  }, name)
}

const HF_LAYER_NAMES: Record<string, string> = {
  attention_norm: 'input_layernorm.weight', wq: 'self_attn.q_proj.weight', wk: 'self_attn.k_proj.weight', wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight', ffn_norm: 'post_attention_layernorm.weight', w1: 'mlp.gate_proj.weight', w2: 'mlp.down_proj.weight',
  w3: 'mlp.up_proj.weight', bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias', bv: 'self_attn.v_proj.bias',
}

/** The Hugging Face tensor name of a tabmesh tensor name. */
export function hfTensorName(name: string): string {
  const m = /^layers\.(\d+)\.(\w+)$/.exec(name)
  if (m) return `model.layers.${m[1]}.${HF_LAYER_NAMES[m[2]]}`
  return { token_embedding: 'model.embed_tokens.weight', final_norm: 'model.norm.weight', classifier: 'lm_head.weight' }[name] ?? name
}

export interface SafetensorsModel {
  config: ModelConfig
  files: SafetensorsFile[]
  /** tensor name -> where it is (across all files) */
  tensors: Map<string, SafetensorsTensorInfo>
}

/** Reads config.json (parsed JSON) and the headers of every weights file of one model. */
export async function openSafetensors(configJson: unknown, sources: ByteSource[], options: LoadOptions = {}, configName = 'config.json'): Promise<SafetensorsModel> {
  if (sources.length === 0) throw new TabmeshError('model-format', `${configName}: no safetensors files given`)
  const files = await Promise.all(sources.map(readSafetensors))
  const tensors = new Map<string, SafetensorsTensorInfo>()
  for (const f of files) {
    for (const [k, t] of f.tensors) {
      if (tensors.has(k)) throw new TabmeshError('model-format', `${f.source.name}: tensor ${clip(k)} is also in ${tensors.get(k)!.source.name}`)
      tensors.set(k, t)
    }
  }
  const config = hfConfig(configJson, tensors.has('lm_head.weight'), options, configName)
  return { config, files, tensors }
}

/** Loads the parts of a safetensors model that `spec` asks for (all by default), reading only their bytes. */
export async function loadSafetensors(model: SafetensorsModel, spec?: SliceSpec, options: LoadOptions = {}): Promise<ModelSlice> {
  const config = model.config
  const locate = (name: string): TensorLocation | undefined => {
    const info = model.tensors.get(hfTensorName(name))
    if (!info) return undefined
    const loc: TensorLocation = {
      source: info.source, storedName: info.name, offset: info.offset, byteSize: info.byteSize,
      type: SAFETENSORS_DTYPES[info.dtype].type, shape: info.shape,
    }
    const rotary = /\.(wq|wk|bq|bk)$/.exec(name)
    if (rotary) {
      loc.rotary = 'half-split'
      loc.heads = rotary[1].endsWith('q') ? config.nHeads : config.nKvHeads
    }
    return loc
  }
  return assembleSlice(config, spec ?? fullSpec(config), locate, options, model.files[0].source.name)
}
