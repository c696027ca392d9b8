import { describe, expect, it } from 'vitest'
import { TabmeshError } from '../core/errors.ts'
import type { ModelEntry } from '../model/source/registry.ts'
import { compileChatTemplate } from '../model/template/index.ts'
import { openReputation } from '../trust/reputation.ts'
import { conversationPrompt, explainError, summarizeRoute } from './chat-state.ts'
import { pauseReason } from './contribute-state.ts'
import { formatBytes, formatDuration, layerText } from './format.ts'
import { loadRate, type LoadEntry } from './loads.ts'
import { DEFAULT_SETTINGS } from './settings.ts'
import type { HopSummary } from './storage.ts'
import { layerCoverage, swarm, type PeerView } from './swarm-state.ts'
import { peerTrustStatus, trustPeers } from './trust-state.ts'

const peer = (peerId: string, layers: [number, number][], status: PeerView['status'] = 'ok'): PeerView => ({
  peerId, backend: 'wasm', hosted: layers.map(([start, end]) => ({ modelId: 'm', layers: { start, end }, embedding: false, head: false })),
  health: 'idle', status, direct: true, activeSessions: 0,
})
const entry = { id: 'm', config: { nLayers: 5 } } as ModelEntry

describe('contribute pause rules', () => {
  const env = { hidden: false, onBattery: false, idle: false }
  it('runs when nothing asks for a pause', () => {
    expect(pauseReason({ ...DEFAULT_SETTINGS, pauseWhenHidden: true, idleOnly: false }, env)).toBeUndefined()
  })
  it('pauses a hidden tab only when asked to', () => {
    expect(pauseReason({ ...DEFAULT_SETTINGS, pauseWhenHidden: true }, { ...env, hidden: true })).toBe('the tab is hidden')
    expect(pauseReason({ ...DEFAULT_SETTINGS, pauseWhenHidden: false }, { ...env, hidden: true })).toBeUndefined()
  })
  it('pauses on battery, and not when the browser cannot tell', () => {
    expect(pauseReason({ ...DEFAULT_SETTINGS, pauseOnBattery: true }, { ...env, onBattery: true })).toBe('the device is on battery')
    expect(pauseReason({ ...DEFAULT_SETTINGS, pauseOnBattery: true }, { ...env, onBattery: undefined })).toBeUndefined()
  })
  it('idle-only waits for the user to be away', () => {
    expect(pauseReason({ ...DEFAULT_SETTINGS, idleOnly: true }, env)).toMatch(/idle-only/)
    expect(pauseReason({ ...DEFAULT_SETTINGS, idleOnly: true }, { ...env, idle: true })).toBeUndefined()
  })
})

describe('layer coverage', () => {
  it('counts peers per layer, leaves gaps at 0 and ignores draining peers', () => {
    expect(layerCoverage([peer('a', [[0, 2]]), peer('b', [[1, 3]]), peer('c', [[3, 5]], 'draining')], 'm', 5)).toEqual([1, 2, 1, 0, 0])
  })
})

describe('route summary', () => {
  it('keeps one row per peer and layer range, in first-use order, with mean and max latency', () => {
    const s: HopSummary[] = []
    summarizeRoute(s, [{ peerId: 'a', layers: { start: 0, end: 3 }, ms: 4 }, { peerId: 'b', layers: { start: 3, end: 5 }, ms: 2 }])
    summarizeRoute(s, [{ peerId: 'a', layers: { start: 0, end: 3 }, ms: 8 }, { peerId: 'b', layers: { start: 3, end: 5 }, ms: 2 }])
    summarizeRoute(s, [{ peerId: 'c', layers: { start: 0, end: 3 }, ms: 30 }, { peerId: 'b', layers: { start: 3, end: 5 }, ms: 5 }]) // a failover
    expect(s.map((h) => [h.peerId, h.tokens, h.meanMs, h.maxMs])).toEqual([['a', 2, 6, 8], ['b', 3, 3, 5], ['c', 1, 30, 30]])
  })
})

