import { formatBytes, formatDuration, formatRate } from './format.ts'
import { loadRate, type LoadEntry } from './loads.ts'

/** A download or load: a bar, bytes so far of the total, the rate and the time left. */
export function LoadProgressBar({ entry: e }: { entry: LoadEntry }) {
  const { bytesPerSecond, msLeft } = loadRate(e)
  const pct = e.totalBytes > 0 ? Math.round((100 * e.loadedBytes) / e.totalBytes) : 0
  return (
    <div className={`load load-${e.state}`}>
      <div className="load-head">
        <span id={`load-${e.key}`}>{e.label}</span>
        <span>{e.state === 'done' ? 'done' : e.state === 'error' ? 'failed' : `${pct}%`}</span>
      </div>
      <progress aria-labelledby={`load-${e.key}`} max={e.totalBytes || 1} value={e.state === 'done' ? e.totalBytes || 1 : e.loadedBytes} />
      <div className="load-meta muted">
        {formatBytes(e.loadedBytes)} of {formatBytes(e.totalBytes)}
        {e.state === 'loading' && e.loadedBytes > 0 && ` · ${formatRate(bytesPerSecond / 1e6, 'MB')} · ${formatDuration(msLeft)} left`}
        {e.state === 'error' && <span className="error"> · {e.error}</span>}
      </div>
    </div>
  )
}
