import { Rewind, TabmeshError } from '../core/errors.ts'
import type { Engine } from './engine.ts'
import { createSampler, type SamplingOptions } from './sampler.ts'

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number // generated tokens, not counting the prompt
  /** Rows per forward call while reading the prompt. */
  prefillChunk?: number
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
  await engine.reset()
  if (options.maxTokens === 0) return

  const tokens = promptTokens.slice() // prompt, then generated tokens (each fed back but the last)
  let yielded = 0 // generated tokens handed out: final, never rewound
  let next = 0 // the next position to forward; outputs of positions < next are in the caches
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
        while (yielded < tokens.length - promptLength) yield tokens[promptLength + yielded++]
        return
      }
      if (next < promptLength) {
        // prefill: the prompt in chunks; only the last row's logits matter
        const end = Math.min(promptLength, next + chunk)
        const ids = Int32Array.from(tokens.slice(next, end))
        hidden = await engine.forward(await engine.embed(ids), ids.map((_, i) => next + i))
        next = end
        continue
      }
      if (next === tokens.length) {
        const sampled = sampler.sample(await engine.head(hidden))
        if (stops.has(sampled)) {
          finished = true
          continue
        }
        tokens.push(sampled)
        if (tokens.length - promptLength === options.maxTokens) {
          finished = true
          continue
        }
      }
      token[0] = tokens[next]
      position[0] = next
      hidden = await engine.forward(await engine.embed(token), position)
      next++
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
