import { Rewind, TabmeshError } from '../core/errors.ts'
import type { Engine } from './engine.ts'
import { argmax, createSampler, type SamplingOptions } from './sampler.ts'

/** Proposes up to `k` tokens to follow `tokens` (speculative decoding); fewer or none when it has no guess. */
export type Drafter = (tokens: readonly number[], k: number) => number[] | Promise<number[]>

export interface SpeculationOptions {
  draft: Drafter
  /** Draft tokens per step at most: each step forwards the last token and the draft (k + 1 rows) in one trip. */
  maxDraft: number
}

/** What one generation did, filled in as it runs (the UI and the API show it per reply). */
export interface GenerationStats {
  forwardCalls: number // trips through the engine (a prefill chunk, a decode step, a draft verified)
  promptPositionsReused: number // prompt positions the engine already held (resume)
  drafted: number // draft tokens proposed
  accepted: number // of them, accepted
  startedAt: number // performance.now() at the start
  firstTokenAt?: number // when the first token was sampled
  tokens: number // generated
}

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number // generated tokens, not counting the prompt
  /** Rows per forward call while reading the prompt. */
  prefillChunk?: number
  /**
   * Speculative decoding, greedy only: with temperature > 0 it is off (the drafts are not verified
   * with speculative sampling; the reply is plain sampling). Greedy output is id-identical with and
   * without it.
   */
  speculation?: SpeculationOptions
  /** Filled in as the generation runs. */
  stats?: GenerationStats
}

/** An empty GenerationStats. */
export const newGenerationStats = (): GenerationStats => ({ forwardCalls: 0, promptPositionsReused: 0, drafted: 0, accepted: 0, startedAt: performance.now(), tokens: 0 })

/**
 * Prompt lookup: the continuation of the latest earlier occurrence of the context's last n tokens
 * (n from `maxNgram` down to 1), needing no second model. Repetitive text (code, quotes, a story
 * that names its characters again) drafts well; anything else drafts nothing.
 */
export function promptLookupDrafter(maxNgram = 3): Drafter {
  return (tokens, k) => {
    const t = tokens.length
    for (let n = Math.min(maxNgram, t - 1); n >= 1; n--) {
      for (let start = t - n - 1; start >= 0; start--) {
        let match = true
        for (let i = 0; i < n; i++) if (tokens[start + i] !== tokens[t - n + i]) { match = false; break }
        if (!match) continue
        const from = start + n
        const draft = tokens.slice(from, Math.min(from + k, t))
        if (draft.length > 0) return draft
      }
    }
    return []
  }
}

/**
 * Positions a generation needs: every prompt token and every generated token but the last is
 * forwarded (the last sampled token is never fed back). Policy: a request that does not fit in
 * the context window is refused before any work; nothing is truncated silently.
 */
export function checkContextWindow(promptLength: number, maxTokens: number, seqLen: number): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new TabmeshError('bad-argument', `max tokens must be a whole number >= 0, got ${maxTokens}`)
  if (promptLength < 1) throw new TabmeshError('bad-argument', 'the prompt must hold at least the BOS token')
  const needed = promptLength + Math.max(maxTokens, 1) - 1
  if (needed > seqLen) {
    throw new TabmeshError('context-window', `the prompt (${promptLength} tokens) plus ${maxTokens} new tokens needs ${needed} positions, but the model's context window is ${seqLen}; shorten the prompt or ask for at most ${Math.max(0, seqLen - promptLength + 1)} tokens`)
  }
}

/**
 * Runs prompt + generation on one engine that holds the whole model (or any composition that
 * behaves like one) and yields each generated token id. Stops after maxTokens, or before emitting
 * BOS or any end-of-turn id (EOS, config.eosIds; run.c stops on BOS).
 *
 * An engine whose outputs are checked after the fact (committed/settle, the swarm's spot checks)
 * may throw Rewind: tokens sampled from outputs at or after its position are dropped and
 * generation goes on from there. A token is yielded only once the output it was sampled from is
 * committed, so nothing yielded is ever taken back; with greedy sampling the ids are those of an
 * uninterrupted honest run. (With temperature > 0 the redrawn tokens continue the seed's random
 * sequence: same distribution, not the same ids as a run that never rewound.)
 */
