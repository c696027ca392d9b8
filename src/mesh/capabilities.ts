/**
 * A quick capability probe for a tab's first advert: which backend it has (WebGPU adapter or
 * WASM) and a measured matrix-vector speed. Engines that measure their real throughput later
 * replace it with `node.update({ capabilities })`.
 */
import type { Capabilities } from './protocol.ts'

export interface ProbeOptions {
  /** Share of the device memory offered to the swarm (default 0.25). */
  memoryShare?: number
  /** How long to time the matrix-vector loop (default 30 ms). */
  measureMs?: number
}

export async function probeCapabilities(options: ProbeOptions = {}): Promise<Capabilities> {
  let backend: Capabilities['backend'] = typeof WebAssembly === 'object' ? 'wasm' : 'js'
  let adapterInfo: string | undefined
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu
  if (gpu) {
    try {
      const adapter = await gpu.requestAdapter()
      if (adapter) {
        adapterInfo = `${adapter.info.vendor} ${adapter.info.architecture}`.trim().slice(0, 128) || undefined
        // a software adapter (SwiftShader) is slower than WASM on the same CPU (LAB.md): keep wasm
        if (!adapter.info.isFallbackAdapter && adapter.info.architecture !== 'swiftshader') backend = 'webgpu'
      }
    } catch {
      // no usable adapter: wasm
    }
  }
  const deviceGiB = (globalThis.navigator as (Navigator & { deviceMemory?: number }) | undefined)?.deviceMemory ?? 4
  return {
    backend,
    ...(adapterInfo ? { adapter: adapterInfo } : {}),
    memoryBudgetBytes: Math.floor(deviceGiB * 2 ** 30 * (options.memoryShare ?? 0.25)),
    speed: { gflops: measureGemvGflops(options.measureMs ?? 30) },
  }
}

/** GFLOP/s of a plain fp32 matrix-vector product (256 x 256), timed for about `ms`. */
export function measureGemvGflops(ms: number): number {
  const n = 256
  const matrix = new Float32Array(n * n) // (n, n) row-major
  const x = new Float32Array(n) // (n)
  const y = new Float32Array(n) // (n)
  for (let i = 0; i < matrix.length; i++) matrix[i] = ((i * 2654435761) % 1000) / 1000 - 0.5
  for (let i = 0; i < n; i++) x[i] = i / n
  let runs = 0
  const start = performance.now()
  let elapsed = 0
  do {
    for (let r = 0; r < n; r++) {
      let sum = 0
      const row = r * n
      for (let c = 0; c < n; c++) sum += matrix[row + c] * x[c]
      y[r] = sum
    }
    x[runs % n] = y[runs % n] * 1e-3 // keep the loop from being optimised away
    runs++
    elapsed = performance.now() - start
  } while (elapsed < ms)
  return Math.round(((2 * n * n * runs) / (elapsed * 1e6)) * 1000) / 1000
}
