import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import type { Engine } from '../engine/engine.ts'
import type { ModelConfig } from '../model/model.ts'
import type { FrameChannel } from './channel.ts'
import { decodeFrame, encodeFrame, type Frame } from './frames.ts'

/**
 * A contributor's side of the activation protocol: it hosts layers [hosted.start, hosted.end) of
 * one model and serves sessions, one per channel. Each session gets its own KV cache (an engine
 * over the sub-range it asked for). Forward steps from all sessions go through one bounded FIFO
 * queue, so sessions interleave step by step and no session waits for another's whole generation.
 * Everything a client sends is checked before it is used; a bad request gets an ERROR frame and
 * the other sessions carry on.
 */
export interface HostOptions {
  modelId: string
  config: ModelConfig
  hosted: LayerRange
  /** An engine with its own KV cache for `range` (a sub-range of `hosted`), sharing the host's weights; closed with the session. */
  createEngine(range: LayerRange): Promise<Engine & { close?(): void }>
  maxSessions?: number
  maxQueue?: number // forward requests waiting across all sessions; more are refused (back-pressure)
  kvBudgetBytes?: number // KV cache memory across sessions
  idleTimeoutMs?: number // a session with no request for this long is closed
  maxRows?: number
}

export interface HostStats {
  activeSessions: number
  kvBytes: number // KV cache memory held by the open sessions
  queueDepth: number
  tokensProcessed: number // rows forwarded, all sessions
  sessionsServed: number
  busyMs: number // time spent computing
}

export interface SwarmHost {
  /** Serves one session on `channel` until it closes; never throws. */
  serve(channel: FrameChannel): Promise<void>
  stats(): HostStats
  /** Closes every session with an error frame (the host is leaving). */
  close(reason?: string): void
}

interface Job {
  run(): Promise<void>
}

