import type { Health, Reachability, RelayState } from '../mesh/index.ts'
import type { HostedSlice } from '../mesh/protocol.ts'
import type { TabRuntime } from '../swarm/tab-runtime.ts'
import { createStore } from './store.ts'

/**
 * The swarm as this tab sees it, sampled once a second from the mesh node's peer table, plus the
 * time series the dashboard charts (throughput and latency).
 */
export interface PeerView {
  peerId: string
  backend: string
  adapter?: string
  hosted: HostedSlice[]
  health: Health
  status: 'ok' | 'degraded' | 'draining'
  rttMs?: number
  direct: boolean
  /** Why no direct connection could be made (routes leave the peer out for a while). */
  unreachable?: string
  layerTokensPerSecond?: number
  activeSessions: number
}

/** This tab's own network: its relays, whether it can connect directly, the ICE servers in use. */
export interface NetworkView {
  relays: RelayState[]
  reachability: Reachability
  reachabilityWhy: string
  iceUrls: string[]
}

export interface MetricSample {
  t: number // ms since epoch
  generatedPerSecond: number // tokens this tab generated (chat)
  servedPerSecond: number // layer-token rows this tab's contribution computed
  meanRttMs?: number // over directly connected peers
  routeMs?: number // mean per-token time through the route in this second
}

export interface SwarmState {
  mesh: 'joining' | 'joined' | 'unavailable'
  meshError?: string
  peerId?: string
  peers: PeerView[]
  network?: NetworkView
  samples: MetricSample[]
}

export const swarm = createStore<SwarmState>({ mesh: 'joining', peers: [], samples: [] })

const MAX_SAMPLES = 120

/** Counters other parts feed; the sampler turns them into per-second rates. */
export const counters = { generated: 0, served: 0, routeMsSum: 0, routeCount: 0 }

/** Joins the mesh (as `role`: a tab about to contribute advertises its capabilities) and samples it every second. */
export function startSwarmSampler(runtime: TabRuntime, role: 'client' | 'contributor'): () => void {
  let stopped = false
  let retry: ReturnType<typeof setTimeout> | undefined
  let lastServed: number | undefined
  let lastAt = Date.now()

  const join = () => {
    swarm.set({ mesh: 'joining', meshError: undefined })
    runtime.mesh(role).then(
      (node) => !stopped && swarm.set({ mesh: 'joined', peerId: node.peerId }),
      (err: Error) => {
        if (stopped) return
        swarm.set({ mesh: 'unavailable', meshError: err.message })
        retry = setTimeout(join, 10_000)
      },
    )
  }
  join()
  // back online: try again now rather than at the next retry
  const onOnline = () => {
    if (swarm.get().mesh !== 'unavailable') return
    clearTimeout(retry)
    join()
  }
  window.addEventListener('online', onOnline)

  const tick = setInterval(async () => {
    const now = Date.now()
    const seconds = Math.max(0.001, (now - lastAt) / 1000)
    lastAt = now
    const stats = runtime.contribution()?.contributor.stats()
    const served = stats?.tokensProcessed
    const servedDelta = served !== undefined && lastServed !== undefined && served >= lastServed ? served - lastServed : 0
    lastServed = served
    let peers = swarm.get().peers
    let network = swarm.get().network
    if (swarm.get().mesh === 'joined') {
      const node = await runtime.mesh()
      const st = node.stats()
      network = { relays: st.relays, reachability: st.reachability, reachabilityWhy: st.reachabilityWhy, iceUrls: st.iceServers.flatMap((x) => x.urls) }
      peers = node.table.list().map((e) => ({
        peerId: e.peerId,
        backend: e.advert.capabilities.backend,
        adapter: e.advert.capabilities.adapter,
        hosted: e.advert.hosted,
        health: e.health,
        status: e.advert.health.status,
        rttMs: e.rttMs,
        direct: e.direct,
        unreachable: e.unreachable?.why,
        layerTokensPerSecond: e.advert.capabilities.speed.layerTokensPerSecond,
        activeSessions: e.advert.load.activeSessions,
      }))
    }
    const rtts = peers.map((p) => p.rttMs).filter((x): x is number => x !== undefined)
    const sample: MetricSample = {
      t: now,
      generatedPerSecond: counters.generated / seconds,
      servedPerSecond: servedDelta / seconds,
      meanRttMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : undefined,
      routeMs: counters.routeCount ? counters.routeMsSum / counters.routeCount : undefined,
    }
    counters.generated = counters.routeMsSum = counters.routeCount = 0
    swarm.set((s) => ({ peers, network, samples: [...s.samples.slice(-(MAX_SAMPLES - 1)), sample] }))
  }, 1000)

  return () => {
    stopped = true
    clearInterval(tick)
    clearTimeout(retry)
    window.removeEventListener('online', onOnline)
  }
}

/** How many peers serve each layer of `modelId` (nLayers counts; 0 is a gap). */
export function layerCoverage(peers: PeerView[], modelId: string, nLayers: number): number[] {
  const counts = new Array<number>(nLayers).fill(0)
  for (const p of peers) {
    if (p.status === 'draining') continue
    for (const h of p.hosted) {
      if (h.modelId !== modelId) continue
      for (let l = Math.max(0, h.layers.start); l < Math.min(nLayers, h.layers.end); l++) counts[l]++
    }
  }
  return counts
}
