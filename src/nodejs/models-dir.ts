import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TabmeshError } from '../core/errors.ts'
import { formatOfWeights, loadEntryChatTemplate, loadEntrySlice, loadEntryTokenizer, readModelConfig, readWeightType, roleOfFileName } from '../model/source/entry.ts'
import { partSha256, type PartName } from '../model/source/integrity.ts'
import { loadLlama2c, readLlama2cHeader } from '../model/formats/llama2c.ts'
import type { ModelConfig, ModelSlice, SliceSpec } from '../model/model.ts'
import { parseModelEntry, type FileRole, type ModelEntry, type RegistryFile } from '../model/source/registry.ts'
import { httpSource, type ByteSource } from '../model/source/byte-source.ts'
import { fileSource } from './file-source.ts'
import { HashCache, partsProgress, PROGRESS_MIN_BYTES, type HashEvents, type PartHashes } from './hash-cache.ts'

export { sha256File } from './hash-cache.ts'

/** The project's root folder (where package.json is). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

const HOW_TO_GET_ONE =
  'Put llama2.c models in a folder, one subfolder per model holding its .bin checkpoint and tokenizer ' +
  '(for example models/stories260K/stories260K.bin and tok512.bin from karpathy/tinyllamas), or one .gguf file, ' +
  'or Hugging Face .safetensors with config.json and tokenizer.json; then pass ' +
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

const roleOf = (name: string): FileRole => roleOfFileName(name)

export interface DescribeOptions extends HashEvents {
  /**
   * Where file and part hashes are remembered between runs: a cache opened for the models
   * directory (scanModels shares one), `false` for none; by default describeModel opens the
   * directory's cache and saves what it hashed.
   */
  cache?: HashCache | false
}

/** One model folder as a registry entry (sizes and sha256 of every file; config from the header). */
export async function describeModel(dir: string, id: string, options: DescribeOptions = {}): Promise<ModelEntry> {
  const folder = join(dir, id)
  if (existsSync(join(folder, REMOTE_ENTRY_FILE))) return readRemoteEntry(folder, id)
  const own = options.cache === undefined ? await HashCache.open(dir, options) : undefined
  const cache = own ?? (options.cache || (await HashCache.open(dir, options, false)))
  try {
    return await describeLocalModel(folder, id, cache, options)
  } finally {
    await own?.save(false)
  }
}

async function describeLocalModel(folder: string, id: string, cache: HashCache, events: HashEvents): Promise<ModelEntry> {
  const files: RegistryFile[] = []
  const stamps: { name: string; size: number; mtimeMs: number }[] = []
  for (const name of readdirSync(folder).sort()) {
    const path = join(folder, name)
    const role = roleOf(name)
    const stats = statSync(path)
    if (!stats.isFile() || role === 'other') continue
    files.push({ name, role, size: stats.size, sha256: await cache.fileSha256(path, `${id}/${name}`) })
    stamps.push({ name, size: stats.size, mtimeMs: stats.mtimeMs })
  }
  const progress = files.reduce((n, f) => n + f.size, 0) >= PROGRESS_MIN_BYTES ? events.progress : undefined
  const parts = (compute: () => Promise<PartHashes>) => cache.parts(folder, stamps, compute)
  const weights = files.filter((f) => f.role === 'weights')
  if (weights.length === 0) throw new TabmeshError('model-not-found', `${folder} holds no weights (.bin, .gguf or .safetensors)`)
  const format = formatOfWeights(weights.map((f) => f.name), folder)
  if (format === 'llama2c') {
    if (!files.some((f) => f.role === 'tokenizer')) throw new TabmeshError('model-not-found', `${folder} has no tokenizer (tokenizer.bin or tok*.bin)`)
    const { config, encoding } = await readLlama2cHeader(fileSource(join(folder, weights[0].name)))
    const described = await parts(() => describeParts(config, async (spec) => {
      const source = fileSource(join(folder, weights[0].name))
      return { slice: await loadLlama2c(source, spec), bytesRead: source.bytesRead }
    }, id, progress))
    // export.py version 2 keeps int8 values in groups with an fp32 scale each (loaded as fp32)
    return { id, format: 'llama2c', config, files, ...described, weightType: encoding.version === 2 ? `Q8 g${encoding.groupSize}` : 'F32' }
  }
  // GGUF and safetensors: the same loader the tabs use, over local files; the tokenizer is checked
  // against the model here so a mismatched folder is reported, not served
  const listed = files.filter((f) => f.role !== 'license')
  const open = (f: RegistryFile) => fileSource(join(folder, f.name))
  if (format === 'safetensors') {
    for (const role of ['config', 'tokenizer'] as const) {
      if (!listed.some((f) => f.role === role)) throw new TabmeshError('model-not-found', `${folder} has safetensors weights but no ${role === 'config' ? 'config.json' : 'tokenizer.json'}`)
    }
  }
  const draft: ModelEntry = { id, format, config: undefined as unknown as ModelEntry['config'], files }
  const configFile = listed.find((f) => f.role === 'config')
  draft.config = await readModelConfig(format, weights.map(open), configFile ? JSON.parse(await readFile(join(folder, configFile.name), 'utf8')) : undefined)
  draft.weightType = await readWeightType(format, weights.map(open))
  await loadEntryTokenizer(draft, open)
  await loadEntryChatTemplate(draft, open)
  Object.assign(draft, await parts(() => describeParts(draft.config, async (spec) => {
    // bytes read past what an empty slice reads (the header): the part's tensors as stored
    const sources: ByteSource[] = []
    const slice = await loadEntrySlice(draft, (f) => { const s = open(f); sources.push(s); return s }, spec)
    return { slice, bytesRead: sources.reduce((n, s) => n + s.bytesRead, 0) }
  }, id, progress)))
  return draft
}

