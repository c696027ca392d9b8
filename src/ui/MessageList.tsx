import { useEffect, useRef } from 'react'
import { chat } from './chat-state.ts'
import { MessageBubble } from './MessageBubble.tsx'
import type { ConversationRecord } from './storage.ts'
import { useStore } from './store.ts'

/** The active conversation's messages; follows the stream unless the reader scrolled up. */
export function MessageList({ conversation }: { conversation: ConversationRecord | undefined }) {
  const { busy } = useStore(chat)
  const ref = useRef<HTMLDivElement>(null)
  const follow = useRef(true)
  const last = conversation?.messages[conversation.messages.length - 1]
  useEffect(() => {
    const el = ref.current
    if (el && follow.current) el.scrollTop = el.scrollHeight
  }, [last?.content, last?.id, conversation?.id])
  const streaming = !!busy && busy.conversationId === conversation?.id
  return (
    <div
      ref={ref} className="messages" role="log" aria-label="Messages" aria-busy={streaming} tabIndex={0}
      onScroll={(e) => { const el = e.currentTarget; follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40 }}
    >
      {!conversation && (
        <div className="empty-chat">
          <p><strong>Start a story.</strong> The default model, stories260K, continues whatever you write (or starts one from nothing if you send an empty message).</p>
          <p className="muted">Replies run through the swarm: other tabs host the model's layers. Switch on Contribute to become one of them.</p>
        </div>
      )}
      {conversation?.messages.map((m) => <MessageBubble key={m.id} message={m} phase={busy?.messageId === m.id ? busy.phase : undefined} />)}
    </div>
  )
}
