import { TabmeshError } from '../core/errors.ts'
import type { ModelSlice } from '../model/model.ts'
import type { BackendName, Engine } from './engine.ts'
import { createReferenceEngine } from './reference/reference.ts'

/** Every backend an engine can run on; the heavy ones load only when asked for. */
export const BACKENDS: readonly BackendName[] = ['ref', 'wasm', 'webgpu']

export function isBackendName(name: string): name is BackendName {
  return (BACKENDS as readonly string[]).includes(name)
}

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
