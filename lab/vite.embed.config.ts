import { resolve } from 'node:path'
import type { UserConfig } from 'vite'
import site from '../vite.config.ts'

// The site's own build settings (so embed.js comes out exactly as the site ships it), for only the
// pages the embed suite uses: the embed script, its iframe, and the headless page the contributors
// run. The suite then does not depend on the rest of the site building while it is mid-change.
const root = resolve(import.meta.dirname, '..')
const base = site as UserConfig

export default {
  ...base,
  root,
  build: {
    ...base.build,
    outDir: resolve(root, 'dist-embed'),
    emptyOutDir: true,
    rollupOptions: {
      ...base.build!.rollupOptions,
      input: {
        headless: resolve(root, 'src/cli-tab/index.html'),
        embed: resolve(root, 'src/embed/embed.ts'),
        embedFrame: resolve(root, 'src/embed/frame.html'),
      },
    },
  },
} satisfies UserConfig
