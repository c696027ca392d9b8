import { sliceWeightBytes } from './llama2c.ts'
import type { ModelConfig, SliceSpec } from './model.ts'

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
