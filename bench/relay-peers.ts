/**
 * Simulated tabs for `npm run bench:relay`: a child process (forked by bench/relay.ts, IPC channel)
 * holding many Node libp2p peers. Each peer is built like a tab's node (src/mesh/libp2p.ts) minus
 * WebRTC: WebSockets + circuitRelayTransport + noise + yamux + identify + ping + the mesh gossipsub
 * settings. It dials the relay, listens on `/p2p-circuit` (the relay is found the way a tab finds
 * it: identify shows it speaks HOP), subscribes to the mesh topics and publishes a real advert
 * (encodeMessage, so it passes the relay's validators) every second. During a measurement window
 * a fraction of the peers "signal": each dials another process's peer at its `/p2p-circuit` address
 * through the relay and exchanges an offer and an answer of a few KB on a stream, as a tab does for
 * WebRTC SDP/ICE. Peers do not run the mesh validators on what they receive (their cost is the
 * tab's, not the relay's); they only time adverts from peers of other processes. The peers of one
 * process share one signature check per gossip message (see cacheSignatureChecks): every tab checks
 * each message it gets, but repeating that check per simulated tab would spend on the simulation the
 * CPU that the relay, on the same 2 cores, is measured with.
 */
import '../src/nodejs/relay/polyfill.ts'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import type { Message } from '@libp2p/gossipsub'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { meshGossipsub, type MeshPubSub } from '../src/mesh/gossip.ts'
import { ADVERT_TOPIC, encodeMessage, MESH_TOPICS, type Advert } from '../src/mesh/protocol.ts'
import type { MeshValidators } from '../src/mesh/validation.ts'

/** Commands from bench/relay.ts; each is answered by one reply carrying the same id. */
export type PeersCommand =
  | { id: number; cmd: 'grow'; count: number; concurrency: number; deadline: number }
  | { id: number; cmd: 'targets'; addrs: string[] }
  | { id: number; cmd: 'measure-start'; signalFraction: number; at: number }
  | { id: number; cmd: 'measure-end'; at: number }
  | { id: number; cmd: 'stop' }

/** One new peer's attempt to hold a reservation. */
export interface GrowResult { ok: boolean; ms: number; error?: string }
export interface GrowReply { id: number; results: GrowResult[]; circuitAddrs: string[]; advertBytes: number }
export interface MeasureReply {
  id: number
  /** Peers, and those whose own addresses still show /p2p-circuit. */
  peers: number; holding: number
  advertsPublished: number; publishErrors: number
  /** Receipts, by any peer here, of adverts sent in the window by peers of other processes (so through the relay), and their senders. */
  crossAdverts: number; crossSenders: number
  /** A sample (at most SAMPLE_CAP) of those receipts' latencies (receipt - sentAt), ms: every tab's view. */
  advertLatencyMs: number[]
  /** Per advert ("sender/seq"), its first receipt here, ms after sentAt: the relay's push to its gossip mesh. */
  firstReceiptMs: Record<string, number>
  /** Each peer's gossipsub score of the relay (below -10 it takes no gossip from it), and how many have the relay in their advert mesh. */
  relayScores: number[]; meshedWithRelay: number
  /** Peers connected to the relay whose gossipsub no longer knows it (its streams with the relay died): they hear and reach nobody. */
  cutOff: number
  signalAttempts: number; signalFailures: number; signalErrors: Record<string, number>; signalRttMs: number[]
  rss: number; cpuSeconds: number
}
export type PeersReply = ({ id: number; ok: true } & Partial<GrowReply & MeasureReply>) | { id: number; ok: false; error: string }

const SIGNAL_PROTOCOL = '/tabmesh-bench/signal/1.0.0'
const OFFER_BYTES = 3000 // an SDP offer with a few ICE candidates
const ANSWER_BYTES = 2500
const SIGNAL_TIMEOUT_MS = 10_000
const SAMPLE_CAP = 50_000
/** How long a window's adverts and signalling may still complete after it closes. */
const DRAIN_MS = 4500
const HEARTBEAT_MS = 1000
/** Peers do not validate what they receive (see the header): no validators installed. */
const NO_VALIDATORS: MeshValidators = { validators: new Map(), stats: () => ({ accepted: 0, rejected: 0, ignored: 0, byReason: {} }) }

/**
 * Memoizes Ed25519 signature checks in this process, by signature and key: gossipsub checks the
 * signature of every message each peer receives, and the same message reaches many local peers.
 */
