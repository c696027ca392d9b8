import { existsSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import sirv from 'sirv'
import type { Registry } from '../../model/source/registry.ts'

/**
 * The relay's HTTP side: the built site, the model registry (GET /models) and model files
 * (GET /models/<id>/<file>, with Range), and where the libp2p relay listens (GET /relay). Every response carries COOP/COEP/CORP so the site is
 * cross-origin isolated (WASM threads need it) and model files can be read from embedding pages.
 *
 * Nothing a browser sends can take the process down: a malformed path is a 400, a method a route
 * does not serve a 405, an unsatisfiable range a 416, malformed HTTP a 400/431 from 'clientError',
 * and an exception a handler did not expect a 500 (reported through `onError`) while the server
 * keeps serving. Model files are served only when the registry lists them, read from the exact
 * path the registry scan saw; the site only from the files sirv indexed at start.
 */
export interface HttpServerOptions {
  host: string
  port: number
  siteDir: string // the Vite build (dist/)
  modelsDir: string
  registry: Registry
  /**
   * The libp2p relay's identity and ws multiaddrs (and other relays', and the ICE servers), served
   * at GET /relay so tabs can find the swarm; a function is asked on every request (TURN
   * credentials are minted per request).
   */
  relay?: RelayInfo | (() => RelayInfo)
  /** An exception no handler expected (the request got a 500); default: one line on stderr. */
  onError?: (err: unknown, req: IncomingMessage) => void
}

export interface RelayInfo {
  peerId: string
  /** This relay's ws multiaddrs first, then those of the other relays of the deployment. */
  multiaddrs: string[]
  /** STUN/TURN servers for WebRTC between tabs (src/mesh/ice.ts); absent or empty: none. */
  iceServers?: { urls: string[]; username?: string; credential?: string }[]
  /** Unix ms when the TURN credentials in iceServers expire. */
  iceExpiresAt?: number
}

/** What the server has answered since it started (read by the robustness benchmark). */
export interface HttpStats {
  /** Responses completed, by status code. */
  byStatus: Record<number, number>
  /** Requests whose connection closed before the response was complete. */
  aborted: number
  /** Malformed HTTP answered (or dropped) by 'clientError' before any handler ran. */
  clientErrors: number
  /** Exceptions no handler expected (each became a 500, or a dropped response). */
  handlerErrors: number
}

const ISOLATION_HEADERS: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'cross-origin',
}

const CORS_HEADERS: Record<string, string> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Range',
  'Access-Control-Expose-Headers': 'Content-Length, Content-Range, Accept-Ranges',
}

export type ByteRange =
  | { kind: 'none' } // no Range, or one to ignore (another unit, malformed, several ranges): send it all
  | { kind: 'range'; start: number; end: number } // one satisfiable range, `end` inclusive and inside the file
  | { kind: 'unsatisfiable' } // well-formed, but no byte of it is in the file: 416

const RANGE_SPEC = /^(\d*)-(\d*)$/

/**
 * A Range header against a file of `size` bytes (RFC 9110 section 14). A header in another unit
 * or with an invalid range-spec (inverted, negative, garbage) is ignored, as the RFC allows; so
 * is a set of several ranges (the whole file is the answer; this server sends no multipart
 * bodies). A well-formed header none of whose ranges overlaps the file is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return { kind: 'none' }
  const eq = header.indexOf('=')
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'none' }
  const specs = header.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (specs.length === 0) return { kind: 'none' }
  const ranges: { start: number; end: number }[] = []
  for (const spec of specs) {
    const m = RANGE_SPEC.exec(spec)
    if (!m || (m[1] === '' && m[2] === '')) return { kind: 'none' }
    if (m[1] === '') {
      // suffix: the last n bytes
      const n = Number(m[2])
      if (n > 0 && size > 0) ranges.push({ start: Math.max(0, size - n), end: size - 1 })
      continue
    }
    const first = Number(m[1])
    const last = m[2] === '' ? Infinity : Number(m[2])
    if (last < first) return { kind: 'none' }
    if (first < size) ranges.push({ start: first, end: Math.min(last, size - 1) })
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' }
  if (specs.length > 1) return { kind: 'none' }
  return { kind: 'range', ...ranges[0] }
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers })
  res.end(text)
}

class HttpFailure extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

const methodNotAllowed = (allow: string[]) => new HttpFailure(405, `method not allowed here; use ${allow.join(', ')}`, { Allow: allow.join(', ') })

/** The request's path, percent-decoded; a 400 when it is not a path or not valid UTF-8 percent-encoding. */
function requestPath(rawUrl: string): string {
  let url: URL
  try {
    // origin-form ("/a/b") is taken as is (a leading "//" is a path, not a host); absolute-form too
    url = rawUrl.startsWith('/') ? new URL(`http://x${rawUrl}`) : new URL(rawUrl)
  } catch {
    throw new HttpFailure(400, 'malformed request target: not a path')
  }
  try {
    return decodeURIComponent(url.pathname)
  } catch {
    throw new HttpFailure(400, 'malformed path: bad percent-encoding')
  }
}

