import { type LayerRange } from '../core/vocabulary.ts'
import { describe, expect, it } from 'vitest'
import { TabmeshError } from '../core/errors.ts'
import type { BatchEngine, Engine } from '../engine/engine.ts'
import { generateTokens } from '../engine/generate.ts'
import { createReferenceBatchEngine, createReferenceEngine } from '../engine/reference/reference.ts'
import type { ModelSlice } from '../model/model.ts'
import { GOLDEN_IDS, loadStories, storiesTokenizer } from '../../testing/models.ts'
import { startPeer } from '../../testing/trust-swarm.ts'
import { createChannelPair, type FrameChannel } from './channel.ts'
import { generateText } from './text-generation.ts'
import { decodeFrame, encodeFrame } from './frames.ts'
import { f16ToF32 as fromHalf, f32ToF16 as toHalf } from '../core/f16.ts'
import { createSwarmHost, type HostOptions, type SwarmHost } from './host.ts'
import { openHop } from './hop.ts'
import { linearCost, planRoute, type RouteCandidate } from './route.ts'
import { createSwarmEngine, type SwarmEvent } from './swarm-engine.ts'

const model = await loadStories()
const engineFor = (m: ModelSlice, range: LayerRange, embedding = false, head = false) =>
  createReferenceEngine({ config: m.config, tensors: m.tensors, spec: { layers: range, embedding, head } })
const batchFor = (m: ModelSlice, range: LayerRange) => createReferenceBatchEngine({ config: m.config, tensors: m.tensors, spec: { layers: range, embedding: false, head: false } })

/** A real host in this process, reached over in-memory channels; `kill` drops every stream at once, like a crashed tab. */
function startHost(peerId: string, hosted: LayerRange, limits: Partial<HostOptions> = {}) {
  return { ...startPeer({ peerId, hosted, model, modelId: 'stories260K', limits: { maxSessions: 8, ...limits } }), peerId, hosted }
}
type TestPeer = Pick<ReturnType<typeof startHost>, 'peerId' | 'hosted' | 'host' | 'connect' | 'kill'>

function swarmEngineOver(peers: TestPeer[], events: SwarmEvent[] = [], timeoutMs = 2000) {
  const alive = new Map(peers.map((p) => [p.peerId, p]))
  return createSwarmEngine({
    local: engineFor(model, { start: 0, end: 0 }, true, true),
    modelId: 'stories260K',
    maxLength: 128,
    hopTimeoutMs: timeoutMs,
    candidates: () => peers.map((p, i): RouteCandidate => ({ peerId: p.peerId, layers: p.hosted, cost: linearCost(1 + i, 1) })),
    connect: async (id) => alive.get(id)!.connect(),
    onEvent: (e) => events.push(e),
  })
}

async function greedy(engine: Engine, n = 64, onToken?: (i: number) => void): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, [1], { maxTokens: n, temperature: 0, topP: 0.9, seed: 1 })) {
    out.push(t)
    onToken?.(out.length)
  }
  return out
}

