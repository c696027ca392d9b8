/**
 * A contributor that lies, for the trust e2e suite (npm run e2e:trust): a real mesh node and a real
 * host (src/swarm/host.ts) speaking the activation protocol correctly, whose engine corrupts what
 * it computes in one of testing/liars.ts's attack modes. It advertises itself as very fast, so
 * routes prefer it. other-model runs a seeded synthetic model of the same shape; quantized runs
 * the real weights re-quantized to Q4_0, both built here in the page. Test code only: the
 * adversary, not the thing under test.
 */
import { INFER_PROTOCOL } from '../../src/core/vocabulary.ts'
import { createReferenceEngine } from '../../src/engine/reference/reference.ts'
import { createMeshNode, fetchRelayAddrs, probeCapabilities, type MeshNode } from '../../src/mesh/index.ts'
import { loadLlama2c } from '../../src/model/formats/llama2c.ts'
import { makeSyntheticLlama2c } from '../../src/model/formats/synthetic.ts'
import type { ModelSlice } from '../../src/model/model.ts'
import { quantizeSlice } from '../../src/model/quant/quantize.ts'
import { memorySource } from '../../src/model/source/byte-source.ts'
import { httpOpener, loadEntrySlice } from '../../src/model/source/entry.ts'
import { fetchRegistry } from '../../src/model/source/remote.ts'
import { createSwarmHost, type SwarmHost } from '../../src/swarm/host.ts'
import { streamChannel } from '../../src/swarm/stream-channel.ts'
import { lyingEngine, type Attack } from '../../testing/liars.ts'
import { sliceOf } from '../../testing/trust-swarm.ts'
import { sessionBatchEngine } from '../../testing/session-batch.ts'

export interface LiarStartOptions {
  modelId: string
  layers: { start: number; end: number }
  attack: Attack
  /** Forwards per session answered honestly before the lies start (default 0). */
  honestForwards?: number
  seed?: number
  /** Advertise as very fast so routes prefer this peer (default true). */
  fast?: boolean
}

let node: MeshNode | undefined
let host: SwarmHost | undefined
let lies = 0

async function impostorFor(attack: Attack, real: ModelSlice): Promise<ModelSlice | undefined> {
  if (attack === 'quantized') return quantizeSlice(real, 'q4_0')
  if (attack !== 'other-model') return undefined
  const c = real.config
  const shape = { dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, vocabSize: c.vocabSize, seqLen: c.seqLen, sharedClassifier: true }
  return loadLlama2c(memorySource(makeSyntheticLlama2c(shape, 5)))
}

const trustLab = {
  async start(o: LiarStartOptions) {
    const baseUrl = location.origin + '/'
    const entry = (await fetchRegistry(baseUrl)).models.find((m) => m.id === o.modelId)
    if (!entry) throw new Error(`no model ${o.modelId} in the registry`)
    const real = await loadEntrySlice(entry, httpOpener(baseUrl, entry), { layers: { start: 0, end: entry.config.nLayers }, embedding: true, head: true })
    const impostor = await impostorFor(o.attack, real)
    host = createSwarmHost({
      modelId: entry.id,
      config: real.config,
      hosted: o.layers,
      engine: sessionBatchEngine(real.config, o.layers, async (range) => lyingEngine(o.attack, {
        honest: createReferenceEngine(sliceOf(real, range)),
        impostor: impostor && createReferenceEngine(sliceOf(impostor, range)),
        seed: o.seed ?? 3,
        honestForwards: o.honestForwards,
        onLie: () => { lies++ },
      })),
    })
    const capabilities = await probeCapabilities()
    node = await createMeshNode({
      relay: await fetchRelayAddrs(location.href),
      capabilities: { ...capabilities, backend: 'js', speed: o.fast === false ? capabilities.speed : { gflops: 1000, layerTokensPerSecond: 1e8 } },
      hosted: [{ modelId: entry.id, layers: o.layers, embedding: false, head: false }],
    })
    await node.handle(INFER_PROTOCOL, (stream) => { void host!.serve(streamChannel(stream)) })
    return { peerId: node.peerId }
  },
  /** Forwards answered with a lie, all sessions. */
  lies: () => lies,
  sessions: () => host?.stats().sessionsServed ?? 0,
}

declare global {
  interface Window {
    trustLab: typeof trustLab
  }
}
window.trustLab = trustLab
