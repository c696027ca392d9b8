import type { ModelConfig } from './model.ts'

/**
 * The model registry as served by the relay at GET /models: what each model is, which files it
 * has, and their sizes and sha256 so a peer can check every byte it loads.
 */
export type ModelFormat = 'llama2c'
export type FileRole = 'weights' | 'tokenizer' | 'license' | 'other'

export interface RegistryFile {
  name: string // file name inside the model's folder, served at /models/<id>/<name>
  role: FileRole
  size: number
  sha256: string // lowercase hex
}

export interface ModelEntry {
  id: string
  format: ModelFormat
  config: ModelConfig
  files: RegistryFile[]
  /** sha256 of each part's tensors ('embedding', 'layer.<l>', 'head'; see integrity.ts), to check slices. */
  parts?: Record<string, string>
}

export interface Registry {
  models: ModelEntry[]
}

export const DEFAULT_MODEL_ID = 'stories260K'

export function fileOfRole(entry: ModelEntry, role: FileRole): RegistryFile {
  const file = entry.files.find((f) => f.role === role)
  if (!file) throw new Error(`model ${entry.id} has no ${role} file`)
  return file
}
