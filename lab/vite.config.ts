import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { UserConfig } from 'vite'
import site from '../vite.config.ts'

// The site plus the lab pages (lab/pages/*.html, served at /lab/pages/<name>.html), which drive
// kernels, engines and the mesh from Playwright tests and benchmarks. Built into dist-lab/ by
// `npm run build:lab`; the product build (`npm run build`, dist/) never contains them.
const root = resolve(import.meta.dirname, '..')
const base = site as UserConfig
const labPages = Object.fromEntries(
  readdirSync(resolve(root, 'lab/pages'))
    .filter((f) => f.endsWith('.html'))
    .map((f) => [`lab-${f.replace(/\.html$/, '')}`, resolve(root, 'lab/pages', f)]),
)

export default {
  ...base,
  root,
  build: {
    ...base.build,
    outDir: resolve(root, 'dist-lab'),
    emptyOutDir: true,
    rollupOptions: { ...base.build!.rollupOptions, input: { ...(base.build!.rollupOptions!.input as Record<string, string>), ...labPages } },
  },
} satisfies UserConfig
