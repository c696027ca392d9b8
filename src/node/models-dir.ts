import { createHash } from 'node:crypto'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TabmeshError } from '../errors.ts'
import { integrityParts } from '../model/integrity.ts'
import { loadLlama2c, readLlama2cConfig } from '../model/llama2c.ts'
import type { FileRole, ModelEntry, RegistryFile } from '../model/registry.ts'
import { fileSource } from './file-source.ts'

/** The project's root folder (where package.json is). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

const HOW_TO_GET_ONE =
  'Put llama2.c models in a folder, one subfolder per model holding its .bin checkpoint and tokenizer ' +
  '(for example models/stories260K/stories260K.bin and tok512.bin from karpathy/tinyllamas), then pass ' +
  '--models-dir <folder> or set TABMESH_MODELS=<folder>.'

/**
 * Where models live: --models-dir, else $TABMESH_MODELS, else ../shared/models beside the project,
 * else ./models in the project. Throws a message saying how to get a model when none exists.
 */
export function resolveModelsDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const explicit = flag ?? env.TABMESH_MODELS
  if (explicit) {
    const dir = resolve(explicit)
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TabmeshError('model-not-found', `models directory ${dir} does not exist. ${HOW_TO_GET_ONE}`)
    return dir
  }
  for (const candidate of [resolve(PROJECT_ROOT, '../shared/models'), resolve(PROJECT_ROOT, 'models')]) {
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate
  }
  throw new TabmeshError('model-not-found', `no models directory found. ${HOW_TO_GET_ONE}`)
}

function roleOf(name: string): FileRole {
  if (/^(tok.*|tokenizer)\.bin$/i.test(name)) return 'tokenizer'
  if (/\.bin$/i.test(name)) return 'weights'
  if (/^licen[sc]e/i.test(name)) return 'license'
  return 'other'
}

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

/** One model folder as a registry entry (sizes and sha256 of every file; config from the header). */
export async function describeModel(dir: string, id: string): Promise<ModelEntry> {
  const folder = join(dir, id)
  const files: RegistryFile[] = []
  for (const name of readdirSync(folder).sort()) {
    const path = join(folder, name)
    const role = roleOf(name)
    if (!statSync(path).isFile() || role === 'other') continue
    files.push({ name, role, size: statSync(path).size, sha256: await sha256File(path) })
  }
  const weights = files.filter((f) => f.role === 'weights')
  if (weights.length !== 1) throw new TabmeshError('model-not-found', `${folder} should hold exactly one .bin checkpoint, found ${weights.length}`)
  if (!files.some((f) => f.role === 'tokenizer')) throw new TabmeshError('model-not-found', `${folder} has no tokenizer (tokenizer.bin or tok*.bin)`)
  const config = await readLlama2cConfig(fileSource(join(folder, weights[0].name)))
  const parts = await integrityParts(await loadLlama2c(fileSource(join(folder, weights[0].name))))
  return { id, format: 'llama2c', config, files, parts }
}

/** Every model folder in `dir`; folders that are not valid models are reported, not fatal. */
export async function scanModels(dir: string, warn: (message: string) => void = () => {}): Promise<ModelEntry[]> {
  const entries: ModelEntry[] = []
  for (const id of readdirSync(dir).sort()) {
    if (!statSync(join(dir, id)).isDirectory()) continue
    try {
      entries.push(await describeModel(dir, id))
    } catch (err) {
      warn(`skipping ${join(dir, id)}: ${(err as Error).message}`)
    }
  }
  return entries
}

/** Paths of a model's checkpoint and tokenizer inside the models directory. */
export function modelPaths(dir: string, id: string): { weights: string; tokenizer: string } {
  const folder = join(dir, id)
  if (!/^[\w.-]+$/.test(id) || !existsSync(folder)) {
    const known = readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory())
    throw new TabmeshError('model-not-found', `no model "${id}" in ${dir} (there: ${known.join(', ') || 'nothing'}). ${HOW_TO_GET_ONE}`)
  }
  const names = readdirSync(folder)
  const weights = names.find((n) => roleOf(n) === 'weights')
  const tokenizer = names.find((n) => roleOf(n) === 'tokenizer')
  if (!weights || !tokenizer) throw new TabmeshError('model-not-found', `${folder} needs a .bin checkpoint and a tokenizer (tokenizer.bin or tok*.bin)`)
  return { weights: join(folder, weights), tokenizer: join(folder, tokenizer) }
}
