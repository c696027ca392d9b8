/**
 * The engine room: one Engine interface (embed, forward over a layer range, head) with backends
 * behind it (reference, wasm, webgpu; the heavy ones load on demand), the sampler, token
 * generation with its context-window policy, the device probe, and the engine worker that runs an
 * Engine off the main thread with the same interface on both sides.
 */
export * from './engine.ts'
export * from './backends.ts'
export * from './generate.ts'
export * from './sampler.ts'
export * from './probe.ts'
export * from './reference/index.ts'
export * from './worker/index.ts'
