import { type BackendName, type LayerRange } from '../core/vocabulary.ts'
import { DEFAULT_MODEL_ID } from '../model/source/registry.ts'
import { readSetting, writeSetting } from './storage.ts'
import { createStore, type Store } from './store.ts'

/** Everything the user can set; kept in IndexedDB so it survives reloads. */
export interface Settings {
  /** The contribute toggle (off until the user switches it on). */
  contribute: boolean
  contributeModel: string
  backend: BackendName | 'auto'
  memoryCapMb: number
  /** Layers to host; undefined: where the swarm is weakest, as many as the memory cap holds. */
  layers: LayerRange | undefined
  pauseWhenHidden: boolean
  pauseOnBattery: boolean
  idleOnly: boolean
  chatModel: string
  chatMode: 'auto' | 'swarm' | 'local'
  temperature: number
  topP: number
  maxTokens: number
  seed: number
}

const deviceMemoryGb = (globalThis.navigator as (Navigator & { deviceMemory?: number }) | undefined)?.deviceMemory ?? 4

export const DEFAULT_SETTINGS: Settings = {
  contribute: false,
  contributeModel: DEFAULT_MODEL_ID,
  backend: 'auto',
  memoryCapMb: Math.round(deviceMemoryGb * 1024 * 0.25), // a quarter of the device, as the mesh probe offers
  layers: undefined,
  pauseWhenHidden: false,
  pauseOnBattery: true,
  idleOnly: false,
  chatModel: DEFAULT_MODEL_ID,
  chatMode: 'auto',
  temperature: 0.8,
  topP: 0.9,
  maxTokens: 64,
  seed: 1,
}

const KEY = 'settings'

export type SettingsStore = Store<Settings> & { update(patch: Partial<Settings>): void }

/** Loads the saved settings (unknown keys dropped, missing ones defaulted) and saves every change. */
export async function loadSettings(): Promise<SettingsStore> {
  let saved: Partial<Settings> = {}
  try {
    saved = (await readSetting<Partial<Settings>>(KEY)) ?? {}
  } catch (err) {
    console.warn('tabmesh: settings could not be read; using defaults', err)
  }
  const known = Object.fromEntries(Object.entries(saved).filter(([k]) => k in DEFAULT_SETTINGS)) as Partial<Settings>
  const store = createStore<Settings>({ ...DEFAULT_SETTINGS, ...known })
  return {
    ...store,
    update(patch) {
      store.set(patch)
      writeSetting(KEY, store.get()).catch((err) => console.warn('tabmesh: settings could not be saved', err))
    },
  }
}
