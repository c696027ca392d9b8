import type * as OrtModule from 'onnxruntime-web'
import { TabmeshError } from '../../errors.ts'

export type Ort = typeof OrtModule

export interface OrtOptions {
  /** Threads for onnxruntime's pool; default: every core when the page is cross-origin isolated, else 1. */
  numThreads?: number
  /** Where onnxruntime-web's .wasm/.mjs files are served (default: bundled with the site by Vite). */
  wasmPaths?: string
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string'
// Node resolves the package's "node" build; the specifier is a variable so Vite leaves it out of the site.
const NODE_ORT = 'onnxruntime-web'

let loaded: Promise<Ort> | undefined
let loadedThreads = 0

function defaultThreads(): number {
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated
  return isolated ? cores : 1
}

/**
 * onnxruntime-web's wasm backend, loaded once per realm. Thread count and file paths are global to
 * onnxruntime and fixed when its first session is made, so they are set here, explicitly: its own
 * default is ceil(cores / 2) capped at 4, which is 1 on a 2-core machine.
 */
export function loadOrt(options: OrtOptions = {}): Promise<Ort> {
  const numThreads = options.numThreads ?? defaultThreads()
  if (!Number.isInteger(numThreads) || numThreads < 1) throw new TabmeshError('bad-argument', `numThreads must be a whole number >= 1, got ${numThreads}`)
  if (loaded) {
    if (options.numThreads !== undefined && numThreads !== loadedThreads) {
      throw new TabmeshError('bad-argument', `onnxruntime-web is already running with ${loadedThreads} threads in this realm; it cannot switch to ${numThreads}`)
    }
    return loaded
  }
  loadedThreads = numThreads
  loaded = (async () => {
    try {
      const ort: Ort = isNode ? await import(/* @vite-ignore */ NODE_ORT) : await import('onnxruntime-web/wasm')
      ort.env.wasm.numThreads = numThreads
      if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths
      ort.env.logLevel = 'error'
      return ort
    } catch (err) {
      loaded = undefined
      throw new TabmeshError('backend', `onnxruntime-web could not be loaded: ${(err as Error).message}`)
    }
  })()
  return loaded
}

/** The thread count onnxruntime-web was started with in this realm (0 before loading). */
export const ortThreads = (): number => loadedThreads
