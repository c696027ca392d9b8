/**
 * A hostile contributor for the swarm e2e suites: a real mesh node that advertises layers cheaply,
 * accepts /tabmesh/1/infer sessions, then misbehaves on forwards:
 *   malformed  answers with bytes that are no frame
 *   stall      never answers (the host stops mid-session)
 *   truncate   writes the length prefix and half of a HIDDEN frame, then closes the stream
 *   wrong-id   answers with a well-formed HIDDEN frame for a request this stream never sent
 * With `honestForwards` it first answers that many forwards of each session correctly (a real
 * engine worker over the advertised layers), so the fault comes mid-session, after the client has
 * history to replay elsewhere. Test code only: the adversary, not the thing under test.
 */
import type { Stream } from '@libp2p/interface'
import { INFER_PROTOCOL } from '../../src/core/vocabulary.ts'
import type { Engine } from '../../src/engine/engine.ts'
import { startEngineWorker, type EngineWorker } from '../../src/engine/worker/index.ts'
import { createMeshNode, fetchRelayAddrs, probeCapabilities, type MeshNode } from '../../src/mesh/index.ts'
import { fetchRegistry } from '../../src/model/source/remote.ts'
import { decodeFrame, encodeFrame, type Frame } from '../../src/swarm/frames.ts'
import { streamChannel } from '../../src/swarm/stream-channel.ts'

export type RogueMode = 'malformed' | 'stall' | 'truncate' | 'wrong-id'

export interface RogueStartOptions {
  modelId: string
  layers: { start: number; end: number }
  mode: RogueMode
  dim: number
  /** Forwards per session answered correctly before the fault (default 0: misbehave at once). */
  honestForwards?: number
}

let node: MeshNode | undefined
let worker: EngineWorker | undefined
const counts = { sessions: 0, forwards: 0, faults: 0 }

/** A varint, as the length prefix of a libp2p length-prefixed stream. */
function varint(n: number): number[] {
  const out: number[] = []
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80)
  out.push(n)
  return out
}

async function serve(stream: Stream, o: RogueStartOptions): Promise<void> {
  const channel = streamChannel(stream)
  const honest = o.honestForwards ?? 0
  let engine: (Engine & { close(): void }) | undefined
  let answered = 0
  try {
    for await (const bytes of channel.messages()) {
      const f: Frame = decodeFrame(bytes)
      if (f.type === 'open') {
        counts.sessions++
        if (honest > 0) engine = await worker!.open({ layers: { start: f.layerStart, end: f.layerEnd }, embedding: false, head: false })
        channel.send(encodeFrame({ type: 'opened', id: f.id, dim: o.dim, maxRows: 64, prefixId: 1, reused: 0 }))
        continue
      }
      if (f.type !== 'forward') break
      counts.forwards++
      // the answer an honest host would give (zeros when there is no engine: the fault never uses them)
      const hidden = engine ? await engine.forward(f.hidden, f.positions) : new Float32Array(f.hidden.length)
      const answer = { type: 'hidden', id: f.id, hidden, dim: f.dim, dtype: f.dtype } as const
      if (answered < honest) {
        answered++
        channel.send(encodeFrame(answer))
        continue
      }
      counts.faults++
      if (o.mode === 'malformed') channel.send(Uint8Array.of(1, 3, 0, 0, 0, 0, 42, 42))
      else if (o.mode === 'wrong-id') channel.send(encodeFrame({ ...answer, id: f.id + 1_000_000 }))
      else if (o.mode === 'truncate') {
        // the frame's length, then half of its bytes, then the end of the stream
        const frame = encodeFrame(answer)
        stream.send(Uint8Array.from([...varint(frame.length), ...frame.subarray(0, frame.length >> 1)]))
        await stream.close()
        break
      }
      // 'stall': no answer, ever
    }
  } catch {
    // the client went away
  } finally {
    engine?.close()
  }
}

const rogueLab = {
  async start(o: RogueStartOptions) {
    if ((o.honestForwards ?? 0) > 0) {
      const baseUrl = location.origin + '/'
      const entry = (await fetchRegistry(baseUrl)).models.find((m) => m.id === o.modelId)
      if (!entry) throw new Error(`no model ${o.modelId} in the registry`)
      worker = await startEngineWorker({ baseUrl, entry, spec: { layers: o.layers, embedding: false, head: false }, backend: 'ref' })
    }
    const capabilities = await probeCapabilities()
    node = await createMeshNode({
      relay: await fetchRelayAddrs(location.href),
      // claims to be very fast, so routes prefer it
      capabilities: { ...capabilities, speed: { gflops: 1000, layerTokensPerSecond: 1e8 } },
      hosted: [{ modelId: o.modelId, layers: o.layers, embedding: false, head: false }],
    })
    await node.handle(INFER_PROTOCOL, (stream) => { void serve(stream, o) })
    return { peerId: node.peerId }
  },
  /** Forwards received, all sessions. */
  forwards: () => counts.forwards,
  /** Forwards answered with the fault. */
  faults: () => counts.faults,
  /** Sessions opened. */
  sessions: () => counts.sessions,
}

declare global {
  interface Window {
    rogueLab: typeof rogueLab
  }
}
window.rogueLab = rogueLab
