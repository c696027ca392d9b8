import { z } from 'zod'
import { TabmeshError } from '../../core/errors.ts'
import { sliceWeightBytes } from '../formats/llama2c.ts'
import type { ModelConfig, SliceSpec } from '../model.ts'

/**
 * The model registry as served by the relay at GET /models: what each model is, which files it
 * has, and their sizes and sha256 so a peer can check every byte it loads.
 */
export type ModelFormat = 'llama2c' | 'gguf' | 'safetensors'
/**
 * llama2c: one .bin checkpoint + tokenizer.bin. gguf: one .gguf (tokenizer and chat template inside).
 * safetensors: .safetensors weights (one or more shards) + config.json + tokenizer.json
 * (+ tokenizer_config.json for special tokens and the chat template).
 */
export type FileRole = 'weights' | 'tokenizer' | 'config' | 'tokenizer-config' | 'license' | 'other'

export interface RegistryFile {
  name: string // file name inside the model's folder, served at /models/<id>/<name>
  role: FileRole
  size: number
  sha256: string // lowercase hex
  /** Where to fetch it instead of the relay (a public URL, e.g. a Hugging Face resolve URL); same bytes, same sha256. */
  url?: string
}

export interface ModelEntry {
  id: string
  format: ModelFormat
  config: ModelConfig
  files: RegistryFile[]
  /** sha256 of each part's tensors ('embedding', 'layer.<l>', 'head'; see integrity.ts), to check slices. */
  parts?: Record<string, string>
  /** Bytes each part's tensors take in the weight files (what loading it downloads; quantized parts are smaller). */
  partBytes?: Record<string, number>
  /** How the layer matrices are stored: 'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', ... (shown beside the format). */
  weightType?: string
  /** A smaller model of the registry with the same vocabulary that drafts tokens for this one (speculative decoding). */
  draft?: string
}

export interface Registry {
  models: ModelEntry[]
}

export const DEFAULT_MODEL_ID = 'stories260K'

export const filesOfRole = (entry: ModelEntry, role: FileRole): RegistryFile[] => entry.files.filter((f) => f.role === role)

export function fileOfRole(entry: ModelEntry, role: FileRole): RegistryFile {
  const file = entry.files.find((f) => f.role === role)
  if (!file) throw new Error(`model ${entry.id} has no ${role} file`)
  return file
}

/**
 * Bytes of weights a slice of `entry` needs: its parts as stored (a head with a shared classifier
 * also reads the embedding table). Without partBytes, the fp32 size from the config.
 */
export function entrySliceBytes(entry: ModelEntry, spec: SliceSpec): number {
  const p = entry.partBytes
  if (!p) return sliceWeightBytes(entry.config, spec)
  let bytes = 0
  for (let l = spec.layers.start; l < spec.layers.end; l++) bytes += p[`layer.${l}`] ?? 0
  if (spec.embedding || (spec.head && entry.config.sharedClassifier)) bytes += p.embedding ?? 0
  if (spec.head) bytes += p.head ?? 0
  return bytes
}

/** Where a file of `entry` is fetched: its public URL when the registry gives one, else the relay's /models/<id>/<name>. */
export const modelFileUrl = (baseUrl: string, entry: ModelEntry, file: RegistryFile): string =>
  file.url ?? new URL(`models/${encodeURIComponent(entry.id)}/${encodeURIComponent(file.name)}`, baseUrl).href

// ---- validation: registries come over HTTP, and entries from JSON files an operator writes ----

const count = z.number().int().min(0).max(2 ** 53)
const dimension = z.number().int().min(1).max(1 << 20)
const sha256 = z.string().regex(/^[0-9a-f]{64}$/)
const configSchema = z.object({
  architecture: z.literal('llama'), dim: dimension, hiddenDim: dimension, nLayers: z.number().int().min(1).max(4096),
  nHeads: dimension, nKvHeads: dimension, headSize: dimension, kvDim: dimension, vocabSize: dimension, seqLen: dimension,
  sharedClassifier: z.boolean(), ropeTheta: z.number().positive(), normEps: z.number().positive().max(1), bosId: z.number().int(), eosId: z.number().int(),
  eosIds: z.array(z.number().int()).max(64).optional(),
  ropeScaling: z.union([
    z.object({ type: z.literal('linear'), factor: z.number().positive() }),
    z.object({ type: z.literal('llama3'), factor: z.number().positive(), lowFreqFactor: z.number().positive(), highFreqFactor: z.number().positive(), originalContext: z.number().positive() }),
    z.object({ type: z.literal('factors'), factors: z.array(z.number().positive()).max(4096) }),
  ]).optional(),
  attentionBias: z.boolean().optional(),
})
const fileSchema = z.object({
  name: z.string().min(1).max(255).regex(/^[^/\\]+$/),
  role: z.enum(['weights', 'tokenizer', 'config', 'tokenizer-config', 'license', 'other']),
  size: count,
  sha256,
  url: z.string().max(2048).regex(/^https?:\/\//).optional(),
})
export const modelEntrySchema = z.object({
  id: z.string().min(1).max(64).regex(/^[\w.-]+$/),
  format: z.enum(['llama2c', 'gguf', 'safetensors']),
  config: configSchema,
  files: z.array(fileSchema).min(1).max(1024),
  parts: z.record(z.string().max(32), sha256).optional(),
  partBytes: z.record(z.string().max(32), count).optional(),
  weightType: z.string().max(16).optional(),
  draft: z.string().min(1).max(64).regex(/^[\w.-]+$/).optional(),
})
export const registrySchema = z.object({ models: z.array(modelEntrySchema).max(1024) })

/** `json` as a registry (or one entry), or an error naming `where` and the first bad field. */
export function parseRegistry(json: unknown, where: string): Registry {
  return parseWith(registrySchema, json, where) as Registry
}
export function parseModelEntry(json: unknown, where: string): ModelEntry {
  return parseWith(modelEntrySchema, json, where) as ModelEntry
}
function parseWith(schema: z.ZodType, json: unknown, where: string): unknown {
  const r = schema.safeParse(json)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  throw new TabmeshError('model-format', `${where}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`)
}
