import * as Comlink from 'comlink'
import type { ModelConfig, SliceSpec } from '../model/model.ts'
import type { LoadProgress } from '../model/progress.ts'
import type { ModelEntry } from '../model/registry.ts'
import type { BackendName, Engine } from './engine.ts'
import type { ProbeResult } from './probe.ts'

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
  reset(session: number): Promise<void>
  close(session: number): Promise<void>
}

export interface EngineWorker {
  readonly loaded: LoadedModel
  probe(): Promise<ProbeResult>
  /** An Engine with its own KV cache over `spec` (default: everything loaded). */
  open(spec?: SliceSpec): Promise<Engine & { close(): void }>
  terminate(): void
}

/**
 * Starts workers/engine.worker.ts, loads a model slice in it and hands out Engines that run there,
 * reached through comlink. Inputs are copied once and transferred, never structured-cloned twice.
 */
export async function startEngineWorker(request: LoadRequest, onProgress?: (p: LoadProgress) => void): Promise<EngineWorker> {
  const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module', name: 'tabmesh-engine' })
  const remote = Comlink.wrap<EngineWorkerApi>(worker)
  let loaded: LoadedModel
  try {
    loaded = await remote.load(request, onProgress ? Comlink.proxy(onProgress) : undefined)
  } catch (err) {
    worker.terminate()
    throw err
  }
  const send = <T extends Int32Array | Float32Array>(a: T): T => {
    const copy = a.slice() as T
    return Comlink.transfer(copy, [copy.buffer])
  }
  return {
    loaded,
    probe: () => remote.probe(),
    async open(spec) {
      const id = await remote.open(spec)
      return {
        backend: loaded.backend,
        config: loaded.config,
        spec: spec ?? loaded.spec,
        embed: (tokens) => remote.embed(id, send(tokens)),
        forward: (hidden, positions) => remote.forward(id, send(hidden), send(positions)),
        head: (hidden) => remote.head(id, send(hidden)),
        reset: () => remote.reset(id),
        close: () => void remote.close(id),
      }
    },
    terminate: () => worker.terminate(),
  }
}
