/**
 * A rogue mesh peer for the mesh e2e suite: a real Node libp2p node (WebSockets to the relay,
 * WebRTC to the tabs through node-datachannel, gossipsub with no validators) that sends the tabs
 * one valid advert and then malformed, oversized, wrong-version, spoofed and flooding messages.
 *
 * Usage: node --experimental-websocket --import tsx lab/mesh-rogue.ts <relay multiaddr> <tab webrtc multiaddr>...
 * Prints one JSON line with what it sent, then stays connected until killed (so the tabs can be
 * asked for its score).
 */
import '../src/nodejs/relay/polyfill.ts'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { webRTC } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { ADVERT_TOPIC, MESH_TOPICS, TASK_TOPIC } from '../src/mesh/protocol.ts'

const [relayAddr, ...tabAddrs] = process.argv.slice(2)
if (!relayAddr || tabAddrs.length === 0) throw new Error('usage: mesh-rogue.ts <relay> <tab webrtc addr>...')

const node = await createLibp2p({
  addresses: { listen: ['/p2p-circuit', '/webrtc'] },
  transports: [webSockets(), webRTC({ rtcConfiguration: { iceServers: [] } }), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: async () => false },
  services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, floodPublish: true }) },
})
const pubsub = node.services.pubsub
for (const topic of MESH_TOPICS) pubsub.subscribe(topic)
const self = node.peerId.toString()
const tabIds = tabAddrs.map((a) => a.split('/p2p/').pop()!)

await node.dial(multiaddr(relayAddr), { signal: AbortSignal.timeout(10_000) })
for (const addr of tabAddrs) {
  for (let attempt = 0; ; attempt++) {
    try {
      await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(4000) })
      break
    } catch (err) {
      if (attempt === 5) throw new Error(`rogue cannot reach ${addr}: ${(err as Error).message}`)
    }
  }
}
// wait until every tab's subscriptions are known, or floodPublish would skip it
const deadline = Date.now() + 15_000
while (!tabIds.every((id) => pubsub.getSubscribers(ADVERT_TOPIC).some((p) => p.toString() === id) && pubsub.getSubscribers(TASK_TOPIC).some((p) => p.toString() === id))) {
  if (Date.now() > deadline) throw new Error('the tabs never announced their subscriptions to the rogue')
  await new Promise((r) => setTimeout(r, 50))
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
let seq = 0
const advert = (patch: Record<string, unknown> = {}) => ({
  v: 1, type: 'advert', peerId: self, seq: ++seq, sentAt: Date.now(), reason: 'join', addrs: [],
  capabilities: { backend: 'wasm', memoryBudgetBytes: 1024, speed: { gflops: 1 } }, hosted: [],
  load: { queueDepth: 0, activeSessions: 0 }, health: { status: 'ok', recentErrors: 0 }, ...patch,
})
const MARKER = 'ROGUE-INVALID'
const sent: Record<string, number> = {}
const publish = async (kind: string, topic: string, data: Uint8Array) => {
  await pubsub.publish(topic, data)
  sent[kind] = (sent[kind] ?? 0) + 1
}

// one valid advert first: it must reach the tabs' tables, which shows the channel works
await publish('valid', ADVERT_TOPIC, json(advert()))
await new Promise((r) => setTimeout(r, 500))

await publish('not-json', ADVERT_TOPIC, new TextEncoder().encode(`{"v":1,"type":"advert",${MARKER}`))
await publish('malformed', ADVERT_TOPIC, json(advert({ load: { queueDepth: -5, activeSessions: MARKER } })))
await publish('unknown-key', TASK_TOPIC, json({ v: 1, type: 'task-claim', taskId: 't', announcer: self, claimer: self, score: 1, sentAt: 1, note: MARKER }))
await publish('oversized', ADVERT_TOPIC, json(advert({ addrs: [MARKER.padEnd(100_000, 'x')] })))
await publish('wrong-version', ADVERT_TOPIC, json(advert({ v: 2, adapter: MARKER })))
await publish('wrong-version', TASK_TOPIC, json({ v: 99, type: 'task-announce', taskId: MARKER }))
await publish('spoofed', ADVERT_TOPIC, json(advert({ peerId: tabIds[0], capabilities: { backend: 'none', adapter: MARKER, memoryBudgetBytes: 0, speed: { gflops: 0 } } })))
for (let i = 0; i < 60; i++) await publish('flood', ADVERT_TOPIC, json(advert({ reason: 'heartbeat' })))

console.log(JSON.stringify({ peerId: self, marker: MARKER, sent }))
const stop = () => void Promise.resolve(node.stop()).then(() => process.exit(0))
process.once('SIGTERM', stop)
process.stdin.on('end', stop).resume() // the test runner died without killing us
