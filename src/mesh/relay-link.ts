/**
 * A tab's link to the relay: dialled at start, and dialled again whenever it closes, with backoff
 * and jitter, for as long as the node runs. The mesh itself does not need the relay (direct WebRTC
 * connections outlive it); newcomers do, to find the swarm and to signal their dials, and a tab
 * needs a relay reservation to be dialled at all. Once the link is back, libp2p makes the rest
 * again by itself: the circuit transport reserves a slot on the relay (its reservation store
 * looks for a relay when the old reservation went with the connection) and so our circuit
 * addresses reappear in our adverts, and gossipsub sends our subscriptions to the new connection.
 *
 * A relay that restarted may have a new identity (`tabmesh start` makes a new key each run), so
 * when no known address answers with the known peer id, the same transport addresses are dialled
 * without one and whatever relay answers there is taken. That trusts the address, as the first
 * dial trusted the site that named it (GET /relay); an impostor relay could only withhold or drop
 * traffic, which whoever holds that address can do anyway: gossip is signed by its authors and
 * checked by validators, and tab-to-tab connections are end-to-end authenticated (noise).
 */
import type { Connection } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

/** The part of libp2p the link uses. */
export interface RelayLinkHost {
  dial(addr: Multiaddr, options: { signal: AbortSignal }): Promise<Connection>
  getConnections(): Connection[]
  addEventListener(type: 'connection:close', listener: (evt: CustomEvent<Connection>) => void): void
  removeEventListener(type: 'connection:close', listener: (evt: CustomEvent<Connection>) => void): void
}

export interface RelayLinkOptions {
  host: RelayLinkHost
  /** The relay's multiaddrs, each ending in /p2p/<relay id>. */
  addrs: readonly Multiaddr[]
  /** Each dial's time limit (default 5000 ms). */
  dialTimeoutMs?: number
  /** Wait before the first retry (default 500 ms), doubled after each failed round up to maxBackoffMs (default 10 s), each wait jittered by ±25%. */
  firstBackoffMs?: number
  maxBackoffMs?: number
  log: (line: string) => void
  random?: () => number
}

export interface RelayLink {
  /** One round of dials (known identities first, then the bare addresses); on failure, retries in the background. */
  connect(): Promise<void>
  /** Whether a connection to a relay is open. */
  connected(): boolean
  /** The relays' peer ids as last seen (they change when a relay restarts with a new identity). */
  peerIds(): string[]
  isRelay(peerId: string): boolean
  /** Times the link was made again after it had been lost. */
  reconnects(): number
  stop(): void
}

/** The wait before retry number `failedRounds` (1, 2, ...): doubling from `first` up to `max`, jittered by ±25% (`random` in [0, 1)). */
export function retryWaitMs(failedRounds: number, first: number, max: number, random: number): number {
  return Math.min(max, first * 2 ** Math.max(0, failedRounds - 1)) * (0.75 + 0.5 * random)
}

/**
 * The addresses of a relay list grouped by relay (its peer id, or its transport address when none
 * is given): a node keeps one link per relay, so it stays in the swarm while any relay lives.
 */
export function groupRelayAddrs(addrs: readonly Multiaddr[]): Multiaddr[][] {
  const groups = new Map<string, Multiaddr[]>()
  for (const addr of addrs) {
    const key = peerIdOf(addr) ?? withoutPeerId(addr).toString()
    groups.set(key, [...(groups.get(key) ?? []), addr])
  }
  return [...groups.values()]
}

const peerIdOf = (addr: Multiaddr) => addr.getComponents().findLast((c) => c.name === 'p2p')?.value
const withoutPeerId = (addr: Multiaddr) => multiaddr(addr.toString().replace(/\/p2p\/[^/]+$/, ''))

export function createRelayLink(options: RelayLinkOptions): RelayLink {
  const { host, log } = options
  const dialTimeoutMs = options.dialTimeoutMs ?? 5000
  const firstBackoffMs = options.firstBackoffMs ?? 500
  const maxBackoffMs = options.maxBackoffMs ?? 10_000
  const random = options.random ?? Math.random
  let addrs = [...options.addrs]
  let failedRounds = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let dialing = false
  let stopped = false
  let everConnected = false
  let reconnects = 0

  const peerIds = () => [...new Set(addrs.map(peerIdOf).filter((id): id is string => id !== undefined))]
  const isRelay = (peerId: string) => peerIds().includes(peerId)
  const connected = () => host.getConnections().some((c) => c.status === 'open' && isRelay(c.remotePeer.toString()))

  const dialOnce = async (addr: Multiaddr): Promise<Connection | undefined> => {
    try {
      return await host.dial(addr, { signal: AbortSignal.timeout(dialTimeoutMs) })
    } catch (err) {
      log(`tabmesh: relay ${addr.toString()} unreachable: ${(err as Error).message}`)
      return undefined
    }
  }

  const round = async (): Promise<boolean> => {
    for (const addr of addrs) if (await dialOnce(addr)) return true
    // a relay restarted with a new identity answers at the same address
    for (const [i, addr] of addrs.entries()) {
      const conn = await dialOnce(withoutPeerId(addr))
      if (!conn) continue
      const id = conn.remotePeer.toString()
      log(`tabmesh: the relay at ${withoutPeerId(addr).toString()} is now ${id} (was ${peerIdOf(addr)})`)
      addrs = addrs.map((a, j) => (j === i || withoutPeerId(a).equals(withoutPeerId(addr)) ? multiaddr(`${withoutPeerId(a).toString()}/p2p/${id}`) : a))
      return true
    }
    return false
  }

  const connect = async (): Promise<void> => {
    if (stopped || dialing || timer || connected()) return
    dialing = true
    let ok = false
    try {
      ok = await round()
    } finally {
      dialing = false
    }
    if (stopped) return
    if (ok) {
      if (everConnected) reconnects++
      everConnected = true
      failedRounds = 0
      return
    }
    // keep trying in the background: the mesh works without the relay, newcomers need it (the
    // jitter keeps a swarm's tabs from all dialling a restarted relay at the same instant)
    const wait = retryWaitMs(++failedRounds, firstBackoffMs, maxBackoffMs, random())
    timer = setTimeout(() => {
      timer = undefined
      void connect()
    }, wait)
  }

  const onClose = (evt: CustomEvent<Connection>) => {
    if (stopped || !isRelay(evt.detail.remotePeer.toString())) return
    if (connected()) return // another connection to the relay is still open
    log(`tabmesh: lost the relay ${evt.detail.remotePeer.toString()}; dialling it again`)
    void connect()
  }
  host.addEventListener('connection:close', onClose)

  return {
    connect,
    connected,
    peerIds,
    isRelay,
    reconnects: () => reconnects,
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = undefined
      host.removeEventListener('connection:close', onClose)
    },
  }
}
