import { chat } from './chat-state.ts'
import { ChatComposer } from './ChatComposer.tsx'
import { ChatOptionsBar } from './ChatOptionsBar.tsx'
import { ConversationList } from './ConversationList.tsx'
import { MessageList } from './MessageList.tsx'
import { useStore } from './store.ts'

/** Conversations on the side, the active one in the middle, the composer and sampling below. */
export function ChatView() {
  const { conversations, activeId } = useStore(chat)
  const active = conversations.find((c) => c.id === activeId)
  return (
    <section aria-labelledby="chat-title" className="view chat-view">
      <h1 id="chat-title" className="visually-hidden">Chat</h1>
      <ConversationList />
      <div className="conversation">
        <ChatOptionsBar />
        <MessageList conversation={active} />
        <ChatComposer conversation={active} />
      </div>
    </section>
  )
}
