/**
 * Mesh lab page: one tab's mesh node, driven by the mesh e2e suite and the mesh benchmark through
 * `window.meshLab`. Everything it returns is plain JSON so Playwright can carry it across.
 */
import type { Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  ADVERT_TOPIC, createMeshNode, decodeMessage, fetchRelayAddrs, probeCapabilities,
  loadTabIdentity, type Capabilities, type HostedSlice, type Load, type MeshDelivery, type MeshNode, type PeerEntry, type TaskRequest,
} from '../../src/mesh/index.ts'

const ECHO_PROTOCOL = '/tabmesh-lab/echo/1'
const SINK_PROTOCOL = '/tabmesh-lab/sink/1'

export interface MeshLabStartOptions {
  relay?: string[]
  capabilities?: Partial<Capabilities>
  hosted?: HostedSlice[]
  load?: Load
  /** Claim every task announced by others with this score (null: claim nothing). */
  claimScore?: number | null
  heartbeatMs?: number
  staleAfterMs?: number
  /** The node's bound on direct connections (bench:mesh:bounded) and the idle time after which extra ones close. */
  maxDirectPeers?: number
  idleCloseMs?: number
}

interface Timeline {
  navigationStart: number // performance.timeOrigin, ms since the epoch
  /** Steps of start(), ms since navigation start. */
  marks: Record<string, number>
  nodeStartedMs?: number // ms since navigation start
  /** directReachedMs[k-1]: when k peers were first directly connected. */
  directReachedMs: number[]
}

let node: MeshNode | undefined
const timeline: Timeline = { navigationStart: performance.timeOrigin, marks: {}, directReachedMs: [] }
const deliveries: { topic: string; type: string; from: string; json: string }[] = []
const advertDelays: number[] = []
const awards: { taskId: string; winner: string | null; won: boolean }[] = []
const leaves: { peerId: string; why: string; atEpochMs: number }[] = []

function need(): MeshNode {
  if (!node) throw new Error('meshLab.start() first')
  return node
}

function directRemotePeers(n: MeshNode): string[] {
  const relays = new Set(n.stats().relayPeers) // as the node knows them now: a restarted relay may have a new id
  const ids = n.libp2p.getConnections().filter((c) => c.limits === undefined && c.status === 'open').map((c) => c.remotePeer.toString())
  return [...new Set(ids)].filter((id) => !relays.has(id)).sort()
}

function tableRow(e: PeerEntry) {
  return {
    peerId: e.peerId, health: e.health, lastSeenAgoMs: Date.now() - e.lastSeen, direct: e.direct, rttMs: e.rttMs,
    capabilities: e.advert.capabilities, hosted: e.advert.hosted, load: e.advert.load, selfHealth: e.advert.health, addrs: e.advert.addrs,
  }
}

function toBytes(chunk: Uint8Array | { subarray(): Uint8Array }): Uint8Array {
  return chunk instanceof Uint8Array ? chunk : chunk.subarray()
}

/** Reads exactly `n` bytes from a stream's iterator, keeping any surplus for the next read. */
function byteReader(stream: Stream) {
  const it = stream[Symbol.asyncIterator]()
  let buffered = new Uint8Array(0)
  return async (n: number): Promise<Uint8Array> => {
    while (buffered.length < n) {
      const next = await it.next()
      if (next.done) throw new Error(`stream ended after ${buffered.length} of ${n} bytes`)
      const chunk = toBytes(next.value)
      const joined = new Uint8Array(buffered.length + chunk.length)
      joined.set(buffered)
      joined.set(chunk, buffered.length)
      buffered = joined
    }
    const out = buffered.subarray(0, n)
    buffered = buffered.subarray(n)
    return out
  }
}

async function send(stream: Stream, data: Uint8Array) {
  if (!stream.send(data)) await stream.onDrain()
}