describe('error messages', () => {
  it('tells no contributors apart from a thin swarm with a gap', () => {
    swarm.set({ peers: [] })
    expect(explainError(new TabmeshError('no-route', 'x'), entry)).toMatchObject({ code: 'no-route', message: expect.stringMatching(/^No route: nobody in the swarm serves m/) })
    swarm.set({ peers: [peer('a', [[0, 3]])] })
    expect(explainError(new TabmeshError('no-route', 'x'), entry)).toMatchObject({ code: 'thin-swarm', message: expect.stringContaining('nobody serves layers 3–4 of its 5') })
  })
  it('says a prompt is too long, with the engine’s numbers', () => {
    expect(explainError(new TabmeshError('context-window', 'needs 600 positions'), entry).message).toBe('Prompt too long: needs 600 positions')
  })
})

describe('conversation prompts', () => {
  const story = [{ role: 'user' as const, content: 'Once upon a time' }, { role: 'assistant' as const, content: ', there was' }, { role: 'user' as const, content: ' a girl' }]
  it('stories260K (no chat template, the plain continuation): the story so far, as before', () => {
    expect(conversationPrompt(undefined, [{ role: 'user', content: '' }])).toBe('')
    expect(conversationPrompt(undefined, story)).toBe('Once upon a time, there was a girl')
  })
  it('a chat model: its own template, ending where the assistant replies; only role and content reach it', () => {
    const t = compileChatTemplate("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ m['id'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    expect(conversationPrompt(t, story.map((m) => ({ ...m, id: 'x' })))).toBe('<|user|>Once upon a time\n<|assistant|>, there was\n<|user|> a girl\n<|assistant|>')
  })
})

describe('formatting and load rates', () => {
  it('formats sizes, durations and layer ranges', () => {
    expect(formatBytes(1_100_000)).toBe('1.1 MB')
    expect(formatDuration(125_000)).toBe('2 min 5 s')
    expect(layerText({ start: 3, end: 4 })).toBe('layer 3')
    expect(layerText({ start: 0, end: 3 })).toBe('layers 0–2')
  })
  it('gives the rate so far and the time left at that rate', () => {
    const e: LoadEntry = { key: 'k', label: 'k', loadedBytes: 2e6, totalBytes: 5e6, startedAt: 0, updatedAt: 2000, state: 'loading' }
    expect(loadRate(e)).toEqual({ bytesPerSecond: 1e6, msLeft: 3000 })
  })
})

describe('trust panel rows', () => {
  it('sorts by score, gives each peer its check rate and a status: new, trusted or revoked', async () => {
    const rep = await openReputation()
    for (let i = 0; i < 10; i++) rep.passed('12D3KooWtrusted')
    rep.passed('12D3KooWnewpeer')
    rep.failed('12D3KooWliar')
    const rows = trustPeers(rep)
    expect(rows.map((r) => [r.peerId.slice(8), r.status])).toEqual([['trusted', 'trusted'], ['newpeer', 'new'], ['liar', 'revoked']])
    expect(rows[0]).toMatchObject({ score: 10, passed: 10, failed: 0, inconclusive: 0 })
    expect(rows[0].checkRate).toBeCloseTo(rep.checkRate('12D3KooWtrusted'))
    expect(rows[2].checkRate).toBe(1)
  })
  it('a clean peer is new under 8 passed checks; one with a failure it survived is not', () => {
    expect(peerTrustStatus({ passed: 7, failed: 0 }, false)).toBe('new')
    expect(peerTrustStatus({ passed: 8, failed: 0 }, false)).toBe('trusted')
    expect(peerTrustStatus({ passed: 2, failed: 1 }, false)).toBe('trusted')
    expect(peerTrustStatus({ passed: 50, failed: 0 }, true)).toBe('revoked')
  })
})
