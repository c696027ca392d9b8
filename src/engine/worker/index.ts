/**
 * The engine worker room: an Engine running in a dedicated Web Worker behind comlink, with the same
 * interface on both sides. client.ts starts it from a page; host.ts is what runs inside it (loading,
 * caching, integrity, the probe, sessions, device-loss fallback); api.ts is the boundary.
 */
export type { EngineWorkerApi, LoadedModel, LoadRequest } from './api.ts'
export { startEngineWorker, type EngineWorker } from './client.ts'
