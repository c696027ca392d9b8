import { memorySource } from '../model/byte-source.ts'
import { loadLlama2c } from '../model/llama2c.ts'
import { makeSyntheticLlama2c } from '../model/synthetic.ts'
import { createBackendEngine } from './backends.ts'
import type { BackendName } from './engine.ts'
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

async function timeDecode(backend: BackendName, steps: number): Promise<number> {
  const slice = await loadLlama2c(memorySource(makeSyntheticLlama2c(PROBE_SHAPE, 7)), { layers: { start: 0, end: PROBE_SHAPE.nLayers }, embedding: true, head: false })
  const engine = await createBackendEngine(slice, backend)
  const token = Int32Array.of(3)
  const position = new Int32Array(1)
  const run = async (from: number, n: number) => {
    for (let p = from; p < from + n; p++) {
      position[0] = p
      await engine.forward(await engine.embed(token), position)
    }
  }
  await run(0, 4) // warm up: compile, first allocations
  const started = performance.now()
  await run(4, steps)
  return steps / ((performance.now() - started) / 1000)
}

export async function probeDevice(options: { backends?: BackendName[]; steps?: number } = {}): Promise<ProbeResult> {
  const webgpu = await probeWebGpu()
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated
  const wasm = { simd: WebAssembly.validate(SIMD_PROBE), threads: isolated && typeof SharedArrayBuffer !== 'undefined', crossOriginIsolated: isolated }
  const nav = typeof navigator !== 'undefined' ? (navigator as Navigator & { deviceMemory?: number }) : undefined
  const candidates = options.backends ?? (['wasm', ...(webgpu.available ? ['webgpu' as const] : []), 'ref'] as BackendName[])
  const benchmarks: ProbeResult['benchmarks'] = []
  for (const backend of candidates) {
    try {
      benchmarks.push({ backend, tokensPerSecond: await timeDecode(backend, options.steps ?? 16) })
    } catch (err) {
      benchmarks.push({ backend, error: (err as Error).message })
    }
  }
  const working = benchmarks.filter((b) => b.tokensPerSecond !== undefined).sort((a, b) => b.tokensPerSecond! - a.tokensPerSecond!)
  const chosen = working[0]?.backend ?? 'ref'
  const reason = working.length === 0
    ? 'no backend ran the probe model; using the reference engine'
    : `${chosen} decoded the probe model fastest (${working.map((b) => `${b.backend} ${b.tokensPerSecond!.toFixed(0)} tok/s`).join(', ')})` +
      (webgpu.available && webgpu.isFallbackAdapter ? '; the WebGPU adapter is a software fallback' : '')
  return { webgpu, wasm, cores: nav?.hardwareConcurrency ?? 1, deviceMemoryGb: nav?.deviceMemory, benchmarks, chosen, reason }
}
