/**
 * Gossipsub topic validators for the tabmesh topics, shared by the browser node and the relay.
 *
 * Reject (the sender's gossipsub score drops; the message is neither delivered nor forwarded):
 * oversized, not JSON, wrong version, schema mismatch, unsigned, or authored by someone other than
 * the signer. A flood beyond the per-peer rate is rejected when the flooder sent it to us itself and
 * ignored when an honest peer merely forwarded it (so forwarders are not punished for a flooder).
 * Each (peer, reason) is logged once; all are counted.
 */
import { TopicValidatorResult, type Message, type TopicValidatorFn } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { ADVERT_TOPIC, decodeMessage, MESH_TOPICS, messageAuthor, TASK_TOPIC, type MeshTopic, type RejectReason } from './protocol.ts'
import { createRateLimiter, type RateLimiter, type RateLimitOptions } from './rate-limit.ts'

export interface Rejection {
  topic: string
  /** The peer that signed the message (undefined if unsigned). */
  from: string | undefined
  /** The peer that sent it to us. */
  propagationSource: string
  reason: RejectReason
  detail: string
  result: 'reject' | 'ignore'
}

export interface ValidationStats {
  accepted: number
  rejected: number
  ignored: number
  byReason: Partial<Record<RejectReason, number>>
}

export interface MeshValidatorOptions {
  /** Per-peer limits per topic (defaults: adverts 8/s burst 16, tasks 20/s burst 40). */
  rateLimits?: Partial<Record<MeshTopic, RateLimitOptions>>
  /** Called for the first rejection of each (peer, reason); default console.warn. */
  log?: (line: string) => void
  /** Called for every rejection, e.g. for lab counters. */
  onReject?: (rejection: Rejection) => void
  /** Distinct (peer, reason) pairs remembered for log-once (default 1024). */
  maxLoggedKeys?: number
}

export interface MeshValidators {
  /** One validator per mesh topic; install with `pubsub.topicValidators.set(topic, fn)`. */
  validators: Map<MeshTopic, TopicValidatorFn>
  stats(): ValidationStats
}

const DEFAULT_RATE_LIMITS: Record<MeshTopic, RateLimitOptions> = {
  // an honest node sends at most 5 adverts/s (node.ts MIN_ADVERT_GAP_MS); leave headroom for jitter
  [ADVERT_TOPIC]: { ratePerSecond: 8, burst: 16 },
  [TASK_TOPIC]: { ratePerSecond: 20, burst: 40 },
}

export function createMeshValidators(options: MeshValidatorOptions = {}): MeshValidators {
  const log = options.log ?? ((line: string) => console.warn(line))
  const maxLoggedKeys = options.maxLoggedKeys ?? 1024
  const logged = new Set<string>()
  const stats: ValidationStats = { accepted: 0, rejected: 0, ignored: 0, byReason: {} }
  const limiters = new Map<MeshTopic, RateLimiter>()
  for (const topic of MESH_TOPICS) limiters.set(topic, createRateLimiter({ ...DEFAULT_RATE_LIMITS[topic], ...options.rateLimits?.[topic] }))

  const refuse = (rejection: Rejection): TopicValidatorResult => {
    stats[rejection.result === 'reject' ? 'rejected' : 'ignored']++
    stats.byReason[rejection.reason] = (stats.byReason[rejection.reason] ?? 0) + 1
    const key = `${rejection.from ?? rejection.propagationSource}|${rejection.topic}|${rejection.reason}`
    if (!logged.has(key)) {
      if (logged.size >= maxLoggedKeys) logged.delete(logged.values().next().value as string)
      logged.add(key)
      log(`tabmesh: ${rejection.result} ${rejection.topic} message from ${rejection.from ?? 'unsigned'} via ${rejection.propagationSource}: ${rejection.reason} (${rejection.detail}); further ones are not logged`)
    }
    try {
      options.onReject?.(rejection)
    } catch {
      // a faulty observer must not turn a rejection into a throw
    }
    return rejection.result === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  const validatorFor = (topic: MeshTopic): TopicValidatorFn => (propagationSource: PeerId, msg: Message) => {
    const source = safeString(propagationSource)
    try {
      if (msg.type !== 'signed') return refuse({ topic, from: undefined, propagationSource: source, reason: 'unsigned', detail: 'unsigned message', result: 'reject' })
      const from = msg.from.toString()
      const decoded = decodeMessage(topic, msg.data)
      if (!decoded.ok) return refuse({ topic, from, propagationSource: source, reason: decoded.reason, detail: decoded.detail, result: 'reject' })
      const author = messageAuthor(decoded.message)
      if (author !== from) return refuse({ topic, from, propagationSource: source, reason: 'spoofed', detail: `claims author ${author.slice(0, 60)}`, result: 'reject' })
      if (!limiters.get(topic)!.take(from)) {
        return refuse({ topic, from, propagationSource: source, reason: 'rate-limited', detail: 'over the per-peer rate', result: from === source ? 'reject' : 'ignore' })
      }
      stats.accepted++
      return TopicValidatorResult.Accept
    } catch (err) {
      return refuse({ topic, from: undefined, propagationSource: source, reason: 'internal', detail: String(err).slice(0, 160), result: 'reject' })
    }
  }

  const validators = new Map<MeshTopic, TopicValidatorFn>()
  for (const topic of MESH_TOPICS) validators.set(topic, validatorFor(topic))
  return { validators, stats: () => structuredClone(stats) }
}

function safeString(peer: PeerId): string {
  try {
    return peer.toString()
  } catch {
    return 'unknown'
  }
}
