/**
 * The tabmesh wire protocol, version 1: gossipsub topics, their message schemas with size limits,
 * and the topic validators that guard them.
 *
 * Everything a peer sends is untrusted. A message is accepted only if it is at most its topic's
 * byte limit, parses as JSON, matches its schema exactly (no unknown keys), carries `v: 1`, and
 * names as its author the peer that signed it. Anything else is rejected, so gossipsub lowers the
 * sender's score and does not forward it. Validators never throw.
 *
 * This module is plain TypeScript (no DOM, no Node APIs): the browser node and the relay share it.
 */
import { z } from 'zod'
import { TabmeshError } from '../core/errors.ts'
import { PROTOCOL_VERSION, type BackendName, type LayerRange } from '../core/vocabulary.ts'


/** Peer adverts: capabilities, hosted layers, load, health. Sent on join, on change and as heartbeats. */
export const ADVERT_TOPIC = '/tabmesh/1/adverts'
/** Task announcements, claims and awards. */
export const TASK_TOPIC = '/tabmesh/1/tasks'
/** Every gossipsub topic of protocol version 1; the relay subscribes to all of them. */
export const MESH_TOPICS = [ADVERT_TOPIC, TASK_TOPIC] as const
export type MeshTopic = (typeof MESH_TOPICS)[number]

/** Largest accepted message per topic, in bytes of the encoded (UTF-8 JSON) payload. */
export const MAX_MESSAGE_BYTES: Record<MeshTopic, number> = {
  [ADVERT_TOPIC]: 4096,
  [TASK_TOPIC]: 2048,
}

// ---- field schemas -----------------------------------------------------------------------------

// A libp2p peer id as text: base58btc (Qm..., 12D3...) or a CID string. Checked for shape and length
// here; that it equals the message signer is checked by the validator.
const peerIdText = z.string().min(32).max(96).regex(/^[1-9A-HJ-NP-Za-km-z]+$/)
const modelId = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/)
const taskId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/)
const count = z.number().int().min(0).max(1_000_000)
const timestamp = z.number().finite().min(0).max(2 ** 53)
const layerIndex = z.number().int().min(0).max(4096)

export const layerRangeSchema = z
  .strictObject({ start: layerIndex, end: layerIndex })
  .refine((r) => r.start < r.end, 'layers.start must be below layers.end')

/**
 * A backend as adverts name it on the wire: 'js' is the reference engine, 'none' a tab that computes
 * nothing (chat only). The code's own names are core's BackendName; advertBackend maps at this edge.
 */
export const backendSchema = z.enum(['webgpu', 'wasm', 'js', 'none'])
const ADVERT_BACKEND = { ref: 'js', wasm: 'wasm', webgpu: 'webgpu' } as const satisfies Record<BackendName, AdvertBackend>
/** The wire name of a backend this tab computes on. */
export const advertBackend = (backend: BackendName): AdvertBackend => ADVERT_BACKEND[backend]

export const capabilitiesSchema = z.strictObject({
  /** The backend the peer's probe found fastest ('none': it computes nothing, e.g. a chat-only tab). */
  backend: backendSchema,
  /** Adapter description from the probe, for humans; not used by selection. */
  adapter: z.string().max(128).optional(),
  /** Bytes of weights and KV cache the peer is willing to hold. */
  memoryBudgetBytes: z.number().int().min(0).max(2 ** 50),
  speed: z.strictObject({
    /** Measured matrix-vector throughput of the chosen backend. */
    gflops: z.number().finite().min(0).max(1e6),
    /** Measured throughput on the hosted slice: (1 token x 1 layer) forward steps per second. */
    layerTokensPerSecond: z.number().finite().min(0).max(1e9).optional(),
  }),
})

export const hostedSliceSchema = z.strictObject({
  modelId,
  layers: layerRangeSchema,
  embedding: z.boolean(),
  head: z.boolean(),
})

export const loadSchema = z.strictObject({ queueDepth: count, activeSessions: count })

export const selfHealthSchema = z.strictObject({
  /** 'draining': leaving soon, take no new work. 'degraded': working but failing some tasks. */
  status: z.enum(['ok', 'degraded', 'draining']),
  recentErrors: count,
})

export const advertSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal('advert'),
  peerId: peerIdText,
  /** Increases with every advert of one node, so receivers can drop reordered, older ones. */
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sentAt: timestamp,
  reason: z.enum(['join', 'change', 'heartbeat', 'leave']),
  /** Where to dial the peer (its /p2p-circuit/webrtc addresses). */
  addrs: z.array(z.string().min(1).max(400)).max(8),
  capabilities: capabilitiesSchema,
  hosted: z.array(hostedSliceSchema).max(4),
  load: loadSchema,
  health: selfHealthSchema,
})

export const taskKindSchema = z.enum(['host-layers', 'serve-generation'])

