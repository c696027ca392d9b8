import { TabmeshError } from '../core/errors.ts'
import { buildPrompt, type ChatTemplate } from '../model/template/index.ts'
import type { ChatSession, TabRuntime } from '../swarm/tab-runtime.ts'
import { newGenerationStats } from '../engine/generate.ts'
import type { ChatCompletionChunk, CompletionUsage, FinishReason, GenerationStats } from './openai.ts'
import type { ChatRequest } from './protocol.ts'

/**
 * What the iframe chats with: a tabmesh model (through the swarm or whole in this tab) or, for one
 * of WebLLM's prebuilt models, WebLLM. Either way an OpenAI-shaped chunk stream comes out.
 */
export interface ChatBackend {
  readonly kind: 'tabmesh' | 'webllm'
  readonly modelId: string
  complete(request: ChatRequest, signal: AbortSignal): AsyncIterable<ChatCompletionChunk>
  close(): void
}

export interface InitProgress { progress: number; text: string }

export function usageOf(s: GenerationStats): CompletionUsage {
  const first = s.firstTokenMs ?? s.endedMs
  const prefillS = Math.max(1e-9, (first - s.startedMs) / 1000)
  const decodeS = Math.max(1e-9, (s.endedMs - first) / 1000)
  return {
    prompt_tokens: s.promptTokens, completion_tokens: s.completionTokens, total_tokens: s.promptTokens + s.completionTokens,
    extra: {
      e2e_latency_s: (s.endedMs - s.startedMs) / 1000,
      prefill_tokens_per_s: s.promptTokens / prefillS,
      decode_tokens_per_s: Math.max(0, s.completionTokens - 1) / decodeS,
      time_to_first_token_s: prefillS,
      time_per_output_token_s: s.completionTokens > 1 ? decodeS / (s.completionTokens - 1) : 0,
      ...(s.drafted ? { draft_tokens: s.drafted, accepted_draft_tokens: s.accepted ?? 0, draft_acceptance_rate: (s.accepted ?? 0) / s.drafted } : {}),
      ...(s.reused ? { prompt_tokens_reused: s.reused } : {}),
      ...(s.cached ? { cached: true } : {}),
    },
  }
}

export const chunkOf = (id: string, model: string, created: number, content: string | null, finish: FinishReason | null, usage?: CompletionUsage): ChatCompletionChunk => ({
  id, object: 'chat.completion.chunk', created, model,
  choices: [{ index: 0, delta: content === null ? {} : { role: 'assistant', content }, finish_reason: finish, logprobs: null }],
  ...(usage ? { usage } : {}),
})

/**
 * Messages to prompt text: the model's own chat template, the same for the swarm and a local tabmesh
 * engine, with the generation prompt and no BOS text (the tokenizer adds BOS), as buildPrompt does by default.
 */
export function renderPrompt(template: ChatTemplate, messages: ChatRequest['messages']): string {
  return buildPrompt(template, messages)
}

const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0]

