/**
 * Fuzzing the safetensors reader and config.json: the fixtures with their header-length field
 * lying (up to 2^64), their JSON header changed (entries deleted, dtypes, shapes and data_offsets
 * of other types and values, offsets out of range), bytes flipped, cut short or extended, and
 * config.json fields of other types and values. Files either load as a usable slice or are refused
 * with a typed TabmeshError naming the file, fast, allocating nothing near what they claim.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { llama2cModel } from '../../../testing/format-fixtures.ts'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { arrayBufferBytes, guardAllocations, outcomeAsync } from '../../../testing/fuzz-checks.ts'
import { READER_CODES, expectSaneSlice, sliceSpec } from '../../../testing/fuzz-models.ts'
import { byteMutation, concat, jsonMutation, mutateBytes, mutateJson } from '../../../testing/fuzz-mutations.ts'
import { memorySource } from '../source/byte-source.ts'
import { SYNTHETIC_LLAMA3_SCALING, withFamilyFeatures } from './synthetic.ts'
import { loadSafetensors, openSafetensors } from './safetensors.ts'
import { modelToSafetensors } from './safetensors-writer.ts'
import type { SliceSpec } from '../model.ts'

const NAME = 'fuzz.safetensors'

async function open(config: unknown, bytes: Uint8Array, spec?: SliceSpec) {
  const r = await outcomeAsync(async () => {
    const model = await openSafetensors(config, [memorySource(bytes, NAME)], {}, 'fuzz/config.json')
    return loadSafetensors(model, spec)
  }, READER_CODES, /fuzz\.safetensors|fuzz\/config\.json|layer range/)
  if (r.ok) expectSaneSlice(r.value, spec)
  return r
}

/** A safetensors file split into its header (parsed) and its data. */
function split(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true))
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))), data: bytes.subarray(8 + length) }
}

function join(header: unknown, data: Uint8Array, claim?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) ?? '')
  const prefix = new Uint8Array(8)
  new DataView(prefix.buffer).setBigUint64(0, claim ?? BigInt(json.length), true)
  return concat(prefix, json, data)
}

let fixtures: Record<string, { config: Record<string, unknown>; safetensors: Uint8Array }>
let release: () => void
const before = arrayBufferBytes()
beforeAll(async () => {
  const multiHead = await llama2cModel('multiHead')
  const separate = await llama2cModel('separateClassifier')
  fixtures = {
    'multiHead F32': modelToSafetensors(multiHead),
    'multiHead BF16 qwen2 llama3-scaled': modelToSafetensors(withFamilyFeatures(multiHead, { biasSeed: 5, ropeScaling: SYNTHETIC_LLAMA3_SCALING }), { dtype: 'BF16', modelType: 'qwen2' }),
    'separateClassifier F16': modelToSafetensors(separate, { dtype: 'F16' }),
  }
  release = guardAllocations(32 << 20)
})
afterAll(() => {
  release()
  expect(arrayBufferBytes() - before).toBeLessThan(256 << 20)
})

const fixture = () => fc.constantFrom(...Object.keys(fixtures))
const layersOf = (name: string) => (name.startsWith('separate') ? 7 : 3)

