/**
 * Property tests of the relay's HTTP side, over real sockets to the server `tabmesh start` runs
 * (the libp2p relay beside it, a real site directory and a models directory with stories260K):
 * random paths (valid and invalid percent-encoding, `..` and encoded traversal, NUL, up to 64 KiB),
 * random methods, Range headers and header floods. Every request must get a status below 600
 * in time, no 5xx, nothing outside the site and the registered model files, and the right bytes
 * for a model file; afterwards the server still answers and its memory stayed bounded.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fuzzParams, FUZZ_RUNS } from '../../../testing/fuzz.ts'
import { stories260K } from '../../../testing/models.ts'
import { scanModels } from '../models-dir.ts'
import { startTabmeshServer, type TabmeshServer } from './server.ts'

const SECRET = `TABMESH-SECRET-${process.pid}-${Date.now()}`
const RESPONSE_TIMEOUT_MS = 5000

let root: string
let server: TabmeshServer
let port: number
const unexpected: unknown[] = []
const weights = stories260K.weights
const tokenizer = stories260K.tokenizer

beforeAll(async () => {
  // root/secret.txt beside the models and site folders; secrets inside them that are not served
  root = mkdtempSync(join(tmpdir(), 'tabmesh-http-fuzz-'))
  const modelsDir = join(root, 'models')
  const siteDir = join(root, 'site')
  mkdirSync(join(modelsDir, 'stories260K'), { recursive: true })
  mkdirSync(join(siteDir, 'assets'), { recursive: true })
  copyFileSync(stories260K.paths.weights, join(modelsDir, 'stories260K/stories260K.bin'))
  copyFileSync(stories260K.paths.tokenizer, join(modelsDir, 'stories260K/tok512.bin'))
  writeFileSync(join(root, 'secret.txt'), SECRET)
  writeFileSync(join(modelsDir, 'secret.txt'), SECRET)
  writeFileSync(join(modelsDir, 'stories260K/notes.txt'), SECRET) // in a model folder, not a model file
  writeFileSync(join(siteDir, '.env'), SECRET) // a dotfile sirv must not index
  writeFileSync(join(siteDir, 'index.html'), '<!doctype html><title>tabmesh</title>')
  writeFileSync(join(siteDir, 'assets/app.js'), 'console.log("tabmesh")\n')
  writeFileSync(join(siteDir, 'assets/empty.txt'), '')
  const models = await scanModels(modelsDir)
  expect(models.map((m) => m.id)).toEqual(['stories260K'])
  server = await startTabmeshServer({
    host: '127.0.0.1', port: 0, relayPort: 0, siteDir, modelsDir, registry: { models },
    onError: (err) => unexpected.push(err),
  })
  port = Number(new URL(server.url).port)
}, 60_000)

afterAll(async () => {
  await server?.stop()
  if (root) rmSync(root, { recursive: true, force: true })
})

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  raw: Buffer
}

/** Sends `request` as is on a fresh connection and reads until the server closes it (Connection: close). */
function rawRequest(request: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no complete response within ${RESPONSE_TIMEOUT_MS} ms (got ${Buffer.concat(chunks).subarray(0, 80).toString('latin1')})`))
    }, RESPONSE_TIMEOUT_MS)
    socket.on('data', (d) => chunks.push(d))
    // the server may close while we are still writing a request it refused (a header flood)
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const raw = Buffer.concat(chunks)
      const headEnd = raw.indexOf('\r\n\r\n')
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(raw.subarray(0, 64).toString('latin1'))
      if (!m || headEnd < 0) return reject(new Error(`no HTTP response (got ${raw.length} bytes: ${JSON.stringify(raw.subarray(0, 80).toString('latin1'))})`))
      const headers: Record<string, string> = {}
      for (const line of raw.subarray(0, headEnd).toString('latin1').split('\r\n').slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(m[1]), headers, body: raw.subarray(headEnd + 4), raw })
    })
    // no half-close: Node's server aborts a request whose client ends its side first
    socket.write(request)
  })
}

const MODEL_FILES: Record<string, Uint8Array> = {
  '/models/stories260K/stories260K.bin': weights,
  '/models/stories260K/tok512.bin': tokenizer,
}
const KNOWN_PATHS = ['/', '/index.html', '/assets/app.js', '/assets/empty.txt', '/.env', '/relay', '/models', '/models/', ...Object.keys(MODEL_FILES), '/models/stories260K/notes.txt', '/models/secret.txt', '/secret.txt']

const hexByte = fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`)
const segment = fc.oneof(
  fc.constantFrom('models', 'stories260K', 'stories260K.bin', 'tok512.bin', 'relay', 'assets', 'index.html', 'secret.txt', 'notes.txt', '.env', 'etc', 'passwd', '', '.', '..'),
  fc.constantFrom('%2e%2e', '%2E%2E', '..%2f', '%2e%2e%2f', '%2e%2e%5c', '..\\', '..%c0%af', '%00', 'a%00b', '%E0', '%C0%AF', '%FF', '%', '%2', '%zz', '%25', ';', '?x=1', '#frag'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/),
  fc.array(hexByte, { minLength: 1, maxLength: 6 }).map((a) => a.join('')),
  fc.string({ unit: 'grapheme', maxLength: 6 }).map((s) => encodeURIComponent(s)),
)
const traversal = fc.tuple(
  fc.constantFrom('/', '/models/', '/models/stories260K/', '/assets/', '/relay/'),
  fc.array(fc.constantFrom('../', '..%2f', '%2e%2e/', '%2e%2e%2f', '%2E%2E%2F', '..%5c', '..\\', '....//', '%252e%252e%252f'), { minLength: 1, maxLength: 6 }),
  fc.constantFrom('secret.txt', 'models/secret.txt', 'stories260K/notes.txt', 'notes.txt', 'etc/passwd', '.env', 'site/.env'),
).map(([a, ups, b]) => a + ups.join('') + b)
const path = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...KNOWN_PATHS) },
  { weight: 3, arbitrary: traversal },
  { weight: 4, arbitrary: fc.array(segment, { minLength: 1, maxLength: 8 }).map((s) => `/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/models/', '/', '/assets/'), fc.integer({ min: 1, max: 64 * 1024 }), fc.constantFrom('a', '%41', '../', '%E0')).map(([p, n, unit]) => p + unit.repeat(Math.ceil(n / unit.length)).slice(0, n)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => `/${s}`) }, // raw bytes, controls included
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://x/models', 'http://[bad/', 'models', '//models', '//etc/passwd') },
)
const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'HEAD') },
  { weight: 3, arbitrary: fc.constantFrom('POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PROPFIND', 'MKCOL', 'PURGE', 'SEARCH') },
  { weight: 1, arbitrary: fc.oneof(fc.stringMatching(/^[A-Z]{1,10}$/), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 10 })) },
)
const big = fc.oneof(fc.nat({ max: 2_000_000 }), fc.constantFrom(0, 1, weights.length - 1, weights.length, weights.length + 1, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER))
const digits = fc.oneof(big.map(String), fc.constant('99999999999999999999999999'), fc.constant(''))
const range = fc.oneof(
  fc.tuple(digits, digits).map(([a, b]) => `bytes=${a}-${b}`), // includes inverted, open, empty
  digits.map((n) => `bytes=-${n}`), // suffix
  fc.array(fc.tuple(digits, digits).map(([a, b]) => `${a}-${b}`), { minLength: 2, maxLength: 8 }).map((r) => `bytes=${r.join(',')}`), // multi-range
  fc.tuple(big, big).map(([a, b]) => `bytes=-${a}-${b}`), // negative
  fc.constantFrom('bytes=', 'bytes=-', 'bytes=,,', 'items=0-5', 'bytes 0-5', '0-5', 'bytes=0-5,', 'bytes=a-b', 'bytes=1e3-', 'bytes=0x10-', 'BYTES=0-3', 'bytes = 2 - 3', 'bytes=--1'),
  fc.string({ maxLength: 60 }), // printable garbage
  fc.string({ unit: 'binary-ascii', maxLength: 60 }).filter((s) => !/[\r\n]/.test(s)), // bytes: controls are a 400 from the parser
)
const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/)
const headerValue = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 80 }).filter((s) => !/[\r\n]/.test(s)) },
)
const headers = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }) },
  // floods: many headers, or few very long ones (past Node's 16 KiB limit: a 431)
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 4000 }).map((n) => Array.from({ length: n }, (_, i) => [`X-Flood-${i}`, 'v'] as [string, string])) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 1, max: 64 * 1024 }).map((n) => ['X-Long', 'x'.repeat(n)] as [string, string]), { minLength: 1, maxLength: 3 }) },
)
const requestArb = fc.record({
  method,
  path,
  range: fc.option(range, { nil: undefined }),
  headers,
  version: fc.oneof({ weight: 12, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 extra', 'HTTP/9') }),
  body: fc.option(fc.uint8Array({ maxLength: 256 }), { nil: undefined }),
})
type Req = typeof requestArb extends fc.Arbitrary<infer T> ? T : never

function encode(r: Req): Buffer {
  const lines = [`${r.method} ${r.path} ${r.version}`, 'Host: 127.0.0.1', 'Connection: close']
  if (r.range !== undefined) lines.push(`Range: ${r.range}`)
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`)
  if (r.body) lines.push(`Content-Length: ${r.body.length}`)
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), r.body ?? Buffer.alloc(0)])
}

