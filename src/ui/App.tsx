import { useEffect, useState } from 'react'
import type { ModelEntry } from '../model/source/registry.ts'
import type { TabRuntime } from '../swarm/tab-runtime.ts'
import type { ChatController } from './chat-state.ts'
import { ChatView } from './ChatView.tsx'
import { ContributeView } from './ContributeView.tsx'
import { AppContext, type AppServices } from './context.ts'
import { ModelsView } from './ModelsView.tsx'
import type { SettingsStore } from './settings.ts'
import { SwarmStatusBadge } from './SwarmStatusBadge.tsx'
import { SwarmView } from './SwarmView.tsx'

const VIEWS = [
  { id: 'chat', label: 'Chat' },
  { id: 'contribute', label: 'Contribute' },
  { id: 'swarm', label: 'Swarm' },
  { id: 'models', label: 'Models' },
] as const
type ViewId = (typeof VIEWS)[number]['id']

const viewFromHash = (): ViewId => {
  const id = location.hash.slice(1)
  return VIEWS.some((v) => v.id === id) ? (id as ViewId) : 'chat'
}

/** The site: chat through the swarm, contribute this tab, watch the swarm, manage downloads. */
export function App(props: { runtime: TabRuntime; settings: SettingsStore; chat: ChatController; onModels(models: ModelEntry[]): void }) {
  const [models, setModels] = useState<ModelEntry[]>([])
  const [registryError, setRegistryError] = useState<string>()
  const [view, setView] = useState<ViewId>(viewFromHash)
  const { runtime, onModels } = props

  useEffect(() => {
    let cancelled = false
    const load = () => runtime.registry().then(
      (r) => { if (!cancelled) { onModels(r.models); setModels(r.models); setRegistryError(undefined) } },
      (err: Error) => { if (!cancelled) { setRegistryError(err.message); setTimeout(load, 10_000) } },
    )
    void load()
    return () => { cancelled = true }
  }, [runtime, onModels])

  useEffect(() => {
    const onHash = () => setView(viewFromHash())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])

  useEffect(() => {
    document.title = `${VIEWS.find((v) => v.id === view)!.label} · tabmesh`
  }, [view])

  const services: AppServices = { runtime, settings: props.settings, chat: props.chat, models, registryError }
  return (
    <AppContext.Provider value={services}>
      <a className="skip-link" href="#view">Skip to content</a>
      <header className="site-header">
        <div className="brand">
          <img src="/icon.svg" alt="" width={28} height={28} />
          <span className="brand-name">tabmesh</span>
        </div>
        <nav aria-label="Views" className="view-nav">
          {VIEWS.map((v) => (
            <a key={v.id} href={`#${v.id}`} aria-current={view === v.id ? 'page' : undefined}>{v.label}</a>
          ))}
        </nav>
        <SwarmStatusBadge />
      </header>
      {registryError && <p role="alert" className="banner error">The model registry is unreachable: {registryError}</p>}
      <main id="view" tabIndex={-1}>
        {view === 'chat' && <ChatView />}
        {view === 'contribute' && <ContributeView />}
        {view === 'swarm' && <SwarmView />}
        {view === 'models' && <ModelsView />}
      </main>
    </AppContext.Provider>
  )
}
