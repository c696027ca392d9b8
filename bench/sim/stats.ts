/**
 * What one scenario measures (counters and samples), and the small statistics helpers that
 * summarise them.
 */

export interface Metrics {
  routeRequests: number
  routesFound: number
  refusals: number
  routesGivenUp: number
  chatsStarted: number
  chatsCompleted: number
  chatsFailed: number
  /** Why chats failed: 'no-route' (at start), 'failover-no-route', 'max-failovers'. */
  failedBy: Record<string, number>
  chatsAborted: number
  chatsWithFailover: number
  tokens: number
  failovers: number
  failoversGraceful: number
  failoversSilent: number
  failoversMoved: number
  tokensNeedingFailover: number
  failoverMs: number[]
  replayMs: number[]
  replayBatchedMs: number[]
  tokensPerSecond: number[]
  ttftMs: number[]
  dialDelayMs: number[]
  prefillMs: number[]
  dials: number
  hopsOpened: number
  hopsDrawn: number
  checkRateSum: number
  rowsTotal: number
  rowsChecked: number
  liarHops: number
  caught: number
  wrongTokens: number
  chatsWithWrongTokens: number
  tokensBeforeCaught: number[]
  plannedVsOracle: number[]
  shortlistCostRatio: number[]
  planFullMs: number[]
  planShortMs: number[]
  coverageSamples: Record<string, { covered: number; samples: number; minReplicas: number[]; weakest: number[] }>
  connections: number[]
  overLibp2pCap: number
  moves: number
  joins: number
  leaves: number
  populationSamples: number[]
  /** Per model: tokens/s of completed chats, and time to first token. */
  byModel: Record<string, { tokensPerSecond: number[]; ttftMs: number[] }>
}

export function newMetrics(models: string[]): Metrics {
  return {
    routeRequests: 0, routesFound: 0, refusals: 0, routesGivenUp: 0, chatsStarted: 0, chatsCompleted: 0, chatsFailed: 0, failedBy: {}, chatsAborted: 0, chatsWithFailover: 0,
    tokens: 0, failovers: 0, failoversGraceful: 0, failoversSilent: 0, failoversMoved: 0, tokensNeedingFailover: 0,
    failoverMs: [], replayMs: [], replayBatchedMs: [], tokensPerSecond: [], ttftMs: [], dialDelayMs: [], prefillMs: [], dials: 0, hopsOpened: 0,
    hopsDrawn: 0, checkRateSum: 0, rowsTotal: 0, rowsChecked: 0, liarHops: 0, caught: 0, wrongTokens: 0, chatsWithWrongTokens: 0, tokensBeforeCaught: [],
    plannedVsOracle: [], shortlistCostRatio: [], planFullMs: [], planShortMs: [],
    coverageSamples: Object.fromEntries(models.map((m) => [m, { covered: 0, samples: 0, minReplicas: [], weakest: [] }])),
    connections: [], overLibp2pCap: 0, moves: 0, joins: 0, leaves: 0, populationSamples: [],
    byModel: Object.fromEntries(models.map((m) => [m, { tokensPerSecond: [], ttftMs: [] }])),
  }
}

/** The q-quantile (0..1) by linear interpolation; NaN for no samples. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
}

export const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)

export const max = (xs: readonly number[]) => xs.reduce((a, b) => Math.max(a, b), -Infinity)

/** Rounds for JSON: `digits` significant digits, NaN and infinities as null. */
export function round(x: number, digits = 3): number | null {
  if (!Number.isFinite(x)) return null
  if (x === 0) return 0
  const p = Math.pow(10, digits - Math.ceil(Math.log10(Math.abs(x))))
  return Math.round(x * p) / p
}
