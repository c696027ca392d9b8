import { defineConfig } from '@playwright/test'

// The embed suite: a third-party page on another origin embeds embed.js; contributors run in their
// own Chromium processes. Real relay, real WebRTC, inside a loopback-only network namespace
// (npm run e2e:embed). It builds the pages it needs and starts its own servers.
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['embed*.spec.ts'],
  timeout: 240_000,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/embed',
})
