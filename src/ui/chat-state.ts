import { TabmeshError } from '../core/errors.ts'
import { buildPrompt, type ChatTemplate } from '../model/template/index.ts'
import type { ModelEntry } from '../model/source/registry.ts'
import type { ChatSession, TabRuntime } from '../swarm/tab-runtime.ts'
import { newGenerationStats } from '../engine/generate.ts'
import { layerText } from './format.ts'
import { markModelComplete } from './model-cache.ts'
import { trackLoad } from './loads.ts'
import type { SettingsStore } from './settings.ts'
import { deleteConversation, listConversations, saveConversation, type ChatMessageRecord, type ConversationRecord, type HopSummary } from './storage.ts'
import { createStore } from './store.ts'
import { counters, layerCoverage, swarm } from './swarm-state.ts'

/**
 * Conversations and replies: builds the prompt from the conversation with the model's chat
 * template (buildPrompt, as the embed does), streams the reply from a chat session (swarm or
 * local), records the route each token took, and keeps everything in IndexedDB. One reply at a
 * time per tab.
 */
export interface ChatState {
  conversations: ConversationRecord[]
  activeId: string | undefined
  busy?: { conversationId: string; messageId: string; phase: 'route' | 'loading' | 'generating' }
}

export const chat = createStore<ChatState>({ conversations: [], activeId: undefined })

const newId = () => crypto.randomUUID()
const titleFrom = (text: string) => { const t = text.trim().replace(/\s+/g, ' '); return t.length > 48 ? `${t.slice(0, 47)}…` : t }

export async function loadConversations(): Promise<void> {
  try {
    const conversations = await listConversations()
    chat.set({ conversations, activeId: conversations[0]?.id })
  } catch (err) {
    console.warn('tabmesh: conversations could not be read', err)
  }
}

function putConversation(c: ConversationRecord, persist = true) {
  chat.set((s) => ({ conversations: [c, ...s.conversations.filter((x) => x.id !== c.id)].sort((a, b) => b.updatedAt - a.updatedAt) }))
  if (persist) saveConversation(c).catch((err) => console.warn('tabmesh: a conversation could not be saved', err))
}

export function newConversation() {
  chat.set({ activeId: undefined })
}

export function selectConversation(id: string) {
  if (chat.get().busy) return
  chat.set({ activeId: id })
}

export async function removeConversation(id: string) {
  if (chat.get().busy?.conversationId === id) return
  chat.set((s) => ({ conversations: s.conversations.filter((c) => c.id !== id), activeId: s.activeId === id ? undefined : s.activeId }))
  await deleteConversation(id)
}

/** A failure as the person should read it: what happened and what to do. */
export function explainError(err: unknown, entry: ModelEntry | undefined): { code: string; message: string } {
  const code = err instanceof TabmeshError ? err.code : 'error'
  const raw = (err as Error)?.message ?? String(err)
  if (code === 'no-route' && entry) {
    const peers = swarm.get().peers
    const coverage = layerCoverage(peers, entry.id, entry.config.nLayers)
    const gaps = coverage.flatMap((n, l) => (n === 0 ? [l] : []))
    if (coverage.every((n) => n === 0)) {
      return { code, message: `No route: nobody in the swarm serves ${entry.id} right now (${peers.length} peer${peers.length === 1 ? '' : 's'} online). Switch on Contribute in another tab or device, or chat in local mode.` }
    }
    const missing = gaps.length ? `nobody serves ${layerText({ start: gaps[0], end: gaps[gaps.length - 1] + 1 })}` : 'the peers that serve it are busy or unreachable'
    return { code: 'thin-swarm', message: `The swarm is too thin for ${entry.id}: ${missing} of its ${entry.config.nLayers}. More contributors are needed, or chat in local mode.` }
  }
  if (code === 'context-window') return { code, message: `Prompt too long: ${raw}` }
  if (code === 'hop-failed') return { code, message: `A peer on the route failed and no other peer could take over: ${raw}. Try again in a moment.` }
  if (code === 'fetch') return { code, message: `The model could not be loaded: ${raw}` }
  return { code, message: raw }
}

/**
 * A conversation's prompt: its messages through the model's own chat template. stories260K and the
 * other llama2.c story models have the plain continuation, so their prompt is the story so far.
 */
