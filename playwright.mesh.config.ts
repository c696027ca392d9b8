import { defineConfig } from '@playwright/test'

// The mesh suite: a relay process and several browsers, each its own Chromium process, inside a
// loopback-only network namespace (`npm run e2e:mesh`). It starts everything itself.
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['mesh*.spec.ts'],
  timeout: 120_000,
  workers: 1,
  // one retry: a dial or gossip stream that times out on a starved CPU (seen once in ~10 runs with
  // other suites loading the machine) should not sink the run; a real break fails twice
  retries: 1,
  reporter: [['list']],
})
