import { type BackendName } from '../../core/vocabulary.ts'
import * as Comlink from 'comlink'
import { TabmeshError } from '../../core/errors.ts'
import { createBackendEngine, createBatchEngineFor } from '../backends.ts'
import type { BatchEngine, Engine } from '../engine.ts'
import { sessionOverBatch } from '../reference/reference.ts'
import { modelDrafter, type Drafter } from '../generate.ts'
import { probeDevice, type ProbeResult } from '../probe.ts'
import type { EngineWorkerApi, LoadedModel, LoadRequest } from './api.ts'
import type { ByteSource } from '../../model/source/byte-source.ts'
import { cachingSource, forgetCached, openModelCache } from '../../model/source/cache.ts'
import { httpOpener, loadEntrySlice } from '../../model/source/entry.ts'
import { verifySlice } from '../../model/source/integrity.ts'
import { entrySliceBytes } from '../../model/source/registry.ts'
import { fullSpec, heldWeightBytes, type ModelSlice, type SliceSpec } from '../../model/model.ts'
import { withProgress, type LoadProgress } from '../../model/source/progress.ts'

/**
 * The engine worker: loads one model slice (Range requests, checked against the registry's part
 * hashes, kept in Cache Storage) and runs sessions over it, each an engine with its own KV cache,
 * off the main thread. Results are copied out of the engine's buffers and transferred.
 * If the GPU device is lost, the error reaches the caller and later sessions run on WASM.
 */
