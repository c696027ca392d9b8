import { resolve } from 'node:path'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'
import { assemblyScriptWasmBytes } from './tools/vite-plugin-asc.ts'

const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
}

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
        main: resolve(import.meta.dirname, 'index.html'), headless: resolve(import.meta.dirname, 'src/cli-tab/index.html'),
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
    include: ['src/**/*.test.ts', 'testing/**/*.test.ts', 'bench/sim/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
  },
})
