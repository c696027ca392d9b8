import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReferenceEngine } from '../../engine/reference/reference.ts'
import { generateTokens } from '../../engine/generate.ts'
import { fileSource } from '../../nodejs/file-source.ts'
import { scanModels, sha256File } from '../../nodejs/models-dir.ts'
import { startHttpServer } from '../../nodejs/relay/http-server.ts'
import { GOLDEN_IDS, stories260K } from '../../../testing/models.ts'
import { memorySource, type ByteSource } from './byte-source.ts'
import { llama2cModel, storiesGguf, storiesHfFiles, storiesVocab, tempFolder } from '../../../testing/format-fixtures.ts'
import { httpOpener, loadEntryChatTemplate, loadEntrySlice, loadEntryTokenizer, type OpenFile } from './entry.ts'
import { modelToGguf } from '../formats/gguf-writer.ts'
import { parseRegistry, type ModelEntry, type Registry } from './registry.ts'
import { checkSha256, sha256Hex, verifiedSource } from './verify-file.ts'

/**
 * A models directory holding stories260K in all three formats (and two broken folders), scanned
 * into a registry and served by the relay's HTTP server; the tabs' loader reads each format back.
 */
const folder = tempFolder('tabmesh-registry-')
let registry: Registry
let server: Server
let base: string
const warnings: string[] = []

beforeAll(async () => {
  const put = (model: string, name: string, data: Uint8Array | string) => {
    mkdirSync(join(folder.dir, model), { recursive: true })
    writeFileSync(join(folder.dir, model, name), data)
  }
  mkdirSync(join(folder.dir, 'stories-llama2c'))
  copyFileSync(stories260K.paths.weights, join(folder.dir, 'stories-llama2c', 'stories260K.bin'))
  copyFileSync(stories260K.paths.tokenizer, join(folder.dir, 'stories-llama2c', 'tok512.bin'))
  put('stories-gguf-f32', 'stories260K-F32.gguf', await storiesGguf({ type: 'F32' }))
  put('stories-gguf-q8', 'stories260K-Q8_0.gguf', await storiesGguf({ type: 'Q8_0' }))
  for (const [name, data] of Object.entries(await storiesHfFiles('F32'))) put('stories-hf', name, data)
  // broken: a vocabulary bigger than the embedding; safetensors without tokenizer.json
  const small = await llama2cModel('multiHead')
  put('broken-gguf', 'm.gguf', modelToGguf({ ...small, config: { ...small.config } }, { vocab: { ...storiesVocab(), pieces: [...storiesVocab().pieces, 'x'], scores: Float32Array.from([...storiesVocab().scores, 0]), kinds: [...storiesVocab().kinds, 'normal'] } }))
  const hf = await storiesHfFiles('F32')
  put('broken-hf', 'model.safetensors', hf['model.safetensors'])
  put('broken-hf', 'config.json', hf['config.json'])
  // remote entries (model.json): one with a file that has no url, one whose id is not its folder's
  const remote = (id: string, file: Record<string, unknown>) => JSON.stringify({ id, format: 'gguf', config: { ...small.config }, files: [{ name: 'm.gguf', role: 'weights', size: 10, sha256: 'ab'.repeat(32), ...file }], parts: {} })
  put('broken-remote', 'model.json', remote('broken-remote', {}))
  put('misnamed-remote', 'model.json', remote('another-id', { url: 'https://example.org/m.gguf' }))
  put('invalid-remote', 'model.json', remote('invalid-remote', { url: 'file:///etc/passwd' }))
  registry = { models: await scanModels(folder.dir, (m) => warnings.push(m)) }
  ;({ server, url: base } = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir: '/nonexistent', modelsDir: folder.dir, registry }))
})
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()))
  folder.remove()
})

const entry = (id: string): ModelEntry => registry.models.find((m) => m.id === id)!
const openHttp = (e: ModelEntry): OpenFile => httpOpener(base, e)

