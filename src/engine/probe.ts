import { type BackendName } from '../core/vocabulary.ts'
import { memorySource } from '../model/source/byte-source.ts'
import { loadLlama2c } from '../model/formats/llama2c.ts'
import type { ModelSlice } from '../model/model.ts'
import { makeSyntheticLlama2c } from '../model/formats/synthetic.ts'
import { createBackendEngine } from './backends.ts'
import { probeWebGpu, type WebGpuProbe } from './webgpu/device.ts'

/**
 * What this device offers, measured: WebGPU adapter, WASM SIMD and threads, cores, memory, and a
 * short decode benchmark on each usable backend. The fastest backend is chosen; the contribute UI
 * and the peer adverts show the whole result.
 */
export interface ProbeResult {
  webgpu: WebGpuProbe
  wasm: { simd: boolean; threads: boolean; crossOriginIsolated: boolean }
  cores: number
  deviceMemoryGb?: number
  benchmarks: { backend: BackendName; tokensPerSecond?: number; error?: string }[]
  chosen: BackendName
  reason: string
}

// the smallest valid SIMD module: (func (result v128) i32.const 0 i8x16.splat)
const SIMD_PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11)

/** A model small enough to time in a blink, big enough that matrix products dominate. */
export const PROBE_SHAPE = { dim: 256, hiddenDim: 688, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 256, seqLen: 64, sharedClassifier: true }

/** Decode steps per second of `slice`'s layers on `backend` (one row per step, as in generation). */
async function timeDecode(slice: ModelSlice, backend: BackendName, steps: number): Promise<number> {
  const engine = await createBackendEngine({ ...slice, spec: { layers: slice.spec.layers, embedding: false, head: false } }, backend)
  const hidden = Float32Array.from({ length: slice.config.dim }, (_, i) => Math.sin(i)) // (dim) a stand-in activation
  const position = new Int32Array(1)
  steps = Math.min(steps, slice.config.seqLen - 4)
  const run = async (from: number, n: number) => {
    for (let p = from; p < from + n; p++) {
      position[0] = p
      await engine.forward(hidden, position)
    }
  }
  await run(0, 4) // warm up: compile, first allocations
  const started = performance.now()
  await run(4, steps)
  return steps / ((performance.now() - started) / 1000)
}

/**
 * Probes the device and times each backend on `slice` (the layers this tab will run), or on a small
 * synthetic model when none is given.
 */
export async function probeDevice(options: { backends?: BackendName[]; steps?: number; slice?: ModelSlice } = {}): Promise<ProbeResult> {
  const slice = options.slice ?? await loadLlama2c(memorySource(makeSyntheticLlama2c(PROBE_SHAPE, 7)))
  const webgpu = await probeWebGpu()
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated
  const wasm = { simd: WebAssembly.validate(SIMD_PROBE), threads: isolated && typeof SharedArrayBuffer !== 'undefined', crossOriginIsolated: isolated }
  const nav = typeof navigator !== 'undefined' ? (navigator as Navigator & { deviceMemory?: number }) : undefined
  const candidates = options.backends ?? (['wasm', ...(webgpu.available ? ['webgpu' as const] : []), 'ref'] as BackendName[])
  const benchmarks: ProbeResult['benchmarks'] = []
  for (const backend of candidates) {
    try {
      benchmarks.push({ backend, tokensPerSecond: await timeDecode(slice, backend, options.steps ?? 16) })
    } catch (err) {
      benchmarks.push({ backend, error: (err as Error).message })
    }
  }
  const working = benchmarks.filter((b) => b.tokensPerSecond !== undefined).sort((a, b) => b.tokensPerSecond! - a.tokensPerSecond!)
  const chosen = working[0]?.backend ?? 'ref'
  const reason = working.length === 0
    ? 'no backend ran the probe model; using the reference engine'
    : `${chosen} decoded ${options.slice ? 'this model' : 'the probe model'} fastest (${working.map((b) => `${b.backend} ${b.tokensPerSecond!.toFixed(0)} tok/s`).join(', ')})` +
      (webgpu.available && webgpu.isFallbackAdapter ? '; the WebGPU adapter is a software fallback' : '')
  return { webgpu, wasm, cores: nav?.hardwareConcurrency ?? 1, deviceMemoryGb: nav?.deviceMemory, benchmarks, chosen, reason }
}
