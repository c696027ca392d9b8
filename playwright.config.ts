import { defineConfig } from '@playwright/test'
import { chromiumLaunchOptions } from './e2e/chromium.ts'

const PORT = Number(process.env.TABMESH_E2E_PORT ?? 4317)

export default defineConfig({
  testDir: 'e2e',
  timeout: 120_000,
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${PORT}/`,
    launchOptions: chromiumLaunchOptions,
    screenshot: 'only-on-failure',
  },
  webServer: {
    command: `node src/cli/bin.mjs start --port ${PORT}`,
    url: `http://localhost:${PORT}/models`,
    reuseExistingServer: false,
    timeout: 60_000,
  },
})