describe('safetensors', () => {
  it('the fixtures load whole and by slices', async () => {
    await fc.assert(fc.asyncProperty(fixture(), sliceSpec(7), async (name, spec) => {
      const { config, safetensors } = fixtures[name]
      const r = await open(config, safetensors, spec)
      expect(r.ok).toBe(!spec || (spec.layers.start >= 0 && spec.layers.end <= layersOf(name)))
    }), { ...fuzzParams(60), numRuns: Math.ceil(fuzzParams().numRuns / 10) })
  })

  it('header lengths that lie, up to 2^64', async () => {
    const claim = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n, 100n << 20n, (100n << 20n) + 1n, 2n ** 53n, 2n ** 63n), fc.bigInt({ min: 0n, max: 4096n }))
    await fc.assert(fc.asyncProperty(fixture(), claim, async (name, length) => {
      const { config, safetensors } = fixtures[name]
      const { header, data } = split(safetensors)
      await open(config, join(header, data, length))
    }), fuzzParams(61))
  })

  it('JSON headers with entries deleted, added, or with dtype, shape and data_offsets of other types and values', async () => {
    const offset = fc.oneof(fc.nat({ max: 1 << 20 }), fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e300, 0.5))
    const entryChange = fc.record({
      which: fc.nat(),
      dtype: fc.option(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I8', 'U8', 'constructor', 'toString', '')),
      shape: fc.option(fc.array(fc.oneof(fc.nat({ max: 128 }), fc.constantFrom(0, 2 ** 20, 2 ** 32, 2 ** 53 - 1)), { maxLength: 4 })),
      offsets: fc.option(fc.tuple(offset, offset)),
      rename: fc.option(fc.constantFrom('', '__proto__', 'constructor', 'x'.repeat(10_000), 'model.norm.weight')),
    })
    await fc.assert(fc.asyncProperty(fixture(), fc.array(entryChange, { maxLength: 3 }), fc.array(jsonMutation(), { maxLength: 2 }), async (name, changes, mutations) => {
      const { config, safetensors } = fixtures[name]
      const { header, data } = split(safetensors)
      for (const c of changes) {
        const names = Object.keys(header).filter((k) => k !== '__metadata__')
        const entry = header[names[c.which % names.length]] as Record<string, unknown>
        if (c.dtype !== null) entry.dtype = c.dtype
        if (c.shape !== null) entry.shape = c.shape
        if (c.offsets !== null) entry.data_offsets = c.offsets
        if (c.rename !== null) {
          delete header[names[c.which % names.length]]
          Object.defineProperty(header, c.rename, { value: entry, enumerable: true, configurable: true, writable: true })
        }
      }
      await open(config, join(mutateJson(header, mutations), data))
    }), fuzzParams(62))
  })

  it('bytes flipped (mostly in the header), cut short, extended', async () => {
    await fc.assert(fc.asyncProperty(fixture(), fc.array(byteMutation(), { minLength: 1, maxLength: 3 }), fc.constantFrom(1024, undefined), sliceSpec(7), async (name, mutations, focus, spec) => {
      const { config, safetensors } = fixtures[name]
      await open(config, mutateBytes(safetensors, mutations, focus), spec)
    }), fuzzParams(63))
  })

  it('config.json with fields deleted, added, or of other types and values', async () => {
    const field = fc.constantFrom('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size',
      'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'tie_word_embeddings', 'model_type', 'bos_token_id', 'eos_token_id', 'hidden_act')
    const value = fc.oneof(
      fc.constantFrom(0, 1, 2, 4, 8, 16, 32, 64, 512, -1, 2 ** 24, 2 ** 31, 1e-5, 0.5, null, true, 'llama', 'qwen2', 'silu', 'gelu', [1, 2]),
      fc.record({ rope_type: fc.constantFrom('linear', 'llama3', 'yarn', 'default'), factor: fc.oneof(fc.double(), fc.constant('x')), low_freq_factor: fc.double(), high_freq_factor: fc.double(), original_max_position_embeddings: fc.integer() }, { requiredKeys: ['rope_type'] }),
    )
    await fc.assert(fc.asyncProperty(fixture(), fc.array(fc.tuple(field, value), { maxLength: 3 }), fc.array(jsonMutation(), { maxLength: 2 }), async (name, sets, mutations) => {
      const { config, safetensors } = fixtures[name]
      const changed: Record<string, unknown> = { ...config }
      for (const [k, v] of sets) changed[k] = v
      await open(mutateJson(changed, mutations), safetensors)
    }), fuzzParams(64))
  })
})

describe('safetensors: counterexamples the fuzzers found', () => {
  it('a tensor with a 10 000-character name and bad offsets is refused naming it in at most 80 characters', async () => {
    const { config, safetensors } = fixtures['multiHead F32']
    const { header, data } = split(safetensors)
    const [first] = Object.keys(header).filter((k) => k !== '__metadata__')
    const entry = { ...(header[first] as object), data_offsets: [-1, -1] }
    delete header[first]
    header['x'.repeat(10_000)] = entry
    const r = await open(config, join(header, data))
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error.message).toMatch(/^fuzz\.safetensors: header entry for tensor x{80}… is malformed/)
  })
})

describe('safetensors: the config that claims 2^24 layers', () => {
  it('fails at the first layer the file lacks, not after listing 150 million tensors', async () => {
    const { config, safetensors } = fixtures['multiHead F32']
    const r = await open({ ...config, num_hidden_layers: 2 ** 24 }, safetensors)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error.message).toMatch(/has no tensor for layers\.3\.attention_norm/)
  })
})
