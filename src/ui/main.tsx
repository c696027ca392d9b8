// The ui room: the React site (Chat, Contribute, Swarm, Models views, PWA shell). It talks to the
// swarm only through the tab runtime (src/swarm) and keeps per-view state in small stores.
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { createTabRuntime } from '../swarm/tab-runtime.ts'
import { App } from './App.tsx'
import { createChatController, loadConversations } from './chat-state.ts'
import { startContributeController } from './contribute-state.ts'
import { registerServiceWorker } from './pwa.ts'
import { loadSettings } from './settings.ts'
import { startSwarmSampler } from './swarm-state.ts'
import type { ModelEntry } from '../model/source/registry.ts'
import './styles.css'

// One runtime per tab; the controllers live outside React so a re-render never restarts them.
const runtime = createTabRuntime()
const [settings] = await Promise.all([loadSettings(), loadConversations()])
let models: ModelEntry[] = []
const chat = createChatController(runtime, settings, () => models)
startContributeController(runtime, settings)
startSwarmSampler(runtime, settings.get().contribute ? 'contributor' : 'client')
registerServiceWorker()

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App runtime={runtime} settings={settings} chat={chat} onModels={(m) => { models = m }} />
  </StrictMode>,
)
