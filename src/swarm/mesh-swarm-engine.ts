import { INFER_PROTOCOL } from '../core/vocabulary.ts'
import type { Engine } from '../engine/engine.ts'
import type { MeshNode } from '../mesh/node.ts'
import { routeCost } from '../mesh/selection.ts'
import type { RouteCandidate } from './route.ts'
import { streamChannel } from './stream-channel.ts'
import { createSwarmEngine, type SwarmEngine, type SwarmEngineOptions, type SwarmTrustOptions } from './swarm-engine.ts'
import type { ExecutionKind } from '../trust/index.ts'

/**
 * A SwarmEngine wired to the mesh: route candidates come from the peer table (each priced by the
 * mesh's route cost: RTT, queue, speed, health, history), hops are /tabmesh/1/infer streams, and a
 * peer the table drops (silent for a few heartbeats, or announcing its departure) fails its hops
 * at once instead of after a timeout.
 */
export interface MeshSwarmOptions extends Pick<SwarmEngineOptions, 'maxLength' | 'hopTimeoutMs' | 'maxFailovers' | 'onEvent' | 'dtype'> {
  mesh: MeshNode
  local: Engine
  modelId: string
  /** Spot checks (kindOf comes from the peers' adverts; a caught peer's gossip score goes negative). */
  trust?: Omit<SwarmTrustOptions, 'kindOf'>
}

/** The app score a tab gives a peer it caught lying: far under gossipsub's graylist threshold (-80). */
export const CAUGHT_APP_SCORE = -1000

const ENGINE_BACKEND: Record<string, ExecutionKind['backend']> = { js: 'ref', wasm: 'wasm', webgpu: 'webgpu' }

export function routeCandidates(mesh: MeshNode, modelId: string, dim: number): RouteCandidate[] {
  const candidates: RouteCandidate[] = []
  const dialMs = mesh.expectedDialMs()
  for (const entry of mesh.table.list()) {
    if (entry.advert.health.status === 'draining') continue
    for (const slice of entry.advert.hosted) {
      if (slice.modelId !== modelId) continue
      candidates.push({
        peerId: entry.peerId,
        layers: slice.layers,
        cost: (layers) => routeCost(entry, { modelId, layers, rows: 1, transferBytes: 2 * dim * 4 }, { dialMs }),
      })
    }
  }
  return candidates
}

export function createMeshSwarmEngine(o: MeshSwarmOptions): SwarmEngine {
  const engine = createSwarmEngine({
    ...o,
    candidates: () => routeCandidates(o.mesh, o.modelId, o.local.config.dim),
    connect: async (peerId) => streamChannel(await o.mesh.openStream(peerId, INFER_PROTOCOL)),
    trust: o.trust && {
      ...o.trust,
      kindOf: (peerId) => ({ backend: ENGINE_BACKEND[o.mesh.table.get(peerId)?.advert.capabilities.backend ?? ''] ?? 'unknown' }),
      onCaught: (peerId) => {
        o.mesh.setAppScore(peerId, CAUGHT_APP_SCORE)
        o.mesh.table.recordOutcome(peerId, { ok: false })
        o.trust?.onCaught?.(peerId)
      },
    },
    onEvent: (event) => {
      if (event.type === 'failover') o.mesh.table.recordOutcome(event.peerId, { ok: false })
      o.onEvent?.(event)
    },
  })
  const unsubscribe = o.mesh.table.subscribe((event) => {
    if (event.type === 'leave') engine.peerGone(event.peerId)
    else if (event.type === 'update' && event.entry.advert.health.status === 'draining') engine.peerGone(event.entry.peerId)
  })
  return {
    ...engine,
    close() {
      unsubscribe()
      engine.close()
    },
  }
}
