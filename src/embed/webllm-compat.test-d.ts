/**
 * Type-level test (checked by `npm run typecheck`): code written against WebLLM's own engine types
 * compiles unchanged with the tabmesh engine from the package's entry point, and what the engine
 * returns is what WebLLM's types describe.
 */
import type * as webllm from '@mlc-ai/web-llm'
import type { ChatCompletion, ChatCompletionChunk, TabmeshEngine } from 'tabmesh'

/** The part of MLCEngineInterface that chat code uses, in WebLLM's own types. */
type WebLLMChatEngine = Pick<webllm.MLCEngineInterface,
  'chatCompletion' | 'interruptGenerate' | 'getMessage' | 'runtimeStatsText' | 'resetChat' | 'unload' | 'setInitProgressCallback' | 'getInitProgressCallback'
> & { chat: { completions: Pick<webllm.MLCEngineInterface['chat']['completions'], 'create'> } }

// WebLLM's README example, typed for WebLLM's engine
async function webllmStyle(engine: WebLLMChatEngine): Promise<string> {
  engine.setInitProgressCallback((report: webllm.InitProgressReport) => console.log(report.text))
  const messages: webllm.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'Once upon a time' }]
  const chunks = await engine.chat.completions.create({ messages, stream: true, temperature: 0.8, top_p: 0.9, max_tokens: 64, stream_options: { include_usage: true } })
  let reply = ''
  for await (const chunk of chunks) {
    reply += chunk.choices[0]?.delta.content ?? ''
    if (chunk.usage) console.log(chunk.usage.completion_tokens, chunk.usage.extra.decode_tokens_per_s)
    if (reply.length > 1000) engine.interruptGenerate()
  }
  const full: webllm.ChatCompletion = await engine.chat.completions.create({ messages, max_tokens: 16 })
  await engine.resetChat()
  return reply + (full.choices[0].message.content ?? '') + (await engine.getMessage()) + (await engine.runtimeStatsText())
}

// swapping the engine: the tabmesh engine goes where WebLLM's is expected
export const swapped = (engine: TabmeshEngine) => webllmStyle(engine)

// and tabmesh's answers are WebLLM's shapes
export const chunkIsWebLLMs = (c: ChatCompletionChunk): webllm.ChatCompletionChunk => c
export const completionIsWebLLMs = (c: ChatCompletion): webllm.ChatCompletion => c
