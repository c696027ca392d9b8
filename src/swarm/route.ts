import { TabmeshError } from '../errors.ts'
import type { LayerRange } from '../model/model.ts'

/**
 * Route planning: the cheapest chain of peers that covers a span of layers. A peer hosting [a, b)
 * can serve any sub-range of it, so this is a shortest path over layer boundaries: from boundary
 * l, a peer with a <= l < b leads to any e in (l, b], at the peer's per-hop cost (RTT, queue) plus
 * its per-layer cost times the layers it runs. Banned peers (failed during this session) are skipped.
 */
export interface RouteCandidate {
  peerId: string
  layers: LayerRange // what the peer hosts
  hopCostMs: number // fixed cost of using the peer for one step: round trip, queueing
  perLayerMs: number // compute cost per layer per step
}

export interface RouteHop {
  peerId: string
  layers: LayerRange
}

export function planRoute(candidates: RouteCandidate[], span: LayerRange, banned: ReadonlySet<string> = new Set()): RouteHop[] {
  const { start, end } = span
  const best = new Float64Array(end + 1).fill(Infinity) // best[l]: cheapest cost to cover [start, l)
  const via: (RouteHop & { from: number })[] = new Array(end + 1)
  best[start] = 0
  const usable = candidates.filter((c) => !banned.has(c.peerId) && Number.isFinite(c.hopCostMs) && Number.isFinite(c.perLayerMs))
  for (let l = start; l < end; l++) {
    if (best[l] === Infinity) continue
    for (const c of usable) {
      if (!(c.layers.start <= l && l < c.layers.end)) continue
      for (let e = l + 1; e <= Math.min(c.layers.end, end); e++) {
        const cost = best[l] + c.hopCostMs + c.perLayerMs * (e - l)
        // ties go to the lower peer id, so every client plans the same route from the same table
        if (cost < best[e] || (cost === best[e] && via[e] && c.peerId < via[e].peerId)) {
          best[e] = cost
          via[e] = { peerId: c.peerId, layers: { start: l, end: e }, from: l }
        }
      }
    }
  }
  if (best[end] === Infinity) {
    let covered = start
    while (covered < end && best[covered + 1] !== Infinity) covered++
    throw new TabmeshError('no-route', `no peers cover layers [${covered}, ${end}) of [${start}, ${end})${banned.size ? ` (${banned.size} peer(s) excluded after failures)` : ''}`)
  }
  const hops: RouteHop[] = []
  for (let l = end; l > start; l = via[l].from) hops.unshift({ peerId: via[l].peerId, layers: via[l].layers })
  return hops
}
