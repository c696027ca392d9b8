import { type BackendName } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { ModelSlice } from '../model/model.ts'
import type { BatchEngine, Engine } from './engine.ts'
import { createReferenceBatchEngine, createReferenceEngine } from './reference/reference.ts'

export async function createBackendEngine(slice: ModelSlice, backend: BackendName): Promise<Engine> {
  switch (backend) {
    case 'ref':
      return createReferenceEngine(slice)
    case 'wasm':
      return (await import('./wasm/index.ts')).createWasmEngine(slice)
    case 'webgpu':
      return (await import('./webgpu/index.ts')).createWebGpuEngine(slice)
    default:
      throw new TabmeshError('bad-argument', `unknown backend ${backend as string}`)
  }
}

/** A host's engine for `slice`'s layers on `backend`: one copy of the weights, up to `maxCaches` sessions' KV caches. */
export async function createBatchEngineFor(slice: ModelSlice, backend: BackendName, options: { maxCaches?: number } = {}): Promise<BatchEngine> {
  const layersOnly = { ...slice, spec: { ...slice.spec, embedding: false, head: false } }
  switch (backend) {
    case 'ref':
      return createReferenceBatchEngine(layersOnly, options)
    case 'wasm':
      return (await import('./wasm/index.ts')).createWasmBatchEngine(layersOnly, options)
    case 'webgpu':
      return (await import('./webgpu/index.ts')).createWebGpuBatchEngine(layersOnly, options)
    default:
      throw new TabmeshError('bad-argument', `unknown backend ${backend as string}`)
  }
}