export function conversationPrompt(template: ChatTemplate | undefined, messages: readonly Pick<ChatMessageRecord, 'role' | 'content'>[]): string {
  return buildPrompt(template, messages.map((m) => ({ role: m.role, content: m.content })))
}

/** Folds one token's route into the reply's per-hop summary (a failover adds the new hop as a row). */
export function summarizeRoute(summary: HopSummary[], route: { peerId: string; layers: { start: number; end: number }; ms: number }[]) {
  for (const hop of route) {
    let s = summary.find((h) => h.peerId === hop.peerId && h.layers.start === hop.layers.start && h.layers.end === hop.layers.end)
    if (!s) summary.push((s = { peerId: hop.peerId, layers: { ...hop.layers }, tokens: 0, meanMs: 0, maxMs: 0 }))
    s.tokens++
    s.meanMs += (hop.ms - s.meanMs) / s.tokens
    s.maxMs = Math.max(s.maxMs, hop.ms)
  }
}

export interface ChatController {
  send(text: string): Promise<void>
  regenerate(): Promise<void>
  stop(): void
  close(): void
}

export function createChatController(runtime: TabRuntime, settings: SettingsStore, models: () => ModelEntry[]): ChatController {
  const sessions = new Map<string, Promise<ChatSession>>()
  let abort: AbortController | undefined

  const swarmCovers = (entry: ModelEntry) => layerCoverage(swarm.get().peers, entry.id, entry.config.nLayers).every((n) => n > 0)

  async function session(entry: ModelEntry, mode: 'auto' | 'swarm' | 'local'): Promise<ChatSession> {
    const key = `${entry.id}|${mode}`
    const cached = sessions.get(key)
    if (cached) {
      const s = await cached.catch(() => undefined)
      // an 'auto' session that fell back to local moves to the swarm once the swarm covers the model
      if (s && !(mode === 'auto' && s.mode === 'local' && swarmCovers(entry))) return s
      s?.close()
      sessions.delete(key)
    }
    const load = trackLoad(`chat:${entry.id}`, `chat: ${entry.id} (${mode === 'local' ? 'whole model' : 'embedding and head'})`)
    const opening = runtime.openChat({
      model: entry.id, mode, backend: mode === 'local' ? settings.get().backend : 'ref', // embedding and head only: the reference engine is plenty
      routeTimeoutMs: mode === 'swarm' ? 8000 : 3000,
      onProgress: (p) => {
        load.progress(p)
        const busy = chat.get().busy
        if (busy && busy.phase !== 'loading') chat.set({ busy: { ...busy, phase: 'loading' } })
      },
    })
    sessions.set(key, opening)
    try {
      const s = await opening
      if (s.mode === 'local') await markModelComplete(runtime.baseUrl, entry).catch(() => {})
      load.done()
      return s
    } catch (err) {
      sessions.delete(key)
      load.fail(err)
      throw err
    }
  }

  function dropSession(entry: ModelEntry, mode: string) {
    const key = `${entry.id}|${mode}`
    const s = sessions.get(key)
    sessions.delete(key)
    s?.then((x) => x.close(), () => {})
  }

  /** Streams a reply to `conversation`'s messages into a new assistant message. */
  async function reply(conversation: ConversationRecord, seed: number, fresh = false) {
    const s = settings.get()
    const entry = models().find((m) => m.id === conversation.modelId)
    const message: ChatMessageRecord = {
      id: newId(), role: 'assistant', content: '', createdAt: Date.now(), status: 'streaming',
      sampling: { temperature: s.temperature, topP: s.topP, maxTokens: s.maxTokens, seed },
    }
    let conv: ConversationRecord = { ...conversation, messages: [...conversation.messages, message], updatedAt: Date.now() }
    const update = (patch: Partial<ChatMessageRecord>, persist = false) => {
      Object.assign(message, patch)
      conv = { ...conv, messages: conv.messages.map((m) => (m.id === message.id ? { ...message } : m)) }
      putConversation(conv, persist)
    }
    putConversation(conv)
    chat.set({ activeId: conv.id, busy: { conversationId: conv.id, messageId: message.id, phase: 'route' } })
    abort = new AbortController()
    const signal = abort.signal
    const mode = s.chatMode
    const route: HopSummary[] = []
    const ids: number[] = []
    let text = ''
    let started = performance.now()
    try {
      if (!entry) throw new TabmeshError('model-not-found', `the registry has no model "${conversation.modelId}"`)
      const chatSession = await session(entry, mode)
      const prompt = conversationPrompt(await chatSession.chatTemplate(), conversation.messages)
      if (signal.aborted) throw new TabmeshError('aborted', 'generation stopped')
      chat.set({ busy: { conversationId: conv.id, messageId: message.id, phase: 'generating' } })
      let lastPaint = 0
      started = performance.now()
      update({ mode: chatSession.mode })
      const stats = newGenerationStats()
      let cached = false
      for await (const t of chatSession.generate({ prompt, maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed, signal, stats, cache: !fresh })) {
        text += t.text
        cached ||= !!t.cached
        if (t.token >= 0) {
          ids.push(t.token)
          counters.generated++
          if (t.route.length) {
            summarizeRoute(route, t.route)
            counters.routeMsSum += t.route.reduce((a, h) => a + h.ms, 0)
            counters.routeCount++
          }
        }
        const now = performance.now()
        if (now - lastPaint > 30) { // paint at most ~30 times a second
          lastPaint = now
          update({ content: text })
        }
      }
      const seconds = (performance.now() - started) / 1000
      if (conv.messages.length === 2 && conv.messages[0].content.trim() === '' && text.trim()) conv = { ...conv, title: titleFrom(text) }
      update({
        content: text, status: 'done', tokenIds: ids, route, tokensPerSecond: ids.length / Math.max(seconds, 1e-3),
        speculation: stats.drafted > 0 ? { drafted: stats.drafted, accepted: stats.accepted } : undefined,
        reusedPositions: stats.promptPositionsReused || undefined, cached: cached || undefined,
      }, true)
    } catch (err) {
      const stopped = err instanceof TabmeshError && err.code === 'aborted'
      if (!stopped && entry && err instanceof TabmeshError && (err.code === 'no-route' || err.code === 'hop-failed')) dropSession(entry, mode)
      const seconds = (performance.now() - started) / 1000
      update(stopped
        ? { status: 'stopped', content: text, tokenIds: ids, route, tokensPerSecond: ids.length ? ids.length / Math.max(seconds, 1e-3) : undefined }
        : { status: 'error', error: explainError(err, entry), content: text }, true)
    } finally {
      abort = undefined
      chat.set({ busy: undefined })
    }
  }

  return {
    async send(text) {
      if (chat.get().busy) return
      const s = settings.get()
      const active = chat.get().conversations.find((c) => c.id === chat.get().activeId)
      const now = Date.now()
      const base: ConversationRecord = active ?? { id: newId(), title: titleFrom(text) || 'A new story', modelId: s.chatModel, createdAt: now, updatedAt: now, messages: [] }
      const user: ChatMessageRecord = { id: newId(), role: 'user', content: text, createdAt: now }
      await reply({ ...base, modelId: active ? base.modelId : s.chatModel, messages: [...base.messages, user] }, s.seed)
    },
    async regenerate() {
      if (chat.get().busy) return
      const active = chat.get().conversations.find((c) => c.id === chat.get().activeId)
      if (!active) return
      const last = active.messages[active.messages.length - 1]
      const messages = last?.role === 'assistant' ? active.messages.slice(0, -1) : active.messages
      if (messages.length === 0) return
      const s = settings.get()
      // at temperature 0 the same reply comes back; above it, a new seed gives a new one
      const seed = s.temperature === 0 ? s.seed : Math.floor(Math.random() * 2 ** 31)
      await reply({ ...active, messages }, seed, true) // computed again, not answered from the reply cache
    },
    stop: () => abort?.abort(),
    close() {
      abort?.abort()
      for (const s of sessions.values()) s.then((x) => x.close(), () => {})
      sessions.clear()
    },
  }
}

/** Whether the whole model fits in this tab's memory cap (the local-mode choice). */
export function fitsLocally(entry: ModelEntry, memoryCapMb: number): boolean {
  const weights = entry.files.filter((f) => f.role === 'weights').reduce((n, f) => n + f.size, 0)
  return weights <= memoryCapMb * 2 ** 20
}
