import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequestBase, ChatCompletionRequestNonStreaming, ChatCompletionRequestStreaming, CompletionUsage, FinishReason } from './openai.ts'
import type { ContributionStatus, FrameMessage, FrameStatus, HostMessage } from './protocol.ts'

/**
 * The JS API a host page uses (from the npm package, or as window.tabmesh from embed.js): an engine
 * shaped like WebLLM's MLCEngineInterface, so WebLLM code runs against the swarm by swapping the
 * engine. The work happens in an iframe from the tabmesh origin; this side only posts messages.
 *
 * This module and embed.ts import types only from the rest of tabmesh, so embed.js stays one small
 * classic script with nothing shared with the iframe's code.
 */
export const PROTOCOL = 'tabmesh-embed/1' satisfies FrameMessage['protocol']
export const FRAME_PATH = 'src/embed/frame.html'

export type * from './openai.ts'
export type { ContributionState, ContributionStatus, FrameStatus } from './protocol.ts'

export interface ConnectOptions {
  /** The tabmesh site (its relay serves the registry and the libp2p relay address). Default: where embed.js came from. */
  relay?: string
  /** A tabmesh registry model id, or one of WebLLM's prebuilt model ids (then it runs locally through WebLLM). */
  model?: string
  /** For tabmesh models: through the swarm, whole in this tab, or swarm when a route exists (default). */
  mode?: 'swarm' | 'local' | 'auto'
  /** Backend a contribution runs on (default auto). */
  backend?: 'ref' | 'wasm' | 'webgpu' | 'auto'
  /** Where the widget (its contribute button) goes; default a small bar fixed at the page's bottom right. */
  container?: HTMLElement
  /** How long to wait for the iframe to load (default 30 s). */
  timeoutMs?: number
  /** STUN/TURN servers for the widget's WebRTC (as RTCIceServer); default: the tabmesh site's (GET /relay). */
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[]
}

export interface ContributeOptions {
  enabled: boolean
  /** Bytes of weights and KV cache this tab may hold (default 256 MiB). */
  memoryBudget?: number
}

export interface InitProgressReport { progress: number; timeElapsed: number; text: string }
export type InitProgressCallback = (report: InitProgressReport) => void

export interface ChatCompletions {
  create(request: ChatCompletionRequestNonStreaming): Promise<ChatCompletion>
  create(request: ChatCompletionRequestStreaming): Promise<AsyncIterable<ChatCompletionChunk>>
  create(request: ChatCompletionRequestBase): Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion>
}

export interface TabmeshEngine {
  readonly model: string
  readonly chat: { completions: ChatCompletions }
  chatCompletion: ChatCompletions['create']
  /** Stops the running generation; its stream ends with finish_reason 'abort'. */
  interruptGenerate(): void
  /** Asks the visitor to contribute (the widget asks for a click; nothing starts without it), or stops contributing. */
  contribute(options: ContributeOptions): Promise<ContributionStatus>
  onContributionChange(listener: (status: ContributionStatus) => void): () => void
  status(): Promise<FrameStatus>
  setInitProgressCallback(callback: InitProgressCallback): void
  getInitProgressCallback(): InitProgressCallback | undefined
  /** The last reply's text. */
  getMessage(): Promise<string>
  runtimeStatsText(): Promise<string>
  /** Requests carry the whole conversation, so there is no chat state to reset. */
  resetChat(): Promise<void>
  /** Removes the iframe; the engine cannot be used afterwards. */
  unload(): Promise<void>
}

export class TabmeshEmbedError extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
    this.name = 'TabmeshError'
  }
}

interface Pending {
  chunk?(c: ChatCompletionChunk): void
  resolve(value: unknown): void
  reject(err: Error): void
}

const isFrameMessage = (d: unknown): d is FrameMessage =>
  typeof d === 'object' && d !== null && (d as { protocol?: unknown }).protocol === PROTOCOL && typeof (d as { type?: unknown }).type === 'string'