describe('activation frames', () => {
  it('round-trip every frame type', () => {
    const hidden = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i))
    const frames = [
      { type: 'open', id: 1, modelId: 'stories260K', layerStart: 2, layerEnd: 4, maxLength: 512, dtype: 'f32', prefixId: 0, prefixLength: 0 },
      { type: 'open', id: 9, modelId: 'stories260K', layerStart: 2, layerEnd: 4, maxLength: 512, dtype: 'f16', prefixId: 0xfffffff0, prefixLength: 300 },
      { type: 'opened', id: 1, dim: 64, maxRows: 64, prefixId: 77, reused: 12 },
      { type: 'forward', id: 2, positions: Int32Array.of(5, 6), hidden, dim: 64, dtype: 'f32' },
      { type: 'hidden', id: 2, hidden, dim: 64, dtype: 'f32' },
      { type: 'close', id: 3, keep: false, length: 0 },
      { type: 'close', id: 3, keep: true, length: 300 },
      { type: 'error', id: 4, code: 'refused', message: 'host is full ✋' },
    ] as const
    for (const f of frames) expect(decodeFrame(encodeFrame(f))).toEqual(f)
  })

  it('carries f16 within half precision', () => {
    const hidden = Float32Array.from({ length: 64 }, (_, i) => (i - 32) * 0.37)
    const back = decodeFrame(encodeFrame({ type: 'hidden', id: 1, hidden, dim: 64, dtype: 'f16' }))
    expect(back.type === 'hidden' && back.hidden.every((v, i) => Math.abs(v - hidden[i]) <= Math.abs(hidden[i]) * 1e-3)).toBe(true)
    expect(fromHalf(toHalf(65504))).toBe(65504)
    expect(fromHalf(toHalf(1e6))).toBe(Infinity)
  })

  it.each([
    ['empty', new Uint8Array(0), /shorter than the header/],
    ['wrong version', Uint8Array.of(9, 4, 0, 0, 0, 0), /version 9/],
    ['unknown type', Uint8Array.of(2, 77, 0, 0, 0, 0), /unknown type 77/],
    ['lying row count', (() => { const b = encodeFrame({ type: 'hidden', id: 1, hidden: new Float32Array(64), dim: 64, dtype: 'f32' }); new DataView(b.buffer).setUint32(6, 1000, true); return b })(), /fields say/],
    ['truncated open', encodeFrame({ type: 'open', id: 1, modelId: 'm', layerStart: 0, layerEnd: 1, maxLength: 8, dtype: 'f32', prefixId: 0, prefixLength: 0 }).subarray(0, 12), /cut short/],
    ['oversized', new Uint8Array(9 * 1024 * 1024), /exceeds/],
  ])('rejects a %s frame with a protocol error', (_what, bytes, message) => {
    expect(() => decodeFrame(bytes)).toThrow(message)
    try { decodeFrame(bytes) } catch (e) { expect((e as TabmeshError).code).toBe('protocol') }
  })
})

describe('route planning', () => {
  const c = (peerId: string, start: number, end: number, hopMs = 10, perLayerMs = 1): RouteCandidate => ({ peerId, layers: { start, end }, cost: linearCost(hopMs, perLayerMs) })
  it('covers all layers with the cheapest chain, using sub-ranges of overlapping peers', () => {
    const route = planRoute([c('a', 0, 3), c('b', 2, 5)], { start: 0, end: 5 })
    expect(route.map((h) => h.peerId)).toEqual(['a', 'b'])
    expect(route[0].layers.start).toBe(0)
    expect(route[1].layers.end).toBe(5)
    expect(route[0].layers.end).toBe(route[1].layers.start)
  })
  it('prefers fewer hops when hops cost more than layers', () => {
    expect(planRoute([c('a', 0, 2), c('b', 2, 5), c('whole', 0, 5, 12)], { start: 0, end: 5 }).map((h) => h.peerId)).toEqual(['whole'])
  })
  it('avoids slow or busy peers', () => {
    expect(planRoute([c('fast', 0, 5, 10, 1), c('slow', 0, 5, 10, 50)], { start: 0, end: 5 }).map((h) => h.peerId)).toEqual(['fast'])
  })
  it('skips banned peers and says which layers nobody covers', () => {
    expect(planRoute([c('a', 0, 2), c('b', 2, 5), c('b2', 2, 5, 20)], { start: 0, end: 5 }, new Set(['b'])).map((h) => h.peerId)).toEqual(['a', 'b2'])
    expect(() => planRoute([c('a', 0, 2), c('b', 3, 5)], { start: 0, end: 5 })).toThrow(/no peers cover layers \[2, 5\)/)
  })
})

