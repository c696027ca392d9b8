/**
 * Words every layer shares, each defined once: a range of a model's layers, the compute backends,
 * and the protocol ids on the wire.
 */

/** Layers [start, end) of a model: a contributor's slice, a hop's span, a route's cover. */
export interface LayerRange {
  start: number
  end: number
}

/** Where an engine computes: the reference (plain TypeScript), WASM kernels, or WebGPU. */
export type BackendName = 'ref' | 'wasm' | 'webgpu'

/** Every backend, in the order the probe tries them. */
export const BACKENDS: readonly BackendName[] = ['ref', 'wasm', 'webgpu']

export function isBackendName(name: string): name is BackendName {
  return (BACKENDS as readonly string[]).includes(name)
}

/** The protocol version; it appears in every topic, stream protocol and message. */
export const PROTOCOL_VERSION = 1
/** The stream protocol the swarm uses to pipeline activations through a peer. */
export const INFER_PROTOCOL = '/tabmesh/1/infer'
