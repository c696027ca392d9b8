import { type BackendName } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import { DEFAULT_MODEL_ID } from '../model/source/registry.ts'
import { parseIceServersJson, type IceServer } from '../mesh/index.ts'
import { createTabRuntime } from '../swarm/tab-runtime.ts'
import { isWebLLMModel, tabmeshBackend, webllmBackend, type ChatBackend, type InitProgress } from './chat-backend.ts'
import { messageId, parseHostMessage, PROTOCOL, type ChatRequest, type ContributionStatus, type FrameMessage, type FrameStatus, type HostMessage } from './protocol.ts'

/**
 * The tabmesh iframe: the widget a host page embeds (contribute toggle, chat, or the small bar the
 * JS API opens) and the only place the model cache and the peer identity live. The host reaches it
 * only through the protocol in protocol.ts; contributing starts only on a person's click here.
 */
const params = new URL(location.href).searchParams
const widget = (['contribute', 'chat', 'api'] as const).find((m) => m === params.get('mode')) ?? 'contribute'
const modelId = params.get('model') || DEFAULT_MODEL_ID
const chatMode = (['swarm', 'local', 'auto'] as const).find((m) => m === params.get('chat')) ?? 'auto'
const contributeBackend = (['ref', 'wasm', 'webgpu', 'auto'] as const).find((b) => b === params.get('backend')) ?? 'auto'
const numberParam = (name: string) => { const v = params.get(name); return v === null || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v) }
const widgetSampling = { temperature: numberParam('temperature'), max_tokens: numberParam('max_tokens'), top_p: numberParam('top_p'), seed: numberParam('seed') }
const DEFAULT_MEMORY_BUDGET = 256 * 2 ** 20

// data-ice-servers / connect({ iceServers }): validated here, where they are used; a bad list is
// reported in the widget and nothing joins with it
let iceServers: IceServer[] | undefined
let iceError: string | undefined
try {
  const raw = params.get('ice')
  if (raw) iceServers = parseIceServersJson(raw, 'data-ice-servers')
} catch (err) {
  iceError = (err as Error).message
}
const runtime = createTabRuntime({ iceServers })
// "joined" is reported to the host (and checked by the e2e): the mesh node exists only once something here asked for it
let joined = false
const openMesh = runtime.mesh
runtime.mesh = (role) => {
  if (iceError) return Promise.reject(new TabmeshError('bad-argument', iceError))
  joined = true
  return openMesh(role)
}

// ---------------------------------------------------------------- host link

const parentOrigin = window.parent !== window ? location.ancestorOrigins?.[0] : undefined
let hostOrigin: string | undefined // the origin of the parent's messages (checked against ancestorOrigins)
const post = (m: FrameMessage) => { if (hostOrigin) window.parent.postMessage(m, hostOrigin) }
const errorMessage = (id: string | null, err: unknown): FrameMessage => ({
  protocol: PROTOCOL, type: 'error', id,
  code: err instanceof TabmeshError ? err.code : typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'internal',
  message: err instanceof Error ? err.message : String(err),
})

// ---------------------------------------------------------------- contributing

let contribution: ContributionStatus = { state: 'off' }
let memoryBudget = DEFAULT_MEMORY_BUDGET
const contributeButton = document.querySelector<HTMLButtonElement>('button.contribute')!
const label = document.querySelector<HTMLSpanElement>('.bar .label')!

function setContribution(status: ContributionStatus) {
  contribution = status
  const s = status.state
  contributeButton.textContent = s === 'contributing' ? 'Stop contributing' : s === 'starting' ? 'Starting…' : s === 'stopping' ? 'Stopping…' : s === 'awaiting-click' ? 'Click to contribute' : 'Contribute'
  contributeButton.disabled = s === 'starting' || s === 'stopping'
  contributeButton.classList.toggle('attention', s === 'awaiting-click')
  label.classList.toggle('error', s === 'failed')
  label.textContent = s === 'contributing' ? `tabmesh · contributing layers ${status.layers!.start}-${status.layers!.end} of ${status.modelId}`
    : s === 'failed' ? `tabmesh · ${status.error}` : `tabmesh · ${modelId}`
  post({ protocol: PROTOCOL, type: 'contribution', status })
}

async function startContributing() {
  setContribution({ state: 'starting' })
  try {
    const c = await runtime.contribute({ model: modelId, backend: contributeBackend as BackendName | 'auto', memoryBudgetBytes: memoryBudget })
    setContribution({ state: 'contributing', peerId: c.peerId, modelId: c.modelId, layers: c.layers })
  } catch (err) {
    setContribution({ state: 'failed', error: err instanceof Error ? err.message : String(err) })
  }
}

async function stopContributing() {
  setContribution({ state: 'stopping' })
  await runtime.stopContributing('the visitor stopped contributing').catch(() => {})
  setContribution({ state: 'off' })
}