describe('swarm inference (real hosts, in-process channels)', () => {
  it('three hops reproduce GOLDEN.md and report the route per token', async () => {
    const peers = [startHost('A', { start: 0, end: 2 }), startHost('B', { start: 2, end: 4 }), startHost('C', { start: 4, end: 5 })]
    const engine = swarmEngineOver(peers)
    const tokens = []
    for await (const t of generateText(engine, storiesTokenizer(), { prompt: '', maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 })) tokens.push(t)
    expect([1, ...tokens.map((t) => t.token)]).toEqual(GOLDEN_IDS)
    expect(tokens.map((t) => t.text).join('')).toMatch(/^Once upon a time, there was a little girl named Lily\./)
    expect(tokens[5].route.map((h) => [h.peerId, h.layers.start, h.layers.end])).toEqual([['A', 0, 2], ['B', 2, 4], ['C', 4, 5]])
    expect(peers.map((p) => p.host.stats().tokensProcessed)).toEqual([64, 64, 64])
  })

  it.each([
    ['crashes', (p: TestPeer) => p.kill()],
    ['leaves and the peer table says so', (p: TestPeer, e: ReturnType<typeof swarmEngineOver>) => { p.kill(); e.peerGone(p.peerId) }],
  ])('when the middle host %s at token 10, a standby takes over and the ids stay identical', async (_what, fail) => {
    const peers = [startHost('A', { start: 0, end: 2 }), startHost('B', { start: 2, end: 4 }), startHost('C', { start: 4, end: 5 }), startHost('D', { start: 2, end: 4 })]
    const events: SwarmEvent[] = []
    const engine = swarmEngineOver(peers, events)
    const ids = await greedy(engine, 64, (n) => { if (n === 10) fail(peers[1], engine) })
    expect([1, ...ids]).toEqual(GOLDEN_IDS)
    const failover = events.find((e) => e.type === 'failover')
    expect(failover).toMatchObject({ peerId: 'B', replacement: [{ peerId: 'D', layers: { start: 2, end: 4 } }] })
    // D rebuilt the KV cache for positions 0..9 by replay, then served the rest
    expect(peers[3].host.stats().tokensProcessed).toBe(64)
  })

  it('a host that stalls is timed out and replaced', async () => {
    const peers = [startHost('A', { start: 0, end: 5 }), startHost('B', { start: 0, end: 5 })]
    let stalled = false
    const slowEngine = (e: BatchEngine): BatchEngine => ({ ...e, forwardBatch: (h, c, p, r) => (stalled ? new Promise(() => {}) : e.forwardBatch(h, c, p, r)) })
    peers[0] = { ...peers[0], ...startHost('A', { start: 0, end: 5 }, { engine: slowEngine(batchFor(model, { start: 0, end: 5 })) }), peerId: 'A' }
    const events: SwarmEvent[] = []
    const ids = await greedy(swarmEngineOver(peers, events, 300), 30, (n) => { if (n === 5) stalled = true })
    expect([1, ...ids]).toEqual(GOLDEN_IDS.slice(0, 31))
    expect(events.find((e) => e.type === 'failover')).toMatchObject({ peerId: 'A', reason: expect.stringMatching(/no answer within 300 ms/) })
  })

  it.each([
    ['malformed frames', () => Uint8Array.of(1, 3, 1, 0, 0, 0, 99)],
    ['wrong-sized tensors', (id: number) => encodeFrame({ type: 'hidden', id, hidden: new Float32Array(64 * 3), dim: 64, dtype: 'f32' })],
    ['non-finite tensors', (id: number, rows: number) => encodeFrame({ type: 'hidden', id, hidden: new Float32Array(64 * rows).fill(NaN), dim: 64, dtype: 'f32' })],
    ['answers for a session it was never given', (id: number, rows: number) => encodeFrame({ type: 'hidden', id: id + 7, hidden: new Float32Array(64 * rows), dim: 64, dtype: 'f32' })],
  ])('a host that sends %s is dropped and the client continues', async (_what, reply) => {
    const good = startHost('good', { start: 0, end: 5 })
    // the rogue opens sessions correctly, then answers every forward with garbage
    const rogue = {
      peerId: 'rogue', hosted: { start: 0, end: 5 }, host: good.host, kill() {},
      connect(): FrameChannel {
        const [client, server] = createChannelPair()
        void (async () => {
          for await (const bytes of server.messages()) {
            const f = decodeFrame(bytes)
            if (f.type === 'open') server.send(encodeFrame({ type: 'opened', id: f.id, dim: 64, maxRows: 64, prefixId: 1, reused: 0 }))
            else if (f.type === 'forward') server.send(reply(f.id, f.positions.length))
          }
        })()
        return client
      },
    }
    const events: SwarmEvent[] = []
    const ids = await greedy(swarmEngineOver([rogue, good], events), 20)
    expect([1, ...ids]).toEqual(GOLDEN_IDS.slice(0, 21))
    expect(events.find((e) => e.type === 'failover')).toMatchObject({ peerId: 'rogue' })
  })

  it('two clients at once both get the right output, interleaved step by step', async () => {
    const peers = [startHost('A', { start: 0, end: 3 }), startHost('B', { start: 3, end: 5 })]
    const order: number[] = []
    const [x, y] = await Promise.all([greedy(swarmEngineOver(peers), 64, () => order.push(0)), greedy(swarmEngineOver(peers), 64, () => order.push(1))])
    expect([1, ...x]).toEqual(GOLDEN_IDS)
    expect([1, ...y]).toEqual(GOLDEN_IDS)
    expect(order.slice(0, 10)).toContain(1) // the second session did not wait for the first to finish
    expect(peers[0].host.stats().sessionsServed).toBe(2)
  })

  it('says clearly when no route exists', async () => {
    const engine = swarmEngineOver([startHost('A', { start: 0, end: 2 })])
    await expect(greedy(engine, 4)).rejects.toThrow(/no peers cover layers \[2, 5\)/)
  })

  it('a host with no room is a typed refusal, not a ban: the session routes through it once there is room', async () => {
    const a = startHost('A', { start: 0, end: 5 }, { maxSessions: 1 })
    const other = await openHop(a.connect(), { peerId: 'A', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64 })
    const engine = swarmEngineOver([a])
    await expect(greedy(engine, 4)).rejects.toMatchObject({ code: 'refused', message: expect.stringMatching(/host is full/) })
    other.close()
    while (a.host.stats().activeSessions > 0) await new Promise((r) => setTimeout(r, 1))
    expect([1, ...await greedy(engine, 8)]).toEqual(GOLDEN_IDS.slice(0, 9))
  })

  it('a host that fails with no one to stand in ends the generation with hop-failed, saying why', async () => {
    const a = startHost('A', { start: 0, end: 5 })
    await expect(greedy(swarmEngineOver([a]), 20, (i) => { if (i === 5) a.kill() }))
      .rejects.toMatchObject({ code: 'hop-failed', message: expect.stringMatching(/no other peer could take over; last failure: peer A \(layers \[0, 5\)\): (closed the stream|channel closed)/) })
  })
})

