/**
 * Spot checks, run by the chatting client (BOINC-style adaptive replication). For every hop of a
 * route it keeps the inputs it sent and a fingerprint of every row the hop returned. Each hop of a
 * session is drawn for checking with the probability the peer's reputation gives (1 for a
 * stranger, never under MIN_CHECK_RATE); a drawn hop's work is checked window by window
 * (`windowRows` positions), and tokens wait until the outputs they come from are checked. A check re-runs the hop's
 * span on an independent executor (another peer hosting those layers, or the client itself) over
 * the same inputs: one prefill-shaped pass over every position the executor has not seen yet,
 * after the fact, while generation goes on. The executor keeps its session between checks (its
 * KV cache needs the whole prefix), so a later check sends only the new positions. It is an
 * ordinary session to the executor, and the checked peer sees nothing at all: it cannot tell a
 * check from real work.
 *
 * A disagreement is never settled by trusting one peer: a third execution (the client's own when
 * it can run the span, else a third peer) decides who lied. The outcome goes to reputation and
 * the audit log, and a failed hop is reported to the swarm engine (`takeFailure`), which bans the
 * peer, re-routes and rewinds generation to the first position whose output was wrong.
 */
import { TabmeshError } from '../core/errors.ts'
import type { LayerRange } from '../core/vocabulary.ts'
import type { AuditLog } from './audit.ts'
import { createFingerprinter, FINGERPRINT_SIZE, rowDistance, type Fingerprinter } from './fingerprint.ts'
import type { Reputation } from './reputation.ts'
import { honestTolerance, type ExecutionKind, type WireDtype } from './tolerances.ts'

/** A session on some executor for one span: the checked hop's twin. */
export interface SpanRunner {
  /** The executing peer, or SELF for the client's own engine. */
  readonly peerId: string
  readonly kind: ExecutionKind
  /** Rows at most per forward call. */
  readonly maxRows: number
  forward(positions: Int32Array, hidden: Float32Array): Promise<Float32Array>
  close(): void
}

export const SELF = 'self'

export interface CheckerOptions {
  dim: number
  reputation: Reputation
  audit?: AuditLog
  /**
   * A fresh session for `span` on an executor that is none of `exclude`; `preferSelf` asks for the
   * client's own engine when it can run the span. Undefined when nobody can.
   */
  openRunner(span: LayerRange, exclude: ReadonlySet<string>, preferSelf: boolean): Promise<SpanRunner | undefined>
  /** What a peer runs on (from its advert), for the honest tolerance of a pair. */
  kindOf(peerId: string): ExecutionKind
  windowRows?: number // default 8
  /** Share of checks the client runs itself when it can (catches colluding replicas); default 0.1. */
  selfCheckShare?: number
  dtype?: WireDtype
  /** Uniform [0, 1): which windows are checked. Default crypto-random: a peer cannot predict it. */
  random?: () => number
  /** Secret projection seed (default crypto-random). */
  fingerprintSeed?: number
  /** Called for every peer found lying, checked or verifier (e.g. to lower its gossip score). */
  onCaught?(peerId: string): void
  /** Windows waiting for their check per hop before `record` waits for one (bounded lag). */
  maxPendingWindows?: number
  log?: (line: string) => void
}

export type CheckOutcome = 'passed' | 'failed' | 'verifier-lied' | 'inconclusive' | 'unverifiable'

export interface CheckEvent {
  peerId: string // the checked peer
  layers: LayerRange
  verifier: string // SELF or a peer id
  referee?: string
  positions: [number, number] // compared positions [from, to)
  distance: number // the largest row distance seen between checked and verifier
  tolerance: number
  outcome: CheckOutcome
  ms: number
}

/** A hop whose outputs are not to be trusted from `position` on: the swarm engine replaces it and rewinds. */
export interface HopFailure {
  hopId: number
  peerId: string
  layers: LayerRange
  position: number
  outcome: 'failed' | 'inconclusive'
  reason: string
}

