import type * as OrtModule from 'onnxruntime-web'
import { TabmeshError } from '../../core/errors.ts'

export type Ort = typeof OrtModule

export interface OrtOptions {
  /** Threads for onnxruntime's pool; default: every core when the page is cross-origin isolated, else 1. */
  numThreads?: number
  /** URL prefix where onnxruntime-web's dist/ files are served (default: the copies Vite emits with the site). */
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
      let ort: Ort
      if (isNode) {
        ort = await import(/* @vite-ignore */ NODE_ORT)
        if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths
      } else {
        // The API from the bundle; the Emscripten glue and the .wasm as files of their own, emitted
        // verbatim by Vite: the glue is also the script of onnxruntime's pthread workers, and a
        // bundler chunk (which may import site code touching `document`) cannot be.
        const [api, glue, binary] = await Promise.all([
          import('onnxruntime-web/wasm'),
          import('onnxruntime-web/ort-wasm-simd-threaded.mjs?url'),
          import('onnxruntime-web/ort-wasm-simd-threaded.wasm?url'),
        ])
        ort = api
        ort.env.wasm.wasmPaths = options.wasmPaths ?? { mjs: new URL(glue.default, location.href).href, wasm: new URL(binary.default, location.href).href }
      }
      ort.env.wasm.numThreads = numThreads
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
