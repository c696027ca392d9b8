/**
 * The service worker (public/sw.js) keeps the app shell in Cache Storage so the site loads with no
 * network. This registers it and, once it is active, hands it the files this page loaded before
 * the worker controlled it, so the first visit is enough to work offline.
 */
export const SHELL_CACHE = 'tabmesh-shell-v1' // must match public/sw.js

export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator) || import.meta.env.DEV) return
  navigator.serviceWorker.register('/sw.js').then(async () => {
    const registration = await navigator.serviceWorker.ready
    const urls = [location.href, ...performance.getEntriesByType('resource').map((e) => e.name)].filter((u) => {
      const url = new URL(u)
      // model files are large and read by Range (their cache is separate); /relay changes per run
      return url.origin === location.origin && url.pathname !== '/relay' && (url.pathname === '/models' || !url.pathname.startsWith('/models/'))
    })
    registration.active?.postMessage({ type: 'cache-urls', urls: [...new Set(urls)] })
  }, (err) => console.warn('tabmesh: the service worker could not be registered; the site will not work offline', err))
}
