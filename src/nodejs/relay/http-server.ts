import { existsSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import sirv from 'sirv'
import type { Registry } from '../../model/source/registry.ts'

/**
 * The relay's HTTP side: the built site, the model registry (GET /models) and model files
 * (GET /models/<id>/<file>, with Range), and where the libp2p relay listens (GET /relay). Every response carries COOP/COEP/CORP so the site is
 * cross-origin isolated (WASM threads need it) and model files can be read from embedding pages.
 */
export interface HttpServerOptions {
  host: string
  port: number
  siteDir: string // the Vite build (dist/)
  modelsDir: string
  registry: Registry
  /** The libp2p relay's identity and ws multiaddrs, served at GET /relay so tabs can find it. */
  relay?: RelayInfo
}

export interface RelayInfo {
  peerId: string
  multiaddrs: string[]
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

export function createHttpHandler(options: Omit<HttpServerOptions, 'host' | 'port'>) {
  const { registry } = options
  const registryJson = JSON.stringify(registry)
  const site = existsSync(options.siteDir) ? sirv(options.siteDir, { single: true, etag: true }) : undefined
  const models = sirv(options.modelsDir, { dev: true, etag: true })
  // files with a public url are not on this server (their folder holds only model.json)
  const served = new Set(registry.models.flatMap((m) => m.files.filter((f) => !f.url).map((f) => `/models/${m.id}/${f.name}`)))

  return (req: IncomingMessage, res: ServerResponse) => {
    for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v)
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const notFound = (why: string) => {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
      res.end(why)
    }
    if (path === '/relay') {
      if (!options.relay) return notFound('no libp2p relay runs beside this server')
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache', ...CORS_HEADERS })
      return res.end(JSON.stringify(options.relay))
    }
    if (path === '/models' || path.startsWith('/models/')) {
      for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v)
      if (req.method === 'OPTIONS') {
        res.writeHead(204)
        return res.end()
      }
      if (path === '/models' || path === '/models/') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' })
        return res.end(registryJson)
      }
      if (!served.has(path)) return notFound(`no model file ${path}`)
      req.url = path.slice('/models'.length)
      return models(req, res, () => notFound(`no model file ${path}`))
    }
    if (!site) return notFound('the site is not built: run `npm run build`')
    return site(req, res, () => notFound(`not found: ${path}`))
  }
}

export async function startHttpServer(options: HttpServerOptions): Promise<{ server: Server; url: string }> {
  const server = createServer(createHttpHandler(options))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return { server, url: `http://${options.host === '127.0.0.1' ? 'localhost' : options.host}:${port}/` }
}
