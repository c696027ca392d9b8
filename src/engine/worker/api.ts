import { type BackendName, type LayerRange } from '../../core/vocabulary.ts'
import type { ModelConfig, SliceSpec } from '../../model/model.ts'
import type { LoadProgress } from '../../model/source/progress.ts'
import type { ModelEntry } from '../../model/source/registry.ts'
import type { ProbeResult } from '../probe.ts'

/** The messages across the engine worker boundary: what the page asks for and what comes back. */
export interface LoadRequest {
  baseUrl: string // where the registry is (GET <baseUrl>models)
  entry: ModelEntry
  spec?: SliceSpec // default: the whole model
  backend: BackendName | 'auto'
  cache?: boolean // keep downloaded ranges in Cache Storage (default true)
  verify?: boolean // check parts against the registry's sha256 (default true)
}

export interface LoadedModel {
  backend: BackendName
  config: ModelConfig
  spec: SliceSpec
  bytesDownloaded: number
  bytesFromCache: number
  weightBytes: number // weights held in the worker (quantized matrices at their block size)
  probe?: ProbeResult
}

/** What the engine worker exposes: loading, the probe, and Engine calls per session. */
export interface EngineWorkerApi {
  probe(): Promise<ProbeResult>
  load(request: LoadRequest, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel>
  open(spec?: SliceSpec): Promise<number>
  embed(session: number, tokens: Int32Array): Promise<Float32Array>
  forward(session: number, hidden: Float32Array, positions: Int32Array): Promise<Float32Array>
  head(session: number, hidden: Float32Array): Promise<Float32Array>
  headRows(session: number, hidden: Float32Array): Promise<Float32Array>
  /** Up to k greedy tokens after `tokens` from this session's model (a draft model's session): one call, however many steps. */
  draft(session: number, tokens: Int32Array, k: number): Promise<Int32Array>
  reset(session: number): Promise<void>
  close(session: number): Promise<void>
  /** The batch engine over the loaded layers (made on first use): KV cache slots and batched forward. */
  batchInfo(): Promise<{ maxRows: number; cacheBytesPerPosition: number }>
  openCache(maxLength: number): Promise<number>
  closeCache(slot: number): Promise<void>
  copyCache(from: number, to: number, length: number): Promise<void>
  forwardBatch(hidden: Float32Array, caches: Int32Array, positions: Int32Array, range?: LayerRange): Promise<Float32Array>
}
