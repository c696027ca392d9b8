import { useEffect, useState } from 'react'
import { contribution } from './contribute-state.ts'
import { formatBytes, formatDuration, formatRate, layerText, shortPeerId } from './format.ts'
import { useStore } from './store.ts'

/** What this tab hosts and has done for the swarm: model, layers, sessions, tokens, uptime. */
export function ContributionStatsCard({ title = 'This tab’s contribution' }: { title?: string }) {
  const c = useStore(contribution)
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [])
  const { info, stats } = c
  return (
    <section className="panel" aria-labelledby="contribution-stats-title">
      <h2 id="contribution-stats-title">{title}</h2>
      {!info ? (
        <p className="muted">{c.status === 'starting' ? 'Loading…' : 'Not contributing.'}</p>
      ) : (
        <dl className="facts" data-testid="contribution-stats">
          <dt>Model</dt><dd>{info.modelId}</dd>
          <dt>Hosting</dt><dd data-testid="hosted-layers">{layerText(info.layers)}</dd>
          <dt>Peer id</dt><dd><code title={info.peerId}>{shortPeerId(info.peerId)}</code></dd>
          <dt>Sessions served</dt><dd data-testid="sessions-served">{stats?.sessionsServed ?? 0}{stats && stats.activeSessions > 0 ? ` (${stats.activeSessions} active)` : ''}</dd>
          <dt>Tokens processed</dt><dd data-testid="tokens-processed">{stats?.tokensProcessed ?? 0}</dd>
          <dt>Uptime</dt><dd>{stats ? formatDuration(now - stats.startedAt) : '–'}</dd>
          <dt>Downloaded</dt><dd>{formatBytes(info.bytesDownloaded)}{info.bytesFromCache > 0 ? ` (+${formatBytes(info.bytesFromCache)} from cache)` : ''}</dd>
          <dt>Speed</dt><dd>{formatRate(info.layerTokensPerSecond, 'layer-tokens')}</dd>
        </dl>
      )}
    </section>
  )
}