export function createEngineWorkerHost(): EngineWorkerApi {
  let slice: ModelSlice | undefined
  let backend: BackendName = 'ref'
  let probed: ProbeResult | undefined
  const sessions = new Map<number, Engine>()
  const drafters = new Map<number, Drafter>() // sessions of a draft model: their draft state
  let nextSession = 1
  // the host's engine: every session's rows in one pass over one copy of the weights
  let batch: Promise<BatchEngine> | undefined
  const batchEngine = () => {
    if (!slice) throw new TabmeshError('bad-argument', 'no model loaded in this worker')
    const loaded = slice
    batch ??= createBatchEngineFor(loaded, backend, { maxCaches: 64 }).catch((err) => { batch = undefined; throw err })
    return batch
  }
  // engines of closed sessions, kept to serve the next session of the same spec: building one can be
  // slow (a WebGPU engine uploads weights and compiles pipelines), a reset is cheap
  const idle: Engine[] = []
  const sameSpec = (a: SliceSpec, b: SliceSpec) => a.layers.start === b.layers.start && a.layers.end === b.layers.end && a.embedding === b.embedding && a.head === b.head

  const transferOut = (view: Float32Array) => {
    const copy = view.slice()
    return Comlink.transfer(copy, [copy.buffer])
  }

  function session(id: number): Engine {
    const e = sessions.get(id)
    if (!e) throw new TabmeshError('bad-argument', `no engine session ${id} in this worker`)
    return e
  }

  /** Runs an engine call; a lost GPU device moves later sessions to the WASM backend. */
  async function guarded<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      if (err instanceof TabmeshError && err.code === 'device-lost' && backend === 'webgpu') {
        backend = 'wasm'
        batch = undefined // its sessions are lost with the device; new ones get a wasm batch engine
      }
      throw err
    }
  }

  const layersOnly = (spec: SliceSpec) => !spec.embedding && !spec.head && spec.layers.end > spec.layers.start
  const withinSlice = (spec: SliceSpec, held: SliceSpec) =>
    spec.layers.start >= held.layers.start && spec.layers.end <= held.layers.end && (!spec.embedding || held.embedding) && (!spec.head || held.head)

  return {
    async probe() {
      probed ??= await probeDevice()
      return probed
    },

    async load(request: LoadRequest, onProgress?: (p: LoadProgress) => void): Promise<LoadedModel> {
      sessions.clear()
      batch = undefined
      idle.length = 0
      slice = undefined
      const { entry } = request
      const spec = request.spec ?? fullSpec(entry.config)
      // every file is read by Range requests, through Cache Storage, with progress; without Cache
      // Storage (an embedded iframe whose browser blocks third-party storage) it loads uncached
      const cache = request.cache !== false && typeof caches !== 'undefined' ? await openModelCache().catch(() => undefined) : undefined
      const network: ByteSource[] = []
      const cached: ReturnType<typeof cachingSource>[] = []
      const totalBytes = entrySliceBytes(entry, spec)
      let loadedBytes = 0
      const http = httpOpener(request.baseUrl, entry)
      const open = (file: Parameters<typeof http>[0]): ByteSource => {
        const raw = http(file)
        network.push(raw)
        let source: ByteSource = raw
        if (cache) {
          const c = cachingSource(raw, cache)
          cached.push(c)
          source = c
        }
        if (onProgress) source = withProgress(source, Infinity, (p) => onProgress({ loadedBytes: Math.min(totalBytes, (loadedBytes += p.lastReadBytes)), totalBytes, lastReadBytes: p.lastReadBytes }))
        return source
      }
      let loaded: ModelSlice
      try {
        // Q8_0 / Q4_0 matrices stay in their blocks: every backend computes on them, so memory stays at the quantized size
        loaded = await loadEntrySlice(entry, open, spec, { keepQuantized: true })
        if (request.verify !== false) await verifySlice(loaded, entry.parts, entry.id)
      } catch (err) {
        if (cache) for (const source of network) await forgetCached(source.name) // nothing half-loaded or corrupt stays in the cache
        throw err
      }
      if (request.backend === 'auto') probed = await probeDevice({ slice: loaded })
      const wanted = request.backend === 'auto' ? probed!.chosen : request.backend
      // build the engine now so a backend that cannot run this model fails here, not mid-session: a
      // slice of layers only (a host's, a check's) is served by the batch engine, one copy of the weights
      slice = loaded
      backend = wanted
      try {
        if (layersOnly(spec)) await batchEngine()
        else idle.push(await createBackendEngine(loaded, wanted))
      } catch (err) {
        slice = undefined
        throw err
      }
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
      return { backend, config: loaded.config, spec, bytesDownloaded: sum(network.map((s) => s.bytesRead)), bytesFromCache: sum(cached.map((s) => s.cachedBytes)), weightBytes: heldWeightBytes(loaded), probe: probed }
    },

    async open(spec?: SliceSpec) {
      if (!slice) throw new TabmeshError('bad-argument', 'no model loaded in this worker')
      const want = spec ?? slice.spec
      if (!withinSlice(want, slice.spec)) throw new TabmeshError('refused', `this worker holds layers [${slice.spec.layers.start}, ${slice.spec.layers.end}); it cannot open [${want.layers.start}, ${want.layers.end})`)
      const id = nextSession++
      if (layersOnly(want)) {
        const refuse = async (): Promise<never> => { throw new TabmeshError('bad-argument', 'a session over layers only holds no embedding or classifier') }
        sessions.set(id, await guarded(async () => sessionOverBatch(await batchEngine(), want, { embed: refuse, head: refuse })))
        return id
      }
      const reuse = idle.findIndex((e) => sameSpec(e.spec, want) && e.backend === backend)
      if (reuse >= 0) {
        const engine = idle.splice(reuse, 1)[0]
        await guarded(() => engine.reset())
        sessions.set(id, engine)
      } else {
        sessions.set(id, await guarded(() => createBackendEngine({ ...slice!, spec: want }, backend)))
      }
      return id
    },

    embed: (id, tokens) => guarded(async () => transferOut(await session(id).embed(tokens))),
    forward: (id, hidden, positions) => guarded(async () => transferOut(await session(id).forward(hidden, positions))),
    head: (id, hidden) => guarded(async () => transferOut(await session(id).head(hidden))),
    headRows: (id, hidden) => guarded(async () => {
      const e = session(id)
      const dim = e.config.dim
      const n = hidden.length / dim
      const out = new Float32Array(n * e.config.vocabSize)
      for (let r = 0; r < n; r++) out.set(await e.head(hidden.subarray(0, (r + 1) * dim)), r * e.config.vocabSize)
      return Comlink.transfer(out, [out.buffer])
    }),
    draft: (id, tokens, k) => guarded(async () => {
      let d = drafters.get(id)
      if (!d) drafters.set(id, (d = modelDrafter(session(id))))
      return Int32Array.from(await d(Array.from(tokens), k))
    }),
    reset: (id) => guarded(() => session(id).reset()),
    async close(id) {
      const engine = sessions.get(id)
      sessions.delete(id)
      drafters.delete(id)
      if (engine && layersOnly(engine.spec)) (engine as { close?(): void }).close?.() // its batch engine slot
      else if (engine && idle.length < 4) idle.push(engine)
    },

    batchInfo: () => guarded(async () => {
      const b = await batchEngine()
      return { maxRows: b.maxRows, cacheBytesPerPosition: b.cacheBytes(1) }
    }),
    openCache: (maxLength) => guarded(async () => (await batchEngine()).openCache(maxLength)),
    closeCache: (slot) => guarded(async () => (await batchEngine()).closeCache(slot)),
    copyCache: (from, to, length) => guarded(async () => (await batchEngine()).copyCache(from, to, length)),
    forwardBatch: (hidden, caches, positions, range) => guarded(async () => transferOut(await (await batchEngine()).forwardBatch(hidden, caches, positions, range))),
  }
}

/** Serves a new host to the page that started this worker (call it from the worker's module). */
export function exposeEngineWorkerHost(): void {
  Comlink.expose(createEngineWorkerHost())
}
