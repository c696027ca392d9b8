/**
 * Typed errors shared by every layer. A `UserError` is something the person can fix
 * (a bad flag, a wrong file); the CLI prints its message without a stack trace.
 */
export type ErrorCode =
  | 'model-format' // a checkpoint whose bytes do not describe a valid model
  | 'model-mismatch' // two files that do not belong together (tokenizer vs model, range vs model)
  | 'model-not-found' // no models directory or no such model in it
  | 'tokenizer-format'
  | 'context-window' // prompt + requested tokens do not fit in seq_len
  | 'bad-argument' // a caller passed something out of range
  | 'fetch' // an HTTP resource could not be read
  | 'mesh-unreachable' // a mesh peer could not be reached directly
  | 'backend' // a compute backend failed to load, build or run (onnxruntime-web, WebGPU)
  | 'webgpu-unavailable' // no WebGPU adapter or device here (no navigator.gpu, blocked, or none fits)
  | 'device-lost' // the GPU device was lost (driver reset, destroyed); a new engine needs a new device
  | 'out-of-memory' // the GPU could not allocate the model's weights, cache or scratch buffers
  | 'protocol' // a peer sent bytes that break the wire format (malformed, oversized, wrong version)
  | 'refused' // a host declined a request it cannot serve (capacity, model, layer range)
  | 'prefix-unknown' // a host has no kept prefix by that id for this client (evicted, expired, another's, never existed)
  | 'no-route' // no chain of peers covers the model's layers
  | 'hop-failed' // a peer on the route failed, stalled or returned bad tensors
  | 'aborted' // the caller stopped the operation
  | 'rewind' // outputs from a position on were found wrong and are void: generate again from there (Rewind)

export class TabmeshError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'TabmeshError'
    this.code = code
  }
}

/**
 * An engine's outputs from `position` on were wrong (a spot check caught a peer that lied) and are
 * void; the engine has already repaired itself. The generation loop starts again at `position`:
 * tokens sampled from those outputs are dropped, the ones before are kept.
 */
export class Rewind extends TabmeshError {
  readonly position: number
  constructor(position: number, why: string) {
    super('rewind', `outputs from position ${position} on are void: ${why}`)
    this.position = position
  }
}

/**
 * `text` cut to `max` characters for an error message: a message names what was wrong without
 * echoing a hostile input (a 64 KB metadata key, a megabyte of prompt) back in full.
 */
export function clip(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}

/** clip(), as a JSON string literal (quotes, escapes): for text that may hold anything. */
export const quoted = (text: string, max = 80): string => JSON.stringify(clip(text, max))

/** Every TabmeshError is a user error: its message alone says what is wrong. */
export function isUserError(err: unknown): err is TabmeshError {
  return err instanceof TabmeshError
}