const NO_LAYERS = { start: 0, end: 0 }
/** The slice holding exactly one part (a head with a shared classifier also reads the embedding). */
const partSpec = (part: string): SliceSpec => part === 'embedding' ? { layers: NO_LAYERS, embedding: true, head: false }
  : part === 'head' ? { layers: NO_LAYERS, embedding: false, head: true }
  : { layers: { start: Number(part.slice('layer.'.length)), end: Number(part.slice('layer.'.length)) + 1 }, embedding: false, head: false }

/**
 * A folder holding only `model.json`: a registry entry whose files live elsewhere (each with a
 * public url, e.g. Hugging Face resolve URLs), written by `tabmesh describe --base-url`. Served as
 * is; tabs fetch the bytes from the urls and check them against its sha256s and part hashes.
 */
export const REMOTE_ENTRY_FILE = 'model.json'

async function readRemoteEntry(folder: string, id: string): Promise<ModelEntry> {
  const where = join(folder, REMOTE_ENTRY_FILE)
  let json: unknown
  try {
    json = JSON.parse(await readFile(where, 'utf8'))
  } catch (err) {
    throw new TabmeshError('model-format', `${where}: not valid JSON (${(err as Error).message})`)
  }
  const entry = parseModelEntry(json, where)
  if (entry.id !== id) throw new TabmeshError('model-format', `${where}: id "${entry.id}" is not its folder's name "${id}"`)
  const local = entry.files.find((f) => !f.url)
  if (local) throw new TabmeshError('model-format', `${where}: file ${local.name} has no url (a remote entry fetches every file from its url)`)
  if (!entry.parts) throw new TabmeshError('model-format', `${where}: no part hashes (parts); tabs refuse weights they cannot verify`)
  return entry
}

/** Part hashes and sizes, one part loaded at a time, so a large model never sits in memory whole. */
async function describeParts(config: ModelConfig, load: (spec: SliceSpec) => Promise<{ slice: ModelSlice; bytesRead: number }>, label: string, progress?: (line: string) => void): Promise<PartHashes> {
  const parts: Record<string, string> = {}
  const partBytes: Record<string, number> = {}
  const header = (await load({ layers: NO_LAYERS, embedding: false, head: false })).bytesRead
  const names: PartName[] = ['embedding', ...Array.from({ length: config.nLayers }, (_, l) => `layer.${l}` as const), 'head']
  const line = partsProgress(label, names.length, progress)
  for (const part of names) {
    const { slice, bytesRead } = await load(partSpec(part))
    parts[part] = await partSha256(slice, part)
    partBytes[part] = bytesRead - header
    line.step()
  }
  // a shared classifier is the embedding table: the head part alone is the final norm
  if (config.sharedClassifier) partBytes.head -= partBytes.embedding
  return { parts, partBytes }
}

export interface ScanOptions extends Omit<HashEvents, 'warn'> {
  /** Where the hash cache lives (default: see hash-cache.ts); `false` for none. */
  cacheFile?: string | false
}