async function cacheSignatureChecks() {
  type Verify = (this: { toString(): string }, data: unknown, sig: Uint8Array, options?: unknown) => boolean | Promise<boolean>
  const proto = Object.getPrototypeOf((await generateKeyPair('Ed25519')).publicKey) as { verify: Verify }
  const verify = proto.verify
  const cache = new Map<string, boolean | Promise<boolean>>()
  proto.verify = function (data, sig, options) {
    const key = `${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64')}|${this.toString()}`
    let result = cache.get(key)
    if (result === undefined) {
      if (cache.size >= 200_000) cache.clear()
      result = verify.call(this, data, sig, options)
      cache.set(key, result)
    }
    return result
  }
}
await cacheSignatureChecks()

interface Peer { node: Libp2p<{ pubsub: MeshPubSub }>; id: string; seq: number; timer?: ReturnType<typeof setInterval> }

const relayAddr = process.argv[2]
const relayId = relayAddr.slice(relayAddr.lastIndexOf('/p2p/') + 5)
/** The peers' gossipsub inbound RPC limit when overridden (default: the tab's, meshGossipsub's 256 KiB). */
const inboundLimit = Number(process.argv[3]) || undefined
const utf8 = new TextDecoder()
const peers: Peer[] = []
const localIds = new Set<string>()
let targets: string[] = []
/** The measurement window, by Date.now(): adverts sent in it are counted and timed. */
let windowStart = Infinity
let windowEnd = Infinity
let stats = freshStats()
let signalTimer: ReturnType<typeof setInterval> | undefined

function freshStats() {
  return { from: Infinity, published: [] as number[], publishErrors: 0, cross: 0, senders: new Set<string>(), latencies: [] as number[], first: {} as Record<string, number>, seen: 0, signalAttempts: 0, signalFailures: 0, signalErrors: {} as Record<string, number>, rtts: [] as number[] }
}

/** Reservoir sampling: keeps a uniform sample of at most SAMPLE_CAP values. */
function sample(xs: number[], x: number, seen: number) {
  if (xs.length < SAMPLE_CAP) xs.push(x)
  else {
    const j = Math.floor(Math.random() * seen)
    if (j < SAMPLE_CAP) xs[j] = x
  }
}

/** A realistic advert: a WebGPU tab hosting two slices, advertising two /p2p-circuit/webrtc addresses. */
function makeAdvert(peer: Peer): Advert {
  const circuit = `${relayAddr}/p2p-circuit/webrtc/p2p/${peer.id}`
  return {
    v: 1, type: 'advert', peerId: peer.id, seq: ++peer.seq, sentAt: Date.now(), reason: 'heartbeat',
    addrs: [circuit, circuit.replace('/ip4/127.0.0.1/', '/dns4/relay.tabmesh.local/')],
    capabilities: { backend: 'webgpu', adapter: 'NVIDIA GeForce RTX 3060 (ANGLE Vulkan 1.3, driver 535.183.01)', memoryBudgetBytes: 3 * 2 ** 30, speed: { gflops: 412.5, layerTokensPerSecond: 18250.25 } },
    hosted: [
      { modelId: 'stories15M', layers: { start: 0, end: 3 }, embedding: true, head: false },
      { modelId: 'SmolLM2-135M-Instruct-q4f16_1', layers: { start: 12, end: 24 }, embedding: false, head: true },
    ],
    load: { queueDepth: 1, activeSessions: 2 },
    health: { status: 'ok', recentErrors: 0 },
  }
}

function publishAdvert(peer: Peer) {
  const advert = makeAdvert(peer)
  // every send time is kept (the window is cut at its end): the window may open before this process hears of it
  const counted = advert.sentAt <= windowEnd
  stats.published.push(advert.sentAt)
  peer.node.services.pubsub.publish(ADVERT_TOPIC, encodeMessage(ADVERT_TOPIC, advert)).catch(() => { if (counted) stats.publishErrors++ })
}

function onMessage(evt: CustomEvent<Message>) {
  const msg = evt.detail
  if (windowStart === Infinity || msg.topic !== ADVERT_TOPIC || msg.type !== 'signed') return
  const from = msg.from.toString()
  if (localIds.has(from)) return
  const { sentAt, seq } = JSON.parse(utf8.decode(msg.data)) as Advert
  if (sentAt < windowStart || sentAt > windowEnd) return
  const ms = Date.now() - sentAt
  stats.cross++
  stats.senders.add(from)
  sample(stats.latencies, ms, ++stats.seen)
  const key = `${from}/${seq}`
  if (!(key in stats.first)) stats.first[key] = ms
}

