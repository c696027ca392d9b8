import type { Connection } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { createRelayLink, groupRelayAddrs, retryWaitMs, type RelayLinkHost } from './relay-link.ts'
import { fakePeerId } from '../../testing/mesh-fixtures.ts'

const WS = '/ip4/127.0.0.1/tcp/9090/ws'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function waitFor(condition: () => boolean, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(2)
  }
}

/**
 * A relay at WS as the link sees it through libp2p: down, or up with an identity. A dial that
 * names another identity fails as noise fails it; a dial without one gets whoever answers.
 */
function relayAt() {
  let up: string | undefined
  const conns: Connection[] = []
  const events = new EventTarget()
  const dials: { at: number; addr: string }[] = []
  const host: RelayLinkHost = {
    async dial(addr: Multiaddr) {
      dials.push({ at: Date.now(), addr: addr.toString() })
      await sleep(1)
      if (!up) throw new Error('ECONNREFUSED')
      const wanted = addr.toString().split('/p2p/')[1]
      if (wanted && wanted !== up) throw new Error(`Payload identity key ${up} does not match expected remote identity key ${wanted}`)
      const id = up
      const conn = { id: String(conns.length), status: 'open', remotePeer: { toString: () => id } } as unknown as Connection
      conns.push(conn)
      return conn
    },
    getConnections: () => conns.filter((c) => c.status === 'open'),
    addEventListener: (type, listener) => events.addEventListener(type, listener as EventListener),
    removeEventListener: (type, listener) => events.removeEventListener(type, listener as EventListener),
  }
  return {
    host, dials,
    start(id: string) {
      up = id
    },
    /** The relay process dies: its connections close. */
    kill() {
      up = undefined
      for (const c of conns.filter((x) => x.status === 'open')) {
        (c as { status: string }).status = 'closed'
        events.dispatchEvent(new CustomEvent('connection:close', { detail: c }))
      }
    },
  }
}

const A = fakePeerId(1)
const B = fakePeerId(2)
const quiet = () => {}

describe('relay link', () => {
  it('dials the relay and knows it as the relay', async () => {
    const relay = relayAt()
    relay.start(A)
    const link = createRelayLink({ host: relay.host, addrs: [multiaddr(`${WS}/p2p/${A}`)], log: quiet })
    await link.connect()
    expect(link.connected()).toBe(true)
    expect(link.peerIds()).toEqual([A])
    expect(link.isRelay(A)).toBe(true)
    expect(link.reconnects()).toBe(0)
    link.stop()
  })

  it('dials again when the relay connection closes, backing off while it is down, and is back once it returns', async () => {
    const relay = relayAt()
    relay.start(A)
    const link = createRelayLink({ host: relay.host, addrs: [multiaddr(`${WS}/p2p/${A}`)], firstBackoffMs: 20, maxBackoffMs: 80, random: () => 0.5, log: quiet })
    await link.connect()
    relay.kill()
    await sleep(400)
    expect(link.connected()).toBe(false)
    // each round tries the known identity, then the bare address; rounds wait 20, 40, 80, 80, ...
    // ms (timers never fire early, and may fire late on a busy machine: lower bounds only)
    const rounds = relay.dials.filter((d) => d.addr.endsWith(`/p2p/${A}`)).slice(1) // the first was the initial dial
    const gaps = rounds.slice(1).map((d, i) => d.at - rounds[i].at)
    expect(gaps.length).toBeGreaterThanOrEqual(2)
    gaps.slice(0, 3).forEach((g, i) => expect(g).toBeGreaterThanOrEqual([20, 40, 80][i] - 2))
    relay.start(A)
    await waitFor(() => link.connected(), 500)
    expect(link.reconnects()).toBe(1)
    expect(link.peerIds()).toEqual([A])
    link.stop()
  })

  it('takes the new identity of a relay that restarted at the same address', async () => {
    const relay = relayAt()
    relay.start(A)
    const lines: string[] = []
    const link = createRelayLink({ host: relay.host, addrs: [multiaddr(`${WS}/p2p/${A}`)], firstBackoffMs: 10, log: (l) => lines.push(l) })
    await link.connect()
    relay.kill()
    relay.start(B)
    await waitFor(() => link.connected(), 1000)
    expect(link.peerIds()).toEqual([B])
    expect(link.isRelay(A)).toBe(false)
    expect(link.isRelay(B)).toBe(true)
    expect(link.reconnects()).toBe(1)
    expect(relay.dials.map((d) => d.addr).slice(-2)).toEqual([`${WS}/p2p/${A}`, WS]) // the known identity first
    expect(lines.some((l) => l.includes(`is now ${B} (was ${A})`))).toBe(true)
    // and when that one goes too, it is the one dialled
    relay.kill()
    relay.start(B)
    await waitFor(() => link.connected() && link.reconnects() === 2, 1000)
    expect(relay.dials.at(-1)!.addr).toBe(`${WS}/p2p/${B}`)
    link.stop()
  })

  it('waits double each failed round up to the cap, jittered by at most a quarter either way', () => {
    expect([1, 2, 3, 4, 5, 6, 10, 60].map((n) => retryWaitMs(n, 500, 10_000, 0.5))).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000])
    expect(retryWaitMs(1, 500, 10_000, 0)).toBe(375)
    expect(retryWaitMs(1, 500, 10_000, 0.999999)).toBeCloseTo(625, 2)
    expect(retryWaitMs(9, 500, 10_000, 0.999999)).toBeCloseTo(12_500, 1)
  })

  it('stops dialling once stopped', async () => {
    const relay = relayAt()
    const link = createRelayLink({ host: relay.host, addrs: [multiaddr(`${WS}/p2p/${A}`)], firstBackoffMs: 10, log: quiet })
    await link.connect()
    link.stop()
    const n = relay.dials.length
    relay.start(A)
    await sleep(100)
    expect(relay.dials.length).toBe(n)
    expect(link.connected()).toBe(false)
  })
})

describe('relay lists', () => {
  it('groups addresses by relay, so a node keeps one link per relay', () => {
    const [a, b] = [fakePeerId(801), fakePeerId(802)]
    const addrs = [`/ip4/10.0.0.1/tcp/1/ws/p2p/${a}`, `/ip6/::1/tcp/1/ws/p2p/${a}`, `/ip4/10.0.0.2/tcp/2/ws/p2p/${b}`, '/ip4/10.0.0.3/tcp/3/ws', '/ip4/10.0.0.3/tcp/3/ws'].map((x) => multiaddr(x))
    expect(groupRelayAddrs(addrs).map((g) => g.map(String))).toEqual([
      [`/ip4/10.0.0.1/tcp/1/ws/p2p/${a}`, `/ip6/::1/tcp/1/ws/p2p/${a}`],
      [`/ip4/10.0.0.2/tcp/2/ws/p2p/${b}`],
      ['/ip4/10.0.0.3/tcp/3/ws', '/ip4/10.0.0.3/tcp/3/ws'],
    ])
  })
})

