import { type LayerRange } from '../core/vocabulary.ts'
import { describe, expect, it } from 'vitest'
import type { Engine } from '../engine/engine.ts'
import { generateTokens, newGenerationStats, promptLookupDrafter, type GenerateOptions } from '../engine/generate.ts'
import { createReferenceBatchEngine, createReferenceEngine } from '../engine/reference/reference.ts'
import type { ModelSlice } from '../model/model.ts'
import { GOLDEN_IDS, loadStories, storiesTokenizer } from '../../testing/models.ts'
import { createChannelPair } from './channel.ts'
import { createSwarmHost, type HostOptions, type SwarmHost } from './host.ts'
import { openHop } from './hop.ts'
import { linearCost, type RouteCandidate } from './route.ts'
import { createSwarmEngine, type SwarmEngine } from './swarm-engine.ts'
import { createReplyCache, generateText } from './text-generation.ts'

/**
 * Many users at once: hosts that batch every session's rows through one pass, speculative
 * decoding verified in one trip, prefixes kept on the hosts across a conversation's turns, and the
 * client's reply cache. Real hosts and the reference engine over in-memory channels; the oracle is
 * the plain greedy run (GOLDEN.md) of the same model.
 */
const model = await loadStories()
const slice = (range: LayerRange, embedding = false, head = false): ModelSlice => ({ config: model.config, tensors: model.tensors, spec: { layers: range, embedding, head } })

interface Host { peerId: string; hosted: LayerRange; host: SwarmHost; connect(client?: string): ReturnType<typeof createChannelPair>[0] }

function startHost(peerId: string, hosted: LayerRange, o: Partial<HostOptions> = {}): Host {
  const host = createSwarmHost({ modelId: 'stories260K', config: model.config, hosted, engine: createReferenceBatchEngine(slice(hosted)), ...o })
  return {
    peerId, hosted, host,
    connect(client = 'client-1') {
      const [c, s] = createChannelPair([peerId, client])
      void host.serve(s)
      return c
    },
  }
}

function swarm(hosts: Host[], client = 'client-1', maxLength = 256): SwarmEngine {
  return createSwarmEngine({
    local: createReferenceEngine(slice({ start: 0, end: 0 }, true, true)),
    modelId: 'stories260K',
    maxLength,
    hopTimeoutMs: 5000,
    candidates: () => hosts.map((h, i): RouteCandidate => ({ peerId: h.peerId, layers: h.hosted, cost: linearCost(1 + i, 1) })),
    connect: async (id) => hosts.find((h) => h.peerId === id)!.connect(client),
  })
}

const greedy: GenerateOptions = { maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 }
async function run(engine: Engine, prompt: number[], o: Partial<GenerateOptions> = {}): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, prompt, { ...greedy, ...o })) out.push(t)
  return out
}
const threeHops = () => [startHost('A', { start: 0, end: 2 }), startHost('B', { start: 2, end: 4 }), startHost('C', { start: 4, end: 5 })]

describe('batched hosts', () => {
  it('six sessions at once through three hosts: every one reproduces GOLDEN.md, and each pass carries several sessions', async () => {
    const hosts = threeHops()
    const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => run(swarm(hosts, `client-${i}`), [1], { speculation: undefined })))
    for (const ids of outs) expect([1, ...ids]).toEqual(GOLDEN_IDS.slice(0, 65))
    for (const h of hosts) {
      const s = h.host.stats()
      expect(s.tokensProcessed).toBe(6 * 64)
      expect(s.batchedRequests / s.batches).toBeGreaterThan(2) // sessions per pass
    }
  })

  it('a session whose request breaks the pass hears of it alone; the others in the batch go on', async () => {
    const engine = createReferenceBatchEngine(slice({ start: 0, end: 5 }))
    let poison = true
    // the first batched pass fails as a whole (as a backend error would): the host runs each request alone
    const flaky = { ...engine, forwardBatch: (...a: Parameters<typeof engine.forwardBatch>) => (poison && a[1].length > 1 ? ((poison = false), Promise.reject(new Error('backend hiccup'))) : engine.forwardBatch(...a)) }
    const h = startHost('A', { start: 0, end: 5 }, { engine: flaky })
    const outs = await Promise.all([0, 1, 2].map((i) => run(swarm([h], `c${i}`), [1], { maxTokens: 20 })))
    for (const ids of outs) expect([1, ...ids]).toEqual(GOLDEN_IDS.slice(0, 21))
    expect(poison).toBe(false)
  })
})

