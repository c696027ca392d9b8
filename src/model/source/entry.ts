import { TabmeshError } from '../../core/errors.ts'
import { httpSource, type ByteSource } from './byte-source.ts'
import { compileChatTemplate, plainContinuation, type ChatTemplate } from '../template/index.ts'
import { readGguf, loadGguf, ggufConfig, ggufTensorName } from '../formats/gguf.ts'
import { ggufChatTemplate, ggufTokenizer } from '../tokenizer/gguf-tokenizer.ts'
import { hfChatTemplate, parseHfTokenizer } from '../tokenizer/hf-tokenizer.ts'
import type { LoadOptions } from '../formats/llama-family.ts'
import { loadLlama2c, readLlama2cConfig } from '../formats/llama2c.ts'
import { layerTensorName, type ModelConfig, type ModelSlice, type SliceSpec } from '../model.ts'
import { filesOfRole, fileOfRole, modelFileUrl, type FileRole, type ModelEntry, type ModelFormat, type RegistryFile } from './registry.ts'
import { hfTensorName, loadSafetensors, openSafetensors, readSafetensors } from '../formats/safetensors.ts'
import { ggmlTypeInfo } from '../quant/index.ts'
import { parseLlama2cTokenizer, type Tokenizer } from '../tokenizer/tokenizer.ts'
import { verifiedSource } from './verify-file.ts'

/**
 * One way to load a model whatever its format: a registry entry plus a function that opens each
 * of its files as a ByteSource (HTTP Range requests against the relay or a public URL, a File,
 * a local file in Node). Weights are read by byte range; tokenizer and config files are read
 * whole and checked against the registry's sha256 before use.
 */
export type OpenFile = (file: RegistryFile) => ByteSource

/** Opens a registry model's files over HTTP: the file's public URL when the registry gives one, else the relay's /models/<id>/<name>. */
export const httpOpener = (baseUrl: string, entry: ModelEntry): OpenFile => (file) => httpSource(modelFileUrl(baseUrl, entry, file), { size: file.size })

/** The role a file plays, from its name (models-dir uses it to build registry entries). */
export function roleOfFileName(name: string): FileRole {
  if (/^(tok.*|tokenizer)\.bin$/i.test(name)) return 'tokenizer'
  if (/\.(bin|gguf|safetensors)$/i.test(name)) return 'weights'
  if (name === 'config.json') return 'config'
  if (name === 'tokenizer.json') return 'tokenizer'
  if (name === 'tokenizer_config.json') return 'tokenizer-config'
  if (/^licen[sc]e/i.test(name)) return 'license'
  return 'other'
}

/** The format of a model folder from its weight file names, or a clear error. */
export function formatOfWeights(names: string[], where: string): ModelFormat {
  const kinds = new Set(names.map((n) => (/\.gguf$/i.test(n) ? 'gguf' : /\.safetensors$/i.test(n) ? 'safetensors' : 'llama2c')))
  if (kinds.size !== 1) throw new TabmeshError('model-not-found', `${where} mixes weight formats (${names.join(', ')}); keep one model per folder`)
  const format = [...kinds][0] as ModelFormat
  if (format !== 'safetensors' && names.length !== 1) throw new TabmeshError('model-not-found', `${where} should hold exactly one ${format === 'gguf' ? '.gguf file' : '.bin checkpoint'}, found ${names.length}`)
  return format
}

async function readJson(open: OpenFile, file: RegistryFile): Promise<unknown> {
  const source = await verifiedSource(open(file), file)
  const text = new TextDecoder().decode(await source.read(0, file.size))
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new TabmeshError('model-format', `${file.name}: not valid JSON (${(err as Error).message})`)
  }
}