export interface CheckStats {
  hopsDrawn: number // hops (peer x session) whose work is checked
  windows: number // of drawn hops
  checks: number
  passed: number
  failed: number
  verifierLied: number
  inconclusive: number
  unverifiable: number
  selfChecks: number
  rowsReexecuted: number
}

export interface TrackedHop {
  readonly id: number
  /** Rows a hop returned for `positions` given `inputs` (n, dim): kept as fingerprints; a position at or before the last one starts over there. */
  record(positions: Int32Array, inputs: Float32Array, outputs: Float32Array): Promise<void>
  /** Forgets positions >= `position` (a rewind). */
  truncate(position: number): void
  /** Positions below this are decided: checked and passed, or not drawn for a check. */
  decidedThrough(): number
  /** Stops checking this hop (replaced or closed). */
  close(): void
}

export interface Checker {
  track(hop: { peerId: string; layers: LayerRange }): TrackedHop
  /** Decides the last partial windows of every hop and waits for every check in flight. */
  settle(): Promise<void>
  /** A failed hop, oldest first, once; undefined when none. */
  takeFailure(): HopFailure | undefined
  /** Positions below this are decided on every tracked hop. */
  committed(): number
  stats(): CheckStats
  onCheck(listener: (e: CheckEvent) => void): () => void
  close(): void
}

interface Slot {
  runner: SpanRunner
  synced: number // positions below are in the runner's cache
  fps: Float32Array[] // [position] -> fingerprint of the runner's output, for positions below synced
  vouched: [number, number][] // position ranges it compared with the checked hop and agreed on (a colluder vouches for a lie)
}

interface Window {
  start: number
  end: number
  state: 'pending' | 'done' | 'failed' // a failed window is never decided: the hop is replaced and generation rewinds
}

