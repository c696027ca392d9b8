import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { FrameChannel } from './channel.ts'
import { MAX_FRAME_BYTES } from './frames.ts'

/**
 * A FrameChannel over a libp2p stream: each message is one length-prefixed frame, and a frame
 * longer than `maxBytes` breaks the channel before it is buffered. Closing ends `messages()` at
 * once, even while a read waits on a peer that will never answer (a crashed tab).
 */
export function streamChannel(stream: Stream, maxBytes = MAX_FRAME_BYTES, remotePeer?: string): FrameChannel {
  const lp = lpStream(stream, { maxDataLength: maxBytes })
  let closed = false
  let writes = Promise.resolve() // writes stay in order
  const reading = new AbortController() // ends a pending read when this side closes
  const close = () => {
    if (closed) return
    closed = true
    reading.abort()
    void writes.finally(() => stream.close().catch((err: Error) => stream.abort(err)))
  }
  return {
    send(message) {
      if (closed) throw new Error('stream closed')
      writes = writes.then(() => lp.write(message)).catch(() => { closed = true })
    },
    async *messages() {
      try {
        while (!closed) yield (await lp.read({ signal: reading.signal })).subarray()
      } catch (err) {
        if (!closed && stream.status === 'open' && !/end of|EOF/i.test((err as Error).message)) throw err
      } finally {
        closed = true
      }
    },
    close,
    get closed() { return closed },
    remotePeer,
  }
}
