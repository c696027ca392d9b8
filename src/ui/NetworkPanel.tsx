import { useStore } from './store.ts'
import { swarm } from './swarm-state.ts'

const REACHABILITY_TEXT = { direct: 'Direct connections work', unknown: 'No direct connection yet', unreachable: 'Unreachable' } as const

/** This tab's network: the relays it links to (up or down), whether peers can reach it directly, and the ICE servers in use. */
export function NetworkPanel() {
  const { network, mesh } = useStore(swarm)
  if (mesh !== 'joined' || !network) return null
  const stun = network.iceUrls.filter((u) => u.startsWith('stun'))
  const turn = network.iceUrls.filter((u) => u.startsWith('turn'))
  return (
    <section className="panel" aria-labelledby="network-title" data-testid="network-panel">
      <h2 id="network-title">Network</h2>
      <p data-testid="reachability" data-state={network.reachability} className={network.reachability === 'unreachable' ? 'error' : undefined}>
        <strong>{REACHABILITY_TEXT[network.reachability]}</strong>
        {network.reachability === 'direct' ? null : <span className="muted"> · {network.reachabilityWhy}</span>}
      </p>
      <ul data-testid="relay-list">
        {network.relays.map((r) => (
          <li key={r.addr} data-connected={r.connected}><code>{r.addr}</code> {r.connected ? 'connected' : <span className="error">down: reconnecting</span>}</li>
        ))}
      </ul>
      <p className="muted">
        {stun.length ? `STUN ${stun.join(', ')}` : 'No STUN server'} · {turn.length ? `TURN ${turn.join(', ')}` : 'no TURN server (tabs behind symmetric NATs cannot connect)'}
      </p>
    </section>
  )
}
