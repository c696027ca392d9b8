/**
 * A mesh node's gossip traffic: its own advert (on join, on change, as a heartbeat and on leave,
 * never closer together than MIN_ADVERT_GAP_MS), the validated messages it receives (adverts into
 * the peer table and the dialer, task messages to the task coordinator, all to the app's
 * listeners), and the repair of gossipsub outbound streams lost with a closed duplicate connection.
 */
import type { Connection } from '@libp2p/interface'
import type { Message } from '@libp2p/gossipsub'
import type { Dialer } from './dialer.ts'
import type { MeshPubSub } from './gossip.ts'
import type { PeerTable } from './peer-table.ts'
import {
  ADVERT_TOPIC, decodeMessage, encodeMessage, MESH_TOPICS,
  type Advert, type Capabilities, type HostedSlice, type Load, type MeshMessage, type MeshTopic, type SelfHealth,
} from './protocol.ts'
import type { TaskCoordinator } from './tasks.ts'

/** A validated mesh message as the app layer receives it. */
export interface MeshDelivery {
  topic: MeshTopic
  message: MeshMessage
  /** The signer (always equal to the message's author field). */
  from: string
  receivedAt: number
}

const MIN_ADVERT_GAP_MS = 200 // at most 5 adverts/s, under the receivers' limit of 8/s (validation.ts)

// ---- own advert ------------------------------------------------------------------------------

/** What a node advertises besides its id, sequence number, time and addresses. */
export interface AdvertState {
  capabilities: Capabilities
  hosted: HostedSlice[]
  load: Load
  health: SelfHealth
}

export interface AdvertiserOptions {
  pubsub: MeshPubSub
  peerId: string
  initial: AdvertState
  /** The node's WebRTC addresses to advertise. */
  ownAddrs: () => string[]
  heartbeatMs: number
  /** True once the node has stopped: nothing is sent after that. */
  stopped: () => boolean
  log: (line: string) => void
}

export interface Advertiser {
  publish(topic: MeshTopic, message: MeshMessage): Promise<void>
  /** A new advert (next sequence number) with this reason. */
  makeAdvert(reason: Advert['reason']): Advert
  /** Publishes an advert now and schedules the next heartbeat. */
  sendAdvert(reason: Advert['reason']): void
  /** Sends an advert soon, keeping MIN_ADVERT_GAP_MS between ours. */
  advertSoon(reason: Advert['reason']): void
  /** The current advert (sequence number unchanged). */
  current(): Advert
  /** Changes what is advertised (throws TabmeshError('bad-argument') for what receivers would reject) and sends a 'change' advert soon. */
  update(patch: Partial<AdvertState>): void
  sent(): number
  stop(): void
}

export function createAdvertiser(options: AdvertiserOptions): Advertiser {
  const { pubsub, peerId, ownAddrs, heartbeatMs, log } = options
  const stopped = options.stopped
  let advertsSent = 0
  // a returning tab (same peer id) must out-number the adverts others still hold from its last visit
  let seq = Date.now()
  let state = options.initial
  const makeAdvert = (reason: Advert['reason']): Advert => ({
    v: 1, type: 'advert', peerId, seq: ++seq, sentAt: Date.now(), reason, addrs: ownAddrs(), ...state,
  })
  let lastAdvertAt = 0
  let advertTimer: ReturnType<typeof setTimeout> | undefined
  const publish = async (topic: MeshTopic, message: MeshMessage) => {
    await pubsub.publish(topic, encodeMessage(topic, message))
  }
  const sendAdvert = (reason: Advert['reason']) => {
    if (stopped()) return
    if (advertTimer) clearTimeout(advertTimer)
    lastAdvertAt = Date.now()
    advertsSent++
    publish(ADVERT_TOPIC, makeAdvert(reason)).catch((err: Error) => log(`tabmesh: advert not sent: ${err.message}`))
    advertTimer = setTimeout(() => sendAdvert('heartbeat'), heartbeatMs)
  }
  /** Sends an advert soon, keeping MIN_ADVERT_GAP_MS between ours. */
  const advertSoon = (reason: Advert['reason']) => {
    if (stopped()) return
    const wait = lastAdvertAt + MIN_ADVERT_GAP_MS - Date.now()
    if (wait <= 0) return sendAdvert(reason)
    if (advertTimer) clearTimeout(advertTimer)
    advertTimer = setTimeout(() => sendAdvert(reason), wait)
  }
  return {
    publish,
    makeAdvert,
    sendAdvert,
    advertSoon,
    current: () => ({ v: 1, type: 'advert', peerId, seq, sentAt: Date.now(), reason: 'heartbeat', addrs: ownAddrs(), ...state }),
    update(patch) {
      const next = { ...state, ...patch }
      // refuse what receivers would reject, here and now, rather than failing every heartbeat later
      encodeMessage(ADVERT_TOPIC, { v: 1, type: 'advert', peerId, seq, sentAt: Date.now(), reason: 'change', addrs: ownAddrs(), ...next })
      state = next
      advertSoon('change')
    },
    sent: () => advertsSent,
    stop() {
      if (advertTimer) clearTimeout(advertTimer)
    },
  }
}

