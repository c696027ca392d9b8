import type { BackendName } from '../core/vocabulary.ts'
import type { ModelConfig, SliceSpec } from '../model/model.ts'

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
  /** Forgets every cached position (a new conversation). */
  reset(): Promise<void>
  /**
   * Engines whose outputs are checked after the fact (the swarm's spot checks): positions below
   * committed() are final; forward() or settle() may throw core's Rewind for a position at or
   * above it. Absent: every output is final at once.
   */
  committed?(): number
  /** Waits until every output so far is final (committed() covers them), or throws Rewind. */
  settle?(): Promise<void>
}