/** Answers a signalling offer: reads it whole, sends the answer. */
async function answerSignal(stream: Parameters<Parameters<Libp2p['handle']>[1]>[0]) {
  let got = 0
  for await (const chunk of stream) {
    got += chunk.byteLength
    if (got >= OFFER_BYTES) break
  }
  if (!stream.send(new Uint8Array(ANSWER_BYTES))) await stream.onDrain()
  await stream.close().catch(() => stream.abort(new Error('answer not closed')))
}

/** Creates one peer, dials the relay and waits until it holds a reservation (its addresses show /p2p-circuit). */
async function startPeer(): Promise<GrowResult & { peer?: Peer; circuitAddr?: string }> {
  const node = (await createLibp2p({
    addresses: { listen: ['/p2p-circuit'] },
    transports: [webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: async () => false },
    connectionMonitor: { pingTimeout: { minTimeout: 10_000 } },
    services: { identify: identify(), ping: ping(), pubsub: meshGossipsub({ validators: NO_VALIDATORS, overrides: inboundLimit ? { maxInboundDataLength: inboundLimit } : {} }) },
  })) as unknown as Libp2p<{ pubsub: MeshPubSub }>
  const start = performance.now()
  const circuit = () => node.getMultiaddrs().find((a) => a.toString().includes('/p2p-circuit'))
  // polled: self:peer:update comes only after the address manager's 1 s debounce
  let poll: ReturnType<typeof setInterval> | undefined
  try {
    const reserved = new Promise<void>((res) => { poll = setInterval(() => { if (circuit()) res() }, 10) })
    const signal = AbortSignal.timeout(30_000)
    await node.dial(multiaddr(relayAddr), { signal })
    await Promise.race([reserved, new Promise((_, rej) => signal.addEventListener('abort', () => rej(new Error('no reservation within 30 s'))))])
    const ms = performance.now() - start
    const peer: Peer = { node, id: node.peerId.toString(), seq: Date.now() }
    for (const topic of MESH_TOPICS) node.services.pubsub.subscribe(topic)
    node.services.pubsub.addEventListener('message', onMessage)
    await node.handle(SIGNAL_PROTOCOL, (stream) => void answerSignal(stream).catch(() => stream.abort(new Error('signal answer failed'))), { runOnLimitedConnection: true })
    setTimeout(() => {
      if (!node.status.startsWith('start')) return
      publishAdvert(peer)
      peer.timer = setInterval(() => publishAdvert(peer), HEARTBEAT_MS)
    }, Math.random() * HEARTBEAT_MS)
    return { ok: true, ms, peer, circuitAddr: circuit()!.toString() }
  } catch (err) {
    await Promise.resolve(node.stop()).catch(() => {})
    return { ok: false, ms: performance.now() - start, error: (err as Error).name === 'Error' ? (err as Error).message.slice(0, 80) : (err as Error).name }
  } finally {
    clearInterval(poll)
  }
}

/** Dials `target` over the relay's circuit, sends an offer and reads the answer; the round trip in ms. */
async function signalOnce(from: Peer, target: string): Promise<number> {
  const signal = AbortSignal.timeout(SIGNAL_TIMEOUT_MS)
  const start = performance.now()
  // a connection of its own (force): closing it must not cut another exchange between the same two peers
  const conn = await from.node.dial(multiaddr(target), { signal, force: true })
  try {
    const stream = await conn.newStream(SIGNAL_PROTOCOL, { signal, runOnLimitedConnection: true })
    if (!stream.send(new Uint8Array(OFFER_BYTES))) await stream.onDrain({ signal })
    let got = 0
    for await (const chunk of stream) {
      got += chunk.byteLength
      if (got >= ANSWER_BYTES || signal.aborted) break
    }
    if (got < ANSWER_BYTES) throw new Error(signal.aborted ? 'signalling timed out' : 'short answer')
    return performance.now() - start
  } finally {
    await Promise.resolve(conn.close()).catch(() => conn.abort(new Error('signalling done')))
  }
}

/** Every second, `fraction` of this process's peers each signal a random peer of another process. */
function startSignalling(fraction: number) {
  signalTimer = setInterval(() => {
    if (targets.length === 0 || peers.length === 0) return
    const n = Math.max(1, Math.round(fraction * peers.length))
    for (let i = 0; i < n; i++) {
      const from = peers[Math.floor(Math.random() * peers.length)]
      const target = targets[Math.floor(Math.random() * targets.length)]
      const st = stats
      st.signalAttempts++
      signalOnce(from, target).then((ms) => { st.rtts.push(ms) }, (err: Error) => {
        st.signalFailures++
        const key = err.name === 'Error' ? err.message.slice(0, 60) : err.name
        st.signalErrors[key] = (st.signalErrors[key] ?? 0) + 1
      })
    }
  }, 1000)
}

