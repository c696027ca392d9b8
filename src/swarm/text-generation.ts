import { TabmeshError } from '../core/errors.ts'
import type { Engine } from '../engine/engine.ts'
import { generateTokens, type GenerateOptions } from '../engine/generate.ts'
import type { Tokenizer } from '../model/tokenizer/tokenizer.ts'
import type { HopTiming, SwarmEngine } from './swarm-engine.ts'

/**
 * The client API the UI, the embed and the CLI use: text in, an async iterator of tokens out, each
 * with its text and the route that computed it. Works the same over the swarm or a local engine
 * (dual mode); abort with an AbortSignal.
 */
export interface GeneratedToken {
  token: number
  text: string // the text this token completes ('' inside a split UTF-8 character)
  route: HopTiming[] // peers and latency per hop; empty when run locally
  cached?: boolean // answered from the client's reply cache, without the swarm
}

export interface GenerateRequest extends GenerateOptions {
  prompt: string
  signal?: AbortSignal
  /**
   * Greedy requests draft tokens unless false (ChatSession.generate; `speculation` set explicitly
   * wins): from the registry's draft model for this one when it pairs one, else by prompt lookup;
   * 'lookup' drafts by prompt lookup even when a draft model is paired.
   */
  speculate?: boolean | 'lookup'
  /** An identical earlier greedy request is answered from the reply cache unless false. */
  cache?: boolean
}

/**
 * Replies already computed, by request: an identical greedy request (same model, prompt, length)
 * is answered from here without the swarm. Only greedy replies are kept: a sampled reply is one
 * draw, not the answer. Least recently used out first.
 */
export interface ReplyCache {
  get(key: string): number[] | undefined
  set(key: string, tokens: number[]): void
  readonly size: number
}

export function createReplyCache(maxEntries = 64): ReplyCache {
  const entries = new Map<string, number[]>()
  return {
    get(key) {
      const hit = entries.get(key)
      if (hit) { entries.delete(key); entries.set(key, hit) }
      return hit
    },
    set(key, tokens) {
      entries.delete(key)
      entries.set(key, tokens.slice())
      for (const k of entries.keys()) { if (entries.size <= maxEntries) break; entries.delete(k) }
    },
    get size() { return entries.size },
  }
}

/**
 * The cache key of a request, or undefined when its reply is not to be cached (sampling). `where`
 * ('swarm' or 'local') is part of it: a reply asked of the swarm is computed by the swarm once.
 */
export const replyCacheKey = (modelId: string, where: string, request: GenerateRequest): string | undefined =>
  (request.temperature === 0 ? JSON.stringify([modelId, where, request.prompt, request.maxTokens]) : undefined)

const isSwarm = (e: Engine): e is SwarmEngine => typeof (e as SwarmEngine).lastRoute === 'function'

export async function* generateText(engine: Engine, tokenizer: Tokenizer, request: GenerateRequest, cache?: { replies: ReplyCache; modelId: string; where: string }): AsyncGenerator<GeneratedToken> {
  const promptTokens = tokenizer.encode(request.prompt)
  const decoder = tokenizer.createStreamDecoder(promptTokens[promptTokens.length - 1])
  const key = cache && request.cache !== false ? replyCacheKey(cache.modelId, cache.where, request) : undefined
  const hit = key !== undefined ? cache!.replies.get(key) : undefined
  if (hit) {
    if (request.stats) { request.stats.firstTokenAt = performance.now(); request.stats.tokens = hit.length }
    for (const token of hit) {
      if (request.signal?.aborted) throw new TabmeshError('aborted', 'generation stopped')
      yield { token, text: decoder.push(token), route: [], cached: true }
    }
    const rest = decoder.flush()
    if (rest) yield { token: -1, text: rest, route: [], cached: true }
    return
  }
  const tokens = generateTokens(engine, promptTokens, request)
  const out: number[] = []
  try {
    for (;;) {
      if (request.signal?.aborted) throw new TabmeshError('aborted', 'generation stopped')
      const next = await tokens.next()
      if (next.done) break
      out.push(next.value)
      yield { token: next.value, text: decoder.push(next.value), route: isSwarm(engine) ? engine.lastRoute() : [] }
    }
    if (key !== undefined) cache!.replies.set(key, out) // only a reply that ran to its end
    const rest = decoder.flush()
    if (rest) yield { token: -1, text: rest, route: [] }
  } finally {
    await tokens.return(undefined)
  }
}
