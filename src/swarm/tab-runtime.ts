import { type BackendName, type LayerRange } from '../core/vocabulary.ts'
import type { Engine } from '../engine/engine.ts'
import { startEngineWorker, type EngineWorker, type LoadedModel } from '../engine/worker/index.ts'
import { advertBackend, createMeshNode, fetchRelayConfig, probeCapabilities, type IceServer, type MeshNode } from '../mesh/index.ts'
import type { LoadProgress } from '../model/source/progress.ts'
import { DEFAULT_MODEL_ID, entrySliceBytes, type ModelEntry, type Registry } from '../model/source/registry.ts'
import { fetchRegistry, loadRemoteChatTemplate, loadRemoteTokenizer } from '../model/source/remote.ts'
import type { ChatTemplate } from '../model/template/index.ts'
import type { Tokenizer } from '../model/tokenizer/tokenizer.ts'
import { createReplyCache, generateText, type GeneratedToken, type GenerateRequest } from './text-generation.ts'
import { promptLookupDrafter, type Drafter } from '../engine/generate.ts'
import { startContributor, type Contributor, type ContributorOptions } from './contributor.ts'
import { createMeshSwarmEngine, routeCandidates } from './mesh-swarm-engine.ts'
import { chooseLayers, layersThatFit } from './placement.ts'
import { planRoute } from './route.ts'
import type { SwarmEngine, SwarmEvent } from './swarm-engine.ts'
import { indexedDbAuditStore, indexedDbReputationStore, memoryAuditStore, memoryReputationStore, openAuditLog, openReputation, type AuditLog, type Reputation } from '../trust/index.ts'

/**
 * Everything one tab does with tabmesh, behind one object: join the mesh, contribute a layer range,
 * chat through the swarm or locally. The site's UI, the embed iframe and the headless CLI page all
 * use it, so they behave the same.
 */
export interface RuntimeContributeOptions {
  model?: string
  layers?: LayerRange // default: where the swarm is weakest, as much as the memory budget holds
  backend: BackendName | 'auto'
  memoryBudgetBytes?: number
  /** The host's admission limits (sessions, queue, KV budget, idle timeout); default: the host's own. */
  limits?: ContributorOptions['limits']
  onProgress?: (p: LoadProgress) => void
}

export interface Contribution {
  peerId: string
  modelId: string
  layers: LayerRange
  backend: BackendName
  layerTokensPerSecond: number
  bytesDownloaded: number
  bytesFromCache: number
  contributor: Contributor
  worker: EngineWorker
}

export interface ChatOptions {
  model?: string
  /** 'swarm': layers on peers; 'local': the whole model in this tab; 'auto': swarm if a route exists, else local. */
  mode: 'swarm' | 'local' | 'auto'
  backend?: BackendName | 'auto' // for the local parts
  routeTimeoutMs?: number
  hopTimeoutMs?: number
  /**
   * Spot-check the peers' work (default true): a share of every hop's positions is re-run on an
   * independent peer or in this tab, tokens are given out once their outputs are decided, and a
   * peer caught lying is banned and replaced with no change to the reply.
   */
  verify?: boolean
  /** Share of checks this tab runs itself when it can load the span (default 0.1). */
  selfCheckShare?: number
  onProgress?: (p: LoadProgress) => void
  onEvent?: (e: SwarmEvent) => void
}

/** What this tab knows of its peers' honesty, kept in IndexedDB (in memory where there is none). */
export interface TabTrust {
  reputation: Reputation
  audit: AuditLog
}

/** A span this tab may load itself for a check: at most this many bytes of weights. */
const SELF_CHECK_MAX_BYTES = 256 * 1024 * 1024

export interface ChatSession {
  readonly modelId: string
  readonly mode: 'swarm' | 'local'
  readonly tokenizer: Tokenizer
  readonly engine: Engine
  /** What the local engine worker loaded (the embedding and head only, in swarm mode). */
  readonly loaded: LoadedModel
  /** The model's chat template, read on first use (a plain continuation for a model without one); buildPrompt renders messages with it. */
  chatTemplate(): Promise<ChatTemplate>
  generate(request: GenerateRequest): AsyncGenerator<GeneratedToken>
  close(): void
}

