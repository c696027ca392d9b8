/**
 * Turns discovered peers into direct WebRTC connections.
 *
 * For each pair one side dials (`dialsFirst`) so the two do not race each other; the other side
 * dials too if no connection appears within `fallbackAfterMs`. Each attempt is bounded by
 * `attemptTimeoutMs`, because about 10% of first WebRTC dials in @libp2p/webrtc 6.0 hang for ~6 s
 * (see LAB.md), and retried with exponential backoff for as long as the peer is wanted. At most
 * `maxConcurrent` dials run at once, so a burst of adverts cannot start a dial storm, and none
 * starts while `canConnectMore()` says the node has enough direct peers.
 */
import type { Connection } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { retryWaitMs } from './relay-link.ts'

export interface DialerOptions {
  selfId: string
  /** Opens a connection to `addr`; must honour the abort signal. */
  dial(addr: Multiaddr, options: { signal: AbortSignal }): Promise<Connection>
  /** Whether a direct (non-relayed) connection to the peer is open. */
  hasDirect(peerId: string): boolean
  /** Whether another direct connection may be opened, with `pendingDials` already under way (a cap keeps big swarms from full meshes). */
  canConnectMore?(pendingDials: number): boolean
  /** Timeout of the first attempt (default 3500 ms, or 3x the median recent dial if longer); each retry allows 1.5 times more, up to 10 s. */
  attemptTimeoutMs?: number
  firstBackoffMs?: number // default 250
  maxBackoffMs?: number // default 4000
  fallbackAfterMs?: number // default 8000
  maxConcurrent?: number // default 2: WebRTC handshakes are CPU-bound, and parallel ones slow each other
  /** Failed attempts after which a peer counts as unreachable (default 4): `onUnreachable` is told, and the next try waits `unreachableRetryMs` (default 60 s). */
  maxAttempts?: number
  unreachableRetryMs?: number
  onUnreachable?(peerId: string, why: string): void
  log?: (line: string) => void
  now?: () => number
}

export interface DialStats {
  attempts: number
  connected: number
  timeouts: number
  failures: number
  /** Duration of each successful attempt, ms. */
  connectMs: number[]
  /** The most recent distinct failure messages (at most 10). */
  recentErrors: string[]
  /** Times a peer was given up on after maxAttempts failed dials (retried after a long wait). */
  gaveUp: number
}

export interface Dialer {
  /** Tells the dialer a peer exists at `addrs` (from its advert); cheap to call on every advert. */
  discovered(peerId: string, addrs: readonly string[]): void
  /** Stops wanting a peer (it left the table). */
  forget(peerId: string): void
  /** Re-checks the queue, e.g. after a connection closed and made room. */
  poke(): void
  stats(): DialStats
  stop(): void
}

interface Want {
  peerId: string
  addrs: string[]
  firstSeen: number
  attempt: number
  nextAt: number
  inFlight: boolean
  timer?: ReturnType<typeof setTimeout>
}

/**
 * Which side of a pair dials: the same answer on both sides, and each peer dials about half of
 * its peers (always "the lower id" would make the lowest peer dial everyone, one after another).
 */