const meshLab = {
  async start(options: MeshLabStartOptions = {}) {
    timeline.marks.start = performance.now()
    const [relay, probed] = await Promise.all([
      options.relay ?? fetchRelayAddrs().finally(() => (timeline.marks.relayFetched = performance.now())),
      probeCapabilities({ measureMs: 20 }).finally(() => (timeline.marks.probed = performance.now())),
    ])
    node = await createMeshNode({
      relay,
      capabilities: { ...probed, ...options.capabilities },
      hosted: options.hosted,
      load: options.load,
      heartbeatMs: options.heartbeatMs,
      staleAfterMs: options.staleAfterMs,
      maxDirectPeers: options.maxDirectPeers,
      idleCloseMs: options.idleCloseMs,
    })
    const n = node
    n.libp2p.addEventListener('connection:open', () => {
      const count = directRemotePeers(n).length
      while (timeline.directReachedMs.length < count) timeline.directReachedMs.push(performance.now())
    })
    n.onMessage((d: MeshDelivery) => {
      deliveries.push({ topic: d.topic, type: d.message.type, from: d.from, json: JSON.stringify(d.message) })
      if (deliveries.length > 5000) deliveries.shift()
      if (d.topic === ADVERT_TOPIC && d.message.type === 'advert') {
        advertDelays.push(d.receivedAt - d.message.sentAt)
        if (advertDelays.length > 20000) advertDelays.shift()
      }
    })
    n.tasks.onAward((e) => awards.push({ taskId: e.award.taskId, winner: e.award.winner, won: e.won }))
    n.table.subscribe((e) => {
      if (e.type === 'leave') leaves.push({ peerId: e.peerId, why: e.why, atEpochMs: Date.now() })
    })
    const claimScore = options.claimScore
    if (claimScore !== undefined && claimScore !== null) n.tasks.setClaimPolicy(() => claimScore)
    await n.handle(ECHO_PROTOCOL, (stream) => {
      void (async () => {
        for await (const chunk of stream) await send(stream, toBytes(chunk))
        await stream.close()
      })().catch(() => stream.abort(new Error('echo failed')))
    })
    await n.handle(SINK_PROTOCOL, (stream) => {
      void (async () => {
        let total = 0
        for await (const chunk of stream) total += toBytes(chunk).length
        const reply = new Uint8Array(8)
        new DataView(reply.buffer).setFloat64(0, total)
        await send(stream, reply)
        await stream.close()
      })().catch(() => stream.abort(new Error('sink failed')))
    })
    timeline.nodeStartedMs = performance.now()
    return { peerId: n.peerId }
  },
  /** Sends a 'change' advert every `periodMs` for `durationMs` (to sample propagation latency). */
  async churn(durationMs: number, periodMs: number) {
    const n = need()
    const until = performance.now() + durationMs
    let i = 0
    while (performance.now() < until) {
      n.update({ load: { queueDepth: 0, activeSessions: i++ % 2 } })
      await new Promise((r) => setTimeout(r, periodMs))
    }
  },
  clearAdvertDelays() {
    advertDelays.length = 0
  },
  /** Takes this tab's identity slot without starting a node (the lock is held until the page closes). */
  async identity() {
    const id = await loadTabIdentity()
    return { slot: id.slot, created: id.created, peerId: peerIdFromPrivateKey(id.privateKey).toString() }
  },
  peerId: () => need().peerId,
  table: () => need().table.list().map(tableRow),
  directPeers: () => directRemotePeers(need()),
  timeline: () => timeline,
  stats: () => need().stats(),
  advert: () => need().advert(),
  update: (patch: Parameters<MeshNode['update']>[0]) => need().update(patch),
  setClaimScore(score: number | null) {
    need().tasks.setClaimPolicy(score === null ? undefined : () => score)
  },
  announce: (request: TaskRequest) => need().tasks.announce(request),
  awards: () => awards,
  leaves: () => leaves,
  advertDelays: () => advertDelays,
  /** Every message the app layer received, re-checked against the schemas here. */
  auditDeliveries() {
    const encoder = new TextEncoder()
    const invalid = deliveries.filter((d) => !decodeMessage(d.topic, encoder.encode(d.json)).ok)
    return { total: deliveries.length, invalid: invalid.length, from: [...new Set(deliveries.map((d) => d.from))], samples: invalid.slice(0, 3) }
  },
  score: (peerId: string) => need().libp2p.services.pubsub.getScore(peerId),
  /**
   * Opens a second direct connection to `peerId` and then aborts the first (the one gossipsub's
   * stream runs on): the situation a retried dial can leave behind.
   */
  async replaceConnection(peerId: string) {
    const n = need()
    const before = n.libp2p.getConnections().filter((c) => c.remotePeer.toString() === peerId && c.limits === undefined)
    const addr = n.table.get(peerId)!.advert.addrs.find((a) => a.includes('/webrtc'))!
    const { multiaddr } = await import('@multiformats/multiaddr')
    let fresh: Awaited<ReturnType<typeof n.libp2p.dial>> | undefined
    for (let attempt = 0; !fresh; attempt++) {
      try {
        fresh = await n.libp2p.dial(multiaddr(addr), { force: true, signal: AbortSignal.timeout(5000) })
      } catch (err) {
        if (attempt === 3) throw err // a WebRTC dial hangs now and then (LAB.md): try a few times
      }
    }
    await new Promise((r) => setTimeout(r, 1000)) // let the router see the new connection first
    for (const c of before) c.abort(new Error('lab: dropping the first connection'))
    return { dropped: before.length, fresh: fresh.id !== before[0]?.id }
  },
  /** Router internals and connections, for diagnosing failures. */
  gossipState() {
    const n = need()
    const router = n.libp2p.services.pubsub as unknown as { peers: Map<string, unknown>; streamsOutbound: Map<string, unknown>; streamsInbound: Map<string, unknown>; getMeshPeers(t: string): string[] }
    return {
      peers: [...router.peers.keys()],
      outbound: [...router.streamsOutbound.keys()],
      inbound: [...router.streamsInbound.keys()],
      mesh: router.getMeshPeers(ADVERT_TOPIC),
      connections: n.libp2p.getConnections().map((c) => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), limited: c.limits !== undefined, status: c.status, dir: c.direction, streams: c.streams.map((st) => st.protocol), ageMs: Date.now() - c.timeline.open })),
    }
  },
  /** Opens an echo stream to a peer (dialling it first when no direct connection is open) and times the open and the first round trip. */
  async firstEcho(peerId: string) {
    const n = need()
    const wasDirect = directRemotePeers(n).includes(peerId)
    const t0 = performance.now()
    const stream = await n.openStream(peerId, ECHO_PROTOCOL)
    const openMs = performance.now() - t0
    const read = byteReader(stream)
    await send(stream, new Uint8Array(32))
    await read(32)
    const totalMs = performance.now() - t0
    await stream.close()
    return { wasDirect, openMs, totalMs }
  },
  /** Round trips of 32 bytes on one persistent stream; returns each in ms. */
  async rtt(peerId: string, rounds: number) {
    const stream = await need().openStream(peerId, ECHO_PROTOCOL)
    const read = byteReader(stream)
    const payload = new Uint8Array(32) // (32) bytes
    const samples: number[] = []
    for (let i = 0; i < rounds; i++) {
      payload[0] = i & 255
      const t0 = performance.now()
      await send(stream, payload)
      const echoed = await read(32)
      samples.push(performance.now() - t0)
      if (echoed[0] !== (i & 255)) throw new Error('echo mismatch')
    }
    await stream.close()
    return samples
  },
  /** Sends `bytes` in 16 KiB writes; resolves when the receiver has counted them all. */
  async throughput(peerId: string, bytes: number) {
    const stream = await need().openStream(peerId, SINK_PROTOCOL)
    const read = byteReader(stream)
    const chunk = new Uint8Array(16 * 1024) // (16384) bytes
    const t0 = performance.now()
    for (let sent = 0; sent < bytes; sent += chunk.length) await send(stream, sent + chunk.length <= bytes ? chunk : chunk.subarray(0, bytes - sent))
    await stream.close()
    const received = new DataView((await read(8)).slice().buffer).getFloat64(0)
    const ms = performance.now() - t0
    return { bytes: received, ms, mbPerS: received / 1e6 / (ms / 1000) }
  },
  stop: () => need().stop(),
}

declare global {
  interface Window {
    meshLab: typeof meshLab
  }
}
window.meshLab = meshLab

// ?autostart=<JSON options>: start at page load, so benchmarks time from navigation without a
// round trip through the test driver
const autostart = new URLSearchParams(location.search).get('autostart')
if (autostart !== null) {
  ;(window as unknown as { meshLabStarted: Promise<unknown> }).meshLabStarted = meshLab.start(autostart ? (JSON.parse(autostart) as MeshLabStartOptions) : {})
}
