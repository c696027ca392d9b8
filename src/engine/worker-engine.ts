import * as Comlink from 'comlink'
import type { ModelConfig, SliceSpec } from '../model/model.ts'
import type { ModelEntry } from '../model/registry.ts'
import type { BackendName, Engine } from './engine.ts'

/** What the engine worker exposes: the Engine methods plus loading. */
export interface EngineWorkerApi {
  load(baseUrl: string, entry: ModelEntry, spec?: SliceSpec): Promise<{ backend: BackendName; config: ModelConfig; spec: SliceSpec }>
  embed: Engine['embed']
  forward: Engine['forward']
  head: Engine['head']
  reset: Engine['reset']
}

/**
 * An Engine whose work runs in a dedicated worker (workers/engine.worker.ts), reached through
 * comlink. Inputs are copied once and transferred; `terminate` ends the worker.
 */
export async function createWorkerEngine(baseUrl: string, entry: ModelEntry, spec?: SliceSpec): Promise<Engine & { terminate(): void }> {
  const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module', name: 'tabmesh-engine' })
  const remote = Comlink.wrap<EngineWorkerApi>(worker)
  let info: Awaited<ReturnType<EngineWorkerApi['load']>>
  try {
    info = await remote.load(baseUrl, entry, spec)
  } catch (err) {
    worker.terminate()
    throw err
  }
  const send = <T extends Int32Array | Float32Array>(a: T): T => {
    const copy = a.slice() as T
    return Comlink.transfer(copy, [copy.buffer])
  }
  return {
    ...info,
    embed: (tokens) => remote.embed(send(tokens)),
    forward: (hidden, positions) => remote.forward(send(hidden), send(positions)),
    head: (hidden) => remote.head(send(hidden)),
    reset: () => remote.reset(),
    terminate: () => worker.terminate(),
  }
}
