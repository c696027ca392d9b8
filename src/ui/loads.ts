import type { LoadProgress } from '../model/source/progress.ts'
import { createStore } from './store.ts'

/**
 * Model downloads and loads in progress or just finished (contributing, chatting, or an explicit
 * download), with the rate and time left the progress bars show.
 */
export interface LoadEntry {
  key: string
  label: string
  loadedBytes: number
  totalBytes: number
  startedAt: number // ms, performance.now()
  updatedAt: number
  state: 'loading' | 'done' | 'error'
  error?: string
}

export const loads = createStore<{ entries: LoadEntry[] }>({ entries: [] })

function put(key: string, patch: Partial<LoadEntry>) {
  loads.set((s) => {
    const old = s.entries.find((e) => e.key === key)
    const next = { ...(old ?? { key, label: key, loadedBytes: 0, totalBytes: 0, startedAt: performance.now(), updatedAt: performance.now(), state: 'loading' as const }), ...patch }
    return { entries: old ? s.entries.map((e) => (e.key === key ? next : e)) : [...s.entries, next] }
  })
}

/** Starts tracking a load; the returned functions feed it. */
export function trackLoad(key: string, label: string) {
  const now = performance.now()
  put(key, { label, loadedBytes: 0, totalBytes: 0, startedAt: now, updatedAt: now, state: 'loading', error: undefined })
  return {
    progress: (p: LoadProgress) => put(key, { loadedBytes: p.loadedBytes, totalBytes: p.totalBytes, updatedAt: performance.now() }),
    done: () => put(key, { state: 'done', updatedAt: performance.now() }),
    fail: (err: unknown) => put(key, { state: 'error', error: (err as Error).message, updatedAt: performance.now() }),
  }
}

/** Bytes per second so far, and milliseconds left at that rate. */
export function loadRate(e: LoadEntry): { bytesPerSecond: number; msLeft: number } {
  const seconds = Math.max(1e-3, (e.updatedAt - e.startedAt) / 1000)
  const bytesPerSecond = e.loadedBytes / seconds
  const msLeft = bytesPerSecond > 0 ? ((e.totalBytes - e.loadedBytes) / bytesPerSecond) * 1000 : Infinity
  return { bytesPerSecond, msLeft }
}
