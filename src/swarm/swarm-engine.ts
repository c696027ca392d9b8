import { type LayerRange } from '../core/vocabulary.ts'
import { Rewind, TabmeshError } from '../core/errors.ts'
import type { Engine } from '../engine/engine.ts'
import { createChecker, SELF, type AuditLog, type CheckEvent, type Checker, type CheckerOptions, type ExecutionKind, type Reputation, type SpanRunner, type TrackedHop } from '../trust/index.ts'
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
 *
 * Spot checks (with `trust`): every hop's work is checked by src/trust's checker, after the fact,
 * on an independent executor. A hop caught lying is banned for the session, its span re-routed
 * and replayed from the inputs kept, every hop's cache is cut back to the first wrong position, and
 * forward() throws Rewind so the generation loop goes on from there (generateTokens handles it).
 */
export interface SwarmTrustOptions extends Pick<CheckerOptions, 'windowRows' | 'selfCheckShare' | 'random' | 'fingerprintSeed' | 'maxPendingWindows'> {
  reputation: Reputation
  audit?: AuditLog
  /** The client's own engine for a span (loads its layers): the verifier of last resort and the usual referee. */
  localSpan?(span: LayerRange): Promise<Engine & { close?(): void }>
  /** What a peer runs on, for the honest tolerance between two executions. */
  kindOf?(peerId: string): ExecutionKind
  /** Called for every peer caught lying, on a route or as a verifier (e.g. to lower its gossip score). */
  onCaught?(peerId: string): void
}

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
  trust?: SwarmTrustOptions
}

export type SwarmEvent =
  | { type: 'route'; hops: RouteHop[] }
  | { type: 'failover'; peerId: string; layers: LayerRange; reason: string; replacement: RouteHop[]; recoveryMs: number }
  | { type: 'check'; check: CheckEvent }
  | { type: 'caught'; peerId: string; layers: LayerRange; position: number; outcome: 'failed' | 'inconclusive'; reason: string; replacement: RouteHop[] }

export interface HopTiming {
  peerId: string
  layers: LayerRange
  ms: number
}

interface LiveHop {
  hop: Hop
  history: { positions: Int32Array; hidden: Float32Array; output?: Float32Array }[] // inputs sent (and what came back), in order
  tracked?: TrackedHop // its spot checks
}

/** A route closed with its KV caches kept on the hosts, for the next generation that starts with `tokens`. */
interface KeptRoute {
  tokens: number[]
  hops: { peerId: string; layers: LayerRange; prefixId: number; history: LiveHop['history'] }[]
}

const historyEnd = (history: LiveHop['history']) => (history.length ? history[history.length - 1].positions.at(-1)! + 1 : 0)

/** `history` without positions >= `position`. */
function cutHistory(history: LiveHop['history'], position: number, dim: number): LiveHop['history'] {
  const kept: LiveHop['history'] = []
  for (const e of history) {
    const n = e.positions.findIndex((p) => p >= position)
    if (n === -1) kept.push(e)
    else if (n > 0) kept.push({ positions: e.positions.slice(0, n), hidden: e.hidden.slice(0, n * dim), output: e.output?.slice(0, n * dim) })
  }
  return kept
}

export interface SwarmEngine extends Engine {
  /** The hops and their latency for the last forward call. */
  lastRoute(): HopTiming[]
  /** Fails the hops served by `peerId` now (the peer table saw it leave), instead of waiting for a timeout. */
  peerGone(peerId: string): void
  /** The spot checker, with `trust`. */
  readonly checker?: Checker
  /** Positions the last resume() found kept on the hosts (0: none, or a host had lost it and they were replayed). */
  lastReuse(): { positions: number; hostsReused: number; hostsReplayed: number }
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
  const trust = o.trust
  const usable = () => (trust ? o.candidates().filter((c) => !trust.reputation.revoked(c.peerId)) : o.candidates())
  const checker = trust && createChecker({
    dim: config.dim,
    reputation: trust.reputation,
    audit: trust.audit,
    dtype: o.dtype,
    kindOf: (id) => (id === SELF ? { backend: o.local.backend } : trust.kindOf?.(id) ?? { backend: 'unknown' }),
    openRunner,
    onCaught: trust.onCaught,
    windowRows: trust.windowRows, selfCheckShare: trust.selfCheckShare, random: trust.random, fingerprintSeed: trust.fingerprintSeed, maxPendingWindows: trust.maxPendingWindows,
  })
  checker?.onCheck((check) => o.onEvent?.({ type: 'check', check }))

