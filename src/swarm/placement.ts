import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'

/**
 * Shard placement, after Petals' block selection: a contributor hosts the contiguous window of
 * layers where the swarm is weakest. Each layer's strength is the summed throughput (tokens/s) of
 * the peers serving it; a window is better when its weakest layer is weaker (then when its total
 * is lower), so gaps fill first. Rebalancing moves a peer only when moving would raise the swarm's
 * weakest layer by a clear margin (hysteresis), so the swarm does not thrash.
 */
export interface ServedRange {
  peerId: string
  layers: LayerRange
  throughput: number // tokens/s this peer sustains over its layers
}

/** Summed throughput per layer (nLayers). */
export function layerThroughput(nLayers: number, served: ServedRange[], exclude?: string): Float64Array {
  const t = new Float64Array(nLayers)
  for (const s of served) {
    if (s.peerId === exclude) continue
    for (let l = Math.max(0, s.layers.start); l < Math.min(nLayers, s.layers.end); l++) t[l] += s.throughput
  }
  return t
}

/** How many layers fit: the memory budget over the bytes one layer needs (weights plus KV cache). */
export function layersThatFit(memoryBudgetBytes: number, bytesPerLayer: number, nLayers: number): number {
  if (!(bytesPerLayer > 0)) throw new TabmeshError('bad-argument', `bytes per layer must be positive, got ${bytesPerLayer}`)
  return Math.max(0, Math.min(nLayers, Math.floor(memoryBudgetBytes / bytesPerLayer)))
}

/** The window of `count` layers where the swarm is weakest (lowest min, then lowest sum, then first). */
export function chooseLayers(nLayers: number, count: number, served: ServedRange[], self?: string): LayerRange {
  if (!(count >= 1)) throw new TabmeshError('refused', 'this device has no room for even one layer')
  const k = Math.min(count, nLayers)
  const t = layerThroughput(nLayers, served, self)
  let best = 0
  let bestMin = Infinity
  let bestSum = Infinity
  for (let start = 0; start + k <= nLayers; start++) {
    let min = Infinity
    let sum = 0
    for (let l = start; l < start + k; l++) {
      min = Math.min(min, t[l])
      sum += t[l]
    }
    if (min < bestMin || (min === bestMin && sum < bestSum)) {
      best = start
      bestMin = min
      bestSum = sum
    }
  }
  return { start: best, end: best + k }
}

/** The swarm's weakest layer if `peer` served `layers` (and not what it serves now). */
function weakestWith(nLayers: number, served: ServedRange[], peer: ServedRange, layers: LayerRange): number {
  const t = layerThroughput(nLayers, served, peer.peerId)
  for (let l = layers.start; l < layers.end; l++) t[l] += peer.throughput
  return Math.min(...t)
}

/**
 * Whether `me` should move, and where. It moves only if the swarm's weakest layer would improve by
 * more than `margin` (relative), e.g. 0.25 = 25% better, and only out of a layer someone else
 * also serves, so a move never opens a gap.
 */
export function rebalance(nLayers: number, served: ServedRange[], me: ServedRange, margin = 0.25): LayerRange | undefined {
  const count = me.layers.end - me.layers.start
  const target = chooseLayers(nLayers, count, served, me.peerId)
  if (target.start === me.layers.start) return undefined
  const now = weakestWith(nLayers, served, me, me.layers)
  const after = weakestWith(nLayers, served, me, target)
  return after > now * (1 + margin) ? target : undefined
}