export function createSwarmHost(options: HostOptions): SwarmHost {
  const { config, hosted, modelId } = options
  const maxSessions = options.maxSessions ?? 8
  const maxQueue = options.maxQueue ?? 32
  const kvBudget = options.kvBudgetBytes ?? 256 * 1024 * 1024
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000
  const maxRows = options.maxRows ?? 64
  const sessions = new Set<{ channel: FrameChannel; kvBytes: number }>()
  const queue: Job[] = []
  let running = false
  let closing: string | undefined
  const stats = { tokensProcessed: 0, sessionsServed: 0, busyMs: 0 }

  async function drain(): Promise<void> {
    if (running) return
    running = true
    while (queue.length > 0) await queue.shift()!.run()
    running = false
  }

  const kvBytesFor = (range: LayerRange, maxLength: number) => 2 * (range.end - range.start) * maxLength * config.kvDim * 4
  const usedKv = () => [...sessions].reduce((s, x) => s + x.kvBytes, 0)

  async function serve(channel: FrameChannel): Promise<void> {
    const send = (frame: Frame) => { if (!channel.closed) channel.send(encodeFrame(frame)) }
    const refuse = (id: number, err: unknown) => {
      const e = err instanceof TabmeshError ? err : new TabmeshError('protocol', (err as Error).message)
      send({ type: 'error', id, code: e.code, message: e.message })
    }
    let session: { channel: FrameChannel; kvBytes: number } | undefined
    let engine: (Engine & { close?(): void }) | undefined
    let maxLength = 0
    let filled = 0 // positions [0, filled) of this session are in the KV cache
    let pending = 0
    let idle: ReturnType<typeof setTimeout> | undefined
    const touch = () => {
      clearTimeout(idle)
      idle = setTimeout(() => {
        refuse(0, new TabmeshError('refused', `session idle for ${idleTimeoutMs} ms; closed`))
        channel.close()
      }, idleTimeoutMs)
    }

    try {
      for await (const bytes of channel.messages()) {
        let frame: Frame
        try {
          frame = decodeFrame(bytes)
        } catch (err) {
          refuse(0, err) // a malformed frame ends the session: the stream cannot be trusted
          break
        }
        touch()
        if (frame.type === 'close') break
        if (frame.type === 'open') {
          try {
            if (engine) throw new TabmeshError('protocol', 'OPEN twice on one stream')
            if (closing) throw new TabmeshError('refused', `host is leaving: ${closing}`)
            if (frame.modelId !== modelId) throw new TabmeshError('refused', `this host serves ${modelId}, not ${frame.modelId}`)
            const range = { start: frame.layerStart, end: frame.layerEnd }
            if (!(range.start >= hosted.start && range.end <= hosted.end && range.start < range.end)) throw new TabmeshError('refused', `layers [${range.start}, ${range.end}) are not inside the hosted [${hosted.start}, ${hosted.end})`)
            if (!(frame.maxLength >= 1 && frame.maxLength <= config.seqLen)) throw new TabmeshError('refused', `max length ${frame.maxLength} is outside 1..${config.seqLen}`)
            if (sessions.size >= maxSessions) throw new TabmeshError('refused', `host is full (${maxSessions} sessions)`)
            const kvBytes = kvBytesFor(range, frame.maxLength)
            if (usedKv() + kvBytes > kvBudget) throw new TabmeshError('refused', `not enough KV cache memory (${kvBytes} bytes wanted, ${kvBudget - usedKv()} free)`)
            session = { channel, kvBytes }
            sessions.add(session)
            maxLength = frame.maxLength
            engine = await options.createEngine(range)
            stats.sessionsServed++
            send({ type: 'opened', id: frame.id, dim: config.dim, maxRows })
          } catch (err) {
            refuse(frame.id, err)
            if (!engine) break
          }
          continue
        }
        if (frame.type !== 'forward') {
          refuse(frame.id, new TabmeshError('protocol', `unexpected ${frame.type} frame from a client`))
          break
        }
        const request = frame
        try {
          if (!engine) throw new TabmeshError('protocol', 'FORWARD before OPEN')
          if (pending > 0) throw new TabmeshError('protocol', 'one forward at a time per session: wait for the answer')
          const rows = request.positions.length
          if (request.dim !== config.dim) throw new TabmeshError('protocol', `hidden width ${request.dim}, the model's is ${config.dim}`)
          if (rows > maxRows) throw new TabmeshError('refused', `${rows} rows in one forward; at most ${maxRows}`)
          for (let i = 0; i < rows; i++) {
            const p = request.positions[i]
            // positions must continue the cache without a gap (a replay after failover starts again at 0)
            if (p < 0 || p >= maxLength) throw new TabmeshError('protocol', `position ${p} is outside this session's 0..${maxLength - 1}`)
            if (p > (i === 0 ? filled : request.positions[i - 1] + 1)) throw new TabmeshError('protocol', `position ${p} skips positions this session never received (next expected ${i === 0 ? filled : request.positions[i - 1] + 1})`)
          }
          for (const x of request.hidden) if (!Number.isFinite(x)) throw new TabmeshError('protocol', 'hidden state holds a non-finite value')
          if (queue.length >= maxQueue) throw new TabmeshError('refused', `host busy: ${queue.length} requests queued; retry later`)
        } catch (err) {
          refuse(request.id, err)
          continue
        }
        const sessionEngine = engine!
        pending++
        queue.push({
          run: async () => {
            const started = performance.now()
            try {
              const out = await sessionEngine.forward(request.hidden, request.positions)
              filled = Math.max(filled, request.positions[request.positions.length - 1] + 1)
              stats.tokensProcessed += request.positions.length
              send({ type: 'hidden', id: request.id, hidden: out, dim: config.dim, dtype: request.dtype })
            } catch (err) {
              refuse(request.id, err)
            } finally {
              pending--
              stats.busyMs += performance.now() - started
            }
          },
        })
        void drain()
      }
    } catch {
      // the channel broke: the client is gone
    } finally {
      clearTimeout(idle)
      if (session) sessions.delete(session)
      engine?.close?.()
      channel.close()
    }
  }

  return {
    serve,
    stats: () => ({ activeSessions: sessions.size, kvBytes: usedKv(), queueDepth: queue.length, ...stats }),
    close(reason = 'closing') {
      closing = reason
      for (const s of sessions) {
        if (!s.channel.closed) s.channel.send(encodeFrame({ type: 'error', id: 0, code: 'refused', message: `host is leaving: ${reason}` }))
        s.channel.close()
      }
    },
  }
}
