/**
 * A circuit-relay-v2 client in Node: a libp2p node of its own dials the relay over WebSockets and
 * makes the HOP RESERVE exchange (what a tab's circuitRelayTransport does to be reachable), and
 * reports the relay's answer by its libp2p status name ("OK", "RESERVATION_REFUSED", ...) or a
 * failure by its libp2p error name. Used by the relay's reservation tests and `npm run bench:robust`.
 * Node 20 dials WebSockets only with --experimental-websocket.
 *
 * As a script: node --experimental-websocket --import tsx testing/relay-reservations.ts <relay multiaddr> <count> [hold|leave]
 * makes `count` reservations one after another, each from a new peer, which then stays connected
 * until all are made (hold) or disconnects at once (leave); prints the outcomes as one JSON array.
 */
import '../src/nodejs/relay/polyfill.ts'
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import type { Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { pbStream } from '@libp2p/utils'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Uint8ArrayList } from 'uint8arraylist'

/** circuit-relay-v2's Status enum (its pb/index.proto). */
export const HOP_STATUS: Record<number, string> = {
  100: 'OK', 200: 'RESERVATION_REFUSED', 201: 'RESOURCE_LIMIT_EXCEEDED', 202: 'PERMISSION_DENIED',
  203: 'CONNECTION_FAILED', 204: 'NO_RESERVATION', 400: 'MALFORMED_MESSAGE', 401: 'UNEXPECTED_MESSAGE',
}

interface HopReply { type?: number; status?: number }

/** HopMessage as protobuf: a RESERVE out (type = 0), the type and status fields of the reply in. */
const hopCodec = {
  encode: (_: HopReply) => Uint8Array.of(0x08, 0x00),
  decode(data: Uint8Array | Uint8ArrayList): HopReply {
    const bytes = data instanceof Uint8Array ? data : data.subarray()
    let pos = 0
    const varint = () => {
      let value = 0
      for (let shift = 0; ; shift += 7) {
        if (pos >= bytes.length || shift > 49) throw new Error('malformed HopMessage varint')
        const b = bytes[pos++]
        value += (b & 0x7f) * 2 ** shift
        if (b < 0x80) return value
      }
    }
    const out: HopReply = {}
    while (pos < bytes.length) {
      const tag = varint()
      const wire = tag & 7
      if (wire === 0) {
        const v = varint()
        if (tag >>> 3 === 1) out.type = v
        if (tag >>> 3 === 5) out.status = v
      } else if (wire === 2) {
        const length = varint() // read before pos: `pos += varint()` would add to the old pos
        pos += length
      } else if (wire === 1) pos += 8
      else if (wire === 5) pos += 4
      else throw new Error(`malformed HopMessage wire type ${wire}`)
    }
    return out
  },
}

export interface ReservationAttempt {
  /** The relay's status name, or the libp2p error's name when no answer came. */
  outcome: string
  ms: number
  message?: string
  /** The client node, still connected, when `keep` was asked and the relay said OK. */
  node?: Libp2p
}

/** One new peer asks the relay at `relayAddr` for a reservation. */
export async function reserve(relayAddr: string, options: { keep?: boolean; timeoutMs?: number } = {}): Promise<ReservationAttempt> {
  const start = performance.now()
  let node: Libp2p | undefined
  try {
    node = await createLibp2p({
      transports: [webSockets()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: { denyDialMultiaddr: async () => false },
    })
    const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000)
    const connection = await node.dial(multiaddr(relayAddr), { signal })
    const stream = await connection.newStream(RELAY_V2_HOP_CODEC, { signal })
    const hop = pbStream(stream).pb(hopCodec)
    await hop.write({}, { signal })
    const reply = await hop.read({ signal })
    await Promise.resolve(stream.close({ signal })).catch(() => {})
    const outcome = reply.status === undefined ? 'NO_STATUS' : (HOP_STATUS[reply.status] ?? `STATUS_${reply.status}`)
    const attempt: ReservationAttempt = { outcome, ms: performance.now() - start }
    if (outcome === 'OK' && options.keep) {
      attempt.node = node
      node = undefined
    }
    return attempt
  } catch (err) {
    return { outcome: (err as Error).name || 'Error', message: (err as Error).message, ms: performance.now() - start }
  } finally {
    if (node) await Promise.resolve(node.stop()).catch(() => {})
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [relayAddr, count, mode = 'hold'] = process.argv.slice(2)
  const held: Libp2p[] = []
  const outcomes: string[] = []
  for (let i = 0; i < Number(count); i++) {
    const attempt = await reserve(relayAddr, { keep: mode === 'hold' })
    outcomes.push(attempt.outcome)
    if (attempt.node) held.push(attempt.node)
  }
  console.log(JSON.stringify(outcomes))
  await Promise.all(held.map((n) => n.stop()))
  process.exit(0)
}
