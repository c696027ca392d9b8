import { z } from 'zod'
import { TabmeshError } from '../core/errors.ts'

/**
 * The postMessage protocol between a host page (embed.js, or the npm package's connect()) and the
 * tabmesh iframe. The iframe is the trust boundary: it parses every message from its parent with
 * these schemas after a bounded size check, and answers anything else with an error message.
 * Nothing the host sends can start contributing; that takes a click inside the iframe.
 */
export const PROTOCOL = 'tabmesh-embed/1'

/** The largest host message the iframe reads (its strings, keys and numbers, counted as JSON would). */
export const MAX_MESSAGE_BYTES = 256 * 1024
const MAX_DEPTH = 8
const ID = z.string().min(1).max(64)

const message = z.strictObject({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string().max(64 * 1024),
  name: z.string().max(64).optional(),
})

export const chatRequestSchema = z.strictObject({
  messages: z.array(message).min(1).max(256),
  stream: z.boolean().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().min(0).max(1 << 20).nullish(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
  model: z.string().max(256).nullish(),
})
export type ChatRequest = z.infer<typeof chatRequestSchema>

export const hostMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ protocol: z.literal(PROTOCOL), type: z.literal('hello'), id: ID }),
  z.strictObject({ protocol: z.literal(PROTOCOL), type: z.literal('chat'), id: ID, request: chatRequestSchema }),
  z.strictObject({ protocol: z.literal(PROTOCOL), type: z.literal('interrupt'), id: ID }),
  z.strictObject({
    protocol: z.literal(PROTOCOL), type: z.literal('contribute'), id: ID, enabled: z.boolean(),
    memoryBudget: z.number().int().min(1 << 20).max(64 * 2 ** 30).optional(),
  }),
  z.strictObject({ protocol: z.literal(PROTOCOL), type: z.literal('status'), id: ID }),
])
export type HostMessage = z.infer<typeof hostMessageSchema>

/** Where contributing stands; only a click inside the widget moves it from 'off'/'awaiting-click' to 'starting'. */
export type ContributionState = 'off' | 'awaiting-click' | 'starting' | 'contributing' | 'stopping' | 'failed'

export interface ContributionStatus {
  state: ContributionState
  peerId?: string
  modelId?: string
  layers?: { start: number; end: number }
  error?: string
}

export interface FrameStatus {
  model: string
  engine: 'tabmesh' | 'webllm'
  joined: boolean // this tab's mesh node exists
  contribution: ContributionStatus
}

/** What the iframe sends its host (trusted by the host only if it comes from the tabmesh origin). */
export type FrameMessage =
  | { protocol: typeof PROTOCOL; type: 'ready' }
  | { protocol: typeof PROTOCOL; type: 'result'; id: string; value: unknown }
  | { protocol: typeof PROTOCOL; type: 'chunk'; id: string; chunk: unknown }
  | { protocol: typeof PROTOCOL; type: 'error'; id: string | null; code: string; message: string }
  | { protocol: typeof PROTOCOL; type: 'contribution'; status: ContributionStatus }
  | { protocol: typeof PROTOCOL; type: 'progress'; progress: number; text: string }

/**
 * The JSON size of `value`, or Infinity as soon as it passes `limit` (or nests deeper than
 * MAX_DEPTH, or holds something JSON cannot carry), without serializing a hostile message.
 */
export function boundedSize(value: unknown, limit: number, depth = 0): number {
  if (depth > MAX_DEPTH) return Infinity
  switch (typeof value) {
    case 'string': return value.length + 2
    case 'number': case 'boolean': return 8
    case 'undefined': return 4
    case 'object': {
      if (value === null) return 4
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Blob) return Infinity
      let size = 2
      if (Array.isArray(value)) {
        // by index, holes included (JSON writes them as null): a sparse array's length can be 2^32 - 1
        if (value.length > limit) return Infinity
        for (let i = 0; i < value.length; i++) {
          size += 3 + boundedSize(value[i], limit - size, depth + 1)
          if (size > limit) return Infinity
        }
        return size
      }
      for (const [k, v] of Object.entries(value)) {
        size += k.length + 3 + boundedSize(v, limit - size, depth + 1)
        if (size > limit) return Infinity
      }
      return size
    }
    default: return Infinity // functions, symbols, bigints cannot be sent as protocol messages
  }
}

/** Parses one message from the host; a clear TabmeshError('protocol' | 'bad-argument') otherwise. */
export function parseHostMessage(data: unknown): HostMessage {
  if (boundedSize(data, MAX_MESSAGE_BYTES) > MAX_MESSAGE_BYTES) {
    throw new TabmeshError('protocol', `message refused: larger than ${MAX_MESSAGE_BYTES} bytes, nested deeper than ${MAX_DEPTH}, or holding binary data`)
  }
  if (typeof data !== 'object' || data === null || (data as { protocol?: unknown }).protocol !== PROTOCOL) {
    throw new TabmeshError('protocol', `message refused: not a ${PROTOCOL} message`)
  }
  const parsed = hostMessageSchema.safeParse(data)
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ')
    throw new TabmeshError('bad-argument', `message refused: ${issues}`)
  }
  return parsed.data
}

/** The id of a refused message, when it has a usable one, so the host can match the error to its call. */
export function messageId(data: unknown): string | null {
  const id = typeof data === 'object' && data !== null ? (data as { id?: unknown }).id : undefined
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : null
}
