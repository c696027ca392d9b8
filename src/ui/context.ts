import { createContext, useContext } from 'react'
import type { ModelEntry } from '../model/source/registry.ts'
import type { TabRuntime } from '../swarm/tab-runtime.ts'
import type { ChatController } from './chat-state.ts'
import type { SettingsStore } from './settings.ts'

/** What every view reaches: the tab's runtime, the settings, the chat controller, the registry's models. */
export interface AppServices {
  runtime: TabRuntime
  settings: SettingsStore
  chat: ChatController
  models: ModelEntry[]
  registryError?: string
}

export const AppContext = createContext<AppServices | undefined>(undefined)

export function useApp(): AppServices {
  const app = useContext(AppContext)
  if (!app) throw new Error('useApp outside <AppContext.Provider>')
  return app
}