/**
 * Every model folder in `dir`; folders that are not valid models are reported, not fatal. File
 * and part hashes come from the directory's hash cache when the files did not change since.
 * Dot-folders (the cache's own `.tabmesh-cache`) are not models.
 */
export async function scanModels(dir: string, warn: (message: string) => void = () => {}, options: ScanOptions = {}): Promise<ModelEntry[]> {
  const events: HashEvents = { ...options, warn }
  const cache = await HashCache.open(dir, events, options.cacheFile)
  const entries: ModelEntry[] = []
  for (const id of readdirSync(dir).sort()) {
    if (id.startsWith('.') || !statSync(join(dir, id)).isDirectory()) continue
    try {
      entries.push(await describeModel(dir, id, { ...events, cache }))
    } catch (err) {
      warn(`skipping ${join(dir, id)}: ${(err as Error).message}`)
    }
  }
  await cache.save(true)
  // draft pairings (tabmesh.json: { "draft": "<id>" }): kept only when the draft is here and speaks the same vocabulary
  for (const entry of entries) {
    const draft = readDraftPairing(join(dir, entry.id), warn)
    if (!draft) continue
    const other = entries.find((e) => e.id === draft)
    if (!other || other.id === entry.id) warn(`${entry.id}: its draft model "${draft}" is not in ${dir}; no drafts from a model`)
    else if (other.config.vocabSize !== entry.config.vocabSize || other.config.bosId !== entry.config.bosId) warn(`${entry.id}: its draft model "${draft}" has another vocabulary; no drafts from a model`)
    else entry.draft = draft
  }
  return entries
}

/** A model folder's tabmesh.json names the model that drafts for it: { "draft": "<id>" }. */
export const MODEL_SETTINGS_FILE = 'tabmesh.json'
function readDraftPairing(folder: string, warn: (message: string) => void): string | undefined {
  const path = join(folder, MODEL_SETTINGS_FILE)
  if (!existsSync(path)) return undefined
  try {
    const json = JSON.parse(readFileSync(path, 'utf8')) as { draft?: unknown }
    if (json.draft === undefined) return undefined
    if (typeof json.draft !== 'string' || !/^[\w.-]{1,64}$/.test(json.draft)) throw new Error('"draft" must be a model id')
    return json.draft
  } catch (err) {
    warn(`${path}: ${(err as Error).message}`)
    return undefined
  }
}

/** The folder of model `id` in `dir`, or an error listing the models that are there. */
function modelFolder(dir: string, id: string): string {
  const folder = join(dir, id)
  if (!/^[\w.-]+$/.test(id) || !existsSync(folder) || !statSync(folder).isDirectory()) {
    const known = readdirSync(dir).filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isDirectory())
    throw new TabmeshError('model-not-found', `no model "${id}" in ${dir} (there: ${known.join(', ') || 'nothing'}). ${HOW_TO_GET_ONE}`)
  }
  return folder
}

/** A model folder in `dir` as a registry entry, with an opener for its files (what the Node CLI loads through). */
export async function openLocalModel(dir: string, id: string): Promise<{ entry: ModelEntry; open: (f: RegistryFile) => ByteSource }> {
  const folder = modelFolder(dir, id)
  // files of a remote entry (model.json) come from their urls, the others from the folder
  return { entry: await describeModel(dir, id), open: (f) => (f.url ? httpSource(f.url, { size: f.size }) : fileSource(join(folder, f.name))) }
}
/** Paths of a model's checkpoint and tokenizer inside the models directory. */
export function modelPaths(dir: string, id: string): { weights: string; tokenizer: string } {
  const folder = modelFolder(dir, id)
  const names = readdirSync(folder)
  const other = names.find((n) => /\.(gguf|safetensors)$/i.test(n))
  if (other) throw new TabmeshError('model-not-found', `${folder} holds a ${/gguf$/i.test(other) ? 'GGUF' : 'safetensors'} model; this command reads llama2.c checkpoints (load other formats through the registry)`)
  const weights = names.find((n) => roleOf(n) === 'weights')
  const tokenizer = names.find((n) => roleOf(n) === 'tokenizer')
  if (!weights || !tokenizer) throw new TabmeshError('model-not-found', `${folder} needs a .bin checkpoint and a tokenizer (tokenizer.bin or tok*.bin)`)
  return { weights: join(folder, weights), tokenizer: join(folder, tokenizer) }
}
