import { useApp } from './context.ts'
import { contribution } from './contribute-state.ts'
import { useStore } from './store.ts'

const STATUS_TEXT = {
  off: 'Off: this tab hosts nothing.',
  starting: 'Starting: loading layers and measuring speed…',
  on: 'On: serving the swarm.',
  paused: 'Paused',
  stopping: 'Stopping: handing active sessions to other peers…',
  error: 'Could not start',
} as const

/** The one switch that turns contributing on and off (off until the user turns it on). */
export function ContributeToggle() {
  const { settings } = useApp()
  const on = useStore(settings).contribute
  const c = useStore(contribution)
  return (
    <div className="panel toggle-panel">
      <label className="switch">
        <input type="checkbox" role="switch" checked={on} onChange={(e) => settings.update({ contribute: e.target.checked })} aria-describedby="contribute-status" />
        <span className="switch-track" aria-hidden="true"><span className="switch-thumb" /></span>
        <span className="switch-label">Contribute this tab</span>
      </label>
      <p id="contribute-status" role="status" data-testid="contribute-status" data-state={c.status} className={`status-line status-${c.status}`}>
        {STATUS_TEXT[c.status]}
        {c.status === 'paused' && c.pausedBecause && `: ${c.pausedBecause}.`}
        {c.status === 'error' && c.error && `: ${c.error}`}
      </p>
    </div>
  )
}