  /** An executor for a spot check: a peer hosting all of `span` (weighted by reputation), or this client. */
  async function openRunner(span: LayerRange, exclude: ReadonlySet<string>, preferSelf: boolean): Promise<SpanRunner | undefined> {
    const self = async (): Promise<SpanRunner | undefined> => {
      if (!trust?.localSpan) return undefined
      try {
        const engine = await trust.localSpan(span)
        return { peerId: SELF, kind: { backend: engine.backend }, maxRows: 32, forward: (positions, hidden) => engine.forward(hidden, positions), close: () => engine.close?.() }
      } catch {
        return undefined // this tab cannot run the span (too large, no backend): a peer must
      }
    }
    if (preferSelf) {
      const mine = await self()
      if (mine) return mine
    }
    const seen = new Set<string>()
    const peers = usable().filter((c) => c.layers.start <= span.start && span.end <= c.layers.end && !exclude.has(c.peerId) && !banned.has(c.peerId) && !seen.has(c.peerId) && seen.add(c.peerId))
    // a random order, better-reputed peers earlier: a peer cannot arrange to check itself or its friends
    const random = trust!.random ?? Math.random
    const order = peers.map((c) => ({ c, key: -Math.log(Math.max(random(), 1e-12)) / (1 + Math.max(0, trust!.reputation.score(c.peerId))) })).sort((a, b) => a.key - b.key)
    for (const { c } of order) {
      try {
        const hop = await openHop(await o.connect(c.peerId), { peerId: c.peerId, modelId: o.modelId, layers: span, maxLength: o.maxLength, dim: config.dim, dtype: o.dtype, timeoutMs: o.hopTimeoutMs })
        return { peerId: c.peerId, kind: trust!.kindOf?.(c.peerId) ?? { backend: 'unknown' }, maxRows: Math.min(32, hop.maxRows), forward: (p, h) => hop.forward(p, h), close: () => hop.close() }
      } catch {
        // unreachable or full: the next one
      }
    }
    return preferSelf ? undefined : self()
  }

  /** Takes the checker's verdicts: a caught hop is replaced, every cache cut back, and generation rewinds. */
  async function applyFailures(): Promise<void> {
    if (!checker || !hops) return
    // outputs below this were given out already (their windows were not drawn for a check, or no
    // verifier could be found): a lie found there is punished, but the rewind cannot reach back
    const floor = checker.committed()
    let rewindTo = Infinity
    let why = ''
    for (let f = checker.takeFailure(); f; f = checker.takeFailure()) {
      const i = hops.findIndex((h) => h.tracked?.id === f!.hopId)
      if (i < 0) continue // that hop is gone already
      const live = hops[i]
      banned.add(live.hop.peerId)
      lastFailure = f.reason
      void trust!.audit?.append('ban', { peerId: live.hop.peerId, layers: [live.hop.layers.start, live.hop.layers.end], position: f.position, outcome: f.outcome, reason: f.reason }).catch(() => {})
      live.tracked?.close()
      live.hop.close(`caught by a spot check: ${f.reason}`)
      const from = Math.max(f.position, Math.min(floor, live.history.reduce((n, e) => n + e.positions.length, 0)))
      const replacement = await rebuild(live.hop.layers, cutHistory(live.history, from, config.dim))
      hops.splice(i, 1, ...replacement)
      o.onEvent?.({ type: 'caught', peerId: live.hop.peerId, layers: live.hop.layers, position: f.position, outcome: f.outcome, reason: f.reason, replacement: replacement.map((r) => ({ peerId: r.hop.peerId, layers: r.hop.layers })) })
      if (from < rewindTo) {
        rewindTo = from
        why = `peer ${live.hop.peerId} (layers [${live.hop.layers.start}, ${live.hop.layers.end})) ${f.outcome === 'failed' ? 'was caught lying' : 'could not be trusted'}: ${f.reason}`
      }
    }
    if (rewindTo === Infinity) return
    for (const live of hops) {
      live.history = cutHistory(live.history, rewindTo, config.dim)
      live.tracked?.truncate(rewindTo)
    }
    throw new Rewind(rewindTo, why)
  }

