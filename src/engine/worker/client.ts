import * as Comlink from 'comlink'
import type { SliceSpec } from '../../model/model.ts'
import type { LoadProgress } from '../../model/source/progress.ts'
import type { BatchEngine, Engine } from '../engine.ts'
import type { Drafter } from '../generate.ts'
import type { ProbeResult } from '../probe.ts'
import type { EngineWorkerApi, LoadedModel, LoadRequest } from './api.ts'

export interface EngineWorker {
  readonly loaded: LoadedModel
  probe(): Promise<ProbeResult>
  /** An Engine with its own KV cache over `spec` (default: everything loaded). */
  open(spec?: SliceSpec): Promise<Engine & { close(): void }>
  /** Greedy drafts from the loaded (whole, small) model, run in the worker: one call per draft. */
  drafter(): Promise<Drafter>
  /** The worker's batch engine over the loaded layers: many sessions' KV caches, one copy of the weights. */
  batch(): Promise<BatchEngine>
  terminate(): void
}

/**
 * Starts the engine worker (workers/engine.worker.ts, which runs ./host.ts), loads a model slice in it and hands out Engines that run there,
 * reached through comlink. Inputs are copied once and transferred, never structured-cloned twice.
 */
export async function startEngineWorker(request: LoadRequest, onProgress?: (p: LoadProgress) => void): Promise<EngineWorker> {
  const worker = new Worker(new URL('../../../workers/engine.worker.ts', import.meta.url), { type: 'module', name: 'tabmesh-engine' })
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
        headRows: (hidden) => remote.headRows(id, send(hidden)),
        reset: () => remote.reset(id),
        close: () => void remote.close(id),
      }
    },
    async drafter() {
      const id = await remote.open()
      return async (tokens, k) => Array.from(await remote.draft(id, Int32Array.from(tokens), k))
    },
    async batch() {
      const info = await remote.batchInfo()
      return {
        backend: loaded.backend,
        config: loaded.config,
        layers: loaded.spec.layers,
        maxRows: info.maxRows,
        cacheBytes: (maxLength) => maxLength * info.cacheBytesPerPosition,
        openCache: (maxLength) => remote.openCache(maxLength),
        closeCache: (slot) => remote.closeCache(slot),
        copyCache: (from, to, length) => remote.copyCache(from, to, length),
        forwardBatch: (hidden, caches, positions, range) => remote.forwardBatch(send(hidden), send(caches), send(positions), range),
      }
    },
    terminate: () => worker.terminate(),
  }
}
