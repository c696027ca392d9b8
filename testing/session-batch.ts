/**
 * A BatchEngine made of one Engine per KV cache slot, for tests whose hosts need per-session
 * behaviour the real batch engines do not have (testing/liars.ts: a liar counts its forwards per
 * session; a host that stalls). A call's rows go to their slot's engine one slot at a time, so it
 * batches nothing; copyCache is refused, so a client's kept prefix falls back to a replay.
 */
import { TabmeshError } from '../src/core/errors.ts'
import type { LayerRange } from '../src/core/vocabulary.ts'
import { checkBatch, type BatchEngine, type Engine } from '../src/engine/engine.ts'
import type { ModelConfig } from '../src/model/model.ts'

export function sessionBatchEngine(config: ModelConfig, layers: LayerRange, open: (range: LayerRange) => Promise<Engine & { close?(): void }>, backend: Engine['backend'] = 'ref'): BatchEngine {
  const slots = new Map<number, { length: number; engines: Map<string, Engine & { close?(): void }> }>()
  let next = 0
  const engine: BatchEngine = {
    backend,
    config,
    layers,
    maxRows: 64,
    cacheBytes: (maxLength) => 2 * (layers.end - layers.start) * maxLength * config.kvDim * 4,
    async openCache(maxLength) {
      const slot = next++
      slots.set(slot, { length: maxLength, engines: new Map() })
      return slot
    },
    async closeCache(slot) {
      for (const e of slots.get(slot)?.engines.values() ?? []) e.close?.()
      slots.delete(slot)
    },
    async copyCache() {
      throw new TabmeshError('refused', 'this test host keeps no prefixes')
    },
    async forwardBatch(hidden, caches, positions, range) {
      const r = checkBatch(engine, hidden, caches, positions, range, (slot) => slots.get(slot)?.length)
      const out = new Float32Array(hidden.length)
      const dim = config.dim
      for (let i = 0; i < positions.length;) {
        let j = i + 1
        while (j < positions.length && caches[j] === caches[i]) j++
        const slot = slots.get(caches[i])!
        const key = `${r.start}-${r.end}`
        let e = slot.engines.get(key)
        if (!e) slot.engines.set(key, (e = await open(r)))
        out.set(await e.forward(hidden.slice(i * dim, j * dim), positions.slice(i, j)), i * dim)
        i = j
      }
      return out
    },
  }
  return engine
}

/** A batch engine made on first use (startPeer is synchronous; a wasm engine loads its kernels asynchronously). */
export function lazyBatchEngine(make: () => Promise<BatchEngine>, config: ModelConfig, layers: LayerRange, backend: Engine['backend']): BatchEngine {
  let made: Promise<BatchEngine> | undefined
  const get = () => (made ??= make())
  // the reference's row limit; the real engine checks its own
  return {
    backend, config, layers, maxRows: 64,
    cacheBytes: (maxLength) => 2 * (layers.end - layers.start) * maxLength * config.kvDim * 4,
    openCache: async (maxLength) => (await get()).openCache(maxLength),
    closeCache: async (slot) => (await get()).closeCache(slot),
    copyCache: async (from, to, length) => (await get()).copyCache(from, to, length),
    forwardBatch: async (hidden, caches, positions, range) => (await get()).forwardBatch(hidden, caches, positions, range),
  }
}
