import type { BackendName } from '../engine/engine.ts'
import { generateTokens } from '../engine/generate.ts'
import { startEngineWorker, type EngineWorker } from '../engine/worker-engine.ts'
import { createMeshNode, fetchRelayAddrs, probeCapabilities, type MeshNode } from '../mesh/index.ts'
import { sliceWeightBytes } from '../model/llama2c.ts'
import type { LayerRange } from '../model/model.ts'
import { DEFAULT_MODEL_ID, type ModelEntry } from '../model/registry.ts'
import { fetchRegistry, loadRemoteTokenizer } from '../model/remote.ts'
import { generateText } from '../swarm/client.ts'
import { startContributor, type Contributor } from '../swarm/contributor.ts'
import { createMeshSwarmEngine, routeCandidates } from '../swarm/mesh-client.ts'
import { chooseLayers, layersThatFit } from '../swarm/placement.ts'
import { planRoute } from '../swarm/route.ts'
import type { SwarmEvent } from '../swarm/swarm-engine.ts'

/**
 * What the CLI and the multi-browser tests drive in headless Chromium: the same engine worker,
 * mesh node and swarm code as the site, called through page.evaluate. Results are plain JSON.
 */
export interface HeadlessGenerateRequest {
  model?: string
  prompt: string
  maxTokens: number
  temperature: number
  topP: number
  seed: number
  backend: BackendName | 'auto'
}

export interface ContributeRequest {
  model?: string
  relay?: string[] // default: GET /relay of this site
  layers?: LayerRange // default: where the swarm is weakest, as much as the budget holds
  backend: BackendName | 'auto'
  memoryBudgetBytes?: number
}

export interface ChatRequest extends Omit<HeadlessGenerateRequest, 'backend'> {
  relay?: string[]
  routeTimeoutMs?: number // how long to wait for contributors to cover every layer
  hopTimeoutMs?: number
  pauseAtToken?: number // stop after this many tokens until resume() (tests kill a peer there)
}

const base = () => location.origin + '/'
let mesh: MeshNode | undefined
let contributor: Contributor | undefined
let contributorWorker: EngineWorker | undefined
let resumeChat: (() => void) | undefined
const chatState = { tokens: 0, paused: false }

async function modelEntry(id = DEFAULT_MODEL_ID): Promise<ModelEntry> {
  const registry = await fetchRegistry(base())
  const entry = registry.models.find((m) => m.id === id)
  if (!entry) throw new Error(`the registry has no model "${id}" (it has ${registry.models.map((m) => m.id).join(', ')})`)
  return entry
}

