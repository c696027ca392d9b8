import { type BackendName } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { ModelSlice } from '../model/model.ts'
import type { Engine } from './engine.ts'
import { createReferenceEngine } from './reference/reference.ts'

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