export async function* generateTokens(engine: Engine, promptTokens: number[], options: GenerateOptions): AsyncGenerator<number> {
  const c = engine.config
  checkContextWindow(promptTokens.length, options.maxTokens, c.seqLen)
  const sampler = createSampler(c.vocabSize, options)
  const stops = new Set([c.bosId, c.eosId, ...(c.eosIds ?? [])])
  const chunk = options.prefillChunk ?? 32
  const promptLength = promptTokens.length
  const stats = options.stats ?? newGenerationStats()
  const speculation = options.temperature === 0 && options.speculation && options.speculation.maxDraft > 0 ? options.speculation : undefined
  if (options.maxTokens === 0) {
    await engine.reset()
    return
  }
  // positions an earlier generation left in the engine's caches (a conversation's next turn)
  const reused = engine.resume ? Math.min(await engine.resume(promptTokens), promptLength - 1) : (await engine.reset(), 0)
  stats.promptPositionsReused = reused

  const tokens = promptTokens.slice() // prompt, then generated tokens (each fed back but the last)
  let yielded = 0 // generated tokens handed out: final, never rewound
  let next = reused // the next position to forward; outputs of positions < next are in the caches
  let hidden: Float32Array = new Float32Array(0) // the output at position next - 1
  let finished = false // a stop id or maxTokens reached (pending the final settle)
  const token = new Int32Array(1) // (1) the token being fed back
  const position = new Int32Array(1) // (1) its position
  // generated token i (tokens[promptLength + i]) was sampled from the output at position promptLength + i - 1
  const committed = () => engine.committed?.() ?? Infinity
  for (;;) {
    try {
      if (finished) {
        await engine.settle?.()
        // positions [0, next) hold tokens[0, next): kept for a next turn that starts with them
        engine.keep?.(tokens.slice(0, next))
        while (yielded < tokens.length - promptLength) yield tokens[promptLength + yielded++]
        return
      }
      if (next < promptLength) {
        // prefill: the prompt in chunks; only the last row's logits matter
        const end = Math.min(promptLength, next + chunk)
        const ids = Int32Array.from(tokens.slice(next, end))
        hidden = await engine.forward(await engine.embed(ids), ids.map((_, i) => next + i))
        stats.forwardCalls++
        next = end
        continue
      }
      if (next === tokens.length) {
        const sampled = sampler.sample(await engine.head(hidden))
        stats.firstTokenAt ??= performance.now()
        if (stops.has(sampled)) {
          finished = true
          continue
        }
        tokens.push(sampled)
        stats.tokens = tokens.length - promptLength
        if (tokens.length - promptLength === options.maxTokens) {
          finished = true
          continue
        }
      }
      // tokens.length === next + 1: tokens[next] is sampled and not yet forwarded
      const room = options.maxTokens - (tokens.length - promptLength) // tokens still allowed after tokens[next]
      const draft = speculation && room > 1 ? (await speculation.draft(tokens, Math.min(speculation.maxDraft, room - 1))).slice(0, Math.min(speculation.maxDraft, room - 1)) : []
      if (draft.length === 0) {
        token[0] = tokens[next]
        position[0] = next
        hidden = await engine.forward(await engine.embed(token), position)
        stats.forwardCalls++
        next++
      } else {
        // one trip verifies the draft: rows next..next+k; row i's output decides the token at next+i+1
        const ids = Int32Array.from([tokens[next], ...draft])
        const out = (await engine.forward(await engine.embed(ids), ids.map((_, i) => next + i))).slice()
        stats.forwardCalls++
        stats.drafted += draft.length
        let used = 0 // rows whose outputs were sampled from
        const logits = engine.headRows ? await engine.headRows(out) : undefined // (k + 1, vocab) in one call
        for (let i = 0; i <= draft.length; i++) {
          used = i + 1
          const sampled = sampler.sample(logits ? logits.subarray(i * c.vocabSize, (i + 1) * c.vocabSize) : await engine.head(out.subarray(0, (i + 1) * c.dim)))
          if (stops.has(sampled)) { finished = true; break }
          tokens.push(sampled)
          if (tokens.length - promptLength === options.maxTokens) { finished = true; break }
          if (i === draft.length || sampled !== draft[i]) break
          stats.accepted++
        }
        stats.tokens = tokens.length - promptLength
        // rows past `used` were computed for a rejected draft: the next forward writes those positions again
        next += used
        hidden = out.slice((used - 1) * c.dim, used * c.dim)
      }
      while (yielded < tokens.length - promptLength && promptLength + yielded - 1 < committed()) yield tokens[promptLength + yielded++]
    } catch (err) {
      if (!(err instanceof Rewind)) throw err
      const keep = Math.max(promptLength, err.position + 1) // tokens sampled from void outputs go
      if (keep < promptLength + yielded) throw new TabmeshError('hop-failed', `a rewind to position ${err.position} would take back tokens already given out: ${err.message}`)
      tokens.length = Math.min(tokens.length, keep)
      next = Math.min(next, err.position)
      finished = false
    }
  }
}

/**
 * Drafts from a small model with the same vocabulary, run greedily on `engine` (which holds all of
 * it, embedding and head included). Its KV cache follows the context: tokens it has seen and that
 * are still the context's are not fed again; past the first difference (a rejected draft) it
 * overwrites. Greedy target output is unchanged whatever it drafts; how much it speeds up depends
 * on how often the two models agree.
 */
export function modelDrafter(engine: Engine, options: { prefillChunk?: number } = {}): Drafter {
  const c = engine.config
  const chunk = options.prefillChunk ?? 32
  let fed: number[] = [] // tokens at positions [0, fed.length) of the draft engine's cache
  let last: Float32Array | undefined // its output at position fed.length - 1
  let started = false
  const step = async (ids: number[], from: number) => {
    const rows = Int32Array.from(ids)
    const out = await engine.forward(await engine.embed(rows), rows.map((_, i) => from + i))
    last = out.slice(out.length - c.dim)
  }
  return async (tokens, k) => {
    if (!started) { await engine.reset(); started = true }
    const t = tokens.length
    k = Math.min(k, c.seqLen - t) // positions t .. t + k - 2 are forwarded here
    if (k < 1 || t < 1) return []
    let same = 0
    while (same < fed.length && same < t && fed[same] === tokens[same]) same++
    if (same === t) same = t - 1 // the last context token is forwarded again for its output
    fed = fed.slice(0, same)
    for (let p = same; p < t;) {
      const end = Math.min(t, p + chunk)
      await step(tokens.slice(p, end) as number[], p)
      fed.push(...tokens.slice(p, end))
      p = end
    }
    const draft: number[] = []
    for (;;) {
      const next = argmax(await engine.head(last!))
      draft.push(next)
      if (draft.length === k) break
      await step([next], fed.length)
      fed.push(next)
    }
    return draft
  }
}
