import { defineConfig } from '@playwright/test'

// The swarm suite: every peer in its own Chromium process, a real relay, real WebRTC, run inside a
// loopback-only network namespace (npm run e2e:swarm). It starts its own relay, so no webServer.
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['swarm*.spec.ts'],
  timeout: 240_000,
  // as the mesh suite: WebRTC dials between separate browsers on a loaded 2-core machine sometimes
  // time out, and a test that needed a particular peer reached gets one more run
  retries: 1,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/swarm',
})
