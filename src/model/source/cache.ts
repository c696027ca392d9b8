import type { ByteSource } from './byte-source.ts'

/**
 * A ByteSource that keeps every range it reads in Cache Storage, so a contributor that reloads does
 * not download its layers again and a cached model loads with no network. `bytesRead` counts only
 * what came from the network. `forget` drops a file's ranges (after a failed integrity check, or
 * when the user clears the cache).
 */
export const MODEL_CACHE = 'tabmesh-models-v1'

const rangeKey = (name: string, offset: number, length: number) => `${name}${name.includes('?') ? '&' : '?'}tabmesh-range=${offset}-${offset + length}`

export const openModelCache = (cacheName = MODEL_CACHE): Promise<Cache> => caches.open(cacheName)

export function cachingSource(source: ByteSource, cache: Cache): ByteSource & { cachedBytes: number } {
  let cachedBytes = 0
  return {
    name: source.name,
    size: () => source.size(),
    async read(offset, length) {
      const key = rangeKey(source.name, offset, length)
      const hit = await cache.match(key)
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer())
        if (bytes.byteLength === length) {
          cachedBytes += length
          return bytes
        }
      }
      const bytes = await source.read(offset, length)
      await cache.put(key, new Response(bytes.slice(), { headers: { 'Content-Type': 'application/octet-stream' } }))
      return bytes
    },
    get bytesRead() { return source.bytesRead },
    get cachedBytes() { return cachedBytes },
  }
}

/** Drops every cached range of `name` (a file URL); returns how many entries went. */
export async function forgetCached(name: string, cacheName = MODEL_CACHE): Promise<number> {
  const cache = await caches.open(cacheName)
  let n = 0
  for (const req of await cache.keys()) {
    if (req.url.startsWith(name)) n += Number(await cache.delete(req))
  }
  return n
}

export async function clearModelCache(cacheName = MODEL_CACHE): Promise<void> {
  await caches.delete(cacheName)
}
