import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { FrameChannel } from './channel.ts'
import { decodeFrame, encodeFrame, type Dtype, type Frame } from './frames.ts'

/**
 * The client's end of one session on one hop: OPEN, then forward(positions, hidden) -> hidden.
 * Every answer is checked (matching id, shape, finite values) and every request has a deadline,
 * so a host that stalls, lies or vanishes becomes a 'hop-failed' error instead of a hang.
 */
export interface Hop {
  readonly peerId: string
  readonly layers: LayerRange
  /** The id under which the host keeps this session's KV cache when it is closed with `keep`. */
  readonly prefixId: number
  /** Positions of a kept prefix the host put in this session's cache at opening (0: none). */
  readonly reused: number
  /** Rows most per forward (a prefill chunk, a draft plus one). */
  readonly maxRows: number
  /** Hidden states after this hop's layers. A first position at or below what the session holds rolls it back there. */
  forward(positions: Int32Array, hidden: Float32Array): Promise<Float32Array>
  /** Ends the session; a request still waiting fails with `reason`. With `keep`, the host keeps its first `keep.length` positions as a prefix. */
  close(reason?: string, keep?: { length: number }): void
}

export interface OpenHopOptions {
  peerId: string
  modelId: string
  layers: LayerRange
  maxLength: number
  dim: number
  dtype?: Dtype
  timeoutMs?: number // per request, opening included
  /** Open on a prefix this client kept on this host (its id and how many positions to reuse). */
  prefix?: { id: number; length: number }
}

export async function openHop(channel: FrameChannel, o: OpenHopOptions): Promise<Hop> {
  const timeoutMs = o.timeoutMs ?? 10_000
  const dtype = o.dtype ?? 'f32'
  const incoming = channel.messages()[Symbol.asyncIterator]()
  let nextId = 1
  let broken: TabmeshError | undefined
  let closedHere: string | undefined // why this side closed the stream, for a request still waiting
  const failed = (why: string) => new TabmeshError('hop-failed', `peer ${o.peerId} (layers [${o.layers.start}, ${o.layers.end})): ${why}`)

  async function request(frame: Frame, expect: Frame['type']): Promise<Frame> {
    if (broken) throw broken
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      channel.send(encodeFrame(frame))
      const answer = await Promise.race([
        incoming.next(),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(failed(`no answer within ${timeoutMs} ms`)), timeoutMs) }),
      ])
      if (answer.done) throw failed(closedHere ?? 'closed the stream')
      let reply: Frame
      try {
        reply = decodeFrame(answer.value)
      } catch (err) {
        throw failed((err as Error).message)
      }
      if (reply.type === 'error') {
        const code = reply.code === 'refused' || reply.code === 'prefix-unknown' ? reply.code : 'hop-failed'
        throw new TabmeshError(code, `peer ${o.peerId}: ${reply.code}: ${reply.message}`)
      }
      if (reply.type !== expect || reply.id !== frame.id) throw failed(`answered ${reply.type} #${reply.id} to ${frame.type} #${frame.id}`)
      return reply
    } catch (err) {
      broken = err instanceof TabmeshError ? err : failed((err as Error).message)
      channel.close()
      throw broken
    } finally {
      clearTimeout(timer)
    }
  }

  const opened = await request({ type: 'open', id: nextId++, modelId: o.modelId, layerStart: o.layers.start, layerEnd: o.layers.end, maxLength: o.maxLength, dtype, prefixId: o.prefix?.id ?? 0, prefixLength: o.prefix?.length ?? 0 }, 'opened')
  if (opened.type !== 'opened' || opened.dim !== o.dim) throw failed(`opened with width ${(opened as { dim?: number }).dim}, expected ${o.dim}`)
  if (opened.reused !== (o.prefix?.length ?? 0)) throw failed(`reused ${opened.reused} positions of a prefix; ${o.prefix?.length ?? 0} were asked for`)
  if (opened.maxRows < 1) throw failed(`takes ${opened.maxRows} rows per forward`)

  return {
    peerId: o.peerId,
    layers: o.layers,
    prefixId: opened.prefixId,
    reused: opened.reused,
    maxRows: opened.maxRows,
    async forward(positions, hidden) {
      const reply = await request({ type: 'forward', id: nextId++, positions, hidden, dim: o.dim, dtype }, 'hidden')
      if (reply.type !== 'hidden' || reply.dim !== o.dim || reply.hidden.length !== hidden.length) {
        throw (broken = failed(`returned ${reply.type === 'hidden' ? reply.hidden.length : 0} values for ${hidden.length}`))
      }
      for (const x of reply.hidden) if (!Number.isFinite(x)) throw (broken = failed('returned a non-finite value'))
      return reply.hidden
    },
    close(reason = 'closed by this client', keep) {
      closedHere ??= reason
      if (!channel.closed) {
        try { channel.send(encodeFrame({ type: 'close', id: nextId++, keep: !!keep && !broken, length: keep && !broken ? keep.length : 0 })) } catch { /* already gone */ }
        channel.close()
      }
    },
  }
}