const contentTypeOf = (name: string) => (/\.json$/i.test(name) ? 'application/json' : 'application/octet-stream')

/**
 * One registered model file, read from its exact path: ETag / If-None-Match, one byte range (206),
 * 416 for an unsatisfiable one, HEAD without a body. The file is opened before any header is
 * written, so a file that vanished is a 404, not a broken response; a read error mid-body
 * closes the connection (the length sent says the body is short).
 */
async function sendModelFile(req: IncomingMessage, res: ServerResponse, path: string, name: string): Promise<void> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch {
    throw new HttpFailure(404, `model file ${name} is gone from the models directory`)
  }
  let streaming = false
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw new HttpFailure(404, `model file ${name} is not a file`)
    const etag = `W/"${stats.size}-${stats.mtime.getTime()}"`
    const headers: Record<string, string> = {
      'Content-Type': contentTypeOf(name),
      'Last-Modified': stats.mtime.toUTCString(),
      ETag: etag,
      'Cache-Control': 'no-cache',
      'Accept-Ranges': 'bytes',
    }
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers)
      return void res.end()
    }
    const ifRange = req.headers['if-range']
    const range = ifRange !== undefined && ifRange !== etag ? { kind: 'none' as const } : parseRange(req.headers.range, stats.size)
    if (range.kind === 'unsatisfiable') throw new HttpFailure(416, `range not satisfiable: ${name} has ${stats.size} bytes`, { 'Content-Range': `bytes */${stats.size}` })
    const [start, end] = range.kind === 'range' ? [range.start, range.end] : [0, stats.size - 1]
    if (range.kind === 'range') headers['Content-Range'] = `bytes ${start}-${end}/${stats.size}`
    headers['Content-Length'] = String(end - start + 1)
    res.writeHead(range.kind === 'range' ? 206 : 200, headers)
    if (req.method === 'HEAD' || end < start) return void res.end()
    streaming = true
    const body = handle.createReadStream({ start, end, autoClose: true, highWaterMark: 1 << 20 })
    // pipeline destroys the file stream when the client goes away, and the response on a read error
    pipeline(body, res, () => {})
  } finally {
    if (!streaming) await handle.close().catch(() => {})
  }
}

