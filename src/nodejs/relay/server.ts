/**
 * The whole relay process: the libp2p relay node and, beside it, the HTTP server for the site and
 * the model registry, which tells tabs where the relay listens (GET /relay).
 */
import type { Server } from 'node:http'
import { startHttpServer, type HttpServerOptions, type HttpStats } from './http-server.ts'
import { relayIceConfig, type RelayIceOptions } from './ice-config.ts'
import { startRelayNode, type RelayNode } from './libp2p-relay.ts'

export interface TabmeshServerOptions extends Omit<HttpServerOptions, 'relay'> {
  /** libp2p WebSockets port (0 picks a free one). */
  relayPort: number
  maxReservations?: number
  /** STUN/TURN servers to hand tabs (GET /relay); TURN credentials minted per request with a secret. */
  ice?: RelayIceOptions
  /** Other relays of this deployment (ws multiaddrs ending in /p2p/<id>): GET /relay lists them after this one, and tabs link to them all. */
  otherRelays?: string[]
}

export interface TabmeshServer {
  /** The site's URL. */
  url: string
  relay: RelayNode
  http: Server
  /** What the HTTP side has answered since start. */
  httpStats: HttpStats
  stop(): Promise<void>
}

export async function startTabmeshServer(options: TabmeshServerOptions): Promise<TabmeshServer> {
  const ice = relayIceConfig(options.ice ?? {}) // checked before anything listens
  const relay = await startRelayNode({ host: options.host, port: options.relayPort, maxReservations: options.maxReservations })
  let http: Server
  let url: string
  let httpStats: HttpStats
  try {
    const multiaddrs = [...relay.multiaddrs, ...(options.otherRelays ?? []).filter((a) => !relay.multiaddrs.includes(a))]
    const relayInfo = () => {
      const { iceServers, expiresAt } = ice()
      return { peerId: relay.peerId, multiaddrs, iceServers, ...(expiresAt !== undefined ? { iceExpiresAt: expiresAt } : {}) }
    }
    ;({ server: http, url, stats: httpStats } = await startHttpServer({ ...options, relay: relayInfo }))
  } catch (err) {
    await relay.stop()
    throw err
  }
  return {
    url,
    relay,
    http,
    httpStats,
    async stop() {
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
      await relay.stop()
    },
  }
}
