import { INFER_PROTOCOL } from '../core/vocabulary.ts'
import type { EngineWorker } from '../engine/worker/index.ts'
import type { MeshNode } from '../mesh/node.ts'
import { createSwarmHost, type HostOptions, type HostStats, type SwarmHost } from './host.ts'
import { streamChannel } from './stream-channel.ts'

/**
 * A contributing tab: serves the layers its engine worker loaded to the swarm. Incoming
 * /tabmesh/1/infer streams become host sessions; the advert carries the hosted range and the
 * host's load. Stopping announces the departure first (draining), so clients re-route at once,
 * then ends every session with an error frame rather than silence.
 */
export interface ContributorOptions {
  mesh: MeshNode
  worker: EngineWorker
  modelId: string
  limits?: Pick<HostOptions, 'maxSessions' | 'maxSessionsPerClient' | 'maxQueue' | 'kvBudgetBytes' | 'idleTimeoutMs' | 'maxPrefixes'>
  loadReportMs?: number
}

export interface Contributor {
  readonly host: SwarmHost
  stats(): HostStats & { startedAt: number }
  stop(reason?: string): Promise<void>
}

export async function startContributor(o: ContributorOptions): Promise<Contributor> {
  const { loaded } = o.worker
  const host = createSwarmHost({
    modelId: o.modelId,
    config: loaded.config,
    hosted: loaded.spec.layers,
    engine: await o.worker.batch(),
    ...o.limits,
  })
  await o.mesh.handle(INFER_PROTOCOL, (stream, connection) => { void host.serve(streamChannel(stream, undefined, connection.remotePeer.toString())) })
  o.mesh.update({ hosted: [{ modelId: o.modelId, layers: loaded.spec.layers, embedding: loaded.spec.embedding, head: loaded.spec.head }], load: { queueDepth: 0, activeSessions: 0 } })
  const startedAt = Date.now()
  let last = ''
  const report = setInterval(() => {
    const s = host.stats()
    const load = { queueDepth: s.queueDepth, activeSessions: s.activeSessions }
    if (JSON.stringify(load) !== last) o.mesh.update({ load })
    last = JSON.stringify(load)
  }, o.loadReportMs ?? 250)

  return {
    host,
    stats: () => ({ ...host.stats(), startedAt }),
    async stop(reason = 'the contributor stopped') {
      clearInterval(report)
      o.mesh.update({ health: { status: 'draining', recentErrors: 0 }, hosted: [] })
      host.close(reason)
      await o.mesh.unhandle(INFER_PROTOCOL)
    },
  }
}
