/**
 * A hostile contributor for the swarm e2e suite: a real mesh node that advertises layers cheaply,
 * accepts /tabmesh/1/infer sessions, then answers forwards with malformed frames or never answers.
 * Test code only: the adversary, not the thing under test.
 */
import { INFER_PROTOCOL } from '../../src/core/vocabulary.ts'
import { createMeshNode, fetchRelayAddrs, probeCapabilities, type MeshNode } from '../../src/mesh/index.ts'
import { decodeFrame, encodeFrame } from '../../src/swarm/frames.ts'
import { streamChannel } from '../../src/swarm/stream-channel.ts'

let node: MeshNode | undefined
let forwards = 0

const rogueLab = {
  async start(o: { modelId: string; layers: { start: number; end: number }; mode: 'malformed' | 'stall'; dim: number }) {
    const capabilities = await probeCapabilities()
    node = await createMeshNode({
      relay: await fetchRelayAddrs(location.href),
      // claims to be very fast, so routes prefer it
      capabilities: { ...capabilities, speed: { gflops: 1000, layerTokensPerSecond: 1e8 } },
      hosted: [{ modelId: o.modelId, layers: o.layers, embedding: false, head: false }],
    })
    await node.handle(INFER_PROTOCOL, (stream) => {
      const channel = streamChannel(stream)
      void (async () => {
        for await (const bytes of channel.messages()) {
          const f = decodeFrame(bytes)
          if (f.type === 'open') channel.send(encodeFrame({ type: 'opened', id: f.id, dim: o.dim, maxRows: 64 }))
          else if (f.type === 'forward') {
            forwards++
            if (o.mode === 'malformed') channel.send(Uint8Array.of(1, 3, 0, 0, 0, 0, 42, 42))
          }
        }
      })()
    })
    return { peerId: node.peerId }
  },
  forwards: () => forwards,
}

declare global {
  interface Window {
    rogueLab: typeof rogueLab
  }
}
window.rogueLab = rogueLab
