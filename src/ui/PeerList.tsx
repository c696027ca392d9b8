import { layerText, shortPeerId } from './format.ts'
import { useStore } from './store.ts'
import { swarm } from './swarm-state.ts'

/** Every peer this tab knows: backend, hosted layers, health, round-trip time. */
export function PeerList() {
  const { peers } = useStore(swarm)
  return (
    <section className="panel" aria-labelledby="peers-title">
      <h2 id="peers-title">Peers</h2>
      {peers.length === 0 ? <p className="muted">No other peers yet.</p> : (
        <div className="table-scroll" tabIndex={0} role="region" aria-label="Peers table">
          <table data-testid="peer-table" className="stack-on-phone">
            <thead>
              <tr><th scope="col">Peer</th><th scope="col">Backend</th><th scope="col">Hosts</th><th scope="col">Health</th><th scope="col">RTT</th></tr>
            </thead>
            <tbody>
              {peers.map((p) => (
                <tr key={p.peerId}>
                  <td data-label="Peer"><code title={p.peerId}>{shortPeerId(p.peerId)}</code>{p.direct ? '' : p.unreachable ? <span className="error" title={p.unreachable}> (unreachable)</span> : <span className="muted"> (no direct link yet)</span>}</td>
                  <td data-label="Backend">{p.backend === 'none' ? <span className="muted">chat only</span> : p.backend === 'js' ? 'reference (js)' : p.backend}</td>
                  <td data-label="Hosts">{p.hosted.length === 0 ? <span className="muted">–</span> : p.hosted.map((h) => `${h.modelId} ${layerText(h.layers)}`).join(', ')}</td>
                  <td data-label="Health"><span className={`health health-${p.status === 'ok' ? p.health : p.status}`}>{p.status === 'ok' ? p.health : p.status}</span>{p.activeSessions > 0 ? ` · ${p.activeSessions} session${p.activeSessions === 1 ? '' : 's'}` : ''}</td>
                  <td data-label="RTT">{p.rttMs !== undefined ? `${p.rttMs.toFixed(0)} ms` : '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
