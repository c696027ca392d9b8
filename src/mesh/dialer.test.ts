import type { Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createDialer, dialsFirst, webrtcAddrs, type DialerOptions } from './dialer.ts'
import { fakePeerId } from '../../testing/mesh-fixtures.ts'

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

  it('lets exactly one side of each pair dial first, and spreads the dialling evenly', () => {
    const ids = Array.from({ length: 40 }, (_, i) => fakePeerId(i * 7919))
    const dials = ids.map((a) => ids.filter((b) => b !== a && dialsFirst(a, b)).length)
    for (const a of ids) for (const b of ids) if (a !== b) expect(dialsFirst(a, b)).toBe(!dialsFirst(b, a))
    expect(Math.min(...dials)).toBeGreaterThan(8) // of 39 each; "the lower id dials" would give 0..39
    expect(Math.max(...dials)).toBeLessThan(31)
  })

  it('dials at once when it is its turn, and otherwise only after the fallback delay', async () => {
    const net = network(() => 'ok')
    const self = fakePeerId(5)
    const others = Array.from({ length: 12 }, (_, i) => fakePeerId(100 + i))
    const first = others.find((p) => dialsFirst(self, p))!
    const second = others.find((p) => !dialsFirst(self, p))!
    const started = Date.now()
    const dialer = createDialer({ selfId: self, dial: net.dial, hasDirect: net.hasDirect, fallbackAfterMs: 400 })
    dialer.discovered(first, [addrOf(first)])
    dialer.discovered(second, [addrOf(second)])
    await waitFor(() => net.connected.has(first))
    expect(net.connected.has(second)).toBe(false)
    await waitFor(() => net.connected.has(second))
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    dialer.stop()
  })

  it('times out a hanging dial and retries until it connects', async () => {
    const net = network((_id, attempt) => (attempt === 0 ? 'hang' : attempt === 1 ? 'fail' : 'ok'))
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, attemptTimeoutMs: 50, firstBackoffMs: 10, fallbackAfterMs: 0 })
    dialer.discovered(fakePeerId(3), [addrOf(fakePeerId(3))])
    await waitFor(() => net.connected.has(fakePeerId(3)))
    expect(dialer.stats()).toMatchObject({ attempts: 3, connected: 1, timeouts: 1, failures: 1 })
    dialer.stop()
  })

  it('runs at most maxConcurrent dials and stops at the direct-peer cap', async () => {
    const net = network(() => 'ok', 20)
    const peers = Array.from({ length: 10 }, (_, i) => fakePeerId(i + 1))
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, maxConcurrent: 3, fallbackAfterMs: 0, canConnectMore: (pending) => net.connected.size + pending < 6 })
    for (const p of peers) dialer.discovered(p, [addrOf(p)])
    await waitFor(() => net.connected.size === 6)
    await sleep(100)
    expect(net.maxInFlight()).toBe(3)
    expect(net.connected.size).toBe(6)
    dialer.stop()
  })

  it('stops retrying a peer that was forgotten', async () => {
    const net = network(() => 'fail')
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, firstBackoffMs: 10, fallbackAfterMs: 0 })
    dialer.discovered(fakePeerId(4), [addrOf(fakePeerId(4))])
    await sleep(30)
    dialer.forget(fakePeerId(4))
    const tried = net.attempts.get(fakePeerId(4))!
    await sleep(200)
    expect(net.attempts.get(fakePeerId(4))).toBe(tried)
    dialer.stop()
  })

  it('keeps escalating the timeout for a peer that left and came back', async () => {
    const net = network(() => 'hang')
    const p = fakePeerId(7)
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, attemptTimeoutMs: 20, firstBackoffMs: 1, fallbackAfterMs: 0 })
    dialer.discovered(p, [addrOf(p)])
    await waitFor(() => dialer.stats().timeouts >= 2)
    dialer.forget(p)
    await sleep(60) // let an attempt still in flight finish
    const before = dialer.stats().recentErrors
    dialer.discovered(p, [addrOf(p)])
    await waitFor(() => dialer.stats().recentErrors.length > before.length)
    const next = dialer.stats().recentErrors.at(-1)!
    expect(Number(/after (\d+) ms/.exec(next)![1])).toBeGreaterThanOrEqual(45) // 20 x 1.5^2
    dialer.stop()
  })

  it('waits for a dialable address when the first advert had none', async () => {
    const net = network(() => 'ok')
    const p = fakePeerId(8)
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, fallbackAfterMs: 0 })
    dialer.discovered(p, []) // advertised before its relay reservation
    await sleep(50)
    expect(dialer.stats().attempts).toBe(0)
    dialer.discovered(p, [addrOf(p)])
    await waitFor(() => net.connected.has(p))
    dialer.stop()
  })

  it('gives up on a peer after maxAttempts failed dials (it is unreachable), and tries again only after a long wait', async () => {
    const net = network(() => 'fail')
    const p = fakePeerId(9)
    const unreachable: string[] = []
    const dialer = createDialer({ selfId: fakePeerId(0), dial: net.dial, hasDirect: net.hasDirect, firstBackoffMs: 1, maxBackoffMs: 2, fallbackAfterMs: 0, maxAttempts: 3, unreachableRetryMs: 150, onUnreachable: (id) => unreachable.push(id) })
    dialer.discovered(p, [addrOf(p)])
    await waitFor(() => unreachable.length === 1)
    expect(net.attempts.get(p)).toBe(3)
    await sleep(80)
    expect(net.attempts.get(p)).toBe(3) // bounded: no dial storm against a peer behind a NAT we cannot cross
    await waitFor(() => unreachable.length === 2, 1000) // one more try after the wait, and given up again
    expect(net.attempts.get(p)).toBe(4)
    expect(dialer.stats().gaveUp).toBe(2)
    dialer.stop()
  })
})
