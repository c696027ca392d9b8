/**
 * A tab's mesh node: libp2p over WebSockets (to the relay), WebRTC (to other tabs, signalled
 * through the relay's circuit), noise, yamux, identify, ping and gossipsub; adverts out on join,
 * on change and every heartbeat; adverts in to the peer table; discovered peers dialled directly;
 * task announcements and claims.
 *
 * What the swarm layer uses: `table` (who hosts what, load, health, RTT), `handle` / `openStream`
 * for '/tabmesh/1/infer' streams, `tasks` to announce and claim work, `update` to advertise its own
 * hosting and load, and `routeCost` from selection.ts over `table.list()`.
 * The libp2p stack is built in libp2p.ts; the gossip traffic (own advert, incoming messages,
 * stream repair) runs in pubsub.ts; the link to the relay (dialled again, with backoff, whenever
 * it is lost, also when the relay restarted with a new identity) in relay-link.ts.
 */
import type { PrivateKey, Stream, StreamHandler, StreamHandlerOptions, Connection } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { GossipsubOpts } from '@libp2p/gossipsub'
import { TabmeshError } from '../core/errors.ts'
import { createDialer, webrtcAddrs, type Dialer, type DialerOptions, type DialStats } from './dialer.ts'
import { loadTabIdentity } from './identity.ts'
import { createMeshLibp2p, isDirect, pingOver, type MeshLibp2p } from './libp2p.ts'
import { createPeerTable, type PeerTable } from './peer-table.ts'
import { createIceProvider, hasTurn, type IceConfig, type IceServer, type IceSource } from './ice.ts'
import { createRelayLink, groupRelayAddrs } from './relay-link.ts'
import { ADVERT_TOPIC, encodeMessage, MESH_TOPICS, TASK_TOPIC, type Advert, type Capabilities, type HostedSlice, type Load, type SelfHealth, type TaskMessage } from './protocol.ts'
import { createAdvertiser, receiveMessages, repairGossipStreams, type MeshDelivery } from './pubsub.ts'
import { createTaskCoordinator, type TaskCoordinator } from './tasks.ts'
import { createMeshValidators, type MeshValidatorOptions, type ValidationStats } from './validation.ts'

export type { MeshLibp2p, MeshServices } from './libp2p.ts'
export type { MeshDelivery } from './pubsub.ts'

/** Protocols every connection carries in the background: a connection with only these is idle. */
const BACKGROUND_PROTOCOLS = ['/meshsub/', '/ipfs/ping/', '/ipfs/id/', '/floodsub/']

export interface MeshNodeOptions {
  /**
   * The relays' ws multiaddrs, each ending in /p2p/<relay id> (GET /relay on the site lists them).
   * The node links to every relay listed (up to MAX_RELAYS) and holds a reservation on each it
   * reaches: new tabs find the swarm, and dial this one, through whichever relay still runs.
   */
  relay: string | readonly string[]
  /**
   * STUN/TURN servers for WebRTC (ice.ts): a list, or a function that fetches the list again when
   * its TURN credentials expire (`iceConfig` is then the first answer). Default none: host
   * candidates only, enough on one machine or one LAN.
   */
  iceServers?: IceSource
  iceConfig?: IceConfig
  capabilities: Capabilities
  hosted?: HostedSlice[]
  load?: Load
  /** Default: the tab's persistent identity from IndexedDB (see identity.ts). */
  privateKey?: PrivateKey
  /** Advert heartbeat period (default 1000 ms). */
  heartbeatMs?: number
  /** Silence after which a peer is dropped from the table (default 2200 ms: two missed heartbeats). */
  staleAfterMs?: number
  /** Period of RTT pings to directly connected peers (default 2000 ms). */
  pingIntervalMs?: number
  /**
   * Direct (WebRTC) connections the node opens to discovered peers at most (default 24). Small
   * swarms form a full mesh; in big ones gossip spreads over the partial mesh and `openStream`
   * dials any other peer on demand.
   */
  maxDirectPeers?: number
  /**
   * A direct connection openStream had to dial (a route peer or a verifier outside the discovery
   * set) is closed once it has carried no inference stream for this long (default 30 s): the
   * connections a tab holds stay bounded however big the swarm.
   */
  idleCloseMs?: number
  /** A new WebRTC connection must echo a ping within this time or is closed (default 8000 ms). */
  verifyTimeoutMs?: number
  dialer?: Partial<Omit<DialerOptions, 'selfId' | 'dial' | 'hasDirect'>>
  validation?: MeshValidatorOptions
  gossipsub?: Partial<GossipsubOpts>
  log?: (line: string) => void
}

