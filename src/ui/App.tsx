import { useEffect, useState } from 'react'
import type { Registry } from '../model/registry.ts'
import { fetchRegistry } from '../model/remote.ts'
import { GeneratePanel } from './GeneratePanel.tsx'

/** The site: for now, local generation in this tab with the engine in a worker. */
export function App() {
  const [registry, setRegistry] = useState<Registry>()
  const [error, setError] = useState<string>()
  useEffect(() => {
    fetchRegistry(location.origin + '/').then(setRegistry, (e: Error) => setError(e.message))
  }, [])
  return (
    <main>
      <header>
        <h1>tabmesh</h1>
        <p className="tagline">Browser tabs as one inference swarm.</p>
      </header>
      {error && <p role="alert" className="error">{error}</p>}
      {!registry && !error && <p>Loading the model registry…</p>}
      {registry && registry.models.length === 0 && <p role="alert" className="error">The registry lists no models.</p>}
      {registry && registry.models.length > 0 && <GeneratePanel models={registry.models} />}
    </main>
  )
}
