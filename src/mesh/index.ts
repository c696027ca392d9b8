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

export { createMeshNode, type MeshNode, type MeshNodeOptions, type MeshDelivery, type MeshNodeStats, type MeshLibp2p } from './node.ts'
export * from './protocol.ts'
export { createPeerTable, classifyHealth, advertHealth, HEALTH_ORDER, type PeerTable, type PeerEntry, type Health, type PeerHistory, type PeerTableEvent } from './peer-table.ts'
export { canServe, coveringSlice, routeCost, computeMs, type WorkNeed, type HopWork, type RouteCostOptions } from './selection.ts'
export { pickWinner, type TaskRequest, type TaskOutcome, type ClaimPolicy, type AwardEvent, type TaskCoordinator } from './tasks.ts'
export { probeCapabilities } from './capabilities.ts'
export { loadTabIdentity, type TabIdentity } from './identity.ts'
export { createMeshValidators, type Rejection, type ValidationStats } from './validation.ts'

/** Fetches the relay's multiaddrs from the site that served this page (GET /relay). */
export async function fetchRelayAddrs(base: string | URL = globalThis.location?.href ?? 'http://localhost/'): Promise<string[]> {
  const res = await fetch(new URL('/relay', base))
  if (!res.ok) throw new TabmeshError('fetch', `GET /relay answered ${res.status}: no libp2p relay runs beside this site`)
  const info = (await res.json()) as { multiaddrs?: unknown }
  if (!Array.isArray(info.multiaddrs) || !info.multiaddrs.every((a) => typeof a === 'string')) throw new TabmeshError('fetch', 'GET /relay returned no multiaddrs')
  return info.multiaddrs as string[]
}
