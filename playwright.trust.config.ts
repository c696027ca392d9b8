import { defineConfig } from '@playwright/test'

// The trust suite: lying contributors in Chromium processes of their own among honest ones, a real
// relay, real WebRTC, inside a loopback-only network namespace (npm run e2e:trust).
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['trust.spec.ts'],
  timeout: 240_000,
  // as the swarm suite: a first WebRTC dial between browsers on a loaded 2-core machine can time out
  retries: 1,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/trust',
})