export function createHttpHandler(options: Omit<HttpServerOptions, 'host' | 'port'>, stats?: HttpStats) {
  const { registry } = options
  const registryJson = JSON.stringify(registry)
  const onError = options.onError ?? ((err: unknown, req: IncomingMessage) => console.error(`tabmesh http: ${req.method} ${req.url?.slice(0, 200)}: ${(err as Error)?.stack ?? err}`))
  const site = existsSync(options.siteDir)
    ? sirv(options.siteDir, {
        single: true,
        etag: true,
        // sirv's own Range parsing sends wrong bytes for suffix ranges and throws on inverted ones
        // (after writing the head); just before it sends, replace the header with what parseRange
        // made of it: gone when ignored, "bytes=<size>-" (sirv's 416) when unsatisfiable
        setHeaders: (res, _path, fileStats) => {
          const req = res.req
          const range = parseRange(req.headers.range, fileStats.size)
          if (range.kind === 'none') delete req.headers.range
          else if (range.kind === 'unsatisfiable') req.headers.range = `bytes=${fileStats.size}-`
          else if (range.start === 0 && range.end === 0) delete req.headers.range // sirv reads "-0" as "to the end"
          else req.headers.range = `bytes=${range.start}-${range.end}`
        },
      })
    : undefined
  // files with a public url are not on this server (their folder holds only model.json)
  const served = new Map<string, { path: string; name: string }>(registry.models.flatMap((m) => m.files.filter((f) => !f.url).map((f) => [`/models/${m.id}/${f.name}`, { path: join(options.modelsDir, m.id, f.name), name: f.name }] as const)))

  const route = (req: IncomingMessage, res: ServerResponse): void | Promise<void> => {
    for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v)
    const method = req.method ?? 'GET'
    const path = requestPath(req.url ?? '/')
    const readOnly = method === 'GET' || method === 'HEAD'
    if (path === '/relay') {
      for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v)
      if (method === 'OPTIONS') return void res.writeHead(204, { Allow: 'GET, HEAD, OPTIONS' }).end()
      if (!readOnly) throw methodNotAllowed(['GET', 'HEAD', 'OPTIONS'])
      if (!options.relay) throw new HttpFailure(404, 'no libp2p relay runs beside this server')
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' })
      return void res.end(JSON.stringify(typeof options.relay === 'function' ? options.relay() : options.relay))
    }
    if (path === '/models' || path.startsWith('/models/')) {
      for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v)
      if (method === 'OPTIONS') return void res.writeHead(204, { Allow: 'GET, HEAD, OPTIONS' }).end()
      if (!readOnly) throw methodNotAllowed(['GET', 'HEAD', 'OPTIONS'])
      if (path === '/models' || path === '/models/') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' })
        return void res.end(registryJson)
      }
      const file = served.get(path)
      if (!file) throw new HttpFailure(404, `no model file ${path.slice(0, 200)}`)
      return sendModelFile(req, res, file.path, file.name)
    }
    if (method === 'OPTIONS') return void res.writeHead(204, { Allow: 'GET, HEAD, OPTIONS' }).end()
    if (!readOnly) throw methodNotAllowed(['GET', 'HEAD', 'OPTIONS'])
    if (!site) throw new HttpFailure(404, 'the site is not built: run `npm run build`')
    // sirv pipes a file stream into the response without an error listener: a file deleted since
    // sirv indexed the site would throw in the event loop; end the response instead
    res.once('pipe', (source) => source.on('error', () => res.destroy()))
    // sirv's handler returns whatever res.end() gave (a 304) or nothing: not a promise to wait on
    site(req, res, () => sendText(res, 404, `not found: ${path.slice(0, 200)}`))
  }

  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    if (!(err instanceof HttpFailure)) {
      if (stats) stats.handlerErrors++
      onError(err, req)
    }
    if (res.headersSent || res.destroyed) return void res.destroy()
    if (err instanceof HttpFailure) return sendText(res, err.status, err.message, err.headers)
    sendText(res, 500, 'internal error (the server logged it)')
  }

  return (req: IncomingMessage, res: ServerResponse) => {
    // a write after the end or to a dead socket emits 'error' on the response; without a listener
    // that would be an uncaught exception
    res.on('error', () => res.destroy())
    req.on('error', () => {})
    if (stats) {
      res.once('finish', () => { stats.byStatus[res.statusCode] = (stats.byStatus[res.statusCode] ?? 0) + 1 })
      res.once('close', () => { if (!res.writableFinished) stats.aborted++ })
    }
    try {
      const pending = route(req, res)
      if (pending instanceof Promise) pending.catch((err: unknown) => fail(req, res, err))
    } catch (err) {
      fail(req, res, err)
    }
  }
}

/**
 * Malformed HTTP (bad request line, bad header, headers over Node's 16 KiB limit, a request that
 * takes too long to arrive) never reaches a handler: answer it like Node's default does, with a
 * reason, and close the connection.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const busy = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage
  if (err.code === 'ECONNRESET' || !socket.writable || busy?.headersSent) return void socket.destroy()
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const reason = status === 431 ? 'request line and headers are over the 16 KiB limit' : status === 408 ? 'request took too long to arrive' : `malformed HTTP request (${err.code ?? 'parse error'})`
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(reason)}\r\nConnection: close\r\n\r\n${reason}`)
}

export async function startHttpServer(options: HttpServerOptions): Promise<{ server: Server; url: string; stats: HttpStats }> {
  const stats: HttpStats = { byStatus: {}, aborted: 0, clientErrors: 0, handlerErrors: 0 }
  const server = createServer(createHttpHandler(options, stats))
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    stats.clientErrors++
    answerClientError(err, socket)
  })
  // CONNECT (a proxy tunnel) is not served; without a listener Node drops the connection unanswered.
  // The socket is the caller's from here on, its errors included.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => socket.destroy())
    stats.byStatus[405] = (stats.byStatus[405] ?? 0) + 1
    const reason = 'CONNECT is not served here'
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, OPTIONS\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${reason.length}\r\nConnection: close\r\n\r\n${reason}`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  // after listening, an error is an accept() failure (EMFILE when out of file descriptors): the
  // connection is lost, the server is not; without a listener it would be an uncaught exception
  server.on('error', (err) => console.error(`tabmesh http: ${(err as Error).message}`))
  const { port } = server.address() as AddressInfo
  return { server, url: `http://${options.host === '127.0.0.1' ? 'localhost' : options.host}:${port}/`, stats }
}
