/*
 * tabmesh's service worker: the app shell offline.
 * - pages: network first, else the cached shell (the site is a single page);
 * - the model registry and tokenizers (/models/...): network first, else the cached copy;
 * - other same-origin files (hashed bundles, wasm, icons): cache first, fetched and kept otherwise;
 * - Range requests (model weights: src/model/source/cache.ts keeps those) and /relay: never touched.
 * Cached responses keep their headers, COOP/COEP included, so the page stays cross-origin isolated
 * (WASM threads need it) when it is served from here.
 */
const SHELL_CACHE = 'tabmesh-shell-v1' // must match src/ui/pwa.ts

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE)
    const res = await fetch('/', { cache: 'no-cache' })
    if (res.ok) {
      await cache.put('/', res.clone())
      const html = await res.text()
      const assets = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1])
      await Promise.all(assets.map((a) => keep(cache, a).catch(() => {})))
    }
    await self.skipWaiting()
  })())
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith('tabmesh-shell-') && name !== SHELL_CACHE) await caches.delete(name)
    await self.clients.claim()
  })())
})

// the page lists what it loaded before this worker controlled it
self.addEventListener('message', (event) => {
  const data = event.data
  if (!data || data.type !== 'cache-urls' || !Array.isArray(data.urls)) return
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE)
    for (const u of data.urls) {
      if (typeof u !== 'string') continue
      const url = new URL(u, self.location.origin)
      if (url.origin !== self.location.origin) continue
      const key = url.pathname === '/' || url.pathname === '/index.html' ? '/' : url.pathname + url.search
      if (!(await cache.match(key))) await keep(cache, key).catch(() => {})
    }
  })())
})

async function keep(cache, path) {
  const res = await fetch(path, { cache: 'no-cache' })
  if (res.ok && res.status === 200) await cache.put(path, await storable(res))
  return res
}

/** A response that can be cached and served to a navigation (a redirected one cannot). */
async function storable(res) {
  if (!res.redirected) return res
  return new Response(await res.blob(), { status: res.status, statusText: res.statusText, headers: res.headers })
}

self.addEventListener('fetch', (event) => {
  const req = event.request
  if (req.method !== 'GET' || req.headers.has('range')) return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin || url.pathname === '/relay') return
  if (req.mode === 'navigate') return event.respondWith(networkFirst(req, '/'))
  if (url.pathname === '/models' || url.pathname.startsWith('/models/')) return event.respondWith(networkFirst(req, url.pathname))
  event.respondWith(cacheFirst(req, url.pathname + url.search))
})

async function networkFirst(req, key) {
  const cache = await caches.open(SHELL_CACHE)
  try {
    const res = await fetch(req)
    if (res.ok && res.status === 200) await cache.put(key, await storable(res.clone()))
    return res
  } catch (err) {
    const hit = await cache.match(key)
    if (hit) return hit
    throw err
  }
}

async function cacheFirst(req, key) {
  const cache = await caches.open(SHELL_CACHE)
  const hit = await cache.match(key)
  if (hit) return hit
  const res = await fetch(req)
  if (res.ok && res.status === 200) await cache.put(key, res.clone())
  return res
}
