import { resolve } from 'node:path'
import { defineConfig } from 'vite'

// Builds only the mesh lab page, so the mesh suite and benchmark do not depend on the rest of the
// site building (other lab pages may be mid-change). Output: <outDir>/lab/pages/mesh.html.
const root = resolve(import.meta.dirname, '..')

export default defineConfig({
  root,
  build: {
    target: 'es2022',
    sourcemap: true,
    outDir: resolve(root, 'dist-mesh'),
    emptyOutDir: true,
    rollupOptions: { input: { 'lab-mesh': resolve(root, 'lab/pages/mesh.html') } },
  },
})