export function createChecker(o: CheckerOptions): Checker {
  const dim = o.dim
  const W = o.windowRows ?? 8
  const random = o.random ?? (() => crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32)
  const fingerprinter: Fingerprinter = createFingerprinter(dim, o.fingerprintSeed ?? crypto.getRandomValues(new Uint32Array(1))[0])
  const selfShare = o.selfCheckShare ?? 0.1
  const maxPending = o.maxPendingWindows ?? 2
  const log = o.log ?? (() => {})
  const hops = new Map<number, ReturnType<typeof trackHop>>()
  const failures: HopFailure[] = []
  const listeners = new Set<(e: CheckEvent) => void>()
  const noVerifier = new Set<string>() // peers that lied or failed as verifiers: not asked again
  const stats: CheckStats = { hopsDrawn: 0, windows: 0, checks: 0, passed: 0, failed: 0, verifierLied: 0, inconclusive: 0, unverifiable: 0, selfChecks: 0, rowsReexecuted: 0 }
  let nextId = 1

  const audit = (kind: 'check' | 'verdict' | 'ban', data: Record<string, unknown>) => {
    o.audit?.append(kind, data).catch((err: Error) => log(`tabmesh: audit entry not written: ${err.message}`))
  }
  /** A peer found lying, as the checked one or as a verifier: reputation, and the caller's own measures. */
  const convict = (peer: string) => {
    o.reputation.failed(peer)
    try { o.onCaught?.(peer) } catch (err) { log(`tabmesh: onCaught failed: ${(err as Error).message}`) }
  }
  const emit = (e: CheckEvent) => {
    audit('check', { ...e, layers: [e.layers.start, e.layers.end], distance: Number.isFinite(e.distance) ? e.distance : String(e.distance) })
    for (const l of listeners) {
      try { l(e) } catch { /* the listener's problem */ }
    }
  }

  /** Runs `runner` over inputs [from, to) in chunks; fingerprints of the outputs, (to - from, size). */
  async function replay(runner: SpanRunner, inputs: Float32Array[], from: number, to: number): Promise<Float32Array> {
    const fps = new Float32Array((to - from) * FINGERPRINT_SIZE)
    for (let p = from; p < to;) {
      const n = Math.min(runner.maxRows, to - p)
      const hidden = new Float32Array(n * dim) // (n, dim)
      for (let i = 0; i < n; i++) hidden.set(inputs[p + i], i * dim)
      const positions = Int32Array.from({ length: n }, (_, i) => p + i)
      const out = await runner.forward(positions, hidden)
      if (out.length !== n * dim) throw new TabmeshError('hop-failed', `verifier ${runner.peerId} returned ${out.length} values for ${n} rows`)
      fps.set(fingerprinter.sketch(out), (p - from) * FINGERPRINT_SIZE)
      stats.rowsReexecuted += n
      p += n
    }
    return fps
  }

  function trackHop(peerId: string, layers: LayerRange) {
    const id = nextId++
    const inputs: Float32Array[] = [] // [position] -> input row (dim), a view of what the client sent
    const fps: Float32Array[] = [] // [position] -> fingerprint (size) of the row the hop returned
    const windows: Window[] = []
    let decided = 0 // positions below are decided
    // truncations (rollbacks of a rejected draft, rewinds) in order: a check that started before one
    // at a position below its end is void; one at or above its end leaves it standing
    const truncations: number[] = []
    const voided = (since: number, end: number) => truncations.slice(since).some((p) => p < end)
    // the hop's verifiers, each keeping its session between checks: a peer, and this client for its share of checks
    const verifiers: { self?: Slot; peer?: Slot } = {}
    let peerless = false // no other peer could verify this hop: the client does every check
    let selfless = false // the client cannot run this span: peers do every check
    // Whether this hop's work in this session is checked: drawn once, with the rate its peer's
    // reputation gives. A check needs the executor to run every earlier position anyway (the KV
    // cache), so a drawn hop has every window checked, and its tokens wait for their check; a hop
    // not drawn costs nothing and waits for nothing. (Drawing windows one by one would give out
    // tokens from undrawn windows that a later check can prove wrong, too late to take back.)
    const drawn = random() < o.reputation.checkRate(peerId)
    if (drawn) stats.hopsDrawn++
    let chain: Promise<void> = Promise.resolve()
    let closed = false

    const advanceDecided = () => {
      while (windows.length > 0 && windows[0].state === 'done') decided = windows.shift()!.end
    }
    const dropVerifier = (slot: Slot | undefined) => {
      if (!slot) return
      slot.runner.close()
      if (verifiers.self === slot) verifiers.self = undefined
      if (verifiers.peer === slot) verifiers.peer = undefined
    }

    /** Checks positions up to `end` (all positions not yet compared with the verifier); false when the hop is not to be trusted. */
    async function check(win: Window, myEra: number): Promise<boolean> {
      const started = performance.now()
      const end = win.end
      let v: Slot | undefined
      const event = (outcome: CheckOutcome, extra: Partial<CheckEvent>) => emit({
        peerId, layers, verifier: v?.runner.peerId ?? '', positions: [win.start, end], distance: 0, tolerance: 0, outcome, ms: performance.now() - started, ...extra,
      })
      // this check's executor: the client itself for its share of checks (drawn per check, so a
      // colluding peer verifier is contradicted sooner or later), else the hop's peer verifier
      const wantSelf = peerless || (!selfless && random() < selfShare)
      for (let attempt = 0; ; attempt++) {
        if (closed || voided(myEra, end)) return true
        v = wantSelf ? verifiers.self : verifiers.peer ?? (peerless ? verifiers.self : undefined)
        if (!v) {
          const runner = await o.openRunner(layers, new Set([peerId, ...noVerifier]), wantSelf).catch((err: Error) => {
            log(`tabmesh: no verifier for [${layers.start}, ${layers.end}): ${err.message}`)
            return undefined
          })
          if (!runner) {
            stats.unverifiable++
            event('unverifiable', {})
            return true
          }
          if (closed || voided(myEra, end)) {
            runner.close()
            return true
          }
          if (runner.peerId === SELF && !wantSelf) peerless = true
          if (runner.peerId !== SELF && wantSelf) selfless = true
          const key = runner.peerId === SELF ? 'self' : 'peer'
          if (verifiers[key]) runner.close()
          else verifiers[key] = { runner, synced: 0, fps: [], vouched: [] }
          v = verifiers[key]!
        }
        // compared: the window's positions and every position this verifier has not computed yet (a
        // new verifier compares from 0, so positions an earlier check could not verify are covered);
        // replayed: what it has not computed (its outputs of earlier positions are kept, so a window
        // is compared whole even when the verifier ran part of it for an earlier window)
        const from = Math.min(win.start, v.synced)
        try {
          if (v.synced < end) {
            const replayFrom = v.synced
            const fresh = await replay(v.runner, inputs, replayFrom, end)
            if (closed || voided(myEra, end)) return true
            v.fps.length = replayFrom
            for (let p = replayFrom; p < end; p++) v.fps.push(fresh.subarray((p - replayFrom) * FINGERPRINT_SIZE, (p - replayFrom + 1) * FINGERPRINT_SIZE))
            v.synced = end
          }
          const theirs = new Float32Array((end - from) * FINGERPRINT_SIZE)
          for (let p = from; p < end; p++) theirs.set(v.fps[p], (p - from) * FINGERPRINT_SIZE)
          if (v.runner.peerId === SELF) stats.selfChecks++
          stats.checks++
          const tolerance = honestTolerance(o.kindOf(peerId), v.runner.kind, o.dtype)
          let worst = 0
          let firstBad = -1
          for (let p = from; p < end; p++) {
            const d = rowDistance(fps[p], theirs.subarray((p - from) * FINGERPRINT_SIZE, (p - from + 1) * FINGERPRINT_SIZE), 0)
            if (d > worst) worst = d
            if (d > tolerance && firstBad < 0) firstBad = p
          }
          if (firstBad < 0) {
            v.vouched.push([from, end])
            stats.passed++
            o.reputation.passed(peerId)
            if (v.runner.peerId !== SELF) o.reputation.passed(v.runner.peerId)
            event('passed', { positions: [from, end], distance: worst, tolerance })
            return true
          }
          return await settleDisagreement(v, theirs, from, end, firstBad, worst, tolerance, started)
        } catch (err) {
          if (closed || voided(myEra, end)) return true // the positions it was replaying were rolled back meanwhile: nobody's fault
          // a verifier that fails, stalls or answers malformed is dropped; the next one takes over
          log(`tabmesh: verifier ${v.runner.peerId} failed: ${(err as Error).message}`)
          if (v.runner.peerId !== SELF) {
            noVerifier.add(v.runner.peerId)
            o.reputation.inconclusive(v.runner.peerId)
          }
          dropVerifier(v)
          if (attempt >= 2) {
            stats.unverifiable++
            event('unverifiable', { verifier: v.runner.peerId })
            return true
          }
        }
      }
    }

    /** The checked peer and the verifier disagree from `firstBad` on: a third execution decides. */
    async function settleDisagreement(slot: Slot, theirs: Float32Array, from: number, end: number, firstBad: number, worst: number, tolerance: number, started: number): Promise<boolean> {
      const v = slot.runner
      const myEra = truncations.length
      const guilty = (reason: string, referee?: string): false => {
        stats.failed++
        convict(peerId)
        failures.push({ hopId: id, peerId, layers, position: firstBad, outcome: 'failed', reason })
        emit({ peerId, layers, verifier: v.peerId, referee, positions: [from, end], distance: worst, tolerance, outcome: 'failed', ms: performance.now() - started })
        audit('verdict', { peerId, layers: [layers.start, layers.end], position: firstBad, outcome: 'failed', reason })
        dropVerifier(slot)
        return false
      }
      if (v.peerId === SELF) {
        // a peer verifier that passed these positions vouched for a lie: a colluder
        const vouched = verifiers.peer
        if (vouched && vouched.vouched.some(([a, b]) => a <= firstBad && firstBad < b)) {
          stats.verifierLied++
          convict(vouched.runner.peerId)
          noVerifier.add(vouched.runner.peerId)
          audit('verdict', { peerId: vouched.runner.peerId, role: 'verifier', layers: [layers.start, layers.end], outcome: 'failed', reason: `it vouched for ${peerId}'s output at position ${firstBad}, which the client's own execution contradicts` })
          dropVerifier(vouched)
        }
        return guilty(`its output at position ${firstBad} differs from the client's own execution (distance ${worst.toExponential(2)}, tolerance ${tolerance.toExponential(1)})`)
      }
      // a third execution over [0, end): the client's own when it can, else a third peer
      const referee = await o.openRunner(layers, new Set([peerId, v.peerId, ...noVerifier]), true).catch(() => undefined)
      let refereeFps: Float32Array | undefined
      if (referee) {
        try {
          refereeFps = await replay(referee, inputs, 0, end)
        } catch (err) {
          log(`tabmesh: referee ${referee.peerId} failed: ${(err as Error).message}`)
        } finally {
          referee.close()
        }
      }
      if (closed) return false
      if (voided(myEra, end)) return true // rolled back meanwhile: the disputed positions are gone
      const agrees = (a: Float32Array, aFrom: number, kind: ExecutionKind) => {
        for (let p = from; p < end; p++) {
          const tol = honestTolerance(referee!.kind, kind, o.dtype)
          if (rowDistance(a.subarray((p - aFrom) * FINGERPRINT_SIZE, (p - aFrom + 1) * FINGERPRINT_SIZE), refereeFps!.subarray(p * FINGERPRINT_SIZE, (p + 1) * FINGERPRINT_SIZE), 0) > tol) return false
        }
        return true
      }
      if (refereeFps) {
        const checkedAgrees = agrees(Float32Array.from(fps.slice(from, end).flatMap((f) => [...f])), from, o.kindOf(peerId))
        const verifierAgrees = agrees(theirs, from, v.kind)
        if (verifierAgrees && !checkedAgrees) {
          if (referee!.peerId !== SELF) o.reputation.passed(referee!.peerId)
          o.reputation.passed(v.peerId)
          return guilty(`its output at position ${firstBad} differs from two independent executions (${v.peerId} and ${referee!.peerId})`, referee!.peerId)
        }
        if (checkedAgrees && !verifierAgrees) {
          // the verifier lied: it goes, the checked hop's work stands
          stats.verifierLied++
          convict(v.peerId)
          o.reputation.passed(peerId)
          noVerifier.add(v.peerId)
          emit({ peerId, layers, verifier: v.peerId, referee: referee!.peerId, positions: [from, end], distance: worst, tolerance, outcome: 'verifier-lied', ms: performance.now() - started })
          audit('verdict', { peerId: v.peerId, role: 'verifier', layers: [layers.start, layers.end], outcome: 'failed', reason: `its re-execution disagrees with ${peerId} and ${referee!.peerId}` })
          dropVerifier(slot)
          return true
        }
        if (referee!.peerId === SELF) {
          // the client's own run agrees with neither: both lied
          stats.verifierLied++
          convict(v.peerId)
          noVerifier.add(v.peerId)
          return guilty(`its output at position ${firstBad} differs from the client's own execution; verifier ${v.peerId} lied too`, SELF)
        }
      }
      // no third opinion, or one that agrees with neither: nobody is punished, nothing is trusted
      stats.inconclusive++
      o.reputation.inconclusive(peerId)
      o.reputation.inconclusive(v.peerId)
      noVerifier.add(v.peerId)
      if (referee) noVerifier.add(referee.peerId)
      failures.push({ hopId: id, peerId, layers, position: firstBad, outcome: 'inconclusive', reason: `its output at position ${firstBad} disagrees with verifier ${v.peerId} and no third execution settled it` })
      emit({ peerId, layers, verifier: v.peerId, referee: referee?.peerId, positions: [from, end], distance: worst, tolerance, outcome: 'inconclusive', ms: performance.now() - started })
      dropVerifier(slot)
      return false
    }

    function decide(start: number, end: number): void {
      const win: Window = { start, end, state: 'pending' }
      windows.push(win)
      stats.windows++
      const myEra = truncations.length
      // a window whose check failed stays undecided: the hop is replaced and generation rewinds
      chain = chain.then(() => check(win, myEra)).catch((err: Error) => {
        log(`tabmesh: check failed: ${err.message}`)
        return true
      }).then((trusted) => {
        if (win.state !== 'pending') return // truncated meanwhile
        win.state = trusted ? 'done' : 'failed'
        advanceDecided()
      })
    }

    const tracked: TrackedHop = {
      id,
      async record(positions, rowsIn, rowsOut) {
        if (closed || !drawn) return // a hop not drawn keeps nothing and holds nothing back
        if (positions.length > 0 && positions[0] < inputs.length) tracked.truncate(positions[0])
        const outFps = fingerprinter.sketch(rowsOut)
        for (let i = 0; i < positions.length; i++) {
          const p = positions[i]
          if (p !== inputs.length) throw new TabmeshError('bad-argument', `recorded position ${p} after ${inputs.length}`)
          inputs.push(rowsIn.subarray(i * dim, (i + 1) * dim))
          fps.push(outFps.subarray(i * FINGERPRINT_SIZE, (i + 1) * FINGERPRINT_SIZE))
        }
        const lastStart = windows.length > 0 ? windows[windows.length - 1].end : decided
        for (let s = lastStart; s + W <= inputs.length; s += W) decide(s, s + W)
        // bounded lag: the client waits when checks fall behind (not once the hop has failed: it is about to be replaced)
        while (!closed && !windows.some((w) => w.state === 'failed') && windows.filter((w) => w.state === 'pending').length > maxPending) await chain
      },
      truncate(position) {
        if (position >= inputs.length) return
        truncations.push(position)
        inputs.length = position
        fps.length = position
        // windows wholly below the cut stand (their checks go on); the others are void and are drawn again
        const kept = windows.filter((w) => w.end <= position)
        for (const w of windows) if (w.end > position) w.state = 'done' // its check, if running, is ignored
        windows.length = 0
        windows.push(...kept)
        decided = Math.min(decided, position)
        for (const slot of [verifiers.self, verifiers.peer]) {
          if (slot && slot.synced > position) {
            slot.synced = position // its cache is overwritten from there
            slot.fps.length = position
          }
          if (slot) slot.vouched = slot.vouched.filter(([a]) => a < position).map(([a, b]) => [a, Math.min(b, position)])
        }
      },
      decidedThrough: () => (drawn ? decided : Infinity),
      close() {
        closed = true
        dropVerifier(verifiers.self)
        dropVerifier(verifiers.peer)
        hops.delete(id)
      },
    }
    return Object.assign(tracked, {
      /** Decides the last partial window and resolves when every check of this hop is done. */
      async settle() {
        const lastStart = windows.length > 0 ? windows[windows.length - 1].end : decided
        if (inputs.length > lastStart) decide(lastStart, inputs.length)
        await chain
      },
    })
  }

  return {
    track(hop) {
      const t = trackHop(hop.peerId, hop.layers)
      hops.set(t.id, t)
      return t
    },
    async settle() {
      await Promise.all([...hops.values()].map((h) => h.settle()))
    },
    takeFailure: () => failures.shift(),
    committed() {
      let c = Infinity
      for (const h of hops.values()) c = Math.min(c, h.decidedThrough())
      return c
    },
    stats: () => ({ ...stats }),
    onCheck(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    close() {
      for (const h of [...hops.values()]) h.close()
    },
  }
}
