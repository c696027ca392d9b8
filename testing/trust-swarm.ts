/**
 * A swarm in one process for the trust tests and `npm run bench:trust`: real hosts
 * (src/swarm/host.ts) reached over in-memory channels, each with its own engines (reference or
 * wasm; F32 or Q8_0), some of them liars (testing/liars.ts), and a client swarm engine with spot
 * checks (src/trust) routing through them.
 */
import { TabmeshError } from '../src/core/errors.ts'
import type { BackendName, LayerRange } from '../src/core/vocabulary.ts'
import { createBackendEngine } from '../src/engine/backends.ts'
import type { Engine } from '../src/engine/engine.ts'
import { generateTokens } from '../src/engine/generate.ts'
import { createReferenceEngine } from '../src/engine/reference/reference.ts'
import type { ModelSlice } from '../src/model/model.ts'
import { createChannelPair, type FrameChannel } from '../src/swarm/channel.ts'
import { createSwarmHost, type SwarmHost } from '../src/swarm/host.ts'
import { linearCost, type RouteCandidate } from '../src/swarm/route.ts'
import { createSwarmEngine, type SwarmEngine, type SwarmEvent, type SwarmTrustOptions } from '../src/swarm/swarm-engine.ts'
import type { ExecutionKind } from '../src/trust/index.ts'
import { lyingEngine, type Misbehaviour } from './liars.ts'

export const sliceOf = (m: ModelSlice, layers: LayerRange, embedding = false, head = false): ModelSlice =>
  ({ config: m.config, tensors: m.tensors, quantized: m.quantized, spec: { layers, embedding, head } })

export interface PeerSpec {
  peerId: string
  hosted: LayerRange
  model: ModelSlice // the weights it runs (F32 or Q8_0 of the swarm's model)
  backend?: BackendName // default ref
  weights?: ExecutionKind['weights']
  /** Route cost per hop (lower is preferred; default 10). */
  hopMs?: number
  attack?: Misbehaviour
  /** other-model / quantized: the weights passed off as the real ones. */
  impostor?: ModelSlice
  honestForwards?: number
  seed?: number
}

export interface InProcessPeer {
  spec: PeerSpec
  host: SwarmHost
  connect(): FrameChannel
  kill(): void
  lies(): number
  kind: ExecutionKind
}

export function startPeer(spec: PeerSpec): InProcessPeer {
  let lies = 0
  const channels: FrameChannel[] = []
  let dead = false
  const backend = spec.backend ?? 'ref'
  const host = createSwarmHost({
    modelId: 'model',
    config: spec.model.config,
    hosted: spec.hosted,
    maxSessions: 64,
    createEngine: async (range) => {
      const engine = await createBackendEngine(sliceOf(spec.model, range), backend)
      // the wasm engine frees its onnxruntime sessions with release(); the host calls close()
      const honest = Object.assign(engine, { close: () => (engine as { release?(): void }).release?.() })
      if (!spec.attack) return honest
      const impostor = spec.impostor && createReferenceEngine(sliceOf(spec.impostor, range))
      return lyingEngine(spec.attack, { honest, impostor, seed: spec.seed ?? 1, honestForwards: spec.honestForwards, onLie: () => { lies++ } })
    },
  })
  return {
    spec, host,
    kind: { backend, weights: spec.weights },
    connect() {
      if (dead) throw new TabmeshError('mesh-unreachable', `${spec.peerId} is gone`)
      const [client, server] = createChannelPair()
      channels.push(server)
      void host.serve(server)
      return client
    },
    kill() {
      dead = true
      for (const c of channels) c.close()
    },
    lies: () => lies,
  }
}

export interface TrustSwarmOptions {
  model: ModelSlice // the client's embedding and head (and its own spans, with selfSpans)
  peers: InProcessPeer[]
  trust?: Omit<SwarmTrustOptions, 'kindOf' | 'localSpan'>
  /** The client may run spans itself (self-checks and referee). */
  selfSpans?: boolean
  events?: SwarmEvent[]
  hopTimeoutMs?: number
  maxLength?: number
}

export function trustSwarmEngine(o: TrustSwarmOptions): SwarmEngine {
  const byId = new Map(o.peers.map((p) => [p.spec.peerId, p]))
  return createSwarmEngine({
    local: createReferenceEngine(sliceOf(o.model, { start: 0, end: 0 }, true, true)),
    modelId: 'model',
    maxLength: o.maxLength ?? 128,
    hopTimeoutMs: o.hopTimeoutMs ?? 5000,
    maxFailovers: 16,
    candidates: () => o.peers.map((p): RouteCandidate => ({ peerId: p.spec.peerId, layers: p.spec.hosted, cost: linearCost(p.spec.hopMs ?? 10, 1) })),
    connect: async (id) => byId.get(id)!.connect(),
    onEvent: (e) => o.events?.push(e),
    trust: o.trust && {
      ...o.trust,
      kindOf: (id) => byId.get(id)?.kind ?? { backend: 'unknown' },
      localSpan: o.selfSpans ? async (span) => createReferenceEngine(sliceOf(o.model, span)) : undefined,
    },
  })
}

/** Greedy ids of a generation from BOS (the prompt), as generateTokens yields them. */
export async function greedyIds(engine: Engine, maxTokens: number): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, [1], { maxTokens, temperature: 0, topP: 0.9, seed: 1 })) out.push(t)
  return out
}
