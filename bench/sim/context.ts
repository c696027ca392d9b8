/**
 * The state one scenario run shares between its parts (peers, routes, chats): the event loop, the
 * random stream, the tabs, what each model's ready peers serve, and what is measured.
 */
import type { EventLoop } from './events.ts'
import type { ServedList } from './peers.ts'
import type { Random } from './random.ts'
import type { Metrics } from './stats.ts'
import type { Chat, Peer } from './types.ts'
import type { Churn } from './world.ts'

export interface ScenarioParams {
  name: string
  peers: number
  churnMultiplier: number
  churn: Churn
  simMinutes: number
  warmupMinutes: number
  /** Share of tabs that also chat. */
  clientShare: number
  thinkMeanS: number
  promptTokens: [number, number]
  newTokens: number
  liarShare: number
  rebalance: boolean
  rebalancePeriodS: number
  /** 'needed': a client opens sessions for prompt + new tokens; 'seqLen': for the model's full context, as tab-runtime does today. */
  maxLength: 'needed' | 'seqLen'
  /**
   * false: the code as it is: adverts do not say a host is full, so routes pick full hosts, which
   * refuse, and the client re-plans. true: the proposed fix, emulated here: a host that could not
   * admit the session (maxSessions reached or no KV left) is not a route candidate, as if adverts
   * carried free capacity and routeCost returned Infinity for a full host.
   */
  capacityAware: boolean
  /** Route candidates kept per layer in the shortlist (see routes.ts). */
  shortlistPerLayer: number
  seed: number
}

export interface SimContext {
  params: ScenarioParams
  loop: EventLoop
  rng: Random
  peers: Peer[]
  byId: Map<string, Peer>
  lists: Map<string, ServedList>
  /** Per model: the peers the global shortlist keeps (refreshed every few seconds). */
  shortlist: Map<string, Peer[]>
  population: number
  activeChats: Set<Chat>
  busyHosts: Set<Peer>
  metrics: Metrics
  /** Undrawn lying work delivered, per "client:liar" pair, until the client catches the liar. */
  wrongByPair: Map<string, number>
  /** After warm-up: what happens counts. */
  measuring: () => boolean
  nextChatId: number
  /** Sample the full-table planner (for timing and the shortlist's fidelity) on every k-th plan. */
  planCount: number
}