describe('host limits', () => {
  const open = (ch: FrameChannel, o: Partial<Parameters<typeof openHop>[1]> = {}) =>
    openHop(ch, { peerId: 'h', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64, ...o })
  const connect = (host: SwarmHost) => { const [c, s] = createChannelPair(); void host.serve(s); return c }
  const host = () => createSwarmHost({ modelId: 'stories260K', config: model.config, hosted: { start: 0, end: 5 }, engine: batchFor(model, { start: 0, end: 5 }), maxSessions: 2 })

  it('refuses a wrong model, a range it does not host and a length past the context', async () => {
    const h = host()
    await expect(open(connect(h), { modelId: 'other' })).rejects.toThrow(/serves stories260K, not other/)
    await expect(open(connect(h), { layers: { start: 3, end: 7 } })).rejects.toThrow(/not inside the hosted \[0, 5\)/)
    await expect(open(connect(h), { maxLength: 4096 })).rejects.toThrow(/outside 1\.\.512/)
  })

  it('refuses sessions past its limit without disturbing the ones it serves', async () => {
    const h = host()
    const a = await open(connect(h))
    await open(connect(h))
    await expect(open(connect(h))).rejects.toMatchObject({ code: 'refused', message: expect.stringMatching(/host is full/) })
    const embed = await engineFor(model, { start: 0, end: 0 }, true).embed(Int32Array.of(1))
    expect((await a.forward(Int32Array.of(0), embed.slice())).length).toBe(64)
  })

  it('counts the KV cache memory its sessions hold, and frees it when they close', async () => {
    const h = host()
    const a = await open(connect(h))
    expect(h.stats()).toMatchObject({ activeSessions: 1, kvBytes: 2 * 5 * 64 * model.config.kvDim * 4 })
    a.close()
    while (h.stats().activeSessions > 0) await new Promise((r) => setTimeout(r, 1))
    expect(h.stats()).toMatchObject({ activeSessions: 0, kvBytes: 0 })
  })

  it('refuses a position that skips the KV cache (a replay that forgot to start at 0)', async () => {
    const a = await open(connect(host()))
    await expect(a.forward(Int32Array.of(5), new Float32Array(64))).rejects.toThrow(/skips positions this session never sent \(it holds 0\.\.-1\)/)
  })

  it('refuses too many rows in one forward', async () => {
    const a = await open(connect(host()))
    await expect(a.forward(Int32Array.from({ length: 65 }, (_, i) => i), new Float32Array(65 * 64))).rejects.toThrow(/at most 64/)
  })
})
