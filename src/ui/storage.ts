import { type LayerRange } from '../core/vocabulary.ts'
import { openDB, type DBSchema, type IDBPDatabase } from 'idb'

/**
 * What the site keeps in IndexedDB: the user's settings (one record) and the conversations.
 * A separate database from the mesh identity's, so clearing one never touches the other.
 */
export interface HopSummary {
  peerId: string
  layers: LayerRange
  tokens: number // tokens this hop computed
  meanMs: number
  maxMs: number
}

export interface ChatMessageRecord {
  id: string
  role: 'user' | 'assistant'
  content: string
  createdAt: number
  /** Assistant replies only. */
  status?: 'streaming' | 'done' | 'stopped' | 'error'
  error?: { code: string; message: string }
  mode?: 'swarm' | 'local'
  tokenIds?: number[]
  tokensPerSecond?: number
  /** Speculative decoding: draft tokens proposed and accepted for this reply. */
  speculation?: { drafted: number; accepted: number }
  /** Prompt positions the swarm already held from the conversation's earlier turns. */
  reusedPositions?: number
  /** Answered from this tab's reply cache. */
  cached?: boolean
  route?: HopSummary[]
  sampling?: { temperature: number; topP: number; maxTokens: number; seed: number }
}

export interface ConversationRecord {
  id: string
  title: string
  modelId: string
  createdAt: number
  updatedAt: number
  messages: ChatMessageRecord[]
}

interface UiDb extends DBSchema {
  settings: { key: string; value: unknown }
  conversations: { key: string; value: ConversationRecord; indexes: { updatedAt: number } }
}

const DB_NAME = 'tabmesh-ui'
let db: Promise<IDBPDatabase<UiDb>> | undefined

function open(): Promise<IDBPDatabase<UiDb>> {
  db ??= openDB<UiDb>(DB_NAME, 1, {
    upgrade(d) {
      d.createObjectStore('settings')
      d.createObjectStore('conversations', { keyPath: 'id' }).createIndex('updatedAt', 'updatedAt')
    },
  })
  return db
}

export async function readSetting<T>(key: string): Promise<T | undefined> {
  return (await (await open()).get('settings', key)) as T | undefined
}

export async function writeSetting(key: string, value: unknown): Promise<void> {
  await (await open()).put('settings', value, key)
}

/** Conversations, most recently updated first. */
export async function listConversations(): Promise<ConversationRecord[]> {
  return (await (await open()).getAllFromIndex('conversations', 'updatedAt')).reverse()
}

export async function saveConversation(c: ConversationRecord): Promise<void> {
  await (await open()).put('conversations', c)
}

export async function deleteConversation(id: string): Promise<void> {
  await (await open()).delete('conversations', id)
}