export const taskAnnounceSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal('task-announce'),
  taskId,
  announcer: peerIdText,
  kind: taskKindSchema,
  modelId,
  /** For 'host-layers': the layers to host. For 'serve-generation': the layers the worker must already host. */
  layers: layerRangeSchema.optional(),
  /** Claims are collected for this long after the announcement; then the announcer awards one. */
  claimWindowMs: z.number().int().min(20).max(10_000),
  minMemoryBytes: z.number().int().min(0).max(2 ** 50).optional(),
  sentAt: timestamp,
})

export const taskClaimSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal('task-claim'),
  taskId,
  announcer: peerIdText,
  claimer: peerIdText,
  /** Lower is better (a route cost in ms). Ties are broken by the lower peer id. */
  score: z.number().finite().min(0).max(1e12),
  sentAt: timestamp,
})

export const taskAwardSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  type: z.literal('task-award'),
  taskId,
  announcer: peerIdText,
  /** The winning claimer, or null when nobody claimed in time. */
  winner: peerIdText.nullable(),
  claims: count,
  sentAt: timestamp,
})

export const taskMessageSchema = z.discriminatedUnion('type', [taskAnnounceSchema, taskClaimSchema, taskAwardSchema])

export type AdvertBackend = z.infer<typeof backendSchema>
// the schema parses exactly core's LayerRange
layerRangeSchema satisfies z.ZodType<LayerRange>
export type Capabilities = z.infer<typeof capabilitiesSchema>
export type HostedSlice = z.infer<typeof hostedSliceSchema>
export type Load = z.infer<typeof loadSchema>
export type SelfHealth = z.infer<typeof selfHealthSchema>
export type Advert = z.infer<typeof advertSchema>
export type TaskKind = z.infer<typeof taskKindSchema>
export type TaskAnnounce = z.infer<typeof taskAnnounceSchema>
export type TaskClaim = z.infer<typeof taskClaimSchema>
export type TaskAward = z.infer<typeof taskAwardSchema>
export type TaskMessage = z.infer<typeof taskMessageSchema>

/** A message of a mesh topic. */
export type MeshMessage = Advert | TaskMessage

// ---- encoding ----------------------------------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Why a message was refused; the first of each (peer, reason) is logged. */
export type RejectReason = 'oversized' | 'not-json' | 'wrong-version' | 'malformed' | 'unsigned' | 'spoofed' | 'rate-limited' | 'unknown-topic' | 'internal'

export type DecodeResult<T> = { ok: true; message: T } | { ok: false; reason: RejectReason; detail: string }

/** Encodes a message for `topic`; throws TabmeshError('bad-argument') if the receivers' validators would reject it. */
export function encodeMessage(topic: MeshTopic, message: MeshMessage): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(message))
  const check = decodeMessage(topic, bytes)
  if (!check.ok) throw new TabmeshError('bad-argument', `refusing to send an invalid ${topic} ${message.type} message (${check.reason}): ${check.detail}`)
  return bytes
}

/** Parses and checks one payload of `topic`. Never throws. */
export function decodeMessage(topic: string, data: Uint8Array): DecodeResult<MeshMessage> {
  try {
    // own keys only: a topic named "toString" or "constructor" is no topic of ours
    const limit = Object.hasOwn(MAX_MESSAGE_BYTES, topic) ? MAX_MESSAGE_BYTES[topic as MeshTopic] : undefined
    if (limit === undefined) return { ok: false, reason: 'unknown-topic', detail: `no topic ${JSON.stringify(topic.slice(0, 80))}` }
    if (data.byteLength > limit) return { ok: false, reason: 'oversized', detail: `${data.byteLength} bytes > ${limit}` }
    let json: unknown
    try {
      json = JSON.parse(decoder.decode(data))
    } catch {
      return { ok: false, reason: 'not-json', detail: `${data.byteLength} bytes that are not UTF-8 JSON` }
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, reason: 'malformed', detail: 'not a JSON object' }
    const version = (json as { v?: unknown }).v
    if (version !== PROTOCOL_VERSION) return { ok: false, reason: 'wrong-version', detail: `v=${JSON.stringify(version)?.slice(0, 20)}` }
    const parsed = topic === ADVERT_TOPIC ? advertSchema.safeParse(json) : taskMessageSchema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      return { ok: false, reason: 'malformed', detail: issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}`.slice(0, 160) : 'schema mismatch' }
    }
    return { ok: true, message: parsed.data }
  } catch (err) {
    return { ok: false, reason: 'internal', detail: String(err).slice(0, 160) }
  }
}

/** The peer a message claims as its author; it must be the peer that signed the gossipsub message. */
export function messageAuthor(message: MeshMessage): string {
  switch (message.type) {
    case 'advert':
      return message.peerId
    case 'task-claim':
      return message.claimer
    default:
      return message.announcer
  }
}