describe('speculative decoding', () => {
  const story = storiesTokenizer().encode('Once upon a time, there was a little girl named Lily. She loved to play outside. One day, Lily')

  it('prompt lookup drafts continue the latest earlier occurrence of the last n-gram', () => {
    const draft = promptLookupDrafter(2)
    expect(draft([5, 6, 7, 8, 5, 6], 3)).toEqual([7, 8, 5])
    expect(draft([1, 2, 3], 2)).toEqual([])
    expect(draft([9, 4, 9], 4)).toEqual([4, 9])
  })

  for (const [name, make] of [
    ['locally (reference engine)', () => createReferenceEngine(model)],
    ['through three hops', () => swarm(threeHops())],
  ] as const) {
    it(`${name}: greedy ids identical to plain decoding, fewer trips, drafts accepted`, async () => {
      const plain = await run(make(), story, { maxTokens: 120 })
      const stats = newGenerationStats()
      const fast = await run(make(), story, { maxTokens: 120, speculation: { draft: promptLookupDrafter(), maxDraft: 4 }, stats })
      expect(fast).toEqual(plain)
      expect(stats.drafted).toBeGreaterThan(0)
      expect(stats.accepted).toBeGreaterThan(0)
      expect(stats.forwardCalls).toBeLessThan(plain.length + Math.ceil(story.length / 32))
    })
  }

  it('drafts that are always wrong cost trips, never ids; sampling turns speculation off', async () => {
    const wrong = (_tokens: readonly number[], k: number) => new Array<number>(k).fill(0) // <unk>: greedy never picks it
    const stats = newGenerationStats()
    expect([1, ...await run(swarm(threeHops()), [1], { speculation: { draft: wrong, maxDraft: 6 }, stats })]).toEqual(GOLDEN_IDS.slice(0, 65))
    expect(stats.accepted).toBe(0)
    const sampled = newGenerationStats()
    const o = { temperature: 0.9, topP: 0.9, seed: 7, maxTokens: 40 }
    expect(await run(createReferenceEngine(model), [1], { ...o, speculation: { draft: promptLookupDrafter(), maxDraft: 4 }, stats: sampled })).toEqual(await run(createReferenceEngine(model), [1], o))
    expect(sampled.drafted).toBe(0)
  })

  it('a draft longer than a host takes is split into requests it takes; the host refuses it whole', async () => {
    const small = [startHost('A', { start: 0, end: 5 }, { maxRows: 3 })]
    const stats = newGenerationStats()
    expect([1, ...await run(swarm(small), [1], { speculation: { draft: promptLookupDrafter(), maxDraft: 6 }, stats })]).toEqual(GOLDEN_IDS.slice(0, 65))
    const hop = await openHop(small[0].connect(), { peerId: 'A', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64 })
    expect(hop.maxRows).toBe(3)
    await expect(hop.forward(Int32Array.of(0, 1, 2, 3), new Float32Array(4 * 64))).rejects.toMatchObject({ code: 'refused', message: expect.stringMatching(/at most 3/) })
  })

  it('a host rolls back to a position it had; a rollback past it, or rows out of order, are refused and the session goes on', async () => {
    const h = startHost('A', { start: 0, end: 5 })
    const hop = await openHop(h.connect(), { peerId: 'A', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64 })
    const x = (n: number) => Float32Array.from({ length: n * 64 }, (_, i) => Math.sin(i))
    await hop.forward(Int32Array.of(0, 1, 2, 3, 4), x(5))
    const again = await hop.forward(Int32Array.of(2, 3), x(2)) // rolls back to 2
    expect(again.length).toBe(128)
    await expect(hop.forward(Int32Array.of(6), x(1))).rejects.toThrow(/skips positions this session never sent \(it holds 0\.\.3\)/)
  })
})

