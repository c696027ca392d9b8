import { formatRate } from './format.ts'
import { RouteDetails } from './RouteDetails.tsx'
import type { ChatMessageRecord } from './storage.ts'

const PHASE_TEXT = { route: 'Finding a route through the swarm…', loading: 'Loading the model…', generating: '' } as const

/** One message; a reply shows its state, its speed, and on demand the route it took. */
export function MessageBubble({ message: m, phase }: { message: ChatMessageRecord; phase?: 'route' | 'loading' | 'generating' }) {
  if (m.role === 'user') {
    return (
      <article className="message user" data-testid="message" data-role="user" aria-label="You">
        <p className="message-text">{m.content || <em className="muted">(empty prompt: the model starts a story)</em>}</p>
      </article>
    )
  }
  return (
    <article className={`message assistant status-${m.status}`} data-testid="message" data-role="assistant" data-status={m.status} data-ids={m.tokenIds?.join(' ')} aria-label="Reply">
      {phase && phase !== 'generating' && <p className="muted" role="status">{PHASE_TEXT[phase]}</p>}
      <p className="message-text" data-testid="reply-text">{m.content}{m.status === 'streaming' && phase === 'generating' && <span className="cursor" aria-hidden="true" />}</p>
      {m.status === 'error' && m.error && <p role="alert" className="error" data-testid="reply-error" data-code={m.error.code}>{m.error.message}</p>}
      {(m.status === 'done' || m.status === 'stopped') && (
        <footer className="message-meta">
          <span data-testid="reply-stats">{m.status === 'stopped' ? 'stopped · ' : ''}{m.tokenIds?.length ?? 0} tokens{m.tokensPerSecond ? ` · ${formatRate(m.tokensPerSecond, 'tok')}` : ''} · {m.cached ? 'from this tab\'s cache' : m.mode === 'local' ? 'this tab' : 'swarm'}
            {m.speculation && <span data-testid="reply-acceptance" title={`${m.speculation.accepted} of ${m.speculation.drafted} drafted tokens accepted (speculative decoding)`}> · {Math.round((100 * m.speculation.accepted) / Math.max(1, m.speculation.drafted))}% of drafts accepted</span>}
            {m.reusedPositions ? <span data-testid="reply-reused" title="prompt positions the swarm already held from earlier turns"> · {m.reusedPositions} positions reused</span> : null}
          </span>
          {m.route && m.route.length > 0 && <RouteDetails route={m.route} />}
        </footer>
      )}
    </article>
  )
}