/** Relays a node links to at most (each holds a connection and a reservation). */
export const MAX_RELAYS = 4

/**
 * Whether this tab can make direct (WebRTC) connections: 'direct' once one has worked;
 * 'unreachable' when dials have failed again and again and none ever worked (its network blocks
 * peer-to-peer traffic: a symmetric NAT or a firewall, and no TURN server to relay through);
 * 'unknown' before either.
 */
export type Reachability = 'unknown' | 'direct' | 'unreachable'

export interface RelayState {
  /** The relay's first address. */
  addr: string
  connected: boolean
}

export interface MeshNodeStats {
  peerId: string
  advertsSent: number
  deliveries: number
  /** Messages the router delivered that failed decoding here: must stay 0 (validators run first). */
  invalidDelivered: number
  validation: ValidationStats
  dial: DialStats
  directPeers: string[]
  relayConnected: boolean
  /** The relay's peer id(s) as last seen: a relay that restarted may have a new one. */
  relayPeers: string[]
  /** Whether we hold a reservation on a relay, i.e. advertise a circuit address others can dial us at. */
  relayReserved: boolean
  /** Times the relay connection was made again after it had been lost. */
  relayReconnects: number
  /** Times the router had to be told again about a connection it had lost its stream on. */
  gossipRepairs: number
  /** New WebRTC connections closed because they carried nothing (see verifyConnection). */
  zombiesClosed: number
  /** Each relay the node links to, and whether it is connected now. */
  relays: RelayState[]
  reachability: Reachability
  /** Why `reachability` is what it is, in words for the UI and logs. */
  reachabilityWhy: string
  /** The ICE servers in use (credentials left out). */
  iceServers: { urls: string[] }[]
  /** Connections dialled on demand and closed again once idle (see idleCloseMs). */
  idleClosed: number
}

export interface MeshNode {
  readonly libp2p: MeshLibp2p
  readonly peerId: string
  readonly table: PeerTable
  readonly tasks: TaskCoordinator
  /** This node's current advert. */
  advert(): Advert
  /**
   * Changes what this node advertises; sends a 'change' advert promptly. Throws
   * TabmeshError('bad-argument') for values the protocol does not allow (nothing changes then).
   */
  update(patch: { capabilities?: Capabilities; hosted?: HostedSlice[]; load?: Load; health?: SelfHealth }): void
  /** Subscribes to validated messages of the mesh topics; returns the unsubscribe function. */
  onMessage(listener: (delivery: MeshDelivery) => void): () => void
  /** Registers a stream protocol handler (e.g. INFER_PROTOCOL); direct connections only. */
  handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>
  unhandle(protocol: string): Promise<void>
  /**
   * Opens a stream to `peerId` on a direct connection, dialling its WebRTC address (from its advert)
   * if none is open. Throws TabmeshError('mesh-unreachable') if that fails.
   */
  openStream(peerId: string, protocol: string, options?: { signal?: AbortSignal }): Promise<Stream>
  /** Peers with an open direct (WebRTC) connection. */
  directPeers(): string[]
  /** What a dial to a peer with no open connection is expected to cost, ms: the median of this node's recent dials (400 before any). */
  expectedDialMs(): number
  /**
   * The application's judgement of a peer, added to its gossipsub score (0: none). A tab that
   * caught a peer lying sets a large negative value: the peer drops under the graylist threshold,
   * and this node neither takes nor forwards its adverts any more.
   */
  setAppScore(peerId: string, score: number): void
  stats(): MeshNodeStats
  /** Sends a 'leave' advert (best effort) and stops libp2p. */
  stop(): Promise<void>
}

