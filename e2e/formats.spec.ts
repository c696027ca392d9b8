import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import { resolveModelsDir } from '../src/nodejs/models-dir.ts'
import { goldenIds as readGolden } from '../testing/golden.ts'

/**
 * GGUF and safetensors models end to end: `tabmesh convert` writes stories260K as GGUF (F32, Q8_0,
 * Q4_0) and as safetensors with a tokenizer.json into a fresh models directory; `tabmesh generate`
 * then runs each one in headless Chromium (the site, the registry over HTTP, the engine worker) on
 * WASM and WebGPU. F32 must give GOLDEN.md id for id; the quantized models must give, id for id,
 * what the reference engine in Node gives on the same file.
 */
const golden = readGolden()
const siteDir = process.env.TABMESH_SITE_DIR
const modelsDir = mkdtempSync(join(tmpdir(), 'tabmesh-e2e-formats-'))
const tabmesh = (args: string[]) => {
  const r = spawnSync(process.execPath, ['src/nodejs/cli/bin.mjs', ...args], {
    encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...(siteDir ? { TABMESH_SITE_DIR: siteDir } : {}) },
  })
  expect(r.stderr, `tabmesh ${args.join(' ')}`).toBe('')
  return r.stdout
}
const generate = (model: string, backend: string): { ids: number[]; weightBytes: number } => {
  const out = JSON.parse(tabmesh(['generate', '--model', model, '--models-dir', modelsDir, '--backend', backend, '--prompt', '', '--max-tokens', '64', '--temperature', '0', '--json']))
  expect(out.backend).toBe(backend)
  return { ids: [...out.promptTokens, ...out.tokens], weightBytes: out.weightBytes }
}

test.beforeAll(() => {
  symlinkSync(join(resolveModelsDir(), 'stories260K'), join(modelsDir, 'stories260K'))
  for (const type of ['F32', 'Q8_0', 'Q4_0']) expect(tabmesh(['convert', '--to', 'gguf', '--type', type, '--out', modelsDir])).toMatch(/^wrote .*stories260K-/)
  expect(tabmesh(['convert', '--to', 'safetensors', '--out', modelsDir])).toMatch(/stories260K-f32-hf \(safetensors F32/)
})
test.afterAll(() => rmSync(modelsDir, { recursive: true, force: true }))

for (const model of ['stories260K-f32', 'stories260K-f32-hf']) {
  for (const backend of ['wasm', 'webgpu']) {
    test(`${model} (${model.endsWith('-hf') ? 'safetensors + tokenizer.json' : 'GGUF F32'}) on ${backend} gives GOLDEN.md`, () => {
      expect(generate(model, backend).ids).toEqual(golden)
    })
  }
}

for (const [model, bytesVsF32] of [['stories260K-q8_0', 0.55], ['stories260K-q4_0', 0.45]] as const) {
  test(`${model} on wasm and webgpu gives the reference engine's ids on the same file, holding the weights quantized`, () => {
    const f32 = generate('stories260K-f32', 'ref').weightBytes
    const reference = generate(model, 'ref')
    const agreement = reference.ids.filter((id, i) => id === golden[i]).length
    console.log(`${model}: reference greedy ids agree with the F32 golden at ${agreement}/${golden.length} positions; weights held ${reference.weightBytes} bytes (F32 ${f32})`)
    // the embedding table (token lookups and the shared classifier) and w2 (172 wide: not whole
    // blocks) stay fp32; the other layer matrices stay in blocks
    expect(reference.weightBytes).toBeLessThan(bytesVsF32 * f32)
    for (const backend of ['wasm', 'webgpu']) {
      const out = generate(model, backend)
      expect(out.ids, backend).toEqual(reference.ids)
      expect(out.weightBytes, backend).toBe(reference.weightBytes)
    }
  })
}

test('a registry entry whose files live on another host (public URLs) loads from there, checked part by part', async () => {
  // the "public host": another tabmesh server on its own origin, serving the converted models with CORS
  const host = spawn(process.execPath, ['src/nodejs/cli/bin.mjs', 'start', '--port', '0', '--models-dir', modelsDir, '--contributors', '0', ...(siteDir ? ['--site-dir', siteDir] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  const remoteDir = mkdtempSync(join(tmpdir(), 'tabmesh-e2e-remote-'))
  try {
    const hostUrl = await new Promise<string>((ok, fail) => {
      host.once('exit', (code) => fail(new Error(`tabmesh start exited with ${code}`)))
      host.stdout!.on('data', (d: Buffer) => { const m = /open (\S+)/.exec(String(d)); if (m) ok(m[1]) })
    })
    const base = new URL('models/stories260K-q8_0/', hostUrl).href
    expect(tabmesh(['describe', '--model', 'stories260K-q8_0', '--models-dir', modelsDir, '--base-url', base, '--out', remoteDir])).toMatch(/wrote .*model\.json: 1 files from/)
    expect(readdirSync(join(remoteDir, 'stories260K-q8_0'))).toEqual(['model.json']) // no weights beside the entry
    const reference = generate('stories260K-q8_0', 'ref').ids
    const out = JSON.parse(tabmesh(['generate', '--model', 'stories260K-q8_0', '--models-dir', remoteDir, '--backend', 'wasm', '--prompt', '', '--max-tokens', '64', '--temperature', '0', '--json']))
    expect([...out.promptTokens, ...out.tokens]).toEqual(reference)
  } finally {
    host.kill()
    if (existsSync(remoteDir)) rmSync(remoteDir, { recursive: true, force: true })
  }
})
