/**
 * Choosing peers for work, from the peer table: `canServe` says whether a peer can take a piece of
 * work at all (capability, not load), and `routeCost` estimates, in milliseconds, what one pipeline hop through a peer costs (round trip,
 * activation transfer, queue wait and compute); the swarm's route planner minimises its sum.
 */
import { type LayerRange } from '../core/vocabulary.ts'
import type { Health, PeerEntry } from './peer-table.ts'
import type { AdvertBackend, HostedSlice } from './protocol.ts'

/** What a worker must offer. */
export interface WorkNeed {
  /** Serve work on layers already hosted: some hosted slice of `modelId` must cover `layers`. */
  hosts?: { modelId: string; layers: LayerRange }
  /** Take on new work (e.g. host layers): at least this memory budget. */
  minMemoryBytes?: number
  /** Acceptable backends (default: any that computes, i.e. not 'none'). */
  backends?: readonly AdvertBackend[]
  /** Peers to leave out (already chosen, failed before, ourselves). */
  exclude?: ReadonlySet<string>
}

/** The hosted slice of `modelId` that covers `layers`, if any. */
export function coveringSlice(hosted: readonly HostedSlice[], modelId: string, layers: LayerRange): HostedSlice | undefined {
  return hosted.find((h) => h.modelId === modelId && h.layers.start <= layers.start && h.layers.end >= layers.end)
}

/** Whether a peer can take the work at all (capability, not load). */
export function canServe(entry: PeerEntry, need: WorkNeed): boolean {
  const { advert } = entry
  if (need.exclude?.has(entry.peerId)) return false
  if (advert.health.status === 'draining') return false
  const backend = advert.capabilities.backend
  if (need.backends ? !need.backends.includes(backend) : backend === 'none') return false
  if (need.minMemoryBytes !== undefined && advert.capabilities.memoryBudgetBytes < need.minMemoryBytes) return false
  if (need.hosts && !coveringSlice(advert.hosted, need.hosts.modelId, need.hosts.layers)) return false
  return true
}

// ---- route cost --------------------------------------------------------------------------------

/** One pipeline hop: run `layers` of `modelId` on `rows` tokens, shipping activations both ways. */
export interface HopWork {
  modelId: string
  layers: LayerRange
  /** Tokens in the step (1 while decoding, the prompt length while prefilling). */
  rows: number
  /** Activation bytes sent to the peer plus bytes sent back. */
  transferBytes: number
  /** FLOPs of one token through one layer (about 2 x parameters per layer); used when the peer has not measured its slice. */
  flopsPerLayerToken?: number
}

export interface RouteCostOptions {
  /** RTT assumed before the first ping (default 20 ms). */
  defaultRttMs?: number
  /** Stream throughput between tabs, bytes per ms (default 8000: 8 MB/s, measured on loopback in LAB.md). */
  bytesPerMs?: number
  /** Used when a peer reports neither a slice speed nor GFLOP/s (default 0.5). */
  fallbackGflops?: number
  /**
   * Expected time to open a direct connection to a peer we hold none to (default 400 ms: one
   * WebRTC dial on loopback, LAB.md; the node passes the median of its own recent dials). Counted
   * once per hop, so warm connections win close calls and a big swarm's routes favour peers the
   * tab already talks to.
   */
  dialMs?: number
}

/** What a peer marked unreachable adds to a hop's cost: more than any route through reachable peers. */
export const UNREACHABLE_PENALTY_MS = 60_000

/** How much worse each health state makes a hop, beyond the queue wait already counted. */
const HEALTH_PENALTY: Record<Health, number> = { idle: 1, moderate: 1.1, busy: 1.5, overloaded: 4 }

/** Milliseconds to run `rows` tokens through `layerCount` layers on this peer. */
export function computeMs(entry: PeerEntry, layerCount: number, rows: number, flopsPerLayerToken: number | undefined, fallbackGflops = 0.5): number {
  const speed = entry.advert.capabilities.speed
  if (speed.layerTokensPerSecond !== undefined && speed.layerTokensPerSecond > 0) return ((layerCount * rows) / speed.layerTokensPerSecond) * 1000
  const gflops = speed.gflops > 0 ? speed.gflops : fallbackGflops
  const flops = flopsPerLayerToken ?? 2e6 // unknown model size: a small layer
  return (layerCount * rows * flops) / (gflops * 1e6)
}

/**
 * Estimated milliseconds for one hop through `entry`: round trip + transfer + (queued steps + this
 * one) x compute, scaled by health and by the peer's failure rate, plus the dial when no direct
 * connection is open (and a large penalty when it could not be reached lately). Infinity if the
 * peer cannot run the hop (it does not host the layers, it is draining, or it computes nothing).
 */
export function routeCost(entry: PeerEntry, hop: HopWork, options: RouteCostOptions = {}): number {
  if (!canServe(entry, { hosts: { modelId: hop.modelId, layers: hop.layers } })) return Infinity
  // every dial to it failed lately (PeerEntry.unreachable): routes go around it, and use it only
  // when nobody else hosts the layers (a mark can be wrong: a busy CPU also times dials out)
  const dial = entry.direct ? 0 : (options.dialMs ?? 400) + (entry.unreachable ? UNREACHABLE_PENALTY_MS : 0)
  const rtt = entry.rttMs ?? options.defaultRttMs ?? 20
  const transfer = hop.transferBytes / (options.bytesPerMs ?? 8000)
  const layerCount = hop.layers.end - hop.layers.start
  const step = computeMs(entry, layerCount, hop.rows, hop.flopsPerLayerToken, options.fallbackGflops)
  // queued items are assumed to be decode steps (one row) on the whole hosted slice
  const slice = coveringSlice(entry.advert.hosted, hop.modelId, hop.layers)!
  const queued = entry.advert.load.queueDepth * computeMs(entry, slice.layers.end - slice.layers.start, 1, hop.flopsPerLayerToken, options.fallbackGflops)
  const { successes, failures } = entry.history
  const failureRate = (failures + 0.1) / (successes + failures + 1) // small prior: no history, tiny penalty
  return (rtt + transfer + queued + step) * HEALTH_PENALTY[entry.health] * (1 + 2 * failureRate) + dial
}
