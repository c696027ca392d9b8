// The cli-tab room: the page the Node CLI (src/nodejs/cli) and the multi-browser tests open in
// headless Chromium; it exposes the tab runtime on window for page.evaluate.
import { type BackendName, type LayerRange } from '../core/vocabulary.ts'
import { startEngineWorker } from '../engine/worker/index.ts'
import { buildPrompt, type ChatMessage } from '../model/template/index.ts'
import { createTabRuntime, type RuntimeContributeOptions } from '../swarm/tab-runtime.ts'
import { newGenerationStats } from '../engine/generate.ts'
import type { SwarmEngine, SwarmEvent } from '../swarm/swarm-engine.ts'
import { verifyAuditChain } from '../trust/index.ts'
import type { IceServer } from '../mesh/index.ts'

/**
 * What the CLI and the multi-browser tests drive in headless Chromium: the tab runtime the site
 * uses, called through page.evaluate. Results are plain JSON.
 */
export interface TabGenerateRequest {
  model?: string
  prompt: string
  maxTokens: number
  temperature: number
  topP: number
  seed: number
  backend: BackendName | 'auto'
}

export interface TabContributeRequest {
  model?: string
  layers?: LayerRange
  backend: BackendName | 'auto'
  memoryBudgetBytes?: number
  /** The host's admission limits (tests: a small session budget, a short idle timeout). */
  limits?: RuntimeContributeOptions['limits']
}

export interface TabChatRequest extends Omit<TabGenerateRequest, 'backend'> {
  /** A conversation to render with the model's chat template (buildPrompt), used instead of the raw `prompt`. */
  messages?: ChatMessage[]
  /** With `messages`: a system message to open the conversation with. */
  system?: string
  mode?: 'swarm' | 'local' | 'auto'
  routeTimeoutMs?: number
  hopTimeoutMs?: number
  /** Spot-check the peers (default true). */
  verify?: boolean
  selfCheckShare?: number
  pauseAtToken?: number // stop after this many tokens until resume() (tests kill a peer there)
  /** Speculative decoding when greedy (default true): the registry's draft model if paired, else prompt lookup; 'lookup' forces prompt lookup. */
  speculate?: boolean | 'lookup'
  /** Answer an identical greedy request from the tab's reply cache (default false here: tests and benches measure the swarm). */
  cache?: boolean
  /** Keep the chat session open under this name: the next call with it continues the conversation on the hosts' kept prefixes. */
  conversation?: string
}

let runtime = createTabRuntime()
const conversations = new Map<string, { session: Awaited<ReturnType<typeof runtime.openChat>>; sink: { events: (SwarmEvent & { at: number })[] } }>()
let resumeChat: (() => void) | undefined
const chatState = { tokens: 0, paused: false, route: [] as string[] } // route: the peers of the last route the chat opened

/** Generates with the whole model in this tab (the CLI's --backend wasm|webgpu|auto). */
async function generate(r: TabGenerateRequest) {
  const session = await runtime.openChat({ model: r.model, mode: 'local', backend: r.backend })
  try {
    const promptTokens = session.tokenizer.encode(r.prompt)
    const tokens: number[] = []
    const started = performance.now()
    for await (const t of session.generate({ ...r })) if (t.token >= 0) tokens.push(t.token)
    const seconds = (performance.now() - started) / 1000
    return {
      backend: session.engine.backend, weightBytes: session.loaded.weightBytes, promptTokens, tokens,
      text: session.tokenizer.decode(tokens, promptTokens[promptTokens.length - 1]),
      tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0,
    }
  } finally {
    session.close()
  }
}

async function contribute(r: TabContributeRequest) {
  const c = await runtime.contribute(r)
  return { peerId: c.peerId, modelId: c.modelId, layers: c.layers, backend: c.backend, layerTokensPerSecond: c.layerTokensPerSecond }
}

/** Generates through the swarm: embedding and head here, the layers on contributors. */
async function chat(r: TabChatRequest) {
  const kept = r.conversation ? conversations.get(r.conversation) : undefined
  const sink = kept?.sink ?? { events: [] }
  sink.events = [] // a continued conversation reports this call's events
  const events = sink.events
  const session = kept?.session ?? await runtime.openChat({
    model: r.model, mode: r.mode ?? 'swarm', routeTimeoutMs: r.routeTimeoutMs, hopTimeoutMs: r.hopTimeoutMs, verify: r.verify, selfCheckShare: r.selfCheckShare,
    onEvent: (e) => {
      sink.events.push({ ...e, at: performance.now() })
      if (e.type === 'route') chatState.route = e.hops.map((h) => h.peerId)
      console.info(`swarm ${e.type}: ${JSON.stringify(e)}`)
    },
  })
  if (r.conversation) conversations.set(r.conversation, { session, sink })
  const stats = newGenerationStats()
  try {
    const prompt = r.messages ? buildPrompt(await session.chatTemplate(), r.messages, { system: r.system }) : r.prompt
    const promptTokens = session.tokenizer.encode(prompt)
    const tokens: number[] = []
    const routes: { peerId: string; layers: LayerRange; ms: number }[][] = []
    const tokenTimes: number[] = [] // performance.now() when each token arrived
    let text = ''
    chatState.tokens = 0
    const started = performance.now()
    for await (const t of session.generate({ ...r, prompt, stats, cache: r.cache ?? false })) {
      text += t.text
      if (t.token < 0) continue
      tokens.push(t.token)
      tokenTimes.push(performance.now())
      routes.push(t.route)
      chatState.tokens = tokens.length
      if (tokens.length === r.pauseAtToken) {
        chatState.paused = true
        await new Promise<void>((resolve) => { resumeChat = resolve })
        chatState.paused = false
      }
    }
    const seconds = (performance.now() - started) / 1000
    const checks = (session.engine as Partial<SwarmEngine>).checker?.stats()
    return {
      backend: session.mode, promptTokens, tokens, text, tokensPerSecond: tokens.length / seconds, routes, events, tokenTimes, startedAt: started, checks,
      timeOrigin: performance.timeOrigin, firstTokenAt: stats.firstTokenAt, forwardCalls: stats.forwardCalls,
      speculation: { drafted: stats.drafted, accepted: stats.accepted }, reusedPositions: stats.promptPositionsReused,
    }
  } finally {
    if (!r.conversation) session.close()
  }
}

