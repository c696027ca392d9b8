/** Builders of valid protocol messages for the mesh unit tests. */
import type { Advert, TaskAnnounce } from '../src/mesh/protocol.ts'

/** Deterministic, well-formed peer ids (base58 alphabet, ed25519 length). */
export function fakePeerId(n: number): string {
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
  let tail = ''
  let x = n + 1
  for (let i = 0; i < 8; i++) {
    tail = alphabet[x % alphabet.length] + tail
    x = Math.floor(x / alphabet.length)
  }
  return `12D3KooW${'a'.repeat(36)}${tail}`
}

export function makeAdvert(peerId: string, patch: Partial<Advert> = {}): Advert {
  return {
    v: 1, type: 'advert', peerId, seq: 1, sentAt: 1_000, reason: 'heartbeat',
    addrs: [`/ip4/127.0.0.1/tcp/9090/ws/p2p/${fakePeerId(999)}/p2p-circuit/webrtc/p2p/${peerId}`],
    capabilities: { backend: 'wasm', memoryBudgetBytes: 2 ** 30, speed: { gflops: 20 } },
    hosted: [{ modelId: 'stories260K', layers: { start: 0, end: 5 }, embedding: true, head: true }],
    load: { queueDepth: 0, activeSessions: 0 },
    health: { status: 'ok', recentErrors: 0 },
    ...patch,
  }
}

export function makeAnnounce(announcer: string, patch: Partial<TaskAnnounce> = {}): TaskAnnounce {
  return { v: 1, type: 'task-announce', taskId: 'task1', announcer, kind: 'host-layers', modelId: 'stories260K', layers: { start: 0, end: 2 }, claimWindowMs: 100, sentAt: 1_000, ...patch }
}