async function meshNode(relay?: string[], role: 'contributor' | 'client' = 'client'): Promise<MeshNode> {
  if (mesh) return mesh
  const capabilities = await probeCapabilities()
  mesh = await createMeshNode({
    relay: relay ?? await fetchRelayAddrs(base()),
    capabilities: role === 'client' ? { ...capabilities, backend: 'none', memoryBudgetBytes: 0 } : capabilities,
  })
  return mesh
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function generate(r: HeadlessGenerateRequest) {
  const entry = await modelEntry(r.model)
  const [worker, tokenizer] = await Promise.all([startEngineWorker({ baseUrl: base(), entry, backend: r.backend }), loadRemoteTokenizer(base(), entry)])
  try {
    const engine = await worker.open()
    const promptTokens = tokenizer.encode(r.prompt)
    const tokens: number[] = []
    const started = performance.now()
    for await (const t of generateTokens(engine, promptTokens, { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed })) tokens.push(t)
    const seconds = (performance.now() - started) / 1000
    return {
      backend: worker.loaded.backend, promptTokens, tokens,
      text: tokenizer.decode(tokens, promptTokens[promptTokens.length - 1]),
      tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0,
      probe: worker.loaded.probe,
    }
  } finally {
    worker.terminate()
  }
}

/** Joins the swarm and serves a layer range of the model until stop(). */
async function contribute(r: ContributeRequest) {
  if (contributor) throw new Error('already contributing')
  const entry = await modelEntry(r.model)
  const node = await meshNode(r.relay, 'contributor')
  const c = entry.config
  let layers = r.layers
  if (!layers) {
    await sleep(1500) // hear the swarm's adverts first
    const served = node.table.list().flatMap((e) => e.advert.hosted.filter((h) => h.modelId === entry.id).map((h) => ({
      peerId: e.peerId, layers: h.layers, throughput: e.advert.capabilities.speed.layerTokensPerSecond ?? 1,
    })))
    const perLayer = sliceWeightBytes(c, { layers: { start: 0, end: 1 }, embedding: false, head: false }) + 2 * c.seqLen * c.kvDim * 4
    const budget = r.memoryBudgetBytes ?? node.advert().capabilities.memoryBudgetBytes
    layers = chooseLayers(c.nLayers, layersThatFit(budget, perLayer, c.nLayers), served)
  }
  const worker = await startEngineWorker({ baseUrl: base(), entry, spec: { layers, embedding: false, head: false }, backend: r.backend })
  contributorWorker = worker
  // measure this slice: layer-token steps per second, for route costs
  const probe = await worker.open()
  const hidden = Float32Array.from({ length: c.dim }, (_, i) => Math.sin(i))
  const steps = Math.min(8, c.seqLen)
  const started = performance.now()
  for (let p = 0; p < steps; p++) await probe.forward(hidden, Int32Array.of(p))
  const layerTokensPerSecond = (steps * (layers.end - layers.start)) / ((performance.now() - started) / 1000)
  probe.close()
  const backend = worker.loaded.backend === 'ref' ? 'js' : worker.loaded.backend
  node.update({ capabilities: { ...node.advert().capabilities, backend, speed: { ...node.advert().capabilities.speed, layerTokensPerSecond } } })
  contributor = await startContributor({ mesh: node, worker, modelId: entry.id })
  return { peerId: node.peerId, layers, backend: worker.loaded.backend, layerTokensPerSecond }
}

async function stopContributing(reason?: string) {
  await contributor?.stop(reason)
  contributor = undefined
  contributorWorker?.terminate()
  contributorWorker = undefined
}

/** Generates through the swarm: embedding and head here, the layers on contributors. */
async function chat(r: ChatRequest) {
  const entry = await modelEntry(r.model)
  const node = await meshNode(r.relay, 'client')
  const [worker, tokenizer] = await Promise.all([
    startEngineWorker({ baseUrl: base(), entry, spec: { layers: { start: 0, end: 0 }, embedding: true, head: true }, backend: 'ref' }),
    loadRemoteTokenizer(base(), entry),
  ])
  const events: SwarmEvent[] = []
  try {
    const deadline = performance.now() + (r.routeTimeoutMs ?? 15_000)
    for (;;) {
      try {
        planRoute(routeCandidates(node, entry.id, entry.config.dim), { start: 0, end: entry.config.nLayers })
        break
      } catch (err) {
        if (performance.now() > deadline) throw err
        await sleep(200)
      }
    }
    const promptTokens = tokenizer.encode(r.prompt)
    const engine = createMeshSwarmEngine({
      mesh: node, local: await worker.open(), modelId: entry.id, maxLength: Math.min(entry.config.seqLen, promptTokens.length + r.maxTokens),
      hopTimeoutMs: r.hopTimeoutMs ?? 5000,
      onEvent: (e) => { events.push(e); console.info(`swarm ${e.type}: ${JSON.stringify(e)}`) },
    })
    const tokens: number[] = []
    const routes: { peerId: string; layers: LayerRange; ms: number }[][] = []
    let text = ''
    chatState.tokens = 0
    const started = performance.now()
    try {
      for await (const t of generateText(engine, tokenizer, { prompt: r.prompt, maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed })) {
        text += t.text
        if (t.token < 0) continue
        tokens.push(t.token)
        routes.push(t.route)
        chatState.tokens = tokens.length
        if (tokens.length === r.pauseAtToken) {
          chatState.paused = true
          await new Promise<void>((resolve) => { resumeChat = resolve })
          chatState.paused = false
        }
      }
    } finally {
      engine.close()
    }
    const seconds = (performance.now() - started) / 1000
    return { backend: 'swarm', promptTokens, tokens, text, tokensPerSecond: tokens.length / seconds, routes, events }
  } finally {
    worker.terminate()
  }
}

const api = {
  generate, contribute, stopContributing, chat,
  /** Joins the mesh as a client (chat does this on first use). */
  join: async (relay?: string[]) => (await meshNode(relay, 'client')).peerId,
  resume: () => resumeChat?.(),
  chatState: () => ({ ...chatState }),
  peerId: () => mesh?.peerId,
  peers: () => mesh?.table.list().map((e) => ({ peerId: e.peerId, hosted: e.advert.hosted, health: e.health, status: e.advert.health.status })) ?? [],
  contributorStats: () => contributor?.stats(),
}
export type HeadlessApi = typeof api
;(window as unknown as { tabmeshHeadless: HeadlessApi }).tabmeshHeadless = api
document.body.dataset.ready = 'true'
