/**
 * What the advert gossip costs a tab, against the swarm's size N.
 *
 * Mesh parameters (src/mesh/node.ts, src/mesh/pubsub.ts, @libp2p/gossipsub 17.1 constants.js):
 * each tab publishes one advert per heartbeat of 1000 ms on one topic every tab subscribes to;
 * gossipsub D = 6 (Dlo 4, Dhi 12), Dlazy = 6, gossipFactor 0.25, heartbeat 1 s, IHAVE over the
 * last HistoryGossip = 3 heartbeats capped at MaxIHaveLength = 5000 ids, floodPublish on (a tab's
 * own advert goes to every connected topic peer), IDONTWANT (v1.2) for messages >= 512 bytes, sent
 * to mesh peers on first receipt, before validation. A message id is the author's protobuf public
 * key (36 bytes, Ed25519) + an 8-byte seqno.
 *
 * The duplicates per message and the IDONTWANTs received are measured by flooding messages over a
 * random graph (24 connections per tab, a gossipsub mesh of degree 6..12 inside them) with link
 * delays from the world's RTT model; every advert reaches every tab.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { ADVERT_TOPIC, decodeMessage, encodeMessage, type Advert } from '../../src/mesh/protocol.ts'
import { createEventLoop } from './events.ts'
import { makeAdvert, peerIdFor } from './peers.ts'
import type { Random } from './random.ts'
import { quantile } from './stats.ts'
import { rttMs, sampleDevice, samplePlace } from './world.ts'

export const GOSSIPSUB = { D: 6, Dlo: 4, Dhi: 12, Dlazy: 6, gossipFactor: 0.25, heartbeatMs: 1000, historyGossip: 3, maxIHaveLength: 5000, idontwantMinBytes: 512 }
export const ADVERT_HEARTBEAT_MS = 1000
/** Message id: protobuf Ed25519 public key (36 bytes) + 8-byte seqno. */
export const MSG_ID_BYTES = 44
/** Signed RPC envelope around a payload: from (40), seqno (10), topic (20), signature (66), framing (~6). */
export const RPC_ENVELOPE_BYTES = 142
/** Per RPC on the wire: WebRTC data-channel framing + SCTP (28) + DTLS record (37) + UDP/IP (28). */
export const TRANSPORT_BYTES = 100
export const CONNECTIONS_PER_TAB = 24

/** A typical advert (one circuit address, one hosted slice, a busy-ish load), encoded by the protocol's own encoder. */
export function typicalAdvert(r: Random): Advert {
  const device = sampleDevice(r)
  const advert = makeAdvert({ id: peerIdFor(123_456), device })
  advert.seq = Date.UTC(2025, 0, 1)
  advert.sentAt = advert.seq
  advert.capabilities.speed = { gflops: 21.7, layerTokensPerSecond: 163.2 }
  advert.hosted = [{ modelId: 'llama-8b-q4', layers: { start: 12, end: 21 }, embedding: false, head: false }]
  advert.load = { queueDepth: 1, activeSessions: 3 }
  return advert
}

export interface AdvertCost {
  advertBytes: number
  decodeUs: number
  verifyUs: number
}

/** The encoded size of a typical advert, and the CPU to decode (zod) and verify (Ed25519) one, measured here. */
export async function measureAdvert(r: Random): Promise<AdvertCost> {
  const advert = typicalAdvert(r)
  const bytes = encodeMessage(ADVERT_TOPIC, advert)
  const n = 2000
  let t = performance.now()
  for (let i = 0; i < n; i++) decodeMessage(ADVERT_TOPIC, bytes)
  const decodeUs = ((performance.now() - t) / n) * 1000
  const key = await generateKeyPair('Ed25519')
  const sig = await key.sign(bytes)
  t = performance.now()
  for (let i = 0; i < n / 4; i++) await key.publicKey.verify(bytes, sig)
  const verifyUs = ((performance.now() - t) / (n / 4)) * 1000
  return { advertBytes: bytes.byteLength, decodeUs, verifyUs }
}

export interface Propagation {
  nodes: number
  meshDegreeMean: number
  /** Full copies of one message a tab receives (1 = no duplicates). */
  copiesPerMessage: number
  idontwantPerMessage: number
  delayP50Ms: number
  delayP99Ms: number
}