describe('prefix cache', () => {
  const tok = storiesTokenizer()
  const turn1 = tok.encode('Once upon a time, there was a little dog named Max.')

  async function conversation(engine: SwarmEngine) {
    const first = await run(engine, turn1, { maxTokens: 40 })
    // the second turn: the first turn's prompt and reply, and more text after them
    const prompt2 = [...turn1, ...first, ...tok.encode(' Then', { bos: false })]
    const stats = newGenerationStats()
    const second = await run(engine, prompt2, { maxTokens: 40, stats })
    return { first, prompt2, second, stats }
  }

  it('a conversation\'s second turn reuses the positions the hosts kept: same ids as a cold run, only the new positions sent', async () => {
    const hosts = threeHops()
    const engine = swarm(hosts)
    const { prompt2, second, stats, first } = await conversation(engine)
    expect(second).toEqual(await run(swarm(threeHops()), prompt2, { maxTokens: 40 }))
    // the hosts kept positions [0, turn1 + reply - 1): the last reply token was never forwarded
    expect(stats.promptPositionsReused).toBe(turn1.length + first.length - 1)
    expect(engine.lastReuse()).toEqual({ positions: turn1.length + first.length - 1, hostsReused: 3, hostsReplayed: 0 })
    for (const h of hosts) expect(h.host.stats()).toMatchObject({ prefixHits: 1, prefixPositionsReused: turn1.length + first.length - 1 })
  })

  it('a prefix the host evicted is replayed from what the client kept: same ids', async () => {
    const hosts = [startHost('A', { start: 0, end: 3 }, { maxPrefixes: 0 }), startHost('B', { start: 3, end: 5 })]
    const engine = swarm(hosts)
    const { prompt2, second } = await conversation(engine)
    expect(second).toEqual(await run(swarm([startHost('A', { start: 0, end: 5 })]), prompt2, { maxTokens: 40 }))
    expect(engine.lastReuse()).toMatchObject({ hostsReused: 1, hostsReplayed: 1 })
  })

  it('refuses a prefix id that does not exist or belongs to another client, with a typed error', async () => {
    const h = startHost('A', { start: 0, end: 5 })
    const open = (client: string, prefix?: { id: number; length: number }) => openHop(h.connect(client), { peerId: 'A', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64, prefix })
    const mine = await open('alice')
    await mine.forward(Int32Array.of(0, 1, 2, 3), new Float32Array(4 * 64).fill(0.5))
    mine.close('done', { length: 4 })
    while (h.host.stats().keptPrefixes === 0) await new Promise((r) => setTimeout(r, 1))
    await expect(open('mallory', { id: mine.prefixId, length: 4 })).rejects.toMatchObject({ code: 'prefix-unknown' })
    await expect(open('alice', { id: (mine.prefixId % 0xffffffff) + 1, length: 4 })).rejects.toMatchObject({ code: 'prefix-unknown' })
    await expect(open('alice', { id: mine.prefixId, length: 9 })).rejects.toMatchObject({ code: 'prefix-unknown' })
    const again = await open('alice', { id: mine.prefixId, length: 4 })
    expect(again.reused).toBe(4)
    expect((await again.forward(Int32Array.of(4), new Float32Array(64).fill(0.5))).length).toBe(64)
  })

  it('a client that opens sessions it never uses is held to its share; others are served', async () => {
    const h = startHost('A', { start: 0, end: 5 }, { maxSessionsPerClient: 2, maxSessions: 8 })
    const open = (client: string) => openHop(h.connect(client), { peerId: 'A', modelId: 'stories260K', layers: { start: 0, end: 5 }, maxLength: 64, dim: 64 })
    await open('hog')
    await open('hog')
    await expect(open('hog')).rejects.toMatchObject({ code: 'refused', message: expect.stringMatching(/2 sessions on this host/) })
    expect([1, ...await run(swarm([h], 'polite'), [1], { maxTokens: 16 })]).toEqual(GOLDEN_IDS.slice(0, 17))
  })

  it('the reply cache answers an identical greedy request without the engine', async () => {
    const replies = createReplyCache()
    const tokenizer = storiesTokenizer()
    const hosts = threeHops()
    const request = { prompt: 'Once upon a time', maxTokens: 24, temperature: 0, topP: 0.9, seed: 1 }
    const collect = async () => { const out: { token: number; cached?: boolean }[] = []; for await (const t of generateText(swarm(hosts), tokenizer, request, { replies, modelId: 'stories260K', where: 'swarm' })) out.push(t); return out }
    const cold = await collect()
    const served = hosts[0].host.stats().tokensProcessed
    const warm = await collect()
    expect(warm.map((t) => t.token)).toEqual(cold.map((t) => t.token))
    expect(warm.every((t) => t.cached)).toBe(true)
    expect(hosts[0].host.stats().tokensProcessed).toBe(served)
  })
})

describe('drafts from a small model', () => {
  it('a Q8_0 twin drafts for stories260K through three hops: ids identical, most drafts accepted', async () => {
    const { quantizeSlice } = await import('../model/quant/index.ts')
    const { modelDrafter } = await import('../engine/generate.ts')
    const twin = createReferenceEngine(quantizeSlice(model, 'q8_0'))
    const prompt = storiesTokenizer().encode('Once upon a time, there was a big dog')
    const plain = await run(swarm(threeHops()), prompt, { maxTokens: 100 })
    const stats = newGenerationStats()
    const fast = await run(swarm(threeHops()), prompt, { maxTokens: 100, speculation: { draft: modelDrafter(twin), maxDraft: 4 }, stats })
    expect(fast).toEqual(plain)
    expect(stats.accepted / stats.drafted).toBeGreaterThan(0.6)
    expect(stats.forwardCalls).toBeLessThan(plain.length / 2)
  })
})
