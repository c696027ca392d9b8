import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { llama2cLayout, LLAMA2C_HEADER_BYTES } from '../model/formats/llama2c.ts'
import { makeSyntheticLlama2c, SYNTHETIC_SHAPES } from '../model/formats/synthetic.ts'
import type { ModelConfig } from '../model/model.ts'
import { stories260K } from '../../testing/models.ts'
import { cacheFileFor } from './hash-cache.ts'
import { scanModels, sha256File } from './models-dir.ts'

const dirs: string[] = []
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) {
    chmodSync(dir, 0o755)
    rmSync(dir, { recursive: true, force: true })
  }
})

/** Records what a scan really hashed, and its progress lines. */
function recorder() {
  const hashed: string[] = []
  const lines: string[] = []
  const warnings: string[] = []
  return {
    hashed, lines, warnings,
    scan: (dir: string) => scanModels(dir, (w) => warnings.push(w), {
      onHash: ({ kind, path }) => hashed.push(`${kind}:${path.slice(dir.length + 1)}`),
      progress: (line) => lines.push(line),
    }),
  }
}

describe('model hashes: streamed, and cached by (path, size, mtime)', () => {
  it('hashes a model file over 2 GiB without reading it whole, lists the model, and a second scan hashes nothing', async () => {
    // a valid llama2.c header over a sparse file: 42 layers of dim 1024 make 2.16 GB of zero weights
    const config = { dim: 1024, hiddenDim: 2816, nLayers: 42, nHeads: 8, nKvHeads: 8, headSize: 128, kvDim: 1024, vocabSize: 512, seqLen: 256, sharedClassifier: true } as ModelConfig
    const { fileBytes } = llama2cLayout(config)
    expect(fileBytes).toBeGreaterThan(2 ** 31) // past Node's 2 GiB readFile limit
    const dir = tempDir('tabmesh-big-model-')
    mkdirSync(join(dir, 'big'))
    const header = new Uint8Array(new Int32Array([config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, config.vocabSize, config.seqLen]).buffer)
    writeFileSync(join(dir, 'big/big.bin'), header)
    truncateSync(join(dir, 'big/big.bin'), fileBytes)
    copyFileSync(stories260K.paths.tokenizer, join(dir, 'big/tok512.bin'))

    // the expected hash, computed here from the bytes the file holds: the header, then zeros
    const expected = createHash('sha256').update(header)
    const zeros = Buffer.alloc(16 << 20)
    for (let left = fileBytes - LLAMA2C_HEADER_BYTES; left > 0; left -= zeros.length) expected.update(left >= zeros.length ? zeros : zeros.subarray(0, left))
    const want = expected.digest('hex')

    const first = recorder()
    const [entry] = await first.scan(dir)
    expect(first.warnings).toEqual([])
    expect(entry?.id).toBe('big')
    expect(entry.files.find((f) => f.name === 'big.bin')).toMatchObject({ size: fileBytes, sha256: want })
    expect(Object.keys(entry.parts!)).toHaveLength(config.nLayers + 2)
    expect(first.hashed).toEqual(['file:big/big.bin', 'file:big/tok512.bin', 'parts:big'])
    // progress while the large file and its parts were hashed, ending at the total
    expect(first.lines.some((l) => /^hashing big\/big\.bin: \d+\.\d \/ 2\.2 GB$/.test(l))).toBe(true)
    expect(first.lines).toContain('hashing big/big.bin: 2.2 / 2.2 GB')
    expect(first.lines).toContain(`hashing parts of big: ${config.nLayers + 2} / ${config.nLayers + 2}`)
    expect(first.lines.some((l) => l.includes('tok512'))).toBe(false) // small files hash silently

    const second = recorder()
    expect(await second.scan(dir)).toEqual([entry])
    expect(second.hashed).toEqual([])
    expect(second.lines).toEqual([])
  }, 300_000)

  it('re-hashes only the file whose mtime changed, and ignores a corrupt cache', async () => {
    const dir = tempDir('tabmesh-hash-cache-')
    mkdirSync(join(dir, 'stories260K'))
    mkdirSync(join(dir, 'tiny'))
    copyFileSync(stories260K.paths.weights, join(dir, 'stories260K/stories260K.bin'))
    copyFileSync(stories260K.paths.tokenizer, join(dir, 'stories260K/tok512.bin'))
    writeFileSync(join(dir, 'tiny/tiny.bin'), makeSyntheticLlama2c(SYNTHETIC_SHAPES.multiHead, 3))
    copyFileSync(stories260K.paths.tokenizer, join(dir, 'tiny/tok512.bin'))

    const first = recorder()
    const entries = await first.scan(dir)
    expect(entries.map((e) => e.id)).toEqual(['stories260K', 'tiny'])
    expect(first.warnings).toEqual([]) // the cache's own folder is not taken for a model
    expect(first.hashed.sort()).toEqual(['file:stories260K/stories260K.bin', 'file:stories260K/tok512.bin', 'file:tiny/tiny.bin', 'file:tiny/tok512.bin', 'parts:stories260K', 'parts:tiny'])
    expect(first.lines).toEqual([]) // nothing here is large
    expect(entries[0].files[0].sha256).toBe(await sha256File(stories260K.paths.weights))

    const unchanged = recorder()
    expect(await unchanged.scan(dir)).toEqual(entries)
    expect(unchanged.hashed).toEqual([])

    // a new mtime (same bytes): that file and its model's parts are hashed again, nothing else
    const later = new Date(Date.now() + 60_000)
    utimesSync(join(dir, 'tiny/tiny.bin'), later, later)
    const touched = recorder()
    expect(await touched.scan(dir)).toEqual(entries)
    expect(touched.hashed).toEqual(['file:tiny/tiny.bin', 'parts:tiny'])

    // changed bytes of the same size and a restored mtime would fool the cache; new bytes with a new mtime do not
    const tinyBytes = readFileSync(join(dir, 'tiny/tiny.bin'))
    tinyBytes[LLAMA2C_HEADER_BYTES + 1] ^= 0x01
    writeFileSync(join(dir, 'tiny/tiny.bin'), tinyBytes)
    const edited = recorder()
    const after = await edited.scan(dir)
    expect(edited.hashed).toEqual(['file:tiny/tiny.bin', 'parts:tiny'])
    expect(after[1].files.find((f) => f.name === 'tiny.bin')!.sha256).toBe(createHash('sha256').update(tinyBytes).digest('hex'))
    expect(after[1].parts!.embedding).not.toBe(entries[1].parts!.embedding)

    // a corrupt cache is ignored, everything is hashed again, and the cache is rewritten
    const cacheFile = join(dir, '.tabmesh-cache/hashes.json')
    for (const garbage of ['{"version":1,"files":', '[]', '{"version":1,"files":{"tiny/tiny.bin":{"size":"x"}},"parts":7}']) {
      writeFileSync(cacheFile, garbage)
      const corrupt = recorder()
      expect(await corrupt.scan(dir)).toEqual(after)
      expect(corrupt.hashed).toHaveLength(6)
      expect(() => JSON.parse(readFileSync(cacheFile, 'utf8'))).not.toThrow()
      const again = recorder()
      await again.scan(dir)
      expect(again.hashed).toEqual([])
    }
  }, 120_000)

  it('keeps the cache beside the models when the folder is writable, else in the user cache', async () => {
    const models = tempDir('tabmesh-models-')
    const xdg = tempDir('tabmesh-xdg-')
    expect(await cacheFileFor(models, { XDG_CACHE_HOME: xdg })).toBe(join(models, '.tabmesh-cache/hashes.json'))
    const readOnly = tempDir('tabmesh-ro-models-')
    chmodSync(readOnly, 0o555) // honoured even for root, who could write anyway
    const elsewhere = await cacheFileFor(readOnly, { XDG_CACHE_HOME: xdg })
    expect(elsewhere).toMatch(new RegExp(`^${xdg}/tabmesh/hashes-[0-9a-f]{16}\\.json$`))
    expect(await cacheFileFor(models, { XDG_CACHE_HOME: xdg })).not.toBe(elsewhere)
  })
})

