import { defineConfig } from '@playwright/test'

// The NAT suite: Chromium tabs in home network namespaces behind NATs (lab/nat-lab.ts), the relay
// and coturn in the runner's own namespace (npm run e2e:nat, as root).
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['nat.spec.ts'],
  timeout: 240_000,
  // as the swarm suite: a first WebRTC dial between browsers on a loaded 2-core machine can time out
  retries: 1,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/nat',
})
