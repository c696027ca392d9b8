/**
 * The tabs of the swarm: their adverts (src/mesh/protocol.ts Advert, health by the peer table's
 * own advertHealth), where they host (the real src/swarm/placement.ts: layersThatFit + chooseLayers
 * on join, rebalance now and then), and their direct connections.
 *
 * Connections (src/mesh/node.ts, bounded): a tab holds maxDirectPeers = 24 direct WebRTC
 * connections; its gossipsub mesh peers (~8, between D = 6 and Dhi = 12) are never closed; the
 * rest of the 24 are discovery connections that on-demand ones (route hops, spot-check verifiers,
 * clients of hosted sessions) displace. Beyond 24, a connection idle for idleCloseMs = 30 s is
 * closed (oldest first); one in use is never closed. So a tab's count is max(24, mesh + on-demand
 * connections in use or used within 30 s), and it reaches a random peer with no dial only if that
 * peer is among its recent ones or, with chance 24/N, a discovery connection.
 */
import type { LayerRange } from '../../src/core/vocabulary.ts'
import { advertHealth } from '../../src/mesh/peer-table.ts'
import type { Advert } from '../../src/mesh/protocol.ts'
import { chooseLayers, layersThatFit, layerThroughput, type ServedRange } from '../../src/swarm/placement.ts'
import { pairHash, type Random } from './random.ts'
import type { Peer } from './types.ts'
import { MODELS, placementBytesPerLayer, layerTokensPerSecond, sampleDevice, samplePlace, type ModelSpec } from './world.ts'

export const CONNECTIONS = { maxDirectPeers: 24, meshPeers: 8, idleCloseMs: 30_000, libp2pMaxConnections: 72 }

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** A libp2p-shaped peer id (12D3KooW + 44 base58 characters), distinct per index. */
export function peerIdFor(idx: number): string {
  let s = ''
  let x = idx
  for (let i = 0; i < 8; i++) {
    s = B58[x % 58] + s
    x = Math.floor(x / 58)
  }
  return '12D3KooW' + 'Sim'.padEnd(36, 'x') + s
}

/** The tab's advert as the protocol defines it: one circuit WebRTC address, capabilities, hosted slice, load, health. */
export function makeAdvert(p: { id: string; device: Peer['device'] }, relayId = peerIdFor(9_999_999)): Advert {
  return {
    v: 1, type: 'advert', peerId: p.id, seq: 1, sentAt: 0, reason: 'heartbeat',
    addrs: [`/dns4/relay.tabmesh.example/tcp/443/wss/p2p/${relayId}/p2p-circuit/webrtc/p2p/${p.id}`],
    capabilities: { backend: p.device.backend, adapter: p.device.backend === 'webgpu' ? 'apple m2 (metal-3)' : 'wasm simd threads', memoryBudgetBytes: p.device.memoryBudgetBytes, speed: { gflops: p.device.bandwidth / 1e9, layerTokensPerSecond: undefined } },
    hosted: [],
    load: { queueDepth: 0, activeSessions: 0 },
    health: { status: 'ok', recentErrors: 0 },
  }
}

export function newPeer(r: Random, idx: number, now: number): Peer {
  const id = peerIdFor(idx)
  const device = sampleDevice(r)
  const place = samplePlace(r)
  const peer: Peer = {
    ...place, idx, id, device, alive: true, joinedAt: now, leaveAt: Infinity, graceful: true, lts: 0, ready: false,
    advert: makeAdvert({ id, device }), health: 'idle', sessions: new Set(), checks: new Set(), kvUsed: 0, rho: 0, waitMs: 0, last: new Map(), use: new Map(),
  }
  return peer
}

// ---- served ranges per model (what adverts say each ready peer hosts) -------------------------------

export interface ServedList {
  model: ModelSpec
  items: ServedRange[]
  peers: Peer[]
  /** Ready replicas per layer. */
  replicas: Int32Array
}

export function servedLists(): Map<string, ServedList> {
  return new Map(MODELS.map((m) => [m.id, { model: m, items: [], peers: [], replicas: new Int32Array(m.nLayers) }]))
}

export function addServed(list: ServedList, p: Peer): void {
  const served: ServedRange = { peerId: p.id, layers: p.layers!, throughput: p.lts }
  p.served = served
  list.items.push(served)
  list.peers.push(p)
  for (let l = p.layers!.start; l < p.layers!.end; l++) list.replicas[l]++
  p.advert.hosted = [{ modelId: list.model.id, layers: p.layers!, embedding: false, head: false }]
  p.advert.capabilities.speed.layerTokensPerSecond = p.lts
  p.advert.health = { status: 'ok', recentErrors: 0 }
  p.ready = true
}