/** The model config of a set of weight files (what models-dir puts in the registry). */
export async function readModelConfig(format: ModelFormat, weights: ByteSource[], configJson?: unknown): Promise<ModelConfig> {
  switch (format) {
    case 'llama2c': return readLlama2cConfig(weights[0])
    case 'gguf': return ggufConfig(await readGguf(weights[0]))
    case 'safetensors': {
      if (configJson === undefined) throw new TabmeshError('model-not-found', `${weights[0].name}: safetensors weights need their config.json`)
      return (await openSafetensors(configJson, weights)).config
    }
  }
}

/** How the layer matrices are stored ('F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', ...), from the first layer's wq. */
export async function readWeightType(format: ModelFormat, weights: ByteSource[]): Promise<string> {
  const name = layerTensorName(0, 'wq')
  if (format === 'llama2c') return 'F32'
  if (format === 'gguf') {
    const t = (await readGguf(weights[0])).tensors.get(ggufTensorName(name))
    return t ? ggmlTypeInfo(t.type, t.name).name : 'unknown'
  }
  for (const source of weights) {
    const t = (await readSafetensors(source)).tensors.get(hfTensorName(name))
    if (t) return t.dtype
  }
  return 'unknown'
}

/** Loads the parts `spec` asks for of a registry model, in any format. */
export async function loadEntrySlice(entry: ModelEntry, open: OpenFile, spec?: SliceSpec, options: LoadOptions = {}): Promise<ModelSlice> {
  const weights = filesOfRole(entry, 'weights')
  switch (entry.format) {
    case 'llama2c': return loadLlama2c(open(weights[0]), spec)
    case 'gguf': return loadGguf(open(weights[0]), spec, options)
    case 'safetensors': {
      const config = await readJson(open, fileOfRole(entry, 'config'))
      return loadSafetensors(await openSafetensors(config, weights.map(open), options, 'config.json'), spec, options)
    }
  }
}

/** The tokenizer of a registry model; checked against the model's vocabulary. */
export async function loadEntryTokenizer(entry: ModelEntry, open: OpenFile): Promise<Tokenizer> {
  const c = entry.config
  let tokenizer: Tokenizer
  switch (entry.format) {
    case 'llama2c': {
      const file = fileOfRole(entry, 'tokenizer')
      const source = await verifiedSource(open(file), file)
      return parseLlama2cTokenizer(await source.read(0, file.size), c.vocabSize, file.name)
    }
    case 'gguf': tokenizer = ggufTokenizer(await readGguf(open(fileOfRole(entry, 'weights'))), c); break
    case 'safetensors': {
      const configFile = filesOfRole(entry, 'tokenizer-config')[0]
      const tokenizerConfig = configFile ? await readJson(open, configFile) as Record<string, unknown> : undefined
      tokenizer = parseHfTokenizer(await readJson(open, fileOfRole(entry, 'tokenizer')), { name: `${entry.id}/tokenizer.json`, tokenizerConfig, bosId: c.bosId, eosId: c.eosId })
    }
  }
  if (tokenizer.vocabSize > c.vocabSize) {
    throw new TabmeshError('model-mismatch', `${entry.id}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding has ${c.vocabSize} rows; they do not belong together`)
  }
  return tokenizer
}

/** The chat template of a registry model (a plain continuation for llama2.c story models). */
export async function loadEntryChatTemplate(entry: ModelEntry, open: OpenFile): Promise<ChatTemplate> {
  let source: string | undefined
  let field: string
  if (entry.format === 'llama2c') return plainContinuation()
  if (entry.format === 'gguf') {
    source = ggufChatTemplate(await readGguf(open(fileOfRole(entry, 'weights'))))
    field = `${entry.id}: GGUF tokenizer.chat_template`
  } else {
    const configFile = filesOfRole(entry, 'tokenizer-config')[0]
    source = configFile ? hfChatTemplate(await readJson(open, configFile) as Record<string, unknown>) : undefined
    field = `${entry.id}/tokenizer_config.json chat_template`
  }
  return source === undefined ? plainContinuation() : compileChatTemplate(source, field)
}
