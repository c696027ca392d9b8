import { defineConfig } from '@playwright/test'

// The product suite: the site as a visitor uses it, three browsers (each its own Chromium process)
// around a real relay, inside a loopback-only network namespace (npm run e2e:ui).
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['ui*.spec.ts'],
  timeout: 300_000,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/ui',
})