export function removeServed(list: ServedList, p: Peer): void {
  if (!p.ready || !p.served) return
  const i = list.items.indexOf(p.served)
  if (i >= 0) {
    list.items[i] = list.items[list.items.length - 1]
    list.items.pop()
    list.peers[i] = list.peers[list.peers.length - 1]
    list.peers.pop()
  }
  for (let l = p.layers!.start; l < p.layers!.end; l++) list.replicas[l]--
  p.served = undefined
  p.ready = false
  p.advert.hosted = []
  p.advert.health = { status: 'draining', recentErrors: 0 }
}

/**
 * What a joining tab hosts: the model whose weakest layer is weakest relative to its share of
 * chats (among models of which at least one layer fits), then tab-runtime's own choice:
 * chooseLayers(nLayers, layersThatFit(budget, perLayer, nLayers), served) where served lists
 * the ready peers' adverts with throughput = layerTokensPerSecond, as src/swarm/tab-runtime.ts passes it.
 */
export function placeJoiner(p: Peer, lists: Map<string, ServedList>): { model: ModelSpec; layers: LayerRange } | undefined {
  let best: { model: ModelSpec; count: number; score: number } | undefined
  for (const list of lists.values()) {
    const m = list.model
    const count = layersThatFit(p.device.memoryBudgetBytes, placementBytesPerLayer(m), m.nLayers)
    if (count < 1) continue
    const t = layerThroughput(m.nLayers, list.items)
    let min = Infinity
    for (const x of t) min = Math.min(min, x)
    const score = min / m.popularity
    if (!best || score < best.score) best = { model: m, count, score }
  }
  if (!best) return undefined
  return { model: best.model, layers: chooseLayers(best.model.nLayers, best.count, lists.get(best.model.id)!.items) }
}

export function assignModel(p: Peer, model: ModelSpec, layers: LayerRange): void {
  p.model = model
  p.layers = layers
  p.lts = layerTokensPerSecond(p.device, model)
}

/** The peer table's health for a peer's current advert (src/mesh/peer-table.ts advertHealth). */
export function refreshHealth(p: Peer): void {
  p.health = advertHealth(p.advert)
}

// ---- connections ----------------------------------------------------------------------------------

/** Whether `a` holds a direct connection to `b` now. */
export function connected(a: Peer, b: Peer, population: number): boolean {
  if (a.last.has(b.idx)) return true
  const discovery = Math.max(0, CONNECTIONS.maxDirectPeers - CONNECTIONS.meshPeers - a.last.size)
  return pairHash(a.idx, b.idx, 0xd15c) < discovery / Math.max(1, population)
}

const touch = (a: Peer, b: Peer, t: number) => {
  a.last.delete(b.idx)
  a.last.set(b.idx, t)
  b.last.delete(a.idx)
  b.last.set(a.idx, t)
}

/** A stream from `a` to `b` opens (a session or a check): the connection is in use. */
export function acquire(a: Peer, b: Peer, t: number): void {
  if (a === b) return
  touch(a, b, t)
  a.use.set(b.idx, (a.use.get(b.idx) ?? 0) + 1)
  b.use.set(a.idx, (b.use.get(a.idx) ?? 0) + 1)
}

export function release(a: Peer, b: Peer, t: number): void {
  if (a === b) return
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const n = (x.use.get(y.idx) ?? 0) - 1
    if (n > 0) x.use.set(y.idx, n)
    else x.use.delete(y.idx)
  }
  if (a.alive && b.alive) touch(a, b, t)
}

/** The idle closer of src/mesh/node.ts: beyond the cap, connections idle for idleCloseMs go, oldest first. */
export function pruneConnections(p: Peer, t: number, peers: Peer[]): void {
  const room = CONNECTIONS.maxDirectPeers - CONNECTIONS.meshPeers
  if (p.last.size <= room) return
  let excess = p.last.size - room
  for (const [q, at] of p.last) {
    if (excess <= 0 || t - at <= CONNECTIONS.idleCloseMs) break
    if (p.use.has(q)) continue
    p.last.delete(q)
    peers[q].last.delete(p.idx)
    excess--
  }
}

/** Direct connections the tab holds (the relay's WebSocket not counted). */
export const connectionCount = (p: Peer) => CONNECTIONS.meshPeers + Math.max(CONNECTIONS.maxDirectPeers - CONNECTIONS.meshPeers, p.last.size)

/** Closes every connection of a departed tab. */
export function dropConnections(p: Peer, peers: Peer[]): void {
  for (const q of p.last.keys()) {
    peers[q].last.delete(p.idx)
    peers[q].use.delete(p.idx)
  }
  p.last.clear()
  p.use.clear()
}
