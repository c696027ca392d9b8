export { createWebGpuEngine, WEBGPU_MAX_BATCH, type WebGpuEngine, type WebGpuEngineOptions } from './engine.ts'
export { probeWebGpu, requestWebGpuDevice, type WebGpuProbe } from './device.ts'