/** Opens the tabmesh iframe and resolves once it has answered; `src` must be on `origin`. */
export function openFrame(src: URL, place: (iframe: HTMLIFrameElement) => void, timeoutMs = 30_000): Promise<HTMLIFrameElement> {
  const iframe = document.createElement('iframe')
  iframe.src = src.href
  iframe.title = 'tabmesh'
  // WASM threads for the engine inside (when the host page is cross-origin isolated too); nothing else from the host page
  iframe.allow = 'cross-origin-isolated'
  iframe.style.border = '0'
  iframe.style.colorScheme = 'normal'
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { removeEventListener('message', onMessage); reject(new TabmeshEmbedError('fetch', `the tabmesh widget at ${src.origin} did not load within ${timeoutMs} ms`)) }, timeoutMs)
    const onMessage = (event: MessageEvent) => {
      if (event.source !== iframe.contentWindow || event.origin !== src.origin || !isFrameMessage(event.data) || event.data.type !== 'ready') return
      clearTimeout(timer)
      removeEventListener('message', onMessage)
      resolve(iframe)
    }
    addEventListener('message', onMessage)
    place(iframe)
  })
}

/** An engine over an open tabmesh iframe. */
export function frameEngine(iframe: HTMLIFrameElement, origin: string, model: string): TabmeshEngine {
  const pending = new Map<string, Pending>()
  const listeners = new Set<(s: ContributionStatus) => void>()
  let progressCallback: InitProgressCallback | undefined
  const started = performance.now()
  let lastMessage = ''
  let lastUsage: CompletionUsage | undefined
  let closed = false

  const onMessage = (event: MessageEvent) => {
    if (event.source !== iframe.contentWindow || event.origin !== origin || !isFrameMessage(event.data)) return
    const m = event.data
    switch (m.type) {
      case 'chunk': pending.get(m.id)?.chunk?.(m.chunk as ChatCompletionChunk); break
      case 'result': pending.get(m.id)?.resolve(m.value); pending.delete(m.id); break
      case 'error':
        if (m.id !== null) { pending.get(m.id)?.reject(new TabmeshEmbedError(m.code, m.message)); pending.delete(m.id) }
        break
      case 'contribution': for (const l of listeners) l(m.status); break
      case 'progress': progressCallback?.({ progress: m.progress, text: m.text, timeElapsed: (performance.now() - started) / 1000 }); break
    }
  }
  addEventListener('message', onMessage)

  const send = (m: HostMessage, chunk?: Pending['chunk']): Promise<unknown> => {
    if (closed) return Promise.reject(new TabmeshEmbedError('aborted', 'this engine was unloaded'))
    return new Promise((resolve, reject) => {
      pending.set(m.id, { resolve, reject, chunk })
      iframe.contentWindow!.postMessage(m, origin)
    })
  }
  const newId = () => crypto.randomUUID()

  /** The chunks of one request, pulled by the caller; chunks that arrive early wait in a queue. */
  function stream(request: ChatCompletionRequestBase): AsyncIterable<ChatCompletionChunk> {
    const queue: ChatCompletionChunk[] = []
    let done = false
    let failure: Error | undefined
    let wake: (() => void) | undefined
    const { stream: _stream, ...rest } = request
    void send({ protocol: PROTOCOL, type: 'chat', id: newId(), request: rest as never }, (c) => { queue.push(c); wake?.() })
      .then(() => { done = true }, (err: Error) => { failure = err })
      .finally(() => wake?.())
    return {
      async *[Symbol.asyncIterator]() {
        let text = ''
        try {
          for (;;) {
            const next = queue.shift()
            if (next) {
              text += next.choices[0]?.delta.content ?? ''
              if (next.usage) lastUsage = next.usage
              yield next
              continue
            }
            if (failure) throw failure
            if (done) break
            await new Promise<void>((r) => { wake = r })
            wake = undefined
          }
        } finally {
          lastMessage = text
          // a caller that stops reading stops the generation too
          if (!done && !failure) void send({ protocol: PROTOCOL, type: 'interrupt', id: newId() }).catch(() => {})
        }
      },
    }
  }

  async function collect(chunks: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletion> {
    let content = ''
    let last: ChatCompletionChunk | undefined
    let finish: FinishReason = 'stop'
    let usage: CompletionUsage | undefined
    for await (const c of chunks) {
      last = c
      content += c.choices[0]?.delta.content ?? ''
      finish = c.choices[0]?.finish_reason ?? finish
      usage = c.usage ?? usage
    }
    return {
      id: last?.id ?? `chatcmpl-${newId()}`, object: 'chat.completion', created: last?.created ?? Math.floor(Date.now() / 1000), model: last?.model ?? model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish, logprobs: null }],
      ...(usage ? { usage } : {}),
    }
  }

  function create(request: ChatCompletionRequestNonStreaming): Promise<ChatCompletion>
  function create(request: ChatCompletionRequestStreaming): Promise<AsyncIterable<ChatCompletionChunk>>
  function create(request: ChatCompletionRequestBase): Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion>
  async function create(request: ChatCompletionRequestBase): Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion> {
    return request.stream ? stream(request) : collect(stream(request))
  }

  return {
    model,
    chat: { completions: { create } },
    chatCompletion: create,
    interruptGenerate() { void send({ protocol: PROTOCOL, type: 'interrupt', id: newId() }).catch(() => {}) },
    contribute: (o) => send({ protocol: PROTOCOL, type: 'contribute', id: newId(), enabled: o.enabled, ...(o.memoryBudget !== undefined ? { memoryBudget: o.memoryBudget } : {}) }) as Promise<ContributionStatus>,
    onContributionChange(listener) { listeners.add(listener); return () => listeners.delete(listener) },
    status: () => send({ protocol: PROTOCOL, type: 'status', id: newId() }) as Promise<FrameStatus>,
    setInitProgressCallback(callback) { progressCallback = callback },
    getInitProgressCallback: () => progressCallback,
    getMessage: async () => lastMessage,
    async runtimeStatsText() {
      const e = lastUsage?.extra
      return e ? `prefill: ${e.prefill_tokens_per_s.toFixed(1)} tokens/sec, decoding: ${e.decode_tokens_per_s.toFixed(1)} tokens/sec` : 'no generation yet'
    },
    resetChat: async () => {},
    async unload() {
      closed = true
      removeEventListener('message', onMessage)
      for (const p of pending.values()) p.reject(new TabmeshEmbedError('aborted', 'the engine was unloaded'))
      pending.clear()
      iframe.remove()
    },
  }
}