describe('draft pairings (tabmesh.json)', () => {
  it('pairs a model with a draft of the same vocabulary, and refuses one that is missing or speaks another', async () => {
    const dir = tempDir('tabmesh-drafts-')
    const write = (id: string, weights: Uint8Array, draft?: unknown) => {
      mkdirSync(join(dir, id))
      writeFileSync(join(dir, id, `${id}.bin`), weights)
      writeFileSync(join(dir, id, 'tok512.bin'), stories260K.tokenizer)
      if (draft !== undefined) writeFileSync(join(dir, id, 'tabmesh.json'), JSON.stringify({ draft }))
    }
    write('target', stories260K.weights, 'small')
    write('small', makeSyntheticLlama2c({ ...SYNTHETIC_SHAPES.multiHead, vocabSize: 512 }, 3))
    write('lost', stories260K.weights, 'nowhere')
    write('mismatch', stories260K.weights, 'odd')
    write('odd', makeSyntheticLlama2c({ ...SYNTHETIC_SHAPES.multiHead, vocabSize: 320 }, 4))
    write('bad', stories260K.weights, 42)
    const r = recorder()
    const entries = await r.scan(dir)
    const byId = Object.fromEntries(entries.map((e) => [e.id, e]))
    expect(byId.target.draft).toBe('small')
    for (const id of ['small', 'lost', 'mismatch', 'bad']) expect(byId[id].draft).toBeUndefined()
    expect(r.warnings.join('\n')).toMatch(/lost: its draft model "nowhere" is not in/)
    expect(r.warnings.join('\n')).toMatch(/mismatch: its draft model "odd" has another vocabulary/)
    expect(r.warnings.join('\n')).toMatch(/bad.tabmesh\.json: "draft" must be a model id/)
  })
})