contributeButton.addEventListener('click', (event) => {
  // only a person's click starts work: not a script's synthetic click, not a request from the host
  if (!event.isTrusted || !navigator.userActivation?.isActive) return
  if (contribution.state === 'contributing') void stopContributing()
  else if (contribution.state === 'off' || contribution.state === 'awaiting-click' || contribution.state === 'failed') void startContributing()
})

// ---------------------------------------------------------------- chatting

let backend: Promise<ChatBackend> | undefined
const onProgress = (p: InitProgress) => post({ protocol: PROTOCOL, type: 'progress', ...p })
const chatBackend = () => (backend ??= (async (): Promise<ChatBackend> => {
  const registry = await runtime.registry()
  if (registry.models.some((m) => m.id === modelId)) return tabmeshBackend(runtime, modelId, chatMode, onProgress)
  if (await isWebLLMModel(modelId)) return webllmBackend(modelId, onProgress)
  throw new TabmeshError('model-not-found', `"${modelId}" is neither in this tabmesh registry (${registry.models.map((m) => m.id).join(', ')}) nor one of WebLLM's prebuilt models`)
})().catch((err) => { backend = undefined; throw err }))

let chatQueue: Promise<unknown> = Promise.resolve()
let current: AbortController | undefined

/** Runs one request after the ones before it (one KV cache), streaming its chunks to `onChunk`. */
function runChat(request: ChatRequest, onChunk: (c: unknown) => void): Promise<void> {
  const run = chatQueue.then(async () => {
    const b = await chatBackend()
    if (request.model && request.model !== b.modelId) throw new TabmeshError('bad-argument', `this engine serves ${b.modelId}, not ${request.model}`)
    const abort = current = new AbortController()
    try {
      for await (const chunk of b.complete(request, abort.signal)) onChunk(chunk)
    } finally {
      if (current === abort) current = undefined
    }
  })
  chatQueue = run.catch(() => {})
  return run
}

async function status(): Promise<FrameStatus> {
  const b = await backend?.catch(() => undefined)
  return { model: modelId, engine: b?.kind ?? 'tabmesh', joined, contribution }
}

async function handle(m: HostMessage): Promise<void> {
  const result = (value: unknown) => post({ protocol: PROTOCOL, type: 'result', id: m.id, value })
  switch (m.type) {
    case 'hello': return result({ widget, model: modelId, contribution })
    case 'status': return result(await status())
    case 'interrupt':
      current?.abort()
      return result(null)
    case 'contribute':
      if (m.memoryBudget !== undefined) memoryBudget = m.memoryBudget
      if (m.enabled) {
        // the host may only ask; the visitor decides with a click on the widget
        if (contribution.state === 'off' || contribution.state === 'failed') setContribution({ state: 'awaiting-click' })
      } else if (contribution.state === 'contributing') await stopContributing()
      else if (contribution.state === 'awaiting-click') setContribution({ state: 'off' })
      return result(contribution)
    case 'chat':
      await runChat(m.request, (chunk) => post({ protocol: PROTOCOL, type: 'chunk', id: m.id, chunk }))
      return result(null)
  }
}

window.addEventListener('message', (event) => {
  if (window.parent === window || event.source !== window.parent) return // only the embedding page talks to us
  if (parentOrigin && event.origin !== parentOrigin) return
  hostOrigin = event.origin
  let m: HostMessage
  try {
    m = parseHostMessage(event.data)
  } catch (err) {
    post(errorMessage(messageId(event.data), err))
    return
  }
  handle(m).catch((err) => post(errorMessage(m.id, err)))
})

// ---------------------------------------------------------------- the widget's own chat

if (widget === 'chat') {
  const chat = document.querySelector<HTMLDivElement>('.chat')!
  const output = document.querySelector<HTMLPreElement>('.output')!
  const input = document.querySelector<HTMLTextAreaElement>('.input textarea')!
  const send = document.querySelector<HTMLButtonElement>('button.send')!
  const stop = document.querySelector<HTMLButtonElement>('button.stop')!
  chat.hidden = false
  send.addEventListener('click', () => {
    const prompt = input.value
    output.textContent = prompt
    output.classList.remove('error')
    output.dataset.state = 'generating'
    send.disabled = true
    stop.disabled = false
    const request: ChatRequest = { messages: [{ role: 'user', content: prompt }], ...widgetSampling }
    runChat(request, (chunk) => { output.textContent += (chunk as { choices: { delta: { content?: string | null } }[] }).choices[0]?.delta.content ?? '' })
      .then(() => { output.dataset.state = 'done' }, (err: unknown) => {
        output.dataset.state = 'failed'
        output.classList.add('error')
        output.textContent += `\n[${err instanceof Error ? err.message : String(err)}]`
      })
      .finally(() => { send.disabled = false; stop.disabled = true })
  })
  stop.addEventListener('click', () => current?.abort())
}

setContribution(iceError ? { state: 'failed', error: iceError } : contribution)
if (window.parent !== window) window.parent.postMessage({ protocol: PROTOCOL, type: 'ready' } satisfies FrameMessage, parentOrigin ?? '*')
document.body.dataset.ready = 'true'
