/**
 * A swarm in one process for the trust tests and `npm run bench:trust`: real hosts
 * (src/swarm/host.ts) reached over in-memory channels, each with its own engines (reference or
 * wasm; F32 or Q8_0), some of them liars (testing/liars.ts), and a client swarm engine with spot
 * checks (src/trust) routing through them.
 */
import { TabmeshError } from '../src/core/errors.ts'
import type { BackendName, LayerRange } from '../src/core/vocabulary.ts'
import { createBackendEngine, createBatchEngineFor } from '../src/engine/backends.ts'
import { lazyBatchEngine, sessionBatchEngine } from './session-batch.ts'
import type { Engine } from '../src/engine/engine.ts'
import { generateTokens, type GenerateOptions } from '../src/engine/generate.ts'
import { createReferenceEngine } from '../src/engine/reference/reference.ts'
import type { ModelSlice } from '../src/model/model.ts'
import { createChannelPair, type FrameChannel } from '../src/swarm/channel.ts'
import { createSwarmHost, type HostOptions, type SwarmHost } from '../src/swarm/host.ts'
import { linearCost, type RouteCandidate } from '../src/swarm/route.ts'
import { createSwarmEngine, type SwarmEngine, type SwarmEvent, type SwarmTrustOptions } from '../src/swarm/swarm-engine.ts'
import type { ExecutionKind } from '../src/trust/index.ts'
import { loadLlama2c } from '../src/model/formats/llama2c.ts'
import { makeSyntheticLlama2c } from '../src/model/formats/synthetic.ts'
import { quantizeSlice } from '../src/model/quant/quantize.ts'
import { memorySource } from '../src/model/source/byte-source.ts'
import { lyingEngine, type Attack, type Misbehaviour } from './liars.ts'

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
  modelId?: string // default 'model'
  /** Host options over the defaults (limits; an engine of its own replaces the honest or lying one). */
  limits?: Partial<HostOptions>
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
    modelId: spec.modelId ?? 'model',
    config: spec.model.config,
    hosted: spec.hosted,
    maxSessions: 64,
    // an honest host runs the real batch engine; a liar lies per session, over an engine per session
    engine: spec.attack
      ? sessionBatchEngine(spec.model.config, spec.hosted, async (range) => {
        const engine = await createBackendEngine(sliceOf(spec.model, range), backend)
        // the wasm engine frees its onnxruntime sessions with release(); the host calls close()
        const honest = Object.assign(engine, { close: () => (engine as { release?(): void }).release?.() })
        const impostor = spec.impostor && createReferenceEngine(sliceOf(spec.impostor, range))
        return lyingEngine(spec.attack!, { honest, impostor, seed: spec.seed ?? 1, honestForwards: spec.honestForwards, onLie: () => { lies++ } })
      }, backend)
      : lazyBatchEngine(() => createBatchEngineFor(sliceOf(spec.model, spec.hosted), backend), spec.model.config, spec.hosted, backend),
    ...spec.limits,
  })
  return {
    spec, host,
    kind: { backend, weights: spec.weights },
    /** A new stream to this host; fails once it was killed. */
    connect() {
      if (dead) throw new TabmeshError('hop-failed', `${spec.peerId} is gone`)
      const [client, server] = createChannelPair()
      channels.push(server)
      void host.serve(server)
      return client
    },
    /** Drops every stream at once, like a crashed tab. */
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
export async function greedyIds(engine: Engine, maxTokens: number, speculation?: GenerateOptions['speculation']): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, [1], { maxTokens, temperature: 0, topP: 0.9, seed: 1, speculation })) out.push(t)
  return out
}

/** What other-model and quantized liars pass off as `model`: a seeded synthetic model of its shape, and its weights at Q4_0. */
export async function impostorsOf(model: ModelSlice): Promise<Partial<Record<Attack, ModelSlice>>> {
  const c = model.config
  const shape = { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, vocabSize: c.vocabSize, seqLen: c.seqLen, sharedClassifier: true }
  return { quantized: quantizeSlice(model, 'q4_0'), 'other-model': await loadLlama2c(memorySource(makeSyntheticLlama2c(shape, 5))) }
}

/**
 * The trust tests' swarm over a 5-layer model: honest A [0, 2), the liar R [2, 4) with the cheapest
 * route, honest B [4, 5), an honest standby S [2, 4); for collude also R2 [2, 4), telling the same lie.
 */
export function liarSwarm(model: ModelSlice, attack: Attack | undefined, o: { impostors: Partial<Record<Attack, ModelSlice>>; seed?: number; honestForwards?: number }): InProcessPeer[] {
  const seed = o.seed ?? 3
  const liar: PeerSpec = { peerId: 'R', hosted: { start: 2, end: 4 }, model, hopMs: 1, attack, impostor: attack && o.impostors[attack], seed, honestForwards: o.honestForwards }
  const partner: PeerSpec[] = attack === 'collude' ? [{ peerId: 'R2', hosted: { start: 2, end: 4 }, model, hopMs: 30, attack: 'collude', seed }] : []
  return [
    startPeer({ peerId: 'A', hosted: { start: 0, end: 2 }, model }),
    startPeer(liar),
    startPeer({ peerId: 'B', hosted: { start: 4, end: 5 }, model }),
    startPeer({ peerId: 'S', hosted: { start: 2, end: 4 }, model, hopMs: 20 }),
    ...partner.map(startPeer),
  ]
}
