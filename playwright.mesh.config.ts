import { defineConfig } from '@playwright/test'

// The mesh suite: a relay process and several browsers, each its own Chromium process, inside a
// loopback-only network namespace (`npm run e2e:mesh`). It starts everything itself.
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['mesh*.spec.ts'],
  timeout: 120_000,
  workers: 1,
  reporter: [['list']],
})
