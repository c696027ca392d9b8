import { contribution } from './contribute-state.ts'
import { useStore } from './store.ts'
import { swarm } from './swarm-state.ts'

/** The header's one-line summary: mesh state, peers online, whether this tab contributes. */
export function SwarmStatusBadge() {
  const s = useStore(swarm)
  const c = useStore(contribution)
  const text = s.mesh === 'joined' ? `${s.peers.length} peer${s.peers.length === 1 ? '' : 's'}` : s.mesh === 'joining' ? 'joining…' : navigator.onLine ? 'mesh unreachable' : 'offline'
  return (
    <p className="status-badge" aria-live="polite">
      <span className={`dot dot-${s.mesh}`} aria-hidden="true" />
      <span>{text}</span>
      {c.status === 'on' && <span className="pill pill-on">contributing</span>}
    </p>
  )
}
