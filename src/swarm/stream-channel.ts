import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { FrameChannel } from './channel.ts'
import { MAX_FRAME_BYTES } from './frames.ts'

/**
 * A FrameChannel over a libp2p stream: each message is one length-prefixed frame, and a frame
 * longer than `maxBytes` breaks the channel before it is buffered.
 */
export function streamChannel(stream: Stream, maxBytes = MAX_FRAME_BYTES): FrameChannel {
  const lp = lpStream(stream, { maxDataLength: maxBytes })
  let closed = false
  let writes = Promise.resolve() // writes stay in order
  const close = () => {
    if (closed) return
    closed = true
    void writes.finally(() => stream.close().catch((err: Error) => stream.abort(err)))
  }
  return {
    send(message) {
      if (closed) throw new Error('stream closed')
      writes = writes.then(() => lp.write(message)).catch(() => { closed = true })
    },
    async *messages() {
      try {
        while (!closed) yield (await lp.read()).subarray()
      } catch (err) {
        if (!closed && stream.status === 'open' && !/end of|EOF/i.test((err as Error).message)) throw err
      } finally {
        closed = true
      }
    },
    close,
    get closed() { return closed },
  }
}
