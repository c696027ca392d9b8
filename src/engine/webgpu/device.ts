import { TabmeshError } from '../../core/errors.ts'

/** What this browser's WebGPU offers: the backend probe shows it and chooses a backend by it. */
export interface WebGpuProbe {
  available: boolean
  /** Why WebGPU is not usable, when it is not. */
  reason?: string
  /** A software adapter (SwiftShader, WARP): correct but slow; the WASM path usually wins. */
  isFallbackAdapter: boolean
  info: { vendor: string; architecture: string; device: string; description: string }
  limits: Record<string, number>
  features: string[]
}

const LIMIT_NAMES = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage', 'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const

/** Limits this backend asks for: as much as the adapter allows of what it uses. */
const REQUESTED_LIMITS = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxStorageBuffersPerShaderStage'] as const

async function requestAdapter(): Promise<GPUAdapter> {
  const gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined
  if (!gpu) throw new TabmeshError('webgpu-unavailable', 'this browser exposes no WebGPU (navigator.gpu is missing; it needs a secure context and a WebGPU-enabled browser)')
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' })
  if (!adapter) throw new TabmeshError('webgpu-unavailable', 'WebGPU found no adapter (no usable GPU, or WebGPU is blocked here)')
  return adapter
}

const isFallback = (adapter: GPUAdapter): boolean =>
  Boolean((adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter)

/** Adapter info, limits and features, or why there is none. Never throws. */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  const empty = { vendor: '', architecture: '', device: '', description: '' }
  let adapter: GPUAdapter
  try {
    adapter = await requestAdapter()
  } catch (err) {
    return { available: false, reason: (err as Error).message, isFallbackAdapter: false, info: empty, limits: {}, features: [] }
  }
  const { vendor, architecture, device, description } = adapter.info
  const limits: Record<string, number> = {}
  for (const name of LIMIT_NAMES) limits[name] = adapter.limits[name]
  return { available: true, isFallbackAdapter: isFallback(adapter), info: { vendor, architecture, device, description }, limits, features: [...adapter.features].sort() }
}

/** A device with the adapter's full storage limits (the defaults cap bindings at 128 MiB). */
export async function requestWebGpuDevice(): Promise<GPUDevice> {
  const adapter = await requestAdapter()
  const requiredLimits: Record<string, number> = {}
  for (const name of REQUESTED_LIMITS) requiredLimits[name] = adapter.limits[name]
  try {
    return await adapter.requestDevice({ label: 'tabmesh', requiredLimits })
  } catch (err) {
    throw new TabmeshError('webgpu-unavailable', `the WebGPU adapter refused a device: ${(err as Error).message}`)
  }
}

/**
 * Watches a device for loss and uncaptured errors and turns them into TabmeshErrors: `check()`
 * throws the first one seen, so an engine fails with a clear code instead of returning garbage.
 */
export function watchDevice(device: GPUDevice): { check(): void; readonly lost: boolean } {
  let failure: TabmeshError | undefined
  let lost = false
  device.lost.then((info) => {
    lost = true
    failure ??= new TabmeshError('device-lost', `the GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); make a new engine`)
  })
  device.addEventListener('uncapturederror', (event) => {
    const error = (event as GPUUncapturedErrorEvent).error
    if (error instanceof GPUOutOfMemoryError) failure ??= new TabmeshError('out-of-memory', `the GPU ran out of memory: ${error.message}`)
    else failure ??= new TabmeshError('backend', `WebGPU error: ${error.message}`)
  })
  return {
    check() {
      if (failure) throw failure
    },
    get lost() {
      return lost
    },
  }
}

/** Runs `create` inside out-of-memory and validation error scopes; a failure becomes a TabmeshError. */
export async function withErrorScopes<T>(device: GPUDevice, what: string, create: () => T, cleanup: () => void): Promise<T> {
  device.pushErrorScope('out-of-memory')
  device.pushErrorScope('validation')
  let result: T
  try {
    result = create()
  } catch (err) {
    await device.popErrorScope().catch(() => null)
    await device.popErrorScope().catch(() => null)
    cleanup()
    throw err
  }
  const validation = await device.popErrorScope()
  const oom = await device.popErrorScope()
  if (oom) {
    cleanup()
    throw new TabmeshError('out-of-memory', `the GPU cannot hold ${what}: ${oom.message}`)
  }
  if (validation) {
    cleanup()
    throw new TabmeshError('backend', `WebGPU rejected ${what}: ${validation.message}`)
  }
  return result
}