export function dialsFirst(self: string, other: string): boolean {
  const flip = (fnv1a(self) ^ fnv1a(other)) & 1
  return self < other !== (flip === 1)
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** The /p2p-circuit/webrtc addresses among a peer's advertised ones. */
export function webrtcAddrs(peerId: string, addrs: readonly string[]): string[] {
  return addrs.filter((a) => a.includes('/p2p-circuit/webrtc') && a.endsWith(`/p2p/${peerId}`))
}

export function createDialer(options: DialerOptions): Dialer {
  // a good dial takes 0.3-0.5 s on an idle machine and several seconds on a starved one (LAB.md)
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 3500
  const firstBackoffMs = options.firstBackoffMs ?? 250
  const maxBackoffMs = options.maxBackoffMs ?? 4000
  const fallbackAfterMs = options.fallbackAfterMs ?? 8000
  const maxConcurrent = options.maxConcurrent ?? 2
  const maxAttempts = options.maxAttempts ?? 4
  const unreachableRetryMs = options.unreachableRetryMs ?? 60_000
  const log = options.log ?? (() => {})
  const now = options.now ?? (() => Date.now())
  const wants = new Map<string, Want>()
  // attempts made on peers that left the table and may come back: their timeouts keep escalating
  const pastAttempts = new Map<string, number>()
  const stats: DialStats = { attempts: 0, connected: 0, timeouts: 0, failures: 0, connectMs: [], recentErrors: [], gaveUp: 0 }
  let running = 0
  let stopped = false

  const schedule = (want: Want, at: number) => {
    if (want.timer) clearTimeout(want.timer)
    want.nextAt = at
    want.timer = setTimeout(() => {
      want.timer = undefined
      // timers may fire a little before the wall clock says they should; the want is due now
      want.nextAt = Math.min(want.nextAt, now())
      pump()
    }, Math.max(0, at - now()))
  }

  const pump = () => {
    if (stopped) return
    const t = now()
    for (const want of wants.values()) {
      if (running >= maxConcurrent) return
      if (options.canConnectMore && !options.canConnectMore(running)) return
      if (want.inFlight) continue
      if (want.nextAt > t) {
        if (!want.timer) schedule(want, want.nextAt)
        continue
      }
      if (options.hasDirect(want.peerId)) continue
      // an advert sent before the peer's relay reservation has no dialable address yet: wait for the next
      if (webrtcAddrs(want.peerId, want.addrs).length === 0) continue
      void attempt(want)
    }
  }

  const attempt = async (want: Want) => {
    const addrs = webrtcAddrs(want.peerId, want.addrs)
    const addr = addrs[want.attempt % addrs.length]
    want.inFlight = true
    running++
    stats.attempts++
    const started = now()
    const controller = new AbortController()
    // a hung dial (LAB.md) is cut early; a merely slow one (a busy CPU) gets longer on each retry,
    // and when dials here are slow in general the first attempt already allows 3x the usual time
    const recent = stats.connectMs.slice(-10).sort((x, y) => x - y)
    const typical = recent.length > 0 ? recent[recent.length >> 1] : 0
    const timeoutMs = Math.min(10_000, Math.max(attemptTimeoutMs, 3 * typical) * 1.5 ** want.attempt)
    const timeout = setTimeout(() => controller.abort(new Error(`dial timed out after ${Math.round(timeoutMs)} ms`)), timeoutMs)
    try {
      await options.dial(multiaddr(addr), { signal: controller.signal })
      stats.connected++
      stats.connectMs.push(now() - started)
      wants.delete(want.peerId)
    } catch (err) {
      if (controller.signal.aborted) stats.timeouts++
      else stats.failures++
      const message = String((err as Error).message).slice(0, 200)
      if (!stats.recentErrors.includes(message)) {
        stats.recentErrors.push(message)
        if (stats.recentErrors.length > 10) stats.recentErrors.shift()
      }
      if (want.attempt === 0) log(`tabmesh: dial to ${want.peerId} failed (${(err as Error).message}); retrying with backoff`)
      want.attempt++
      if (wants.get(want.peerId) === want) {
        if (want.attempt >= maxAttempts) {
          // bounded retries: a peer behind a NAT we cannot cross stays out of routes for a while
          stats.gaveUp++
          log(`tabmesh: peer ${want.peerId} unreachable after ${want.attempt} dials (${message}); next try in ${Math.round(unreachableRetryMs / 1000)} s`)
          options.onUnreachable?.(want.peerId, message)
          want.attempt = maxAttempts - 1
          schedule(want, now() + unreachableRetryMs)
        } else {
          schedule(want, now() + retryWaitMs(want.attempt, firstBackoffMs, maxBackoffMs, 0.5)) // 0.5: no jitter
        }
      }
    } finally {
      clearTimeout(timeout)
      want.inFlight = false
      running--
      pump()
    }
  }

  return {
    discovered(peerId, addrs) {
      if (stopped || peerId === options.selfId) return
      if (options.hasDirect(peerId)) {
        const stale = wants.get(peerId)
        if (stale && !stale.inFlight) {
          if (stale.timer) clearTimeout(stale.timer)
          wants.delete(peerId)
        }
        return
      }
      const existing = wants.get(peerId)
      if (existing) {
        const hadNone = webrtcAddrs(peerId, existing.addrs).length === 0
        existing.addrs = [...addrs]
        if (hadNone) pump()
        return
      }
      const t = now()
      // one side dials now; the other only if nothing has connected after a while
      const start = dialsFirst(options.selfId, peerId) ? t : t + fallbackAfterMs
      const attempt = pastAttempts.get(peerId) ?? 0
      pastAttempts.delete(peerId)
      const want: Want = { peerId, addrs: [...addrs], firstSeen: t, attempt, nextAt: start, inFlight: false }
      wants.set(peerId, want)
      schedule(want, start)
    },
    forget(peerId) {
      const want = wants.get(peerId)
      if (!want) return
      if (want.timer) clearTimeout(want.timer)
      wants.delete(peerId)
      if (want.attempt > 0) {
        if (pastAttempts.size >= 256) pastAttempts.delete(pastAttempts.keys().next().value as string)
        pastAttempts.set(peerId, want.attempt)
      }
    },
    poke: () => pump(),
    stats: () => ({ ...stats, connectMs: [...stats.connectMs], recentErrors: [...stats.recentErrors] }),
    stop() {
      stopped = true
      for (const want of wants.values()) if (want.timer) clearTimeout(want.timer)
      wants.clear()
    },
  }
}