/** Floods `messages` adverts over `n` tabs and counts what each tab receives. */
export function propagation(r: Random, n: number, messages: number, messageBytes: number, validateMs: number): Propagation {
  const places = Array.from({ length: n }, (_, idx) => ({ ...samplePlace(r), idx, link: sampleDevice(r).linkBytesPerMs }))
  const conn: Set<number>[] = places.map(() => new Set())
  const mesh: Set<number>[] = places.map(() => new Set())
  const link = (g: Set<number>[], a: number, b: number) => {
    g[a].add(b)
    g[b].add(a)
  }
  for (let a = 0; a < n; a++) {
    for (let tries = 0; conn[a].size < Math.min(CONNECTIONS_PER_TAB, n - 1) && tries < 200; tries++) {
      const b = r.int(n)
      if (b !== a && conn[b].size < CONNECTIONS_PER_TAB + 4) link(conn, a, b)
    }
  }
  // GRAFT up to D; a peer takes grafts while under D + 2 (gossipsub keeps Dlo..Dhi, pruning back to D)
  for (let a = 0; a < n; a++) {
    for (const b of conn[a]) {
      if (mesh[a].size >= GOSSIPSUB.D) break
      if (mesh[b].size < GOSSIPSUB.D + 2) link(mesh, a, b)
    }
  }
  let copies = 0
  let idontwants = 0
  const delays: number[] = []
  const oneWay = (a: number, b: number, bytes: number) => rttMs(places[a], places[b]) / 2 + bytes / places[a].link
  for (let msg = 0; msg < messages; msg++) {
    const loop = createEventLoop()
    const seenAt = new Float64Array(n).fill(Infinity)
    const idwFrom = new Map<number, number>() // a * n + b: when b's IDONTWANT reached a
    const source = r.int(n)
    seenAt[source] = 0
    const deliver = (from: number, to: number) => () => {
      copies++
      if (seenAt[to] !== Infinity) return
      const t = loop.now
      seenAt[to] = t
      delays.push(t)
      for (const b of mesh[to]) {
        if (b === from || messageBytes < GOSSIPSUB.idontwantMinBytes) continue
        loop.after(oneWay(to, b, 60), () => {
          idontwants++
          idwFrom.set(b * n + to, loop.now)
        })
      }
      loop.after(validateMs, () => {
        for (const b of mesh[to]) {
          if (b === from) continue
          const told = idwFrom.get(to * n + b)
          if (told !== undefined && told <= loop.now) continue
          loop.after(oneWay(to, b, messageBytes), deliver(to, b))
        }
      })
    }
    for (const b of conn[source]) loop.after(oneWay(source, b, messageBytes), deliver(source, b)) // floodPublish
    loop.run(Infinity)
  }
  let degree = 0
  for (const m of mesh) degree += m.size
  return {
    nodes: n, meshDegreeMean: degree / n, copiesPerMessage: copies / (messages * (n - 1)), idontwantPerMessage: idontwants / (messages * (n - 1)),
    delayP50Ms: quantile(delays, 0.5), delayP99Ms: quantile(delays, 0.99),
  }
}

export interface GossipLoad {
  peers: number
  /** Distinct adverts a tab takes in per second (each validated once). */
  advertsPerS: number
  fullMessagesPerS: number
  idontwantPerS: number
  ihavePerS: number
  ihaveIdsPerMessage: number
  /** Gossipsub RPCs received per second (full + IDONTWANT + IHAVE; IWANT ~0: every advert arrives by the mesh). */
  messagesPerS: number
  bytesPerS: number
  bytesBreakdown: { full: number; idontwant: number; ihave: number }
  /** CPU for decoding and verifying the distinct adverts, ms per second. */
  cpuMsPerS: number
}

/** Per-tab gossip load at swarm size `n`, from the measured advert and the propagation run. */
export function gossipLoad(n: number, cost: AdvertCost, prop: Propagation, connections = CONNECTIONS_PER_TAB): GossipLoad {
  const advertsPerS = ((n - 1) * 1000) / ADVERT_HEARTBEAT_MS
  const fullMessagesPerS = advertsPerS * prop.copiesPerMessage
  const idontwantPerS = advertsPerS * prop.idontwantPerMessage
  const nonMesh = Math.max(0, Math.min(n - 1, connections) - prop.meshDegreeMean)
  const ihavePerS = Math.min(nonMesh, Math.max(GOSSIPSUB.Dlazy, GOSSIPSUB.gossipFactor * nonMesh)) * (1000 / GOSSIPSUB.heartbeatMs)
  const ihaveIdsPerMessage = Math.min(GOSSIPSUB.maxIHaveLength, advertsPerS * GOSSIPSUB.historyGossip * (GOSSIPSUB.heartbeatMs / 1000))
  const full = fullMessagesPerS * (cost.advertBytes + RPC_ENVELOPE_BYTES + TRANSPORT_BYTES)
  const idontwant = idontwantPerS * (MSG_ID_BYTES + 8 + TRANSPORT_BYTES)
  const ihave = ihavePerS * (ihaveIdsPerMessage * (MSG_ID_BYTES + 2) + 30 + TRANSPORT_BYTES * Math.ceil((ihaveIdsPerMessage * 46) / 1200))
  return {
    peers: n, advertsPerS, fullMessagesPerS, idontwantPerS, ihavePerS, ihaveIdsPerMessage,
    messagesPerS: fullMessagesPerS + idontwantPerS + ihavePerS, bytesPerS: full + idontwant + ihave, bytesBreakdown: { full, idontwant, ihave },
    cpuMsPerS: (advertsPerS * (cost.decodeUs + cost.verifyUs)) / 1000,
  }
}

/** The smallest N (searched on a fine grid) at which `f(load)` first holds, or undefined. */
export function breakingN(cost: AdvertCost, prop: Propagation, f: (l: GossipLoad) => boolean): number | undefined {
  for (let n = 2; n <= 100_000; n = n < 100 ? n + 1 : Math.ceil(n * 1.02)) if (f(gossipLoad(n, cost, prop))) return n
  return undefined
}
