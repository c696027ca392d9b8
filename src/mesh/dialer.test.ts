import type { Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createDialer, webrtcAddrs, type DialerOptions } from './dialer.ts'
import { fakePeerId } from './test-fixtures.ts'

const RELAY = fakePeerId(900)
const addrOf = (peerId: string) => `/ip4/127.0.0.1/tcp/9090/ws/p2p/${RELAY}/p2p-circuit/webrtc/p2p/${peerId}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function waitFor(condition: () => boolean, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(5)
  }
}

/** A fake network: `behaviour` decides per attempt whether a dial connects, fails or hangs. */
function network(behaviour: (peerId: string, attempt: number) => 'ok' | 'fail' | 'hang', dialMs = 5) {
  const connected = new Set<string>()
  const attempts = new Map<string, number>()
  let inFlight = 0
  let maxInFlight = 0
  const dial: DialerOptions['dial'] = async (addr: Multiaddr, { signal }) => {
    const peerId = addr.toString().split('/p2p/').pop()!
    const n = attempts.get(peerId) ?? 0
    attempts.set(peerId, n + 1)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    try {
      const outcome = behaviour(peerId, n)
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason))
        if (outcome !== 'hang') setTimeout(() => (outcome === 'ok' ? resolve() : reject(new Error('refused'))), dialMs)
      })
      connected.add(peerId)
      return {} as Connection
    } finally {
      inFlight--
    }
  }
  return { dial, connected, attempts, hasDirect: (id: string) => connected.has(id), maxInFlight: () => maxInFlight }
}

describe('dialer', () => {
  it('picks the /p2p-circuit/webrtc addresses of the peer itself', () => {
    const p = fakePeerId(1)
    expect(webrtcAddrs(p, [addrOf(p), `/ip4/127.0.0.1/tcp/9090/ws/p2p/${RELAY}/p2p-circuit/p2p/${p}`, addrOf(fakePeerId(2))])).toEqual([addrOf(p)])
  })

  it('dials a higher peer id at once and a lower one only after the fallback delay', async () => {
    const net = network(() => 'ok')
    const started = Date.now()
    const dialer = createDialer({ selfId: fakePeerId(5), dial: net.dial, hasDirect: net.hasDirect, fallbackAfterMs: 400 })
    dialer.discovered(fakePeerId(9), [addrOf(fakePeerId(9))])
    dialer.discovered(fakePeerId(1), [addrOf(fakePeerId(1))])
    await waitFor(() => net.connected.has(fakePeerId(9)))
    expect(net.connected.has(fakePeerId(1))).toBe(false)
    await waitFor(() => net.connected.has(fakePeerId(1)))
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    dialer.stop()
  })

  it('times out a hanging dial and retries until it connects', async () => {
    const net = network((_id, attempt) => (attempt === 0 ? 'hang' : attempt === 1 ? 'fail' : 'ok'))
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, attemptTimeoutMs: 50, firstBackoffMs: 10 })
    dialer.discovered(fakePeerId(3), [addrOf(fakePeerId(3))])
    await waitFor(() => net.connected.has(fakePeerId(3)))
    expect(dialer.stats()).toMatchObject({ attempts: 3, connected: 1, timeouts: 1, failures: 1 })
    dialer.stop()
  })

  it('runs at most maxConcurrent dials and stops at the direct-peer cap', async () => {
    const net = network(() => 'ok', 20)
    const peers = Array.from({ length: 10 }, (_, i) => fakePeerId(i + 1))
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, maxConcurrent: 3, canConnectMore: (pending) => net.connected.size + pending < 6 })
    for (const p of peers) dialer.discovered(p, [addrOf(p)])
    await waitFor(() => net.connected.size === 6)
    await sleep(100)
    expect(net.maxInFlight()).toBe(3)
    expect(net.connected.size).toBe(6)
    dialer.stop()
  })

  it('stops retrying a peer that was forgotten', async () => {
    const net = network(() => 'fail')
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, firstBackoffMs: 10 })
    dialer.discovered(fakePeerId(4), [addrOf(fakePeerId(4))])
    await sleep(30)
    dialer.forget(fakePeerId(4))
    const tried = net.attempts.get(fakePeerId(4))!
    await sleep(200)
    expect(net.attempts.get(fakePeerId(4))).toBe(tried)
    dialer.stop()
  })
})
