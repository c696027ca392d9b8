/**
 * The mesh layer: a tab's libp2p node, the versioned protocol, the peer table and selection.
 * The swarm layer imports from here.
 *
 * ```ts
 * const mesh = await createMeshNode({ relay: await fetchRelayAddrs(), capabilities: await probeCapabilities() })
 * // serve: incoming activation streams (direct WebRTC connections only)
 * await mesh.handle(INFER_PROTOCOL, (stream, connection) => { ... })
 * mesh.update({ hosted: [{ modelId, layers: { start, end }, embedding, head }], load: { queueDepth, activeSessions } })
 * // route: peers hosting the layers, cheapest first; then a stream to the chosen one
 * const hop = { modelId, layers: { start: 0, end: 4 }, rows: 1, transferBytes: 2 * dim * 4 }
 * const ranked = mesh.table.list().map((e) => ({ e, cost: routeCost(e, hop) })).filter((x) => x.cost < Infinity).sort((a, b) => a.cost - b.cost)
 * const stream = await mesh.openStream(ranked[0].e.peerId, INFER_PROTOCOL, { signal })
 * mesh.table.recordOutcome(ranked[0].e.peerId, { ok: true, latencyMs }) // feeds selection's history
 * ```
 */
import { TabmeshError } from '../core/errors.ts'
import { parseIceServers, type IceConfig } from './ice.ts'

export { createMeshNode, MAX_RELAYS, type MeshNode, type MeshNodeOptions, type MeshDelivery, type MeshNodeStats, type MeshLibp2p, type Reachability, type RelayState } from './node.ts'
export { createIceProvider, hasTurn, iceServersFromFlags, parseIceServers, parseIceServersJson, type IceConfig, type IceServer, type IceSource } from './ice.ts'
export * from './protocol.ts'
export { createPeerTable, classifyHealth, advertHealth, HEALTH_ORDER, type PeerTable, type PeerEntry, type Health, type PeerHistory, type PeerTableEvent } from './peer-table.ts'
export { canServe, coveringSlice, routeCost, computeMs, type WorkNeed, type HopWork, type RouteCostOptions } from './selection.ts'
export { pickWinner, type TaskRequest, type TaskOutcome, type ClaimPolicy, type AwardEvent, type TaskCoordinator } from './tasks.ts'
export { probeCapabilities } from './capabilities.ts'
export { loadTabIdentity, type TabIdentity } from './identity.ts'
export { createMeshValidators, type Rejection, type ValidationStats } from './validation.ts'

/** What a site's GET /relay says: the relays' multiaddrs and the ICE servers to use. */
export interface RelayConfig extends IceConfig {
  multiaddrs: string[]
}

/** Fetches the relay configuration from the site that served this page (GET /relay). */
export async function fetchRelayConfig(base: string | URL = globalThis.location?.href ?? 'http://localhost/'): Promise<RelayConfig> {
  let res: Response
  try {
    res = await fetch(new URL('/relay', base), { cache: 'no-store' })
  } catch (err) {
    throw new TabmeshError('fetch', `GET /relay failed: ${(err as Error).message}`)
  }
  if (!res.ok) throw new TabmeshError('fetch', `GET /relay answered ${res.status}: no libp2p relay runs beside this site`)
  const info = (await res.json().catch(() => ({}))) as { multiaddrs?: unknown; iceServers?: unknown; iceExpiresAt?: unknown }
  if (!Array.isArray(info.multiaddrs) || info.multiaddrs.length === 0 || !info.multiaddrs.every((a) => typeof a === 'string')) throw new TabmeshError('fetch', 'GET /relay returned no multiaddrs')
  const iceServers = parseIceServers(info.iceServers ?? [], 'GET /relay iceServers')
  const expiresAt = typeof info.iceExpiresAt === 'number' && Number.isFinite(info.iceExpiresAt) ? info.iceExpiresAt : undefined
  return { multiaddrs: info.multiaddrs as string[], iceServers, ...(expiresAt !== undefined ? { expiresAt } : {}) }
}

/** The relays' multiaddrs alone (GET /relay). */
export const fetchRelayAddrs = async (base?: string | URL): Promise<string[]> => (await fetchRelayConfig(base)).multiaddrs
