/**
 * The WebGPU backend: llama2.c's forward pass as WGSL kernels (shaders/), its weights, KV cache
 * and scratch held on the GPU (runtime.ts, with buffers.ts and plans.ts): one session (engine.ts)
 * or many sessions over one copy of the weights (batch-engine.ts); and the device probe.
 */
export { createWebGpuEngine, WEBGPU_MAX_BATCH, type WebGpuEngine, type WebGpuEngineOptions } from './engine.ts'
export { createWebGpuBatchEngine, WEBGPU_DEFAULT_MAX_CACHES, type WebGpuBatchEngine, type WebGpuBatchEngineOptions } from './batch-engine.ts'
export { probeWebGpu, requestWebGpuDevice, type WebGpuProbe } from './device.ts'
