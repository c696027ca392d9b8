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
}

export interface GenerateRequest extends GenerateOptions {
  prompt: string
  signal?: AbortSignal
}

const isSwarm = (e: Engine): e is SwarmEngine => typeof (e as SwarmEngine).lastRoute === 'function'

export async function* generateText(engine: Engine, tokenizer: Tokenizer, request: GenerateRequest): AsyncGenerator<GeneratedToken> {
  const promptTokens = tokenizer.encode(request.prompt)
  const decoder = tokenizer.createStreamDecoder(promptTokens[promptTokens.length - 1])
  const tokens = generateTokens(engine, promptTokens, request)
  try {
    for (;;) {
      if (request.signal?.aborted) throw new TabmeshError('aborted', 'generation stopped')
      const next = await tokens.next()
      if (next.done) break
      yield { token: next.value, text: decoder.push(next.value), route: isSwarm(engine) ? engine.lastRoute() : [] }
    }
    const rest = decoder.flush()
    if (rest) yield { token: -1, text: rest, route: [] }
  } finally {
    await tokens.return(undefined)
  }
}
