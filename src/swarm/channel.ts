/**
 * A message channel between two peers: ordered, reliable, message-framed (each `send` arrives as one
 * message). On the network it is a length-prefixed libp2p stream; `createChannelPair` joins two ends
 * in memory for running a host and a client in one process.
 */
export interface FrameChannel {
  send(message: Uint8Array): void
  /** Messages in order; ends when the other side closes, throws if the channel breaks. */
  messages(): AsyncIterable<Uint8Array>
  close(): void
  readonly closed: boolean
  /** The peer at the other end, when the transport knows it (a host keys kept prefixes by it). */
  readonly remotePeer?: string
}

/** Two joined ends; `peers` names the peer at the other end of each (end 0 sees peers[0]). */
export function createChannelPair(peers: [string, string] = ['', '']): [FrameChannel, FrameChannel] {
  const queues: Uint8Array[][] = [[], []]
  const waiters: (((v: void) => void) | undefined)[] = [undefined, undefined]
  let closed = false
  const wake = (i: number) => { const w = waiters[i]; waiters[i] = undefined; w?.() }
  const end = (me: number): FrameChannel => ({
    send(message) {
      if (closed) throw new Error('channel closed')
      queues[1 - me].push(message.slice())
      wake(1 - me)
    },
    async *messages() {
      for (;;) {
        while (queues[me].length > 0) yield queues[me].shift()!
        if (closed) return
        await new Promise<void>((resolve) => { waiters[me] = resolve })
      }
    },
    close() {
      closed = true
      wake(0)
      wake(1)
    },
    get closed() { return closed },
    remotePeer: peers[me],
  })
  return [end(0), end(1)]
}