describe('registry of GGUF, safetensors and llama2.c models', () => {
  it('lists every format with a sha256 per file, and skips broken folders with a reason', async () => {
    expect(registry.models.map((m) => [m.id, m.format])).toEqual([
      ['stories-gguf-f32', 'gguf'], ['stories-gguf-q8', 'gguf'], ['stories-hf', 'safetensors'], ['stories-llama2c', 'llama2c'],
    ])
    const hf = entry('stories-hf')
    expect(hf.files.map((f) => [f.name, f.role])).toEqual([['config.json', 'config'], ['model.safetensors', 'weights'], ['tokenizer.json', 'tokenizer'], ['tokenizer_config.json', 'tokenizer-config']])
    for (const m of registry.models) {
      for (const f of m.files) expect(f.sha256).toBe(await sha256File(join(folder.dir, m.id, f.name)))
    }
    expect(warnings.find((w) => w.includes('broken-gguf'))).toMatch(/the tokenizer has 513 tokens but the model's embedding has 512 rows/)
    expect(warnings.find((w) => w.includes('broken-hf'))).toMatch(/has safetensors weights but no tokenizer.json/)
    expect(warnings.find((w) => w.includes('broken-remote'))).toMatch(/broken-remote\/model\.json: file m\.gguf has no url/)
    expect(warnings.find((w) => w.includes('misnamed-remote'))).toMatch(/id "another-id" is not its folder's name "misnamed-remote"/)
    expect(warnings.find((w) => w.includes('invalid-remote'))).toMatch(/invalid-remote\/model\.json: files\.0\.url: /)
    // what the relay serves passes the schema the tabs check it with
    expect(parseRegistry(JSON.parse(JSON.stringify(registry)), 'test').models.map((m) => m.id)).toEqual(registry.models.map((m) => m.id))
    expect(() => parseRegistry({ models: [{ ...registry.models[0], files: [{ ...registry.models[0].files[0], sha256: 'x' }] }] }, 'GET /models')).toThrow(/GET \/models: models\.0\.files\.0\.sha256/)
  })

  it('describes the same model the same way in every format (config and per-part hashes of the F32 weights)', () => {
    const llama2c = entry('stories-llama2c')
    for (const id of ['stories-gguf-f32', 'stories-hf']) {
      expect(entry(id).config).toEqual(llama2c.config)
      expect(entry(id).parts).toEqual(llama2c.parts)
    }
    expect(entry('stories-gguf-q8').parts!['layer.0']).not.toBe(llama2c.parts!['layer.0'])
  })

  it('lists the bytes of each part as stored: fp32 parts alike in every format, Q8_0 layers at their block size', async () => {
    const llama2c = entry('stories-llama2c')
    for (const id of ['stories-gguf-f32', 'stories-hf']) expect(entry(id).partBytes).toEqual(llama2c.partBytes)
    const c = llama2c.config
    const fp32Layer = 4 * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.kvDim * c.dim + 3 * c.dim * c.hiddenDim)
    expect(llama2c.partBytes!['layer.0']).toBe(fp32Layer)
    // Q8_0 matrices: 34 bytes per 32 weights; w2 (172 wide, not whole blocks) and the norms stay F32
    const q8Layer = 4 * 2 * c.dim + (34 / 32) * (2 * c.dim * c.dim + 2 * c.kvDim * c.dim + 2 * c.dim * c.hiddenDim) + 4 * c.dim * c.hiddenDim
    expect(registry.models.map((m) => [m.id, m.weightType])).toEqual([['stories-gguf-f32', 'F32'], ['stories-gguf-q8', 'Q8_0'], ['stories-hf', 'F32'], ['stories-llama2c', 'F32']])
    const q8 = entry('stories-gguf-q8').partBytes!
    for (let l = 0; l < c.nLayers; l++) {
      expect(q8[`layer.${l}`]).toBeGreaterThanOrEqual(q8Layer)
      expect(q8[`layer.${l}`]).toBeLessThan(q8Layer + 9 * 32) // plus alignment padding between tensors
    }
    expect(q8.head).toBe(4 * c.dim) // the final norm; the classifier is the embedding table
    expect(q8.embedding).toBe((34 / 32) * c.vocabSize * c.dim)
  })

  it.each(['stories-gguf-f32', 'stories-hf', 'stories-llama2c'])('%s over HTTP from the relay: tokenizer, chat template and weights reproduce GOLDEN.md', async (id) => {
    const e = entry(id)
    const open = openHttp(e)
    const tokenizer = await loadEntryTokenizer(e, open)
    const template = await loadEntryChatTemplate(e, open)
    const prompt = template.render([{ role: 'user', content: 'Once upon a time' }], { addGenerationPrompt: true })
    expect(tokenizer.encode(prompt)).toEqual([1, 403, 407, 261, 378])
    const engine = createReferenceEngine(await loadEntrySlice(e, open))
    const out = [1]
    for await (const t of generateTokens(engine, [1], { maxTokens: 64, temperature: 0, topP: 0.9, seed: 1 })) out.push(t)
    expect(out).toEqual(GOLDEN_IDS)
  })

  it('a contributor loading layers [2, 4) over HTTP downloads only those layers (plus headers)', async () => {
    for (const id of ['stories-gguf-q8', 'stories-hf']) {
      const e = entry(id)
      const sources: ByteSource[] = []
      const open: OpenFile = (f) => { const s = openHttp(e)(f); sources.push(s); return s }
      const slice = await loadEntrySlice(e, open, { layers: { start: 2, end: 4 }, embedding: false, head: false })
      const weightsFile = e.files.find((f) => f.role === 'weights')!
      const downloaded = sources.reduce((n, s) => n + s.bytesRead, 0)
      const configBytes = e.files.find((f) => f.role === 'config')?.size ?? 0
      const tensorBytes = [...slice.tensors.values()].reduce((n, t) => n + t.data.length, 0) * (id === 'stories-hf' ? 4 : 34 / 32)
      console.log(`${id}: layers [2,4) downloaded ${downloaded} of ${weightsFile.size + configBytes} bytes (the layers' tensors hold ${Math.round(tensorBytes)})`)
      expect(downloaded).toBeLessThan(0.5 * weightsFile.size)
      expect(downloaded).toBeGreaterThan(0.9 * tensorBytes)
    }
  })
})

describe('registry entries that point at public URLs', () => {
  it('loads from a file\'s url (here: the same bytes served under another path) with the same code', async () => {
    const e = entry('stories-gguf-f32')
    const elsewhere: ModelEntry = { ...e, id: 'renamed', files: e.files.map((f) => ({ ...f, url: new URL(`models/${e.id}/${f.name}`, base).href })) }
    const slice = await loadEntrySlice(elsewhere, httpOpener('http://127.0.0.1:9/', elsewhere), { layers: { start: 0, end: 1 }, embedding: true, head: false })
    expect(slice.tensors.get('layers.0.wq')!.data).toEqual((await llama2cModel('stories260K')).tensors.get('layers.0.wq')!.data)
  })
})

describe('whole-file sha256 checks', () => {
  it('verifiedSource returns the bytes only when size and sha256 match, and names the file otherwise', async () => {
    const bytes = new Uint8Array(readFileSync(stories260K.paths.tokenizer))
    const file = { name: 'tok512.bin', size: bytes.byteLength, sha256: await sha256Hex(bytes) }
    expect(file.sha256).toBe('037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312') // as the relay test lists it
    const ok = await verifiedSource(fileSource(stories260K.paths.tokenizer), file)
    expect(await ok.read(0, 4)).toEqual(bytes.subarray(0, 4))
    const corrupt = bytes.slice()
    corrupt[1000] ^= 1
    await expect(verifiedSource(memorySource(corrupt, 'cache/tok512.bin'), file)).rejects.toThrow(/cache\/tok512.bin: sha256 [0-9a-f]{64} does not match the registry's 037cb335.*refusing it/)
    await expect(verifiedSource(memorySource(bytes.subarray(1), 'short.bin'), file)).rejects.toThrow(`short.bin: ${bytes.byteLength - 1} bytes, but the registry lists tok512.bin with ${bytes.byteLength}`)
    await expect(checkSha256(bytes, 'not-a-hash', 'x')).rejects.toThrow(/not 64 lowercase hex digits/)
  })

  it('a tampered tokenizer.json behind a registry entry is refused before it is parsed', async () => {
    const e = entry('stories-hf')
    const open: OpenFile = (f) => (f.role === 'tokenizer'
      ? memorySource(new TextEncoder().encode(readFileSync(join(folder.dir, e.id, f.name), 'utf8').replace('"<unk>"', '"<UNK>"')), f.name)
      : fileSource(join(folder.dir, e.id, f.name)))
    await expect(loadEntryTokenizer(e, open)).rejects.toThrow(/tokenizer.json: sha256 .* does not match the registry's/)
  })
})
