/**
 * The simulation's state: tabs (peers), the chats clients run, and the hops of their routes. Kept
 * in one module so the others import it without import cycles.
 */
import type { LayerRange } from '../../src/core/vocabulary.ts'
import type { Health } from '../../src/mesh/peer-table.ts'
import type { Advert } from '../../src/mesh/protocol.ts'
import type { ServedRange } from '../../src/swarm/placement.ts'
import type { Reputation } from '../../src/trust/reputation.ts'
import type { Device, ModelSpec, Place } from './world.ts'

export type LiarKind = 'naive' | 'patient'

export interface Peer extends Place {
  idx: number
  id: string
  device: Device
  alive: boolean
  joinedAt: number
  leaveAt: number
  /** Leaves with a 'leave' advert (else silently). */
  graceful: boolean
  model?: ModelSpec
  layers?: LayerRange
  /** Layer-token steps per second on its model (advertised as speed.layerTokensPerSecond). */
  lts: number
  /** Loaded and serving (its advert lists its hosted slice). */
  ready: boolean
  served?: ServedRange
  advert: Advert
  health: Health
  /** Hops (sessions) it hosts now. */
  sessions: Set<Hop>
  /** Hops whose work it re-executes as a spot-check verifier (each an ordinary session to it). */
  checks: Set<Hop>
  kvUsed: number
  /** Utilisation and M/D/1 wait of its forward queue, from the last load tick. */
  rho: number
  waitMs: number
  liar?: LiarKind
  /** A patient liar's honest sessions so far, per client index. */
  honestWith?: Map<number, number>
  client?: ClientState
  /** Open on-demand connections: peer index -> last use (ms), most recent last (Map order). */
  last: Map<number, number>
  /** Streams in use per connected peer. */
  use: Map<number, number>
}

export interface ClientState {
  /** The client's own reputation book (src/trust/reputation.ts, in memory). */
  reputation: Reputation
  /** Failures this client's peer table recorded per peer (recordOutcome on failover/caught). */
  failures: Map<string, number>
  /** Its last 10 successful dial attempts, ms (the node's dial stats: routeCost's dialMs is their median). */
  recentDialMs: number[]
  chat?: Chat
}

export interface Hop {
  chat: Chat
  host: Peer
  layers: LayerRange
  /** Drawn for spot checks (once per hop, with the client's reputation rate for the host). */
  drawn: boolean
  lying: boolean
  verifier?: Peer
  /** Positions the hop has seen (prompt, replay and tokens) and windows of 8 already checked. */
  positions: number
  windows: number
  kvBytes: number
  /** Decode service time on the host, ms (compute of one row through the hop's layers). */
  serviceMs: number
  rttMs: number
  tokensAtStart: number
  live: boolean
  /** When its lie is found (a drawn lying hop), once scheduled. */
  caughtAt?: number
}

export type ChatPhase = 'opening' | 'generating' | 'recovering' | 'done'

export interface Chat {
  id: number
  client: Peer
  model: ModelSpec
  promptTokens: number
  targetTokens: number
  tokens: number
  lastT: number
  /** Milliseconds per generated token now. */
  tauMs: number
  phase: ChatPhase
  phaseEnd: number
  /** Bumped on every phase change: a stale scheduled event sees a different version and does nothing. */
  version: number
  hops: Hop[]
  banned: Set<string>
  startedAt: number
  firstTokenAt?: number
  failovers: number
  lostMs: number
  lastFailoverToken: number
  /** Tokens delivered through a lying hop that was not drawn for checks. */
  wrong: number
  /** Started after the warm-up: counted. */
  measured: boolean
}
