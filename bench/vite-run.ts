/**
 * node --import tsx bench/vite-run.ts <file.ts> [args...]
 * Runs one TypeScript file through Vite's SSR module loader with the repository's vite.config.ts,
 * so the AssemblyScript kernels the wasm backend imports (`?wasm-bytes`, tools/vite-plugin-asc.ts)
 * are compiled as in vitest and the browser build; plain tsx cannot load them. The file runs at
 * import (top-level await is fine); its process.exitCode is kept, a thrown error exits 1.
 */
import { resolve } from 'node:path'
import { createServer } from 'vite'

const ROOT = resolve(import.meta.dirname, '..')
const file = process.argv[2]
if (!file) {
  console.error('usage: node --import tsx bench/vite-run.ts <file.ts>')
  process.exit(2)
}

const server = await createServer({
  configFile: resolve(ROOT, 'vite.config.ts'),
  root: ROOT,
  server: { middlewareMode: true, hmr: false, watch: null },
  appType: 'custom',
  logLevel: 'warn',
})
let failed = false
try {
  await server.ssrLoadModule(resolve(process.cwd(), file))
} catch (err) {
  failed = true
  console.error(err)
} finally {
  await server.close()
}
// in-process hosts and channels may keep timers alive: the run is over
process.exit(failed ? 1 : (process.exitCode ?? 0))
