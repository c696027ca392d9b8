import type { Server } from 'node:http'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { httpSource } from '../../model/source/byte-source.ts'
import { LLAMA2C_HEADER_BYTES, loadLlama2c } from '../../model/formats/llama2c.ts'
import { LAYER_TENSORS, elementCount, layerTensorShape } from '../../model/model.ts'
import type { Registry } from '../../model/source/registry.ts'
import { scanModels } from '../models-dir.ts'
import { stories260K } from '../../../testing/models.ts'
import { startHttpServer } from './http-server.ts'

let server: Server
let base: string
const modelsDir = dirname(dirname(stories260K.paths.weights))

beforeAll(async () => {
  const registry: Registry = { models: await scanModels(modelsDir) }
  ;({ server, url: base } = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir: '/nonexistent', modelsDir, registry }))
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

describe('relay HTTP: registry and model files', () => {
  it('lists models with config, sizes and sha256', async () => {
    const res = await fetch(`${base}models`)
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp')
    const registry = (await res.json()) as Registry
    const m = registry.models.find((e) => e.id === 'stories260K')!
    expect(m.config.nLayers).toBe(5)
    expect(m.files.find((f) => f.name === 'stories260K.bin')).toMatchObject({ role: 'weights', size: 1_056_540, sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' })
    expect(m.files.find((f) => f.name === 'tok512.bin')?.sha256).toBe('037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312')
  })

  it('answers Range requests with 206 and only the bytes asked for', async () => {
    const res = await fetch(`${base}models/stories260K/stories260K.bin`, { headers: { Range: 'bytes=28-31' } })
    expect(res.status).toBe(206)
    expect(res.headers.get('content-range')).toBe('bytes 28-31/1056540')
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(stories260K.weights.subarray(28, 32))
  })

  it('loads a layer range over HTTP, reading only that range', async () => {
    const src = httpSource(`${base}models/stories260K/stories260K.bin`)
    const slice = await loadLlama2c(src, { layers: { start: 1, end: 2 }, embedding: false, head: false })
    const perLayer = LAYER_TENSORS.reduce((s, t) => s + elementCount(layerTensorShape(slice.config, t)) * 4, 0)
    expect(src.bytesRead).toBe(LLAMA2C_HEADER_BYTES + perLayer)
  })

  it('answers GET /relay with 404 when no libp2p relay runs beside it', async () => {
    const res = await fetch(`${base}relay`)
    expect(res.status).toBe(404)
    expect(await res.text()).toMatch(/no libp2p relay/)
  })

  it('serves only registered files', async () => {
    expect((await fetch(`${base}models/stories260K/GOLDEN.md`)).status).toBe(404)
    expect((await fetch(`${base}models/stories260K/..%2F..%2Fetc%2Fpasswd`)).status).toBe(404)
    expect((await fetch(`${base}index.html`)).status).toBe(404)
  })
})

describe('relay HTTP: bad requests', () => {
  it('answers GET /%E0 (a malformed percent-encoding) with 400 and keeps serving', async () => {
    const res = await fetch(`${base}%E0`)
    expect(res.status).toBe(400)
    expect(await res.text()).toMatch(/malformed/)
    expect((await fetch(`${base}models`)).status).toBe(200)
  })

  const file = `models/stories260K/stories260K.bin`
  const size = stories260K.weights.byteLength
  const ranged = (range: string, init: RequestInit = {}) => fetch(`${base}${file}`, { ...init, headers: { Range: range } })

  it('ignores an inverted range (sirv threw after writing the head) and keeps serving', async () => {
    const res = await ranged('bytes=10-5')
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(size)
    expect((await fetch(`${base}models`)).status).toBe(200)
  })

  it('sends exactly the bytes of a one-byte range and of a suffix range', async () => {
    const first = await ranged('bytes=0-0')
    expect(first.status).toBe(206)
    expect(first.headers.get('content-range')).toBe(`bytes 0-0/${size}`)
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(stories260K.weights.subarray(0, 1))
    const suffix = await ranged('bytes=-4')
    expect(suffix.status).toBe(206)
    expect(suffix.headers.get('content-range')).toBe(`bytes ${size - 4}-${size - 1}/${size}`)
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(stories260K.weights.subarray(size - 4))
  })

  it('answers an unsatisfiable range with 416 and the size', async () => {
    for (const range of [`bytes=${size}-`, 'bytes=-0', `bytes=${size + 5}-${size + 9}, ${size * 2}-`]) {
      const res = await ranged(range)
      expect(res.status, range).toBe(416)
      expect(res.headers.get('content-range')).toBe(`bytes */${size}`)
      expect(await res.text()).toMatch(/not satisfiable/)
    }
  })

  it('answers HEAD with the length and no body, and other methods with 405', async () => {
    const head = await fetch(`${base}${file}`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe(String(size))
    expect((await head.arrayBuffer()).byteLength).toBe(0)
    for (const path of [file, 'models', 'relay', 'index.html']) {
      const res = await fetch(`${base}${path}`, { method: 'DELETE' })
      expect(res.status, path).toBe(405)
      expect(res.headers.get('allow')).toBe('GET, HEAD, OPTIONS')
    }
  })
})

describe('relay HTTP: the site', () => {
  it('revalidates a site file with 304 (ETag) and a missing path with the SPA fallback, with no handler error', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const siteDir = mkdtempSync(join(tmpdir(), 'tabmesh-site-'))
    writeFileSync(join(siteDir, 'index.html'), '<!doctype html><title>site</title>')
    const errors: unknown[] = []
    const site = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir, modelsDir, registry: { models: [] }, onError: (err) => errors.push(err) })
    try {
      const first = await fetch(new URL('index.html', site.url))
      expect(first.status).toBe(200)
      expect(await first.text()).toContain('<title>site</title>')
      const etag = first.headers.get('etag')
      expect(etag).toBeTruthy()
      const again = await fetch(new URL('index.html', site.url), { headers: { 'If-None-Match': etag! } })
      expect(again.status).toBe(304)
      expect((await fetch(new URL('some/route', site.url))).status).toBe(200) // the single-page fallback
      expect(errors).toEqual([])
    } finally {
      await new Promise<void>((r) => site.server.close(() => r()))
    }
  })
})