export interface TabRuntime {
  readonly baseUrl: string
  registry(): Promise<Registry>
  model(id?: string): Promise<ModelEntry>
  /** The tab's mesh node, joined on first use. */
  mesh(role?: 'contributor' | 'client'): Promise<MeshNode>
  contribute(options: RuntimeContributeOptions): Promise<Contribution>
  contribution(): Contribution | undefined
  stopContributing(reason?: string): Promise<void>
  /** Reputation and the audit log, opened on first use. */
  trust(): Promise<TabTrust>
  openChat(options: ChatOptions): Promise<ChatSession>
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface TabRuntimeOptions {
  /** The site (registry, models, GET /relay); default this page's origin. */
  baseUrl?: string
  /** Relay multiaddrs instead of GET /relay's. */
  relay?: string[]
  /** STUN/TURN servers instead of GET /relay's (src/mesh/ice.ts). */
  iceServers?: IceServer[]
}

/** Draft tokens per step of speculative decoding (prompt lookup): one trip verifies them and one more. */
export const DEFAULT_MAX_DRAFT = 4

export function createTabRuntime(options: TabRuntimeOptions = {}): TabRuntime {
  const baseUrl = options.baseUrl ?? location.origin + '/'
  const replies = createReplyCache() // identical greedy requests, answered without the swarm
  let registry: Promise<Registry> | undefined
  let node: Promise<MeshNode> | undefined
  let contribution: Contribution | undefined
  let trust: Promise<TabTrust> | undefined

  const runtime: TabRuntime = {
    baseUrl,
    registry: () => (registry ??= fetchRegistry(baseUrl).catch((err) => { registry = undefined; throw err })),
    async model(id = DEFAULT_MODEL_ID) {
      const r = await runtime.registry()
      const entry = r.models.find((m) => m.id === id)
      if (!entry) throw new Error(`the registry has no model "${id}" (it has ${r.models.map((m) => m.id).join(', ')})`)
      return entry
    },

    mesh(role = 'client') {
      node ??= (async () => {
        const capabilities = await probeCapabilities()
        // GET /relay names the relays and the ICE servers, and is asked again when its TURN
        // credentials expire; relays given explicitly come with their ICE servers (or none)
        const site = options.relay ? undefined : await fetchRelayConfig(baseUrl)
        return createMeshNode({
          relay: options.relay ?? site!.multiaddrs,
          ...(site && !options.iceServers ? { iceServers: () => fetchRelayConfig(baseUrl), iceConfig: site } : { iceServers: options.iceServers ?? [] }),
          capabilities: role === 'client' ? { ...capabilities, backend: 'none', memoryBudgetBytes: 0 } : capabilities,
        })
      })().catch((err) => { node = undefined; throw err })
      return node
    },

    async contribute(o) {
      if (contribution) throw new Error('this tab already contributes')
      const entry = await runtime.model(o.model)
      const mesh = await runtime.mesh('contributor')
      if (mesh.advert().capabilities.backend === 'none') {
        // the tab joined as a chat client: offer its real capabilities now
        const caps = await probeCapabilities()
        mesh.update({ capabilities: { ...caps, memoryBudgetBytes: o.memoryBudgetBytes ?? caps.memoryBudgetBytes } })
      }
      const c = entry.config
      let layers = o.layers
      if (!layers) {
        if (mesh.table.size === 0) await sleep(1500) // hear the swarm's adverts first
        const served = mesh.table.list().flatMap((e) => e.advert.hosted.filter((h) => h.modelId === entry.id).map((h) => ({
          peerId: e.peerId, layers: h.layers, throughput: e.advert.capabilities.speed.layerTokensPerSecond ?? 1,
        })))
        const perLayer = entrySliceBytes(entry, { layers: { start: 0, end: c.nLayers }, embedding: false, head: false }) / c.nLayers + 2 * c.seqLen * c.kvDim * 4
        const budget = o.memoryBudgetBytes ?? mesh.advert().capabilities.memoryBudgetBytes
        layers = chooseLayers(c.nLayers, layersThatFit(budget, perLayer, c.nLayers), served)
      }
      const worker = await startEngineWorker({ baseUrl, entry, spec: { layers, embedding: false, head: false }, backend: o.backend }, o.onProgress)
      try {
        // this slice's speed, for route costs: layer-token steps per second
        // on the engine the host serves with (the batch engine, one session)
        const batch = await worker.batch()
        const steps = Math.min(8, c.seqLen)
        const slot = await batch.openCache(steps)
        const hidden = Float32Array.from({ length: c.dim }, (_, i) => Math.sin(i))
        const started = performance.now()
        for (let p = 0; p < steps; p++) await batch.forwardBatch(hidden, Int32Array.of(slot), Int32Array.of(p))
        const layerTokensPerSecond = (steps * (layers.end - layers.start)) / ((performance.now() - started) / 1000)
        await batch.closeCache(slot)
        const caps = mesh.advert().capabilities
        mesh.update({ capabilities: { ...caps, backend: advertBackend(worker.loaded.backend), speed: { ...caps.speed, layerTokensPerSecond } }, health: { status: 'ok', recentErrors: 0 } })
        const contributor = await startContributor({ mesh, worker, modelId: entry.id, limits: o.limits })
        contribution = {
          peerId: mesh.peerId, modelId: entry.id, layers, backend: worker.loaded.backend, layerTokensPerSecond,
          bytesDownloaded: worker.loaded.bytesDownloaded, bytesFromCache: worker.loaded.bytesFromCache, contributor, worker,
        }
        return contribution
      } catch (err) {
        worker.terminate()
        throw err
      }
    },

    contribution: () => contribution,

    trust() {
      trust ??= (async () => {
        const log = (line: string) => console.warn(line)
        // IndexedDB may be missing or refused (a third-party iframe with storage blocked): this tab
        // then keeps what it learns for its own lifetime only
        const persistent = <T>(open: () => Promise<T>, fallback: () => Promise<T>, what: string) =>
          (typeof indexedDB === 'undefined' ? fallback() : open().catch((err: Error) => {
            log(`tabmesh: ${what} kept in memory only: ${err.message}`)
            return fallback()
          }))
        const [reputation, audit] = await Promise.all([
          persistent(() => openReputation(indexedDbReputationStore(), { log }), () => openReputation(memoryReputationStore(), { log }), 'reputation'),
          persistent(() => openAuditLog(indexedDbAuditStore()), () => openAuditLog(memoryAuditStore()), 'the audit log'),
        ])
        return { reputation, audit }
      })().catch((err) => { trust = undefined; throw err })
      return trust
    },

    async stopContributing(reason) {
      const c = contribution
      contribution = undefined
      if (!c) return
      await c.contributor.stop(reason)
      c.worker.terminate()
    },

    async openChat(o) {
      const entry = await runtime.model(o.model)
      const c = entry.config
      let mode = o.mode
      let mesh: MeshNode | undefined
      if (mode !== 'local') {
        mesh = await runtime.mesh('client')
        const deadline = performance.now() + (o.routeTimeoutMs ?? (mode === 'auto' ? 3000 : 15_000))
        for (;;) {
          try {
            // peers this tab revoked (caught lying) do not count: the swarm engine will not route through them
            const revoked = o.verify === false ? undefined : (await runtime.trust()).reputation
            planRoute(routeCandidates(mesh, entry.id, c.dim).filter((x) => !revoked?.revoked(x.peerId)), { start: 0, end: c.nLayers })
            mode = 'swarm'
            break
          } catch (err) {
            if (performance.now() > deadline) {
              if (mode === 'auto') { mode = 'local'; break }
              throw err
            }
            await sleep(200)
          }
        }
      }
      const spec = mode === 'local' ? undefined : { layers: { start: 0, end: 0 }, embedding: true, head: true }
      const [worker, tokenizer] = await Promise.all([
        startEngineWorker({ baseUrl, entry, spec, backend: o.backend ?? 'ref' }, o.onProgress),
        loadRemoteTokenizer(baseUrl, entry),
      ])
      const local = await worker.open()
      let engine: Engine = local
      let swarm: SwarmEngine | undefined
      if (mode === 'swarm') {
        const t = o.verify === false ? undefined : await runtime.trust()
        const workers = new Set<EngineWorker>()
        const localSpan = async (span: LayerRange) => {
          const w = await startEngineWorker({ baseUrl, entry, spec: { layers: span, embedding: false, head: false }, backend: o.backend ?? 'ref' })
          workers.add(w)
          const e = await w.open()
          return Object.assign(e, { close: () => { workers.delete(w); w.terminate() } })
        }
        const spanBytes = (span: LayerRange) => entrySliceBytes(entry, { layers: span, embedding: false, head: false })
        if (t) void t.audit.append('session', { modelId: entry.id, peer: mesh!.peerId }).catch(() => {})
        engine = swarm = createMeshSwarmEngine({
          mesh: mesh!, local, modelId: entry.id, maxLength: c.seqLen, hopTimeoutMs: o.hopTimeoutMs ?? 5000,
          onEvent: (e) => {
            if (e.type === 'route' && t) void t.audit.append('hop', { route: e.hops.map((h) => ({ peerId: h.peerId, layers: [h.layers.start, h.layers.end] })) }).catch(() => {})
            o.onEvent?.(e)
          },
          trust: t && {
            reputation: t.reputation,
            audit: t.audit,
            selfCheckShare: o.selfCheckShare,
            localSpan: (span) => {
              if (spanBytes(span) > SELF_CHECK_MAX_BYTES) throw new Error(`layers [${span.start}, ${span.end}) are too large to check in this tab`)
              return localSpan(span)
            },
          },
        })
        const closeSwarm = swarm.close
        swarm.close = () => {
          closeSwarm()
          for (const w of workers) w.terminate()
        }
      }
      let template: Promise<ChatTemplate> | undefined
      // drafts for speculative decoding: the registry's draft model for this one, whole in a worker of
      // its own (loaded on first use), else prompt lookup
      let draftWorker: EngineWorker | undefined
      let modelDrafts: Promise<Drafter> | undefined
      const lookup = promptLookupDrafter()
      const drafter: Drafter = entry.draft
        ? async (tokens, k) => {
          modelDrafts ??= (async () => {
            const draftEntry = await runtime.model(entry.draft)
            draftWorker = await startEngineWorker({ baseUrl, entry: draftEntry, backend: o.backend ?? 'ref' })
            return draftWorker.drafter() // its steps run in the worker: one call per draft
          })().catch((err) => {
            console.warn(`tabmesh: the draft model ${entry.draft} did not load (${(err as Error).message}); drafting by prompt lookup`)
            return lookup
          })
          return (await modelDrafts)(tokens, k)
        }
        : lookup
      return {
        modelId: entry.id, mode: mode as 'swarm' | 'local', tokenizer, engine, loaded: worker.loaded,
        chatTemplate: () => (template ??= loadRemoteChatTemplate(baseUrl, entry).catch((err) => { template = undefined; throw err })),
        generate: (request) => generateText(engine, tokenizer, {
          ...request,
          speculation: request.speculation ?? (request.speculate === false ? undefined : { draft: request.speculate === 'lookup' ? lookup : drafter, maxDraft: DEFAULT_MAX_DRAFT }),
        }, { replies, modelId: entry.id, where: mode }),
        close() {
          swarm?.close()
          worker.terminate()
          draftWorker?.terminate()
          void modelDrafts?.then(() => draftWorker?.terminate())
        },
      }
    },

    async close() {
      await runtime.stopContributing('the tab closed')
      const n = node
      node = undefined
      if (n) await (await n).stop()
    },
  }
  return runtime
}
