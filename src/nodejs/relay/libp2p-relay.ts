/**
 * The relay's libp2p side: a WebSockets listener that browsers dial, a circuit-relay-v2 server that
 * carries their WebRTC signalling, and a gossipsub router subscribed to every tabmesh topic (a
 * router forwards only topics it subscribes to) that validates what it forwards.
 *
 * It computes nothing and keeps no user data: once tabs hold direct WebRTC connections they keep
 * talking without it.
 */
import './polyfill.ts'
import { circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { meshGossipsub, type MeshPubSub } from '../../mesh/gossip.ts'
import { MESH_TOPICS } from '../../mesh/protocol.ts'
import { createMeshValidators, type MeshValidatorOptions, type MeshValidators } from '../../mesh/validation.ts'

export interface RelayNodeOptions {
  /** Interface to listen on (default 127.0.0.1: the relay is not exposed beyond the machine unless asked). */
  host?: string
  /** WebSockets port (0 picks a free one). */
  port: number
  /** Tabs the relay can hold reservations for (default 1024). */
  maxReservations?: number
  privateKey?: PrivateKey
  validation?: MeshValidatorOptions
}

export type RelayLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>; ping: ReturnType<ReturnType<typeof ping>>; relay: CircuitRelayService; pubsub: MeshPubSub }>

export interface RelayNode {
  libp2p: RelayLibp2p
  peerId: string
  /** ws multiaddrs browsers dial, each ending in /p2p/<relay peer id>. */
  multiaddrs: string[]
  validators: MeshValidators
  stop(): Promise<void>
}

export async function startRelayNode(options: RelayNodeOptions): Promise<RelayNode> {
  const host = options.host ?? '127.0.0.1'
  const maxReservations = options.maxReservations ?? 1024
  const validators = createMeshValidators(options.validation)
  const family = host.includes(':') ? 'ip6' : 'ip4'
  const libp2p = (await createLibp2p({
    ...(options.privateKey ? { privateKey: options.privateKey } : {}),
    addresses: { listen: [`/${family}/${host}/tcp/${options.port}/ws`] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // every tab holds a connection to the relay, and on one machine they all share one address
      maxConnections: maxReservations * 2 + 64,
      inboundConnectionThreshold: Math.max(100, maxReservations),
      maxIncomingPendingConnections: 256,
    },
    // a tab starved of CPU answers pings late; dropping it would drop its reservation, and nobody
    // could dial it. A tab that really goes away closes its WebSocket, which needs no ping.
    connectionMonitor: { pingInterval: 15_000, pingTimeout: { minTimeout: 15_000 } },
    services: {
      identify: identify(),
      ping: ping(),
      relay: circuitRelayServer({
        reservations: {
          maxReservations,
          // signalling needs little data; time-bound it so idle circuits do not pile up
          defaultDurationLimit: 2 * 60_000,
          defaultDataLimit: BigInt(1 << 20),
          reservationClearInterval: 60_000,
        },
        maxInboundHopStreams: maxReservations * 2,
        maxOutboundStopStreams: maxReservations * 2,
      }),
      pubsub: meshGossipsub({ validators }),
    },
  })) as unknown as RelayLibp2p
  for (const topic of MESH_TOPICS) libp2p.services.pubsub.subscribe(topic)
  // circuit-relay-v2 keeps a reservation until its TTL (2 h) even after its peer has gone: peers
  // that reserve and leave (a flood, or tabs reloading under new peer ids) would hold every slot
  // and lock new tabs out. A reservation is of use only while its peer is connected (the relay
  // reaches it over that connection), so it is freed, its timer stopped, when the peer disconnects.
  libp2p.addEventListener('peer:disconnect', (evt) => {
    const reservations = libp2p.services.relay.reservations
    const reservation = reservations.get(evt.detail)
    if (!reservation) return
    reservation.signal.clear()
    reservations.delete(evt.detail)
  })
  return {
    libp2p,
    peerId: libp2p.peerId.toString(),
    multiaddrs: libp2p.getMultiaddrs().map((a) => a.toString()),
    validators,
    stop: async () => {
      await libp2p.stop()
    },
  }
}
