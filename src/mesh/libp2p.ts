/**
 * The libp2p stack of a tab's mesh node: WebSockets (to the relay), WebRTC (to other tabs, signalled
 * through the relay's circuit), noise, yamux, the connection gater and limits, and the identify,
 * ping and gossipsub services; plus the connection helpers the node works with (direct connections,
 * a ping over one given connection).
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify, type Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { ping, type Ping } from '@libp2p/ping'
import { webRTC } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import type { GossipsubOpts } from '@libp2p/gossipsub'
import { createLibp2p } from 'libp2p'
import { meshGossipsub, type MeshPubSub } from './gossip.ts'
import type { MeshValidators } from './validation.ts'

export type MeshServices = { identify: Identify; ping: Ping; pubsub: MeshPubSub }
export type MeshLibp2p = Libp2p<MeshServices>

export interface MeshLibp2pOptions {
  privateKey: PrivateKey
  /** Direct (WebRTC) connections the node opens at most; the connection limit is sized from it. */
  maxDirectPeers: number
  validators: MeshValidators
  appScore?: (peerId: string) => number
  gossipsub?: Partial<GossipsubOpts>
  /** The RTCConfiguration of each new WebRTC connection (ICE servers: see ice.ts); default none. */
  rtcConfiguration?: () => Promise<RTCConfiguration>
  /** Relay reservations to hold at once (one per relay, up to the relays known; default 1). */
  reservations?: number
}

/** Creates (and starts) the tab's libp2p node, listening on the relay's circuit and for WebRTC. */
export async function createMeshLibp2p(options: MeshLibp2pOptions): Promise<MeshLibp2p> {
  const { privateKey, maxDirectPeers, validators } = options
  return (await createLibp2p({
    privateKey,
    // one '/p2p-circuit' per reservation wanted: each takes a relay the node is connected to and
    // does not yet hold one on, so with several relays the tab stays dialable if one goes
    addresses: { listen: [...Array.from({ length: Math.max(1, options.reservations ?? 1) }, () => '/p2p-circuit'), '/webrtc'] },
    transports: [webSockets(), webRTC({ rtcConfiguration: options.rtcConfiguration ?? { iceServers: [] } }), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // browsers deny ws:// and private addresses by default; the relay is ws:// on loopback or a LAN
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionManager: { maxConnections: Math.max(64, maxDirectPeers * 3) },
    // libp2p pings every connection every 10 s and aborts it after a 5 s timeout; a tab stalled by
    // a busy CPU is not dead (the advert heartbeat decides that), so allow longer
    connectionMonitor: { pingTimeout: { minTimeout: 10_000 } },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: meshGossipsub({ validators, appScore: options.appScore, overrides: options.gossipsub }),
    },
  })) as unknown as MeshLibp2p
}

export const isDirect = (c: Connection) => c.limits === undefined && c.status === 'open'
const PING_PROTOCOL = '/ipfs/ping/1.0.0' // @libp2p/ping's; it echoes what it is sent

/** Round trip of 32 bytes over this very connection (libp2p's ping picks any connection to the peer), ms. */
export async function pingOver(c: Connection, timeoutMs: number): Promise<number> {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await c.newStream(PING_PROTOCOL, { signal })
  const onTimeout = () => stream.abort(new Error('ping timed out'))
  signal.addEventListener('abort', onTimeout, { once: true })
  try {
    const probe = crypto.getRandomValues(new Uint8Array(32)) // (32) bytes
    const start = performance.now()
    stream.send(probe)
    let echoed = 0
    for await (const chunk of stream) {
      echoed += chunk.byteLength
      if (echoed >= probe.length) break
      if (signal.aborted) break
    }
    if (echoed < probe.length) throw new Error(signal.aborted ? 'ping timed out' : 'no echo')
    return performance.now() - start
  } finally {
    signal.removeEventListener('abort', onTimeout)
    if (stream.status === 'open') void stream.close({ signal }).catch(() => stream.abort(new Error('ping done')))
  }
}
