import type { BackendName, LayerRange } from '../core/vocabulary.ts'
import type { ModelConfig, SliceSpec } from '../model/model.ts'
import { TabmeshError } from '../core/errors.ts'

/**
 * The engine interface, the same in-process and across the worker boundary (comlink makes every
 * call async, so every method is). One engine holds one slice of a model and one KV cache.
 * A sharded run is a composition: embed on the client, forward on each contributor's
 * layer range in turn, head on the client.
 *
 * Returned arrays may be views of the engine's own buffers: valid until the next call.
 */
export interface Engine {
  readonly backend: BackendName
  readonly config: ModelConfig
  readonly spec: SliceSpec
  /** tokens (n) -> hidden states (n, dim). Needs spec.embedding. */
  embed(tokens: Int32Array): Promise<Float32Array>
  /**
   * Runs layers [spec.layers.start, spec.layers.end) on hidden (n, dim) at positions (n),
   * writing keys and values into the KV cache at those positions; returns hidden (n, dim).
   */
  forward(hidden: Float32Array, positions: Int32Array): Promise<Float32Array>
  /** Final norm and classifier on the last row of hidden (n, dim) -> logits (vocab). Needs spec.head. */
  head(hidden: Float32Array): Promise<Float32Array>
  /** The head on every row of hidden (n, dim) -> logits (n, vocab), in one call (a verified draft). Optional: head() per row does the same. */
  headRows?(hidden: Float32Array): Promise<Float32Array>
  /** Forgets every cached position (a new conversation). */
  reset(): Promise<void>
  /**
   * Instead of reset(): starts a generation whose positions begin with `tokens`, and says how many
   * leading positions (at most tokens.length - 1) the engine's KV caches already hold from one it
   * kept (keep()): those are not forwarded again. Absent: nothing is kept between generations.
   */
  resume?(tokens: readonly number[]): Promise<number>
  /** Positions [0, tokens.length) were forwarded with `tokens` and are final: keep them for a later resume(). */
  keep?(tokens: readonly number[]): void
  /**
   * Engines whose outputs are checked after the fact (the swarm's spot checks): positions below
   * committed() are final; forward() or settle() may throw core's Rewind for a position at or
   * above it. Absent: every output is final at once.
   */
  committed?(): number
  /** Waits until every output so far is final (committed() covers them), or throws Rewind. */
  settle?(): Promise<void>
}

/**
 * A host's engine: one set of weights serving many sessions, each with its own KV cache (a numbered
 * slot). forwardBatch runs the rows of every session that has work in one pass, so each weight
 * matrix is read once for all of them; attention stays per session. Slots are opened and closed by
 * the host; a slot holds whatever positions were written to it until it is closed (a prefix kept
 * for the next turn is a slot left open). Rows never read a position above their own, so a
 * session rolls back (a rejected speculative draft) by writing those positions again.
 */
export interface BatchEngine {
  readonly backend: BackendName
  readonly config: ModelConfig
  /** The layers held; embedding and head are not a batch engine's. */
  readonly layers: LayerRange
  /** Rows per forwardBatch call. */
  readonly maxRows: number
  /** Bytes one slot of `maxLength` positions takes (keys and values of every held layer). */
  cacheBytes(maxLength: number): number
  /** A new KV cache slot for up to `maxLength` positions; throws 'refused' when none is free. */
  openCache(maxLength: number): Promise<number>
  closeCache(slot: number): Promise<void>
  /** Copies positions [0, length) of every layer of slot `from` into slot `to` (a kept prefix reused). */
  copyCache(from: number, to: number, length: number): Promise<void>
  /**
   * Runs `range` (inside `layers`; default all of them) on hidden (n, dim): row r is at
   * positions[r] of slot caches[r]. Rows of one slot come in rising positions and see the
   * keys of the rows of that slot before them. Returns hidden (n, dim), a view valid until the next call.
   */
  forwardBatch(hidden: Float32Array, caches: Int32Array, positions: Int32Array, range?: LayerRange): Promise<Float32Array>
  release?(): Promise<void>
}

/** Checks a forwardBatch call's shape and returns the range to run (shared by every backend). */
export function checkBatch(e: Pick<BatchEngine, 'config' | 'layers' | 'maxRows'>, hidden: Float32Array, caches: Int32Array, positions: Int32Array, range: LayerRange | undefined, slotLength: (slot: number) => number | undefined): LayerRange {
  const n = positions.length
  const c = e.config
  if (!Number.isInteger(n) || n < 1 || n > e.maxRows) throw new TabmeshError('bad-argument', `forwardBatch: ${n} rows; between 1 and ${e.maxRows} per call`)
  if (caches.length !== n || hidden.length !== n * c.dim) throw new TabmeshError('bad-argument', `forwardBatch: ${caches.length} slots and ${hidden.length} values for ${n} rows of ${c.dim}`)
  const r = range ?? e.layers
  if (!(r.start >= e.layers.start && r.end <= e.layers.end && r.start <= r.end)) throw new TabmeshError('bad-argument', `layers [${r.start}, ${r.end}) are not inside the held [${e.layers.start}, ${e.layers.end})`)
  const last = new Map<number, number>()
  for (let i = 0; i < n; i++) {
    const length = slotLength(caches[i])
    if (length === undefined) throw new TabmeshError('bad-argument', `forwardBatch: KV cache slot ${caches[i]} is not open`)
    const pos = positions[i]
    if (!(pos >= 0 && pos < length)) throw new TabmeshError('context-window', `position ${pos} is outside slot ${caches[i]}'s 0..${length - 1}`)
    const before = last.get(caches[i])
    if (before !== undefined && pos <= before) throw new TabmeshError('bad-argument', `forwardBatch: slot ${caches[i]}'s positions go ${before} then ${pos}; they must rise`)
    last.set(caches[i], pos)
  }
  return r
}
