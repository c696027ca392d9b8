import { TabmeshError } from '../core/errors.ts'
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
 */
export async function* generateTokens(engine: Engine, promptTokens: number[], options: GenerateOptions): AsyncGenerator<number> {
  const c = engine.config
  checkContextWindow(promptTokens.length, options.maxTokens, c.seqLen)
  const sampler = createSampler(c.vocabSize, options)
  const stops = new Set([c.bosId, c.eosId, ...(c.eosIds ?? [])])
  const chunk = options.prefillChunk ?? 32
  await engine.reset()
  if (options.maxTokens === 0) return

  // prefill: the prompt in chunks; only the last row's logits matter
  let hidden: Float32Array = new Float32Array(0)
  for (let start = 0; start < promptTokens.length; start += chunk) {
    const tokens = Int32Array.from(promptTokens.slice(start, start + chunk))
    const positions = tokens.map((_, i) => start + i)
    hidden = await engine.forward(await engine.embed(tokens), positions)
  }
  const token = new Int32Array(1) // (1) the token being fed back
  const position = new Int32Array(1) // (1) its position
  for (let generated = 0; ; ) {
    const next = sampler.sample(await engine.head(hidden))
    if (stops.has(next)) return
    yield next
    if (++generated === options.maxTokens) return
    token[0] = next
    position[0] = promptTokens.length + generated - 1
    hidden = await engine.forward(await engine.embed(token), position)
  }
}
