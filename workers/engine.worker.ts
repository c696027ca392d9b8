/// <reference lib="webworker" />
import * as Comlink from 'comlink'
import type { Engine } from '../src/engine/engine.ts'
import { createReferenceEngine } from '../src/engine/reference.ts'
import type { SliceSpec } from '../src/model/model.ts'
import type { ModelEntry } from '../src/model/registry.ts'
import { loadRemoteSlice } from '../src/model/remote.ts'
import type { EngineWorkerApi } from '../src/engine/worker-engine.ts'

/**
 * The engine worker: holds one model slice and its KV cache off the main thread. Results are
 * copied out of the engine's own buffers into fresh ones and transferred, never cloned.
 */
let engine: Engine | undefined

function loaded(): Engine {
  if (!engine) throw new Error('no model loaded in this worker')
  return engine
}

const transferOut = (view: Float32Array) => {
  const copy = view.slice()
  return Comlink.transfer(copy, [copy.buffer])
}

const api: EngineWorkerApi = {
  async load(baseUrl: string, entry: ModelEntry, spec?: SliceSpec) {
    engine = undefined
    const slice = await loadRemoteSlice(baseUrl, entry, spec)
    engine = createReferenceEngine(slice)
    return { backend: engine.backend, config: engine.config, spec: engine.spec }
  },
  embed: async (tokens) => transferOut(await loaded().embed(tokens)),
  forward: async (hidden, positions) => transferOut(await loaded().forward(hidden, positions)),
  head: async (hidden) => transferOut(await loaded().head(hidden)),
  reset: () => loaded().reset(),
}

Comlink.expose(api)
