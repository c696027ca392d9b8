import { TabmeshError } from '../../core/errors.ts'
import { cachingSource, openModelCache } from './cache.ts'
import { httpOpener, loadEntryChatTemplate, loadEntrySlice, loadEntryTokenizer } from './entry.ts'
import type { LoadOptions } from '../formats/llama-family.ts'
import type { ModelSlice, SliceSpec } from '../model.ts'
import { parseRegistry, type ModelEntry, type Registry } from './registry.ts'
import type { ChatTemplate } from '../template/index.ts'
import type { Tokenizer } from '../tokenizer/tokenizer.ts'

/** Loading models from a registry served over HTTP (the relay, or any static host). */
export async function fetchRegistry(baseUrl: string): Promise<Registry> {
  const url = new URL('models', baseUrl).href
  let res: Response
  try {
    res = await fetch(url)
  } catch (err) {
    throw new TabmeshError('fetch', `cannot reach the model registry at ${url}: ${(err as Error).message}`)
  }
  if (!res.ok) throw new TabmeshError('fetch', `the model registry at ${url} answered ${res.status}`)
  let json: unknown
  try {
    json = await res.json()
  } catch (err) {
    throw new TabmeshError('model-format', `the model registry at ${url} is not JSON: ${(err as Error).message}`)
  }
  return parseRegistry(json, `the model registry at ${url}`)
}

/** Loads the parts of a registry model that `spec` asks for, by Range requests, in any format. */
export function loadRemoteSlice(baseUrl: string, entry: ModelEntry, spec?: SliceSpec, options: LoadOptions = {}): Promise<ModelSlice> {
  return loadEntrySlice(entry, httpOpener(baseUrl, entry), spec, options)
}

/**
 * The model's tokenizer, whatever its format (tokenizer.bin, tokenizer.json, or inside a GGUF), checked against the registry's sha256.
 * Its reads go through Cache Storage where there is one (browsers), like the weights, so a cached model loads with no network.
 */
export async function loadRemoteTokenizer(baseUrl: string, entry: ModelEntry): Promise<Tokenizer> {
  const http = httpOpener(baseUrl, entry)
  const cache = typeof caches !== 'undefined' ? await openModelCache().catch(() => undefined) : undefined
  return loadEntryTokenizer(entry, cache ? (file) => cachingSource(http(file), cache) : http)
}

/**
 * The model's chat template (tokenizer_config.json chat_template or the GGUF's; a plain continuation
 * for llama2.c story models and for models without one), read like the tokenizer: through Cache Storage where there is one.
 */
export async function loadRemoteChatTemplate(baseUrl: string, entry: ModelEntry): Promise<ChatTemplate> {
  const http = httpOpener(baseUrl, entry)
  const cache = typeof caches !== 'undefined' ? await openModelCache().catch(() => undefined) : undefined
  return loadEntryChatTemplate(entry, cache ? (file) => cachingSource(http(file), cache) : http)
}