/** The path the server sees for a well-formed request line, or undefined. */
function decodedPath(p: string): string | undefined {
  try {
    return decodeURIComponent(new URL(p.startsWith('/') ? `http://x${p}` : p).pathname)
  } catch {
    return undefined
  }
}

describe('relay HTTP under random requests', () => {
  it(`answers ${FUZZ_RUNS} random requests in time, without 5xx, secrets or wrong bytes, and keeps serving`, async () => {
    const rssBefore = process.memoryUsage().rss
    let maxRss = rssBefore
    const seen: Record<number, number> = {}
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        const res = await rawRequest(encode(r))
        seen[res.status] = (seen[res.status] ?? 0) + 1
        expect(res.status).toBeGreaterThanOrEqual(100)
        expect(res.status).toBeLessThan(500) // no 5xx: nothing here justifies one
        expect(res.raw.includes(SECRET)).toBe(false)
        const target = decodedPath(r.path)
        const file = target === undefined ? undefined : MODEL_FILES[target]
        if (file && r.method === 'GET' && r.version === 'HTTP/1.1' && r.headers.length < 50 && (res.status === 200 || res.status === 206)) {
          // the bytes of a model file are exactly the file's, or the range the server says it sent
          const cr = res.headers['content-range']
          const [start, end] = res.status === 206 ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr)!.slice(1, 3).map(Number) : [0, file.length - 1]
          if (res.status === 206) expect(cr).toBe(`bytes ${start}-${end}/${file.length}`)
          expect(res.body.equals(file.subarray(start, end + 1))).toBe(true)
        }
        maxRss = Math.max(maxRss, process.memoryUsage().rss)
      }),
      fuzzParams(900),
    )
    // the server still answers, and nothing was an unexpected exception
    const models = await fetch(`${server.url}models`)
    expect(models.status).toBe(200)
    expect(((await models.json()) as { models: { id: string }[] }).models[0].id).toBe('stories260K')
    expect((await fetch(`${server.url}relay`)).status).toBe(200)
    expect(unexpected).toEqual([])
    expect(server.httpStats.handlerErrors).toBe(0)
    // a run of this size holds no more than a few MiB per case in flight; a leak would grow with it
    expect(maxRss - rssBefore).toBeLessThan(256 * 2 ** 20)
    // the run reached the handlers and the malformed-HTTP path, not only one of them
    expect(Object.keys(seen).length).toBeGreaterThan(FUZZ_RUNS >= 200 ? 4 : 0)
  }, 600_000)

  it('answers malformed HTTP, CONNECT and header floods with a 4xx and a reason', async () => {
    const cases: [string, number][] = [
      ['FOO\x01 / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
      ['GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      [`GET /${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
      [`GET / HTTP/1.1\r\nHost: x\r\nX-Long: ${'x'.repeat(20_000)}\r\n\r\n`, 431],
      ['CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', 405],
      ['GET /%E0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
      ['POST /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc', 405],
    ]
    for (const [request, status] of cases) {
      const res = await rawRequest(Buffer.from(request, 'latin1'))
      expect(res.status, JSON.stringify(request.slice(0, 60))).toBe(status)
      expect(res.body.toString().length).toBeGreaterThan(0)
    }
    expect((await fetch(`${server.url}models`)).status).toBe(200)
  })

  it('serves a model file that changed on disk from what is there now, and 404s one that is gone', async () => {
    // the registry lists the file; the handler opens it per request and never serves a stale length
    const modelsDir = join(root, 'models')
    const tok = join(modelsDir, 'stories260K/tok512.bin')
    const saved = readFileSync(tok)
    rmSync(tok)
    try {
      const gone = await fetch(`${server.url}models/stories260K/tok512.bin`)
      expect(gone.status).toBe(404)
      expect(await gone.text()).toMatch(/gone/)
    } finally {
      writeFileSync(tok, saved)
    }
    expect((await fetch(`${server.url}models/stories260K/tok512.bin`)).status).toBe(200)
  })
})
