import { defineConfig } from '@playwright/test'
import { chromiumLaunchOptions } from './lab/chromium.ts'

// A port and a built site per run, so several runs (and the multi-browser suites) do not collide.
const PORT = Number(process.env.TABMESH_E2E_PORT ?? 4317)
const SITE = ` --site-dir ${process.env.TABMESH_SITE_DIR ?? 'dist-lab'}` // the site with the lab pages (npm run build:lab)

export default defineConfig({
  testDir: 'e2e',
  // the mesh and swarm suites start their own relay and browsers inside a network namespace
  testIgnore: ['**/mesh*.spec.ts', '**/swarm*.spec.ts', '**/ui*.spec.ts', '**/embed*.spec.ts', '**/faults*.spec.ts', '**/trust*.spec.ts', '**/nat*.spec.ts'],
  timeout: 120_000,
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${PORT}/`,
    launchOptions: chromiumLaunchOptions,
    screenshot: 'only-on-failure',
  },
  webServer: {
    command: `node src/nodejs/cli/bin.mjs start --port ${PORT} --contributors 0${SITE}`,
    url: `http://localhost:${PORT}/models`,
    reuseExistingServer: false,
    timeout: 60_000,
  },
})
