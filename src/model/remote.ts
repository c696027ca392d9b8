import { TabmeshError } from '../errors.ts'
import { httpSource } from './byte-source.ts'
import { cachingSource, openModelCache } from './cache.ts'
import { loadLlama2c } from './llama2c.ts'
import type { ModelSlice, SliceSpec } from './model.ts'
import { fileOfRole, type ModelEntry, type Registry } from './registry.ts'
import type { Tokenizer } from './tokenizer.ts'
import { httpOpener, loadEntryTokenizer } from './formats.ts'

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
  return (await res.json()) as Registry
}

export const modelFileUrl = (baseUrl: string, entry: ModelEntry, name: string) => new URL(`models/${encodeURIComponent(entry.id)}/${encodeURIComponent(name)}`, baseUrl).href

/** Loads the parts of a registry model that `spec` asks for, by Range requests. */
export function loadRemoteSlice(baseUrl: string, entry: ModelEntry, spec?: SliceSpec): Promise<ModelSlice> {
  const weights = fileOfRole(entry, 'weights')
  return loadLlama2c(httpSource(modelFileUrl(baseUrl, entry, weights.name), { size: weights.size }), spec)
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