export async function createMeshNode(options: MeshNodeOptions): Promise<MeshNode> {
  const log = options.log ?? ((line: string) => console.warn(line))
  const heartbeatMs = options.heartbeatMs ?? 1000
  const pingIntervalMs = options.pingIntervalMs ?? 2000
  const maxDirectPeers = options.maxDirectPeers ?? 24
  const verifyTimeoutMs = options.verifyTimeoutMs ?? 8000
  const relayAddrs = (typeof options.relay === 'string' ? [options.relay] : [...options.relay]).map((a) => {
    try {
      return multiaddr(a)
    } catch (err) {
      throw new TabmeshError('bad-argument', `not a relay multiaddr: ${String(a).slice(0, 120)} (${(err as Error).message})`)
    }
  })
  const relayGroups = groupRelayAddrs(relayAddrs).slice(0, MAX_RELAYS)
  if (relayGroups.length === 0) throw new TabmeshError('bad-argument', 'createMeshNode needs at least one relay multiaddr')
  const ice = createIceProvider(options.iceServers ?? [], options.iceConfig, { log: (line) => log(line) })
  // check what we will advertise before starting anything (peer id and addresses are filled in later)
  const placeholderId = '12D3KooW' + '1'.repeat(44)
  encodeMessage(ADVERT_TOPIC, {
    v: 1, type: 'advert', peerId: placeholderId, seq: 1, sentAt: Date.now(), reason: 'join', addrs: [],
    capabilities: options.capabilities, hosted: options.hosted ?? [], load: options.load ?? { queueDepth: 0, activeSessions: 0 }, health: { status: 'ok', recentErrors: 0 },
  })
  const identity = options.privateKey ? undefined : await loadTabIdentity()
  const validators = createMeshValidators({ log, ...options.validation })

  const appScores = new Map<string, number>()
  const libp2p = await createMeshLibp2p({
    privateKey: options.privateKey ?? identity!.privateKey, maxDirectPeers, validators, appScore: (p) => appScores.get(p) ?? 0, gossipsub: options.gossipsub,
    rtcConfiguration: () => ice.rtcConfiguration(), reservations: relayGroups.length,
  })
  const peerId = libp2p.peerId.toString()
  const pubsub = libp2p.services.pubsub
  const table = createPeerTable({ selfId: peerId, staleAfterMs: options.staleAfterMs })
  let stopped = false

  // ---- own advert ------------------------------------------------------------------------------
  const ownAddrs = () => libp2p.getMultiaddrs().map((a) => a.toString()).filter((a) => a.includes('/webrtc')).slice(0, 8)
  const adverts = createAdvertiser({
    pubsub,
    peerId,
    initial: {
      capabilities: options.capabilities,
      hosted: options.hosted ?? [],
      load: options.load ?? { queueDepth: 0, activeSessions: 0 },
      health: { status: 'ok', recentErrors: 0 } as SelfHealth,
    },
    ownAddrs,
    heartbeatMs,
    stopped: () => stopped,
    log,
  })
  const { publish, makeAdvert, sendAdvert, advertSoon } = adverts
  let joined = false

  // ---- dialing discovered peers ----------------------------------------------------------------
  const directPeerIds = () => [...new Set(libp2p.getConnections().filter(isDirect).map((c) => c.remotePeer.toString()))].filter((id) => table.has(id))
  /** The newest open direct connection to a peer (older duplicates may be dead without knowing it). */
  const newestDirect = (id: string): Connection | undefined =>
    libp2p.getConnections().filter((c) => c.remotePeer.toString() === id && isDirect(c)).sort((x, y) => y.timeline.open - x.timeline.open)[0]
  const hasDirect = (id: string) => libp2p.getConnections().some((c) => c.remotePeer.toString() === id && isDirect(c))
  const dialer: Dialer = createDialer({
    selfId: peerId,
    dial: (addr, opts) => libp2p.dial(addr, opts),
    hasDirect,
    canConnectMore: (pending) => directPeerIds().length + pending < maxDirectPeers,
    log,
    onUnreachable: (id, why) => table.markUnreachable(id, why),
    ...options.dialer,
  })

  // ---- tasks -----------------------------------------------------------------------------------
  const tasks = createTaskCoordinator({ selfId: peerId, publish: (m: TaskMessage) => publish(TASK_TOPIC, m), log })

  // ---- incoming messages -----------------------------------------------------------------------
  const inbox = receiveMessages({ pubsub, table, dialer, tasks, advertSoon, log })
  table.subscribe((event) => {
    if (event.type !== 'leave') return
    dialer.forget(event.peerId)
    // A tab that said goodbye is gone, but WebRTC would keep its connection "open" for 10 s or
    // more; if the tab comes back (a reload keeps its id), that stale connection would stop us
    // from dialling the new one. (A silent peer's connection is left to libp2p: it may just be slow.)
    if (event.why === 'left') {
      for (const c of libp2p.getConnections().filter((c) => c.remotePeer.toString() === event.peerId)) c.abort(new Error('peer left the mesh'))
    }
  })

  // ---- connections -----------------------------------------------------------------------------
  libp2p.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    table.connectionOpened(c.remotePeer.toString(), c.limits === undefined)
    if (isDirect(c) && c.remoteAddr.toString().includes('/webrtc')) void verifyConnection(c)
  })
  libp2p.addEventListener('connection:close', (evt) => {
    const c = evt.detail
    table.connectionClosed(c.remotePeer.toString(), c.limits === undefined)
    dialer.poke()
  })
  // our circuit addresses appear once the relay reservation is made: tell the others
  libp2p.addEventListener('self:peer:update', () => advertSoon(joined ? 'change' : 'join'))

  /**
   * Pings a new WebRTC connection over itself and aborts it if no echo comes back. A dial that
   * hung and was timed out (LAB.md: ~10% of first dials) can leave the other side with a
   * connection it believes open but that carries nothing; gossip sent into it is lost, and while
   * it looks open neither side dials again.
   */
  let zombiesClosed = 0
  let everDirect = false // set once a direct connection has carried an echo (verifyConnection)
  /** Connections to each peer in a row that opened and carried nothing. */
  const emptyConnections = new Map<string, number>()
  const verifyConnection = async (c: Connection) => {
    try {
      await pingOver(c, verifyTimeoutMs)
      everDirect = true // a connection that carried an echo: direct connections work here
      emptyConnections.delete(c.remotePeer.toString())
    } catch (err) {
      // a peer without the ping protocol answered the negotiation: the connection carries data
      if ((err as Error).name === 'UnsupportedProtocolError') return void (everDirect = true)
      if (c.status !== 'open' || stopped) return
      zombiesClosed++
      const peer = c.remotePeer.toString()
      log(`tabmesh: closing a WebRTC connection to ${peer} that carries nothing (${(err as Error).message})`)
      c.abort(new Error('connection carries nothing'))
      // ICE said connected, yet nothing got through (a NAT that let the checks pass and then not
      // the data): twice in a row, the peer is as unreachable as if the dials had failed (once
      // may be a busy CPU). Marked once the aborted connection has left the table's count.
      const count = (emptyConnections.get(peer) ?? 0) + 1
      if (emptyConnections.size > 1024) emptyConnections.clear()
      emptyConnections.set(peer, count)
      if (count >= 2) setTimeout(() => table.markUnreachable(peer, `${count} WebRTC connections opened but carried nothing (${(err as Error).message})`), 200)
    }
  }

  // ---- relays: each dialled now and again whenever it is lost (relay-link.ts) -------------------
  const relays = relayGroups.map((addrs) => ({ addr: addrs[0].toString(), link: createRelayLink({ host: libp2p, addrs, log }) }))
  const relayPeerIds = () => relays.flatMap((r) => r.link.peerIds())
  const relayReserved = () => {
    const ids = relayPeerIds()
    return libp2p.getMultiaddrs().some((a) => ids.some((id) => a.toString().includes(`/p2p/${id}/p2p-circuit`)))
  }

  for (const topic of MESH_TOPICS) pubsub.subscribe(topic)
  // joined once any relay answers (or every first round has failed: the links keep trying)
  await new Promise<void>((resolve) => {
    let done = 0
    for (const r of relays) {
      void r.link.connect().finally(() => {
        if (r.link.connected() || ++done === relays.length) resolve()
      })
    }
  })

  // ---- bounded connections: idle on-demand connections are closed -------------------------------
  // The dialer opens discovery connections up to maxDirectPeers; others dial us up to theirs. A
  // connection openStream had to dial (a route peer or a verifier beyond that set) is closed again
  // once it has carried no inference stream for idleCloseMs.
  /** Peers whose connection openStream dialled, and when an inference stream last ran on it. */
  const onDemand = new Map<string, number>()
  const idle = (() => {
    const idleCloseMs = options.idleCloseMs ?? 30_000
    let closed = 0
    const timer = setInterval(() => {
      const t = Date.now()
      for (const [id, lastUsed] of onDemand) {
        const conns = libp2p.getConnections().filter((c) => isDirect(c) && c.remotePeer.toString() === id)
        if (conns.length === 0) {
          onDemand.delete(id)
          continue
        }
        if (conns.some((c) => c.streams.some((st) => st.protocol !== undefined && !BACKGROUND_PROTOCOLS.some((p) => st.protocol!.startsWith(p))))) {
          onDemand.set(id, t)
          continue
        }
        // (gossipsub grafts every new connection into its mesh while it has fewer than D links:
        // that does not make an on-demand connection one to keep; the discovery set carries gossip)
        if (t - lastUsed <= idleCloseMs) continue
        closed++
        onDemand.delete(id)
        for (const c of conns) void c.close().catch(() => c.abort(new Error('idle')))
      }
    }, Math.min(5000, idleCloseMs))
    return { closed: () => closed, stop: () => clearInterval(timer) }
  })()

  // ---- reachability: can this tab make direct connections at all? ------------------------------
  const reachability = (): { state: Reachability; why: string } => {
    if (everDirect) return { state: 'direct', why: 'direct WebRTC connections work' }
    const d = dialer.stats()
    // connections that opened and carried nothing count as failed dials
    const failed = d.timeouts + d.failures + zombiesClosed
    if (failed >= 3) {
      return {
        state: 'unreachable',
        why: hasTurn(ice.current())
          ? `none of ${failed} WebRTC dials worked, even with a TURN server: it may be down or refuse our credentials (${d.recentErrors.at(-1) ?? ''})`
          : `none of ${failed} WebRTC dials worked: this network blocks peer-to-peer traffic (a symmetric NAT or a firewall) and no TURN server is configured to relay it`,
      }
    }
    return { state: 'unknown', why: 'no direct connection yet' }
  }
  let lastReachability: Reachability = 'unknown'
  const reachabilityTimer = setInterval(() => {
    const r = reachability()
    if (r.state !== lastReachability) log(`tabmesh: reachability ${r.state}: ${r.why}`)
    lastReachability = r.state
  }, 2000)

  // ---- timers ----------------------------------------------------------------------------------
  const sweepTimer = setInterval(() => table.sweep(), Math.min(100, Math.max(20, table.staleAfterMs / 20)))
  const pingTimer = setInterval(() => {
    for (const entry of table.list()) {
      if (!entry.direct) continue
      const conn = newestDirect(entry.peerId)
      if (!conn) continue
      pingOver(conn, Math.max(1000, pingIntervalMs))
        .then((rtt) => table.setRtt(entry.peerId, rtt))
        .catch(() => {})
    }
  }, pingIntervalMs)
  const gossipRepair = repairGossipStreams({ pubsub, table, newestDirect, alsoPeers: relayPeerIds, periodMs: heartbeatMs })
  joined = true
  sendAdvert('join')
  // a tab that closes says so, and the others drop it at once instead of after the stale time
  const onPageHide = () => {
    if (!stopped) void publish(ADVERT_TOPIC, makeAdvert('leave')).catch(() => {})
  }
  globalThis.addEventListener?.('pagehide', onPageHide)

  const node: MeshNode = {
    libp2p,
    peerId,
    table,
    tasks,
    advert: () => adverts.current(),
    update: (patch) => adverts.update(patch),
    onMessage(listener) {
      inbox.listeners.add(listener)
      return () => inbox.listeners.delete(listener)
    },
    handle: (protocol, handler, opts) => libp2p.handle(protocol, handler, { runOnLimitedConnection: false, ...opts }),
    unhandle: (protocol) => libp2p.unhandle(protocol),
    async openStream(target, protocol, opts = {}) {
      let conn = newestDirect(target)
      const dialled = !conn
      if (!conn) {
        // a dial on demand (a route peer beyond the bounded set): each address twice at most,
        // since about one first WebRTC dial in ten hangs (LAB.md) and a second one then works
        const addrs = webrtcAddrs(target, table.get(target)?.advert.addrs ?? [])
        dialing: for (let round = 0; round < 2; round++) {
          for (const addr of addrs) {
            if (opts.signal?.aborted) break dialing
            try {
              conn = await libp2p.dial(multiaddr(addr), { signal: opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(5000)]) : AbortSignal.timeout(5000) })
              break dialing
            } catch (err) {
              log(`tabmesh: dial ${target} for ${protocol} failed: ${(err as Error).message}`)
            }
          }
        }
      }
      if (!conn || !isDirect(conn)) {
        table.markUnreachable(target, `no direct connection could be made for ${protocol}`)
        throw new TabmeshError('mesh-unreachable', `no direct connection to peer ${target}`)
      }
      if (dialled || onDemand.has(target)) onDemand.set(target, Date.now())
      try {
        return await conn.newStream(protocol, { signal: opts.signal ?? AbortSignal.timeout(5000) })
      } catch (err) {
        throw new TabmeshError('mesh-unreachable', `peer ${target} did not open ${protocol}: ${(err as Error).message}`)
      }
    },
    directPeers: directPeerIds,
    expectedDialMs() {
      const recent = dialer.stats().connectMs.slice(-10).sort((x, y) => x - y)
      return recent.length > 0 ? recent[recent.length >> 1] : 400
    },
    setAppScore(id, score) {
      if (score === 0 || !Number.isFinite(score)) appScores.delete(id)
      else appScores.set(id, score)
    },
    stats: () => ({
      peerId, advertsSent: adverts.sent(), deliveries: inbox.deliveries(), invalidDelivered: inbox.invalidDelivered(), validation: validators.stats(), dial: dialer.stats(),
      directPeers: node.directPeers(), relayConnected: relays.some((r) => r.link.connected()), relayPeers: relayPeerIds(), relayReserved: relayReserved(),
      relayReconnects: relays.reduce((n, r) => n + r.link.reconnects(), 0), gossipRepairs: gossipRepair.repairs(), zombiesClosed,
      relays: relays.map((r) => ({ addr: r.addr, connected: r.link.connected() })),
      reachability: reachability().state, reachabilityWhy: reachability().why,
      iceServers: ice.current().map((s) => ({ urls: [...s.urls] })), idleClosed: idle.closed(),
    }),
    async stop() {
      if (stopped) return
      try {
        await Promise.race([publish(ADVERT_TOPIC, makeAdvert('leave')), new Promise((r) => setTimeout(r, 200))])
      } catch {
        // leaving anyway
      }
      stopped = true
      globalThis.removeEventListener?.('pagehide', onPageHide)
      adverts.stop()
      for (const r of relays) r.link.stop()
      clearInterval(reachabilityTimer)
      idle.stop()
      clearInterval(sweepTimer)
      clearInterval(pingTimer)
      gossipRepair.stop()
      dialer.stop()
      tasks.stop()
      await libp2p.stop()
      identity?.release()
    },
  }
  return node
}
