/**
 * OpenAI-shaped chat completions, the subset tabmesh produces (types only, so the host side and the
 * iframe share no code). The shapes are tabmesh's own (the
 * package does not need @mlc-ai/web-llm installed) and are checked against WebLLM's types at compile
 * time (webllm-compat.test.ts), so code written for WebLLM's engine reads them unchanged.
 */
export type FinishReason = 'stop' | 'length' | 'abort'

export interface ChatCompletionMessageParam {
  role: 'system' | 'user' | 'assistant'
  content: string
  name?: string
}

export interface ChatCompletionRequestBase {
  messages: ChatCompletionMessageParam[]
  stream?: boolean | null
  stream_options?: { include_usage?: boolean } | null
  temperature?: number | null // default 1
  top_p?: number | null // default 1
  max_tokens?: number | null // default: as many as the context window holds
  seed?: number | null
  model?: string | null
}
export interface ChatCompletionRequestStreaming extends ChatCompletionRequestBase { stream: true }
export interface ChatCompletionRequestNonStreaming extends ChatCompletionRequestBase { stream?: false | null }

export interface CompletionUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  extra: {
    e2e_latency_s: number; prefill_tokens_per_s: number; decode_tokens_per_s: number; time_to_first_token_s: number; time_per_output_token_s: number
    /** tabmesh: speculative decoding's draft tokens proposed and accepted, and their ratio (absent: no drafts). */
    draft_tokens?: number; accepted_draft_tokens?: number; draft_acceptance_rate?: number
    /** tabmesh: prompt positions the swarm already held from earlier turns (prefix cache). */
    prompt_tokens_reused?: number
    /** tabmesh: answered from this tab's reply cache, without the swarm. */
    cached?: boolean
  }
}

export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: { index: number; delta: { role?: 'assistant'; content?: string | null }; finish_reason: FinishReason | null; logprobs: null }[]
  usage?: CompletionUsage
}

export interface ChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: { index: number; message: { role: 'assistant'; content: string | null }; finish_reason: FinishReason; logprobs: null }[]
  usage?: CompletionUsage
}

/** The timings a generation reports, turned into usage. */
export interface GenerationStats {
  promptTokens: number
  completionTokens: number
  startedMs: number
  firstTokenMs?: number
  endedMs: number
  drafted?: number
  accepted?: number
  reused?: number
  cached?: boolean
}
