import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { Engine } from '../engine/engine.ts'
import type { FrameChannel } from './channel.ts'
import type { Dtype } from './frames.ts'
import { openHop, type Hop } from './hop.ts'
import { planRoute, type RouteCandidate, type RouteHop } from './route.ts'

/**
 * The chatting tab's engine: embedding and head run locally, the transformer layers run on a route
 * of peers. It is an Engine, so generation code does not know the layers are remote.
 *
 * Failover: for every hop the client keeps the inputs it sent (positions and hidden rows). When a
 * hop fails (stream error, timeout, bad tensors, peer gone), its peer is banned for the session, a
 * new route is planned for that hop's span, the kept inputs are replayed to rebuild the new hosts'
 * KV caches at the same positions, and the step continues. Under greedy decoding the output is
 * the same as an uninterrupted run.
 */
export interface SwarmEngineOptions {
  local: Engine // holds the embedding and the head
  modelId: string
  candidates(): RouteCandidate[] // the swarm as the peer table sees it now
  connect(peerId: string): Promise<FrameChannel> // a new stream for /tabmesh/1/infer
  maxLength: number // positions one session may use
  dtype?: Dtype
  hopTimeoutMs?: number
  maxFailovers?: number
  onEvent?(event: SwarmEvent): void
}

export type SwarmEvent =
  | { type: 'route'; hops: RouteHop[] }
  | { type: 'failover'; peerId: string; layers: LayerRange; reason: string; replacement: RouteHop[]; recoveryMs: number }

export interface HopTiming {
  peerId: string
  layers: LayerRange
  ms: number
}

interface LiveHop {
  hop: Hop
  history: { positions: Int32Array; hidden: Float32Array }[] // inputs sent, in order
}

export interface SwarmEngine extends Engine {
  /** The hops and their latency for the last forward call. */
  lastRoute(): HopTiming[]
  /** Fails the hops served by `peerId` now (the peer table saw it leave), instead of waiting for a timeout. */
  peerGone(peerId: string): void
  close(): void
}

export function createSwarmEngine(o: SwarmEngineOptions): SwarmEngine {
  const config = o.local.config
  const banned = new Set<string>()
  const maxFailovers = o.maxFailovers ?? 8
  let hops: LiveHop[] | undefined
  let failovers = 0
  let timings: HopTiming[] = []
  let lastFailure = '' // why the last banned peer was banned, for the no-route message

  async function openRoute(route: RouteHop[]): Promise<LiveHop[]> {
    const opened: LiveHop[] = []
    try {
      for (const r of route) {
        const channel = await o.connect(r.peerId)
        const hop = await openHop(channel, { peerId: r.peerId, modelId: o.modelId, layers: r.layers, maxLength: o.maxLength, dim: config.dim, dtype: o.dtype, timeoutMs: o.hopTimeoutMs })
        opened.push({ hop, history: [] })
      }
      return opened
    } catch (err) {
      for (const h of opened) h.hop.close()
      throw err
    }
  }

  function closeAll(): void {
    for (const h of hops ?? []) h.hop.close()
    hops = undefined
  }

  const routeExists = (span: LayerRange) => {
    try {
      planRoute(o.candidates(), span, banned)
      return true
    } catch {
      return false
    }
  }

  /** A route for `span` whose first hops have replayed `history`; bans and retries peers that fail meanwhile. */
  async function rebuild(span: LayerRange, history: LiveHop['history']): Promise<LiveHop[]> {
    const unreachable = new Map<string, number>() // dial failures per peer: a first WebRTC dial can hang, so retry before banning
    // peers that refused (full, leaving) are skipped for this rebuild only: capacity is no fault
    const refusing = new Set<string>()
    let refusal = ''
    for (;;) {
      let route: RouteHop[]
      try {
        route = planRoute(o.candidates(), span, new Set([...banned, ...refusing]))
      } catch (err) {
        if (!(err instanceof TabmeshError && err.code === 'no-route')) throw err
        // say why no route is left: the hosts that could serve it refused, or peers failed and none can stand in
        if (refusal && routeExists(span)) throw new TabmeshError('refused', `${err.message}; ${refusal}`)
        if (lastFailure) throw new TabmeshError('hop-failed', `${err.message}; no other peer could take over; last failure: ${lastFailure}`)
        throw err
      }
      let opened: LiveHop[] = []
      let current: RouteHop | undefined
      try {
        for (const r of route) {
          current = r
          opened.push(...await openRoute([r]))
        }
        for (const entry of history) {
          let h = entry.hidden
          for (const live of opened) {
            current = { peerId: live.hop.peerId, layers: live.hop.layers }
            live.history.push({ positions: entry.positions, hidden: h.slice() })
            h = await live.hop.forward(entry.positions, h)
          }
        }
        return opened
      } catch (err) {
        for (const h of opened) h.hop.close()
        opened = []
        if (err instanceof TabmeshError && err.code === 'no-route') throw err
        if (current && err instanceof TabmeshError && err.code === 'refused') {
          refusing.add(current.peerId)
          refusal = err.message
          continue
        }
        const dials = current ? (unreachable.get(current.peerId) ?? 0) + 1 : 0
        if (current && err instanceof TabmeshError && err.code === 'mesh-unreachable' && dials < 6) {
          unreachable.set(current.peerId, dials)
          await new Promise((r) => setTimeout(r, 400 * dials))
          continue
        }
        if (!current || ++failovers > maxFailovers) throw err
        banned.add(current.peerId)
        lastFailure = (err as Error).message
      }
    }
  }

  async function forward(hidden: Float32Array, positions: Int32Array): Promise<Float32Array> {
    if (!hops) {
      hops = await rebuild({ start: 0, end: config.nLayers }, [])
      o.onEvent?.({ type: 'route', hops: hops.map((l) => ({ peerId: l.hop.peerId, layers: l.hop.layers })) })
    }
    timings = []
    let h: Float32Array = hidden.slice()
    for (let i = 0; i < hops.length;) {
      const live = hops[i]
      const started = performance.now()
      try {
        const out = await live.hop.forward(positions, h)
        live.history.push({ positions: positions.slice(), hidden: h })
        timings.push({ peerId: live.hop.peerId, layers: live.hop.layers, ms: performance.now() - started })
        h = out
        i++
      } catch (err) {
        if (++failovers > maxFailovers) throw err
        const noticed = performance.now()
        live.hop.close()
        banned.add(live.hop.peerId)
        lastFailure = (err as Error).message
        const replacement = await rebuild(live.hop.layers, live.history)
        hops.splice(i, 1, ...replacement)
        o.onEvent?.({
          type: 'failover', peerId: live.hop.peerId, layers: live.hop.layers, reason: (err as Error).message,
          replacement: replacement.map((r) => ({ peerId: r.hop.peerId, layers: r.hop.layers })), recoveryMs: performance.now() - noticed,
        })
        // loop again at i: the current step goes through the replacement hops
      }
    }
    return h
  }

  return {
    backend: o.local.backend,
    config,
    spec: { layers: { start: 0, end: config.nLayers }, embedding: true, head: true },
    embed: (tokens) => o.local.embed(tokens),
    forward,
    head: (hidden) => o.local.head(hidden),
    async reset() {
      closeAll()
      await o.local.reset()
    },
    lastRoute: () => timings,
    peerGone(peerId) {
      for (const h of hops ?? []) if (h.hop.peerId === peerId) h.hop.close('the peer table dropped it (it left, went silent or is draining)')
    },
    close: closeAll,
  }
}
