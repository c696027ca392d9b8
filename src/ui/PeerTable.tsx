import { layerText, shortPeerId } from './format.ts'
import { useStore } from './store.ts'
import { swarm } from './swarm-state.ts'

/** Every peer this tab knows: backend, hosted layers, health, round-trip time. */
export function PeerTable() {
  const { peers } = useStore(swarm)
  return (
    <section className="panel" aria-labelledby="peers-title">
      <h2 id="peers-title">Peers</h2>
      {peers.length === 0 ? <p className="muted">No other peers yet.</p> : (
        <div className="table-scroll" tabIndex={0} role="region" aria-label="Peers table">
          <table data-testid="peer-table">
            <thead>
              <tr><th scope="col">Peer</th><th scope="col">Backend</th><th scope="col">Hosts</th><th scope="col">Health</th><th scope="col">RTT</th></tr>
            </thead>
            <tbody>
              {peers.map((p) => (
                <tr key={p.peerId}>
                  <td><code title={p.peerId}>{shortPeerId(p.peerId)}</code>{p.direct ? '' : <span className="muted"> (relayed)</span>}</td>
                  <td>{p.backend === 'none' ? <span className="muted">chat only</span> : p.backend}</td>
                  <td>{p.hosted.length === 0 ? <span className="muted">–</span> : p.hosted.map((h) => `${h.modelId} ${layerText(h.layers)}`).join(', ')}</td>
                  <td><span className={`health health-${p.status === 'ok' ? p.health : p.status}`}>{p.status === 'ok' ? p.health : p.status}</span>{p.activeSessions > 0 ? ` · ${p.activeSessions} sessions` : ''}</td>
                  <td>{p.rttMs !== undefined ? `${p.rttMs.toFixed(0)} ms` : '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