async function grow(count: number, concurrency: number, deadline: number): Promise<Omit<GrowReply, 'id'>> {
  const results: GrowResult[] = []
  const circuitAddrs: string[] = []
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count && Date.now() < deadline) {
      next++
      const r = await startPeer()
      results.push({ ok: r.ok, ms: r.ms, ...(r.error ? { error: r.error } : {}) })
      if (r.peer) {
        peers.push(r.peer)
        localIds.add(r.peer.id)
        circuitAddrs.push(r.circuitAddr!)
      }
    }
  }))
  const advertBytes = peers[0] ? encodeMessage(ADVERT_TOPIC, makeAdvert(peers[0])).byteLength : 0
  return { results, circuitAddrs, advertBytes }
}

async function measureEnd(at: number): Promise<Omit<MeasureReply, 'id'>> {
  clearInterval(signalTimer)
  windowEnd = at
  const cpu = process.cpuUsage() // the window's end, before the drain
  // adverts of the window still arriving by gossip (IHAVE for 3 heartbeats), signalling in flight
  await new Promise((r) => setTimeout(r, DRAIN_MS))
  windowStart = windowEnd = Infinity
  const s = stats
  stats = freshStats()
  const unfinished = s.signalAttempts - s.rtts.length - s.signalFailures
  if (unfinished > 0) s.signalErrors[`unfinished ${DRAIN_MS} ms after the window`] = unfinished
  return {
    peers: peers.length,
    holding: peers.filter((p) => p.node.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit'))).length,
    advertsPublished: s.published.filter((t) => t >= s.from && t <= at).length, publishErrors: s.publishErrors, crossAdverts: s.cross, crossSenders: s.senders.size, advertLatencyMs: s.latencies, firstReceiptMs: s.first,
    relayScores: peers.map((p) => p.node.services.pubsub.getScore(relayId)),
    cutOff: peers.filter((p) => p.node.getConnections().some((c) => c.remotePeer.toString() === relayId) && !p.node.services.pubsub.getSubscribers(ADVERT_TOPIC).some((s) => s.toString() === relayId)).length,
    meshedWithRelay: peers.filter((p) => p.node.services.pubsub.getMeshPeers(ADVERT_TOPIC).length > 0).length,
    signalAttempts: s.signalAttempts, signalFailures: s.signalFailures + unfinished, signalErrors: s.signalErrors, signalRttMs: s.rtts,
    rss: process.memoryUsage().rss, cpuSeconds: (cpu.user + cpu.system) / 1e6,
  }
}

async function stopAll() {
  clearInterval(signalTimer)
  for (const p of peers) clearInterval(p.timer)
  await Promise.all(peers.map((p) => Promise.resolve(p.node.stop()).catch(() => {})))
}

async function handle(msg: PeersCommand): Promise<PeersReply> {
  switch (msg.cmd) {
    case 'grow': return { id: msg.id, ok: true, ...(await grow(msg.count, msg.concurrency, msg.deadline)) }
    case 'targets': targets = msg.addrs.filter((a) => !localIds.has(a.slice(a.lastIndexOf('/') + 1))); return { id: msg.id, ok: true }
    case 'measure-start': {
      const before = stats.published.filter((t) => t >= msg.at)
      stats = freshStats()
      stats.from = msg.at
      stats.published = before
      windowStart = msg.at
      windowEnd = Infinity
      startSignalling(msg.signalFraction)
      const cpu = process.cpuUsage()
      return { id: msg.id, ok: true, cpuSeconds: (cpu.user + cpu.system) / 1e6 }
    }
    case 'measure-end': return { id: msg.id, ok: true, ...(await measureEnd(msg.at)) }
    case 'stop': await stopAll(); return { id: msg.id, ok: true }
  }
}

process.on('message', (msg: PeersCommand) => {
  handle(msg).then(
    (reply) => { process.send!(reply); if (msg.cmd === 'stop') setTimeout(() => process.exit(0), 100) },
    (err: Error) => process.send!({ id: msg.id, ok: false, error: String(err?.stack ?? err) } satisfies PeersReply),
  )
})
// the orchestrator went away: do not linger
process.on('disconnect', () => void stopAll().finally(() => process.exit(0)))
process.send!({ id: 0, ok: true } satisfies PeersReply)
