import { chat, newConversation, removeConversation, selectConversation } from './chat-state.ts'
import { useStore } from './store.ts'

/** Saved conversations, newest first; pick one, start a new one, delete one. */
export function ConversationList() {
  const { conversations, activeId, busy } = useStore(chat)
  return (
    <nav className="conversation-list panel" aria-labelledby="conversations-title">
      <div className="list-head">
        <h2 id="conversations-title">Conversations</h2>
        <button type="button" className="secondary" onClick={newConversation} disabled={!!busy}>New</button>
      </div>
      {conversations.length === 0 && <p className="muted">None yet.</p>}
      <ul data-testid="conversation-list">
        {conversations.map((c) => (
          <li key={c.id} className={c.id === activeId ? 'active' : undefined}>
            <button type="button" className="link" aria-current={c.id === activeId ? 'true' : undefined} onClick={() => selectConversation(c.id)} disabled={!!busy && c.id !== activeId}>
              <span className="conv-title">{c.title}</span>
              <span className="conv-meta">{c.modelId} · {new Date(c.updatedAt).toLocaleString()}</span>
            </button>
            <button type="button" className="icon" aria-label={`Delete “${c.title}”`} onClick={() => void removeConversation(c.id)} disabled={busy?.conversationId === c.id}>×</button>
          </li>
        ))}
      </ul>
    </nav>
  )
}