// ---- incoming messages -----------------------------------------------------------------------

export interface InboxOptions {
  pubsub: MeshPubSub
  table: PeerTable
  dialer: Dialer
  tasks: TaskCoordinator
  advertSoon: (reason: Advert['reason']) => void
  log: (line: string) => void
}

export interface Inbox {
  /** The app's listeners, each given every delivery. */
  readonly listeners: Set<(delivery: MeshDelivery) => void>
  deliveries(): number
  /** Messages the router delivered that failed decoding here: must stay 0 (validators run first). */
  invalidDelivered(): number
}

/** Takes the router's validated messages to the table, the dialer, the tasks and the listeners. */
export function receiveMessages(options: InboxOptions): Inbox {
  const { pubsub, table, dialer, tasks, advertSoon, log } = options
  const listeners = new Set<(delivery: MeshDelivery) => void>()
  let deliveries = 0
  let invalidDelivered = 0
  pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
    const msg = evt.detail
    if (!(MESH_TOPICS as readonly string[]).includes(msg.topic)) return
    const decoded = decodeMessage(msg.topic, msg.data)
    if (!decoded.ok || msg.type !== 'signed') {
      invalidDelivered++
      return
    }
    const delivery: MeshDelivery = { topic: msg.topic as MeshTopic, message: decoded.message, from: msg.from.toString(), receivedAt: Date.now() }
    deliveries++
    if (delivery.message.type === 'advert') {
      const known = table.has(delivery.from)
      const entry = table.applyAdvert(delivery.message, delivery.receivedAt)
      if (entry) dialer.discovered(entry.peerId, entry.advert.addrs)
      // a newcomer learns about us now rather than at our next heartbeat, so it can dial us sooner
      if (entry && !known) advertSoon('heartbeat')
    } else {
      tasks.handle(delivery.message)
    }
    for (const listener of listeners) {
      try {
        listener(delivery)
      } catch (err) {
        log(`tabmesh: mesh message listener failed: ${(err as Error).message}`)
      }
    }
  })
  // a new subscriber learns about us at once instead of at our next heartbeat
  pubsub.addEventListener('subscription-change', (evt) => {
    if (evt.detail.subscriptions.some((s) => s.subscribe && s.topic === ADVERT_TOPIC)) advertSoon('heartbeat')
  })
  return { listeners, deliveries: () => deliveries, invalidDelivered: () => invalidDelivered }
}

// ---- gossip stream repair --------------------------------------------------------------------

export interface GossipRepairOptions {
  pubsub: MeshPubSub
  table: PeerTable
  /** The newest open direct connection to a peer. */
  newestDirect: (peerId: string) => Connection | undefined
  /** Peers outside the table whose gossip streams are repaired too (the relays). */
  alsoPeers?: () => string[]
  periodMs: number
}

/**
 * gossipsub opens its outbound stream to a peer once, on the peer's first connection; if that
 * connection closes while another stays open (a duplicate from a retried dial), it never opens
 * a new one and our gossip stops reaching that peer directly. Open it again on the newest direct
 * connection (see "TODO make this behavior more robust" in gossipsub.js). Calling the router's
 * addPeer and createOutboundStream directly, not through its queue: the queue runs one at a time
 * and can sit behind a stream being opened on a connection that died without closing.
 */
export function repairGossipStreams(options: GossipRepairOptions): { repairs(): number; stop(): void } {
  const { pubsub, table, newestDirect } = options
  let gossipRepairs = 0
  const router = pubsub as unknown as {
    peers?: Map<string, unknown>
    streamsOutbound?: Map<string, unknown>
    addPeer?: (peer: Connection['remotePeer'], direction: Connection['direction'], addr: Connection['remoteAddr']) => void
    createOutboundStream?: (peer: Connection['remotePeer'], c: Connection) => Promise<void>
  }
  let streamless = new Set<string>() // direct peers without an outbound stream at the last check
  const repairTimer = setInterval(() => {
    if (!router.peers || !router.streamsOutbound || typeof router.addPeer !== 'function' || typeof router.createOutboundStream !== 'function') return
    const now = new Set<string>()
    for (const peerId of [...table.list().map((e) => e.peerId), ...(options.alsoPeers?.() ?? [])]) {
      if (router.streamsOutbound.has(peerId)) continue
      const conn = newestDirect(peerId)
      if (!conn) continue
      now.add(peerId)
      // a stream being opened right now is not lost: repair only what stayed missing for a whole period
      if (!streamless.has(peerId)) continue
      gossipRepairs++
      // a read error on the lost connection may also have removed the peer from the router
      if (!router.peers.has(peerId)) router.addPeer.call(pubsub, conn.remotePeer, conn.direction, conn.remoteAddr)
      router.createOutboundStream.call(pubsub, conn.remotePeer, conn).catch(() => {})
    }
    streamless = now
  }, options.periodMs)
  return { repairs: () => gossipRepairs, stop: () => clearInterval(repairTimer) }
}
