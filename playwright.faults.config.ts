import { defineConfig } from '@playwright/test'

// The fault-injection suite: the swarm suite's setup (every peer in its own Chromium process, a
// real relay, real WebRTC) with loss and delay on loopback (tc netem), misbehaving hosts, a client
// killed mid-generation and more chats than a host admits. Run inside a loopback-only network
// namespace, where the test is root and may put a qdisc on lo (npm run e2e:faults).
export default defineConfig({
  testDir: 'e2e',
  testMatch: ['faults*.spec.ts'],
  timeout: 180_000,
  // as the swarm suite: a first WebRTC dial between browsers on a loaded 2-core machine can time out
  retries: 1,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results/faults',
})