/** A tabmesh registry model: swarm, local or auto (swarm if a route exists, else the whole model here). */
export function tabmeshBackend(runtime: TabRuntime, modelId: string, mode: 'swarm' | 'local' | 'auto', onProgress?: (p: InitProgress) => void): ChatBackend {
  let opened: Promise<{ session: ChatSession; template: ChatTemplate }> | undefined
  const open = () => (opened ??= (async () => {
    const session = await runtime.openChat({
      model: modelId, mode,
      onProgress: (p) => onProgress?.({ progress: p.totalBytes > 0 ? p.loadedBytes / p.totalBytes : 0, text: `loading ${modelId}: ${p.loadedBytes} of ${p.totalBytes} bytes` }),
    })
    let template: ChatTemplate
    try {
      template = await session.chatTemplate()
    } catch (err) {
      session.close()
      throw err
    }
    onProgress?.({ progress: 1, text: `${modelId} ready (${session.mode})` })
    return { session, template }
  })().catch((err) => { opened = undefined; throw err }))

  return {
    kind: 'tabmesh',
    modelId,
    async *complete(request, signal) {
      const { session, template } = await open()
      const prompt = renderPrompt(template, request.messages)
      const promptTokens = session.tokenizer.encode(prompt).length
      const seqLen = session.engine.config.seqLen
      const maxTokens = request.max_tokens ?? Math.max(0, seqLen - promptTokens + 1)
      const id = `chatcmpl-${crypto.randomUUID()}`
      const created = Math.floor(Date.now() / 1000)
      const stats: GenerationStats = { promptTokens, completionTokens: 0, startedMs: performance.now(), endedMs: 0 }
      const run = newGenerationStats()
      let finish: FinishReason = 'stop'
      try {
        for await (const t of session.generate({
          prompt, maxTokens, signal, stats: run,
          temperature: request.temperature ?? 1, topP: request.top_p ?? 1, seed: request.seed ?? randomSeed(),
        })) {
          if (t.cached) stats.cached = true
          if (t.token >= 0) {
            stats.completionTokens++
            stats.firstTokenMs ??= performance.now()
          }
          if (t.text) yield chunkOf(id, modelId, created, t.text, null)
        }
        if (stats.completionTokens === maxTokens) finish = 'length'
      } catch (err) {
        if (!(err instanceof TabmeshError && err.code === 'aborted')) {
          if (err instanceof TabmeshError && (err.code === 'no-route' || err.code === 'hop-failed')) {
            session.close() // the next request opens a fresh route
            opened = undefined
          }
          throw err
        }
        finish = 'abort'
      }
      stats.endedMs = performance.now()
      Object.assign(stats, { drafted: run.drafted, accepted: run.accepted, reused: run.promptPositionsReused })
      yield chunkOf(id, modelId, created, null, finish, usageOf(stats))
    },
    close() {
      void opened?.then(({ session }) => session.close(), () => {})
      opened = undefined
    },
  }
}

/** Whether `modelId` is one of WebLLM's prebuilt models (loads WebLLM's code, a chunk of its own). */
export async function isWebLLMModel(modelId: string): Promise<boolean> {
  const { prebuiltAppConfig } = await import('@mlc-ai/web-llm')
  return prebuiltAppConfig.model_list.some((m) => m.model_id === modelId)
}

/**
 * One of WebLLM's prebuilt models, run whole in this tab by @mlc-ai/web-llm. Thin on purpose: WebLLM
 * applies the model's own conversation template and produces the chunks. Untested here (these
 * machines have no internet, and WebLLM loads its model libraries and weights from it).
 */
export function webllmBackend(modelId: string, onProgress?: (p: InitProgress) => void): ChatBackend {
  type Engine = import('@mlc-ai/web-llm').MLCEngineInterface
  let engine: Promise<Engine> | undefined
  const open = () => (engine ??= import('@mlc-ai/web-llm').then((webllm) => webllm.CreateMLCEngine(modelId, {
    initProgressCallback: (r) => onProgress?.({ progress: r.progress, text: r.text }),
  })).catch((err) => { engine = undefined; throw new TabmeshError('backend', `WebLLM could not load ${modelId}: ${err instanceof Error ? err.message : String(err)}`) }))
  return {
    kind: 'webllm',
    modelId,
    async *complete(request, signal) {
      const e = await open()
      const onAbort = () => e.interruptGenerate()
      signal.addEventListener('abort', onAbort)
      try {
        const { model: _model, ...rest } = request
        const chunks = await e.chat.completions.create({ ...rest, stream: true, stream_options: { include_usage: true } })
        // WebLLM's chunks are a superset of tabmesh's (tool calls, more roles), which text chat never produces
        for await (const c of chunks) yield c as ChatCompletionChunk
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    },
    close() {
      void engine?.then((e) => e.unload(), () => {})
      engine = undefined
    },
  }
}
