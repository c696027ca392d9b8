/**
 * Gossipsub settings shared by the browser node and the relay: the score parameters that make
 * invalid messages cost a peer its score, and the validators on every mesh topic.
 */
import { gossipsub, type GossipSub, type GossipsubOpts } from '@libp2p/gossipsub'
import type { PeerScoreParams, TopicScoreParams } from '@libp2p/gossipsub/score'
import { MESH_TOPICS, type MeshTopic } from './protocol.ts'
import type { MeshValidators } from './validation.ts'

/** The gossipsub router as built by `gossipsub()`, with the score accessors its class has. */
export interface MeshPubSub extends GossipSub {
  getScore(peerId: string): number
  getMeshPeers(topic: string): string[]
}

/**
 * Per-topic scoring: an invalid message costs 10 x (invalid count)^2 and decays slowly, so a few
 * rejected messages push a peer below zero and a flood quickly below the graylist threshold (-80),
 * after which its RPCs are ignored. Mesh-delivery penalties are off: adverts are few per second
 * and a quiet honest peer must not look like a bad one.
 */
export const MESH_TOPIC_SCORE: Partial<TopicScoreParams> = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 0.1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 50,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: 0.99,
}

/**
 * `appScore`: what the application knows of a peer (a tab that caught it lying gives it a large
 * negative score): with weight 1 it adds straight to the router's score, so a caught peer falls
 * under the graylist threshold and this node stops taking and forwarding its messages.
 */
export function meshScoreParams(appScore?: (peerId: string) => number): Partial<PeerScoreParams> {
  const topics: Record<string, TopicScoreParams> = {}
  for (const topic of MESH_TOPICS) topics[topic] = MESH_TOPIC_SCORE as TopicScoreParams // completed by gossipsub's createTopicScoreParams
  return {
    topics,
    ...(appScore ? { appSpecificScore: appScore, appSpecificWeight: 1 } : {}),
    // Tabs on one machine (and every test) share 127.0.0.1; only distinct public addresses are colocation evidence.
    IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
  }
}

export interface MeshGossipOptions {
  validators: MeshValidators
  /** The application's score of a peer (see meshScoreParams). */
  appScore?: (peerId: string) => number
  /** Extra gossipsub options (tests shorten heartbeats and so on). */
  overrides?: Partial<GossipsubOpts>
}

/** A gossipsub service factory configured for tabmesh, with the validators installed on start. */
export function meshGossipsub(options: MeshGossipOptions): ReturnType<typeof gossipsub> {
  const factory = gossipsub({
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    // The bound on one RPC frame, which carries a batch of messages, not one: a peer answers an
    // IWANT with every message asked for at once, up to gossipsub's fixed 5000 ids. A tab that
    // joins a swarm of a hundred tabs asks its relay for about 300 KB of adverts; a frame over this
    // bound kills the gossip stream it arrived on, and the tab went deaf (bench:relay found it at
    // 75-100 tabs with 256 KiB). 5000 adverts of the validators' 4 KiB each is 20 MiB. One
    // message over 4 KiB still reaches the validators and is rejected (and scored).
    maxInboundDataLength: 20 * 2 ** 20,
    scoreParams: meshScoreParams(options.appScore),
    ...options.overrides,
  })
  return (components) => {
    const router = factory(components)
    for (const [topic, validator] of options.validators.validators) router.topicValidators.set(topic as MeshTopic, validator)
    return router
  }
}
