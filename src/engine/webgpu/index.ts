/**
 * The WebGPU backend: llama2.c's forward pass as WGSL kernels (shaders/), its weights, KV cache
 * and scratch held on the GPU (engine.ts, with buffers.ts and plans.ts), and the device probe.
 */
export { createWebGpuEngine, WEBGPU_MAX_BATCH, type WebGpuEngine, type WebGpuEngineOptions } from './engine.ts'
export { probeWebGpu, requestWebGpuDevice, type WebGpuProbe } from './device.ts'
