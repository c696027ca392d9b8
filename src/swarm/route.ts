import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'

/**
 * Route planning: the cheapest chain of peers that covers a span of layers. A peer hosting [a, b)
 * can serve any sub-range of it, so this is a shortest path over layer boundaries: from boundary
 * l, a peer with a <= l < b leads to any e in (l, b], at the cost the peer's estimate gives for
 * running [l, e) (round trip, queue and compute: see routeCost in src/mesh/selection.ts). Banned
 * peers (failed during this session) are skipped.
 */
export interface RouteCandidate {
  peerId: string
  layers: LayerRange // what the peer hosts
  /** Estimated milliseconds for one step through `span` (a sub-range of `layers`) on this peer. */
  cost(span: LayerRange): number
}

/** A cost of a fixed part per hop plus a part per layer (tests, and peers with no better estimate). */
export const linearCost = (hopMs: number, perLayerMs: number) => (span: LayerRange) => hopMs + perLayerMs * (span.end - span.start)

export interface RouteHop {
  peerId: string
  layers: LayerRange
}

export function planRoute(candidates: RouteCandidate[], span: LayerRange, banned: ReadonlySet<string> = new Set()): RouteHop[] {
  const { start, end } = span
  const best = new Float64Array(end + 1).fill(Infinity) // best[l]: cheapest cost to cover [start, l)
  const via: (RouteHop & { from: number })[] = new Array(end + 1)
  best[start] = 0
  const usable = candidates.filter((c) => !banned.has(c.peerId))
  for (let l = start; l < end; l++) {
    if (best[l] === Infinity) continue
    for (const c of usable) {
      if (!(c.layers.start <= l && l < c.layers.end)) continue
      for (let e = l + 1; e <= Math.min(c.layers.end, end); e++) {
        const step = c.cost({ start: l, end: e })
        if (!(step >= 0 && step < Infinity)) continue
        const cost = best[l] + step
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