  async function openRoute(route: RouteHop[]): Promise<LiveHop[]> {
    const opened: LiveHop[] = []
    try {
      for (const r of route) {
        const channel = await o.connect(r.peerId)
        const hop = await openHop(channel, { peerId: r.peerId, modelId: o.modelId, layers: r.layers, maxLength: o.maxLength, dim: config.dim, dtype: o.dtype, timeoutMs: o.hopTimeoutMs })
        opened.push({ hop, history: [], tracked: checker?.track({ peerId: r.peerId, layers: r.layers }) })
      }
      return opened
    } catch (err) {
      for (const h of opened) close(h)
      throw err
    }
  }

  function close(h: LiveHop, reason?: string): void {
    h.tracked?.close()
    h.hop.close(reason)
  }

  function closeAll(): void {
    for (const h of hops ?? []) close(h)
    hops = undefined
  }

  const routeExists = (span: LayerRange) => {
    try {
      planRoute(usable(), span, banned)
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
    let opening = false // opening the route's streams, before any host served a row
    for (;;) {
      let route: RouteHop[]
      try {
        route = planRoute(usable(), span, new Set([...banned, ...refusing]))
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
        opening = true
        for (const r of route) {
          current = r
          opened.push(...await openRoute([r]))
        }
        opening = false
        for (const entry of history) {
          let h = entry.hidden
          for (const live of opened) {
            current = { peerId: live.hop.peerId, layers: live.hop.layers }
            const input = h.slice()
            h = await forwardRows(live.hop, entry.positions, h)
            live.history.push({ positions: entry.positions, hidden: input, output: h })
            await live.tracked?.record(entry.positions, input, h)
          }
        }
        return opened
      } catch (err) {
        for (const h of opened) close(h)
        opened = []
        if (err instanceof TabmeshError && err.code === 'no-route') throw err
        if (current && err instanceof TabmeshError && err.code === 'refused') {
          refusing.add(current.peerId)
          refusal = err.message
          continue
        }
        const dials = current ? (unreachable.get(current.peerId) ?? 0) + 1 : 0
        // a dial that failed, or a stream that closed before the host said anything (a connection
        // the mesh was just closing): the peer did nothing wrong yet, so try it again before a ban
        const transient = err instanceof TabmeshError && (err.code === 'mesh-unreachable' || (opening && err.code === 'hop-failed' && /closed the stream|channel closed/.test(err.message)))
        if (current && transient && dials < 6) {
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

  /** One hop's forward, in pieces of at most the rows the host takes per request. */
  async function forwardRows(hop: Hop, positions: Int32Array, hidden: Float32Array): Promise<Float32Array> {
    if (positions.length <= hop.maxRows) return hop.forward(positions, hidden)
    const out = new Float32Array(hidden.length)
    for (let r = 0; r < positions.length; r += hop.maxRows) {
      const end = Math.min(positions.length, r + hop.maxRows)
      out.set(await hop.forward(positions.subarray(r, end), hidden.subarray(r * config.dim, end * config.dim)), r * config.dim)
    }
    return out
  }

  async function forward(hidden: Float32Array, positions: Int32Array): Promise<Float32Array> {
    if (!hops) {
      hops = await rebuild({ start: 0, end: config.nLayers }, [])
      o.onEvent?.({ type: 'route', hops: hops.map((l) => ({ peerId: l.hop.peerId, layers: l.hop.layers })) })
    }
    await applyFailures()
    timings = []
    let h: Float32Array = hidden.slice()
    for (let i = 0; i < hops.length;) {
      const live = hops[i]
      const started = performance.now()
      // a first position below what the hop holds rolls it back (a rejected draft): its history too
      if (historyEnd(live.history) > positions[0]) live.history = cutHistory(live.history, positions[0], config.dim)
      try {
        const out = await forwardRows(live.hop, positions, h)
        live.history.push({ positions: positions.slice(), hidden: h, output: out })
        await live.tracked?.record(positions, h, out)
        timings.push({ peerId: live.hop.peerId, layers: live.hop.layers, ms: performance.now() - started })
        h = out
        i++
      } catch (err) {
        if (++failovers > maxFailovers) throw err
        const noticed = performance.now()
        close(live)
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

  let keptRoute: KeptRoute | undefined
  let reuse = { positions: 0, hostsReused: 0, hostsReplayed: 0 }

  /**
   * Re-opens the kept route on the hosts' kept prefixes: each hop opens on its prefix id and sends
   * only the new positions; a host that lost its prefix (evicted, restarted, refused) gets a fresh
   * session that replays the inputs kept here (or a new route for its span when it is gone).
   */
  async function resume(tokens: readonly number[]): Promise<number> {
    closeAll()
    await o.local.reset()
    const saved = keptRoute
    keptRoute = undefined
    reuse = { positions: 0, hostsReused: 0, hostsReplayed: 0 }
    if (!saved) return 0
    let n = 0
    while (n < saved.tokens.length && n < tokens.length - 1 && saved.tokens[n] === tokens[n]) n++
    if (n === 0) return 0
    const opened: LiveHop[] = []
    try {
      for (const k of saved.hops) {
        const history = cutHistory(k.history, n, config.dim)
        if (!banned.has(k.peerId) && !trust?.reputation.revoked(k.peerId)) {
          try {
            const hop = await openHop(await o.connect(k.peerId), { peerId: k.peerId, modelId: o.modelId, layers: k.layers, maxLength: o.maxLength, dim: config.dim, dtype: o.dtype, timeoutMs: o.hopTimeoutMs, prefix: { id: k.prefixId, length: n } })
            const live: LiveHop = { hop, history, tracked: checker?.track({ peerId: k.peerId, layers: k.layers }) }
            // the checker sees the reused positions as this hop's work, so a check replays them on its verifier
            for (const e of history) if (e.output) await live.tracked?.record(e.positions, e.hidden, e.output)
            opened.push(live)
            reuse.hostsReused++
            continue
          } catch {
            // the prefix is gone or the host is: rebuild the span below
          }
        }
        opened.push(...await rebuild(k.layers, history))
        reuse.hostsReplayed++
      }
    } catch (err) {
      for (const h of opened) close(h)
      throw err
    }
    hops = opened
    o.onEvent?.({ type: 'route', hops: hops.map((l) => ({ peerId: l.hop.peerId, layers: l.hop.layers })) })
    reuse.positions = n
    return n
  }

  return {
    backend: o.local.backend,
    config,
    spec: { layers: { start: 0, end: config.nLayers }, embedding: true, head: true },
    embed: (tokens) => o.local.embed(tokens),
    forward,
    head: (hidden) => o.local.head(hidden),
    headRows: o.local.headRows && ((hidden) => o.local.headRows!(hidden)),
    async reset() {
      closeAll()
      keptRoute = undefined
      await o.local.reset()
    },
    resume,
    keep(tokens) {
      if (!hops || tokens.length === 0) return
      keptRoute = { tokens: tokens.slice(), hops: hops.map((h) => ({ peerId: h.hop.peerId, layers: h.hop.layers, prefixId: h.hop.prefixId, history: cutHistory(h.history, tokens.length, config.dim) })) }
      for (const h of hops) {
        h.tracked?.close()
        h.hop.close('kept for the next turn', { length: tokens.length })
      }
      hops = undefined
    },
    lastReuse: () => ({ ...reuse }),
    lastRoute: () => timings,
    checker,
    committed: checker && (() => checker.committed()),
    settle: checker && (async () => {
      await checker.settle()
      await applyFailures()
    }),
    peerGone(peerId) {
      for (const h of hops ?? []) if (h.hop.peerId === peerId) h.hop.close('the peer table dropped it (it left, went silent or is draining)')
    },
    close() {
      closeAll()
      checker?.close()
    },
  }
}