/** The widget's URL on the tabmesh site. */
export function frameUrl(relay: string, params: Record<string, string | undefined>): URL {
  const url = new URL(FRAME_PATH, new URL(relay, location.href))
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v)
  return url
}

/** Opens a tabmesh engine: a small widget iframe from `relay` (whose button is how the visitor agrees to contribute). */
export async function connect(options: ConnectOptions = {}): Promise<TabmeshEngine> {
  if (!options.relay) throw new TabmeshEmbedError('bad-argument', 'connect() needs { relay }: the tabmesh site to use, e.g. "https://tabmesh.example/"')
  const model = options.model ?? 'stories260K'
  const src = frameUrl(options.relay, { mode: 'api', model, chat: options.mode, backend: options.backend, ice: options.iceServers && JSON.stringify(options.iceServers) })
  const iframe = await openFrame(src, (f) => {
    f.style.width = '320px'
    f.style.height = '48px'
    if (options.container) options.container.append(f)
    else {
      Object.assign(f.style, { position: 'fixed', right: '12px', bottom: '12px', zIndex: '2147483647', background: 'Canvas', borderRadius: '8px', boxShadow: '0 2px 8px #0003' })
      document.body.append(f)
    }
  }, options.timeoutMs)
  return frameEngine(iframe, src.origin, model)
}
