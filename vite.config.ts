import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'
import { assemblyScriptWasmBytes } from './src/engine/wasm/kernels/vite-plugin-asc.ts'

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
}

// Lab pages (e2e/pages/*.html) drive kernels, engines and the mesh from Playwright tests and
// benchmarks; they are built with the site and served beside it.
const labPages = Object.fromEntries(
  readdirSync(resolve(import.meta.dirname, 'e2e/pages'))
    .filter((f) => f.endsWith('.html'))
    .map((f) => [`lab-${f.replace(/\.html$/, '')}`, resolve(import.meta.dirname, 'e2e/pages', f)]),
)

export default defineConfig({
  plugins: [react(), assemblyScriptWasmBytes()],
  worker: { format: 'es', plugins: () => [assemblyScriptWasmBytes()] },
  server: { host: '127.0.0.1', headers: isolation },
  preview: { host: '127.0.0.1', headers: isolation },
  build: {
    target: 'es2022',
    sourcemap: true,
    rollupOptions: {
      input: {
        main: resolve(import.meta.dirname, 'index.html'), headless: resolve(import.meta.dirname, 'src/headless/index.html'), ...labPages,
        embed: resolve(import.meta.dirname, 'src/embed/embed.ts'), embedFrame: resolve(import.meta.dirname, 'src/embed/frame.html'),
      },
      // embed.js: a stable URL for <script src>, one classic script wrapped so it adds no globals
      output: {
        entryFileNames: (chunk) => (chunk.name === 'embed' ? 'embed.js' : 'assets/[name]-[hash].js'),
        banner: (chunk) => (chunk.name === 'embed' && chunk.isEntry ? '(() => {' : ''),
        footer: (chunk) => (chunk.name === 'embed' && chunk.isEntry ? '})();' : ''),
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
  },
})
