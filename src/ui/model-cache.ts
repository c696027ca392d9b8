import { MODEL_CACHE, clearModelCache } from '../model/source/cache.ts'
import { fullSpec } from '../model/model.ts'
import { entrySliceBytes, modelFileUrl, type ModelEntry } from '../model/source/registry.ts'
import { SHELL_CACHE } from './pwa.ts'

/**
 * What Cache Storage holds of each model: the byte ranges the engine worker read (src/model/source/cache.ts
 * keys them by file URL and range), and a marker written once the whole model loaded, which is what
 * "works offline" means. Clearing the model cache drops both.
 */
const completeKey = (baseUrl: string, entry: ModelEntry) => new URL(`tabmesh-complete/${encodeURIComponent(entry.id)}?parts=${encodeURIComponent(JSON.stringify(entry.parts ?? entry.files.map((f) => f.sha256)))}`, baseUrl).href

export interface ModelCacheStatus {
  cachedBytes: number // ranges of the model's files in the cache
  modelBytes: number // the whole model's tensors
  complete: boolean // everything a local load reads is cached
}

export async function modelCacheStatus(baseUrl: string, entry: ModelEntry): Promise<ModelCacheStatus> {
  const modelBytes = entrySliceBytes(entry, fullSpec(entry.config))
  if (typeof caches === 'undefined' || !(await caches.has(MODEL_CACHE))) return { cachedBytes: 0, modelBytes, complete: false }
  const cache = await caches.open(MODEL_CACHE)
  const prefixes = entry.files.map((f) => modelFileUrl(baseUrl, entry, f))
  let cachedBytes = 0
  for (const req of await cache.keys()) {
    if (!prefixes.some((p) => req.url.startsWith(p))) continue
    const m = /tabmesh-range=(\d+)-(\d+)/.exec(req.url)
    if (m) cachedBytes += Number(m[2]) - Number(m[1])
  }
  return { cachedBytes, modelBytes, complete: !!(await cache.match(completeKey(baseUrl, entry))) }
}

/** Records that the whole model loaded through the cache (a download, or a local chat). */
export async function markModelComplete(baseUrl: string, entry: ModelEntry): Promise<void> {
  if (typeof caches === 'undefined') return
  await (await caches.open(MODEL_CACHE)).put(completeKey(baseUrl, entry), new Response(String(Date.now())))
}

/** Drops every cached model byte: weight ranges, and the registry and tokenizers the service worker kept. */
export async function clearAllModelCaches(): Promise<void> {
  await clearModelCache()
  if (typeof caches === 'undefined' || !(await caches.has(SHELL_CACHE))) return
  const shell = await caches.open(SHELL_CACHE)
  for (const req of await shell.keys()) if (new URL(req.url).pathname.startsWith('/models/')) await shell.delete(req)
}
