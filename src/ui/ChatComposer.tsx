import { useState } from 'react'
import { chat } from './chat-state.ts'
import { useApp } from './context.ts'
import type { ConversationRecord } from './storage.ts'
import { useStore } from './store.ts'

/** Where the user writes; Enter sends, Shift+Enter breaks the line. Stop and regenerate live here too. */
export function ChatComposer({ conversation }: { conversation: ConversationRecord | undefined }) {
  const { chat: controller } = useApp()
  const { busy } = useStore(chat)
  const [text, setText] = useState('')
  const last = conversation?.messages[conversation.messages.length - 1]
  const send = () => {
    if (busy) return
    const t = text
    setText('')
    void controller.send(t)
  }
  return (
    <form className="composer" onSubmit={(e) => { e.preventDefault(); send() }}>
      <label htmlFor="composer-input" className="visually-hidden">Message</label>
      <textarea
        id="composer-input" rows={2} value={text} placeholder={conversation ? 'Continue the story…' : 'Once upon a time… (or leave empty)'}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) { e.preventDefault(); send() } }}
      />
      <div className="composer-actions">
        {busy
          ? <button type="button" className="danger" onClick={controller.stop}>Stop</button>
          : <button type="submit">Send</button>}
        <button type="button" className="secondary" onClick={() => void controller.regenerate()} disabled={!!busy || last?.role !== 'assistant'}>Regenerate</button>
      </div>
    </form>
  )
}