/** Loads a slice into a fresh engine worker and reports where its bytes came from. */
async function load(r: { model?: string; layers: LayerRange; backend: BackendName | 'auto' }) {
  const entry = await runtime.model(r.model)
  const worker = await startEngineWorker({ baseUrl: runtime.baseUrl, entry, spec: { layers: r.layers, embedding: false, head: false }, backend: r.backend })
  worker.terminate()
  const { bytesDownloaded, bytesFromCache, backend } = worker.loaded
  return { bytesDownloaded, bytesFromCache, backend }
}

const api = {
  generate, contribute, chat, load,
  /** Uses these relay multiaddrs instead of this site's GET /relay (before the mesh is joined). */
  configure: (o: { relay?: string[]; iceServers?: IceServer[] }) => { runtime = createTabRuntime({ relay: o.relay, iceServers: o.iceServers }) },
  stopContributing: (reason?: string) => runtime.stopContributing(reason),
  /** Joins the mesh as a client (chat does this on first use). */
  join: async () => (await runtime.mesh('client')).peerId,
  resume: () => resumeChat?.(),
  chatState: () => ({ ...chatState }),
  peerId: async () => (await runtime.mesh()).peerId,
  peers: async () => (await runtime.mesh()).table.list().map((e) => ({
    peerId: e.peerId, hosted: e.advert.hosted, health: e.health, status: e.advert.health.status, backend: e.advert.capabilities.backend,
    direct: e.direct, unreachable: e.unreachable?.why ?? null,
  })),
  /** The mesh node's own state: relays, reachability, ICE servers, direct peers, dials. */
  meshStats: async () => {
    const s = (await runtime.mesh()).stats()
    return { peerId: s.peerId, directPeers: s.directPeers, relays: s.relays, relayReserved: s.relayReserved, reachability: s.reachability, reachabilityWhy: s.reachabilityWhy, iceServers: s.iceServers, dial: s.dial, idleClosed: s.idleClosed }
  },
  contributorStats: () => runtime.contribution()?.contributor.stats(),
  /** What this tab's checks found: every peer's record, and the audit log (head, size, its own verification). */
  trustState: async () => {
    const t = await runtime.trust()
    const peers = t.reputation.list().map((r) => ({ ...r, revoked: t.reputation.revoked(r.peerId), checkRate: t.reputation.checkRate(r.peerId) }))
    const exported = t.audit.export()
    return { peers, audit: { head: t.audit.head(), size: t.audit.size(), verdict: await verifyAuditChain(exported), kinds: exported.entries.map((e) => e.kind) } }
  },
  /** This tab's gossipsub score of a peer (an app score of CAUGHT_APP_SCORE follows a caught lie). */
  gossipScore: async (peerId: string) => (await runtime.mesh()).libp2p.services.pubsub.getScore(peerId),
  /** Median round trip of libp2p ping (32 bytes on a stream) to each directly connected peer, ms. */
  pingPeers: async (count = 20) => {
    const mesh = await runtime.mesh()
    const out: Record<string, number> = {}
    for (const conn of mesh.libp2p.getConnections().filter((c) => c.limits === undefined && c.status === 'open' && c.remoteAddr.toString().includes('/webrtc'))) {
      const times: number[] = []
      // the mesh's own RTT pings share the one ping stream a connection allows: retry when busy
      for (let attempt = 0; times.length < count && attempt < count * 5; attempt++) {
        try {
          times.push(await mesh.libp2p.services.ping.ping(conn.remotePeer))
        } catch {
          await new Promise((r) => setTimeout(r, 20))
        }
      }
      if (times.length === 0) continue
      out[conn.remotePeer.toString()] = times.sort((a, b) => a - b)[times.length >> 1]
    }
    return out
  },
}
export type HeadlessApi = typeof api
;(window as unknown as { tabmeshHeadless: HeadlessApi }).tabmeshHeadless = api
document.body.dataset.ready = 'true'
