import { layerText, shortPeerId } from './format.ts'
import type { HopSummary } from './storage.ts'

/** The route a reply took, on demand: which peer ran which layers, and how long each hop took. */
export function RouteDetails({ route }: { route: HopSummary[] }) {
  return (
    <details className="route-details">
      <summary>Route ({new Set(route.map((h) => h.peerId)).size} peers)</summary>
      <table data-testid="route-table" className="stack-on-phone">
        <caption className="visually-hidden">Peers, layers and per-hop latency of this reply</caption>
        <thead>
          <tr><th scope="col">Peer</th><th scope="col">Layers</th><th scope="col">Tokens</th><th scope="col">Mean ms</th><th scope="col">Max ms</th></tr>
        </thead>
        <tbody>
          {route.map((h) => (
            <tr key={`${h.peerId}-${h.layers.start}-${h.layers.end}`}>
              <td data-label="Peer"><code title={h.peerId}>{shortPeerId(h.peerId)}</code></td>
              <td data-label="Layers">{layerText(h.layers)}</td>
              <td data-label="Tokens">{h.tokens}</td>
              <td data-label="Mean ms">{h.meanMs.toFixed(1)}</td>
              <td data-label="Max ms">{h.maxMs.toFixed(1)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  )
}
