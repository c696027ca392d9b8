/**
 * Fuzzing the llama2.c checkpoint reader: stories260K and a synthetic model with bits flipped (in
 * the header most of all), cut short, extended, and headers of random sizes. Bytes either load as a
 * slice an engine can use or are refused with a 'model-format' / 'model-mismatch' TabmeshError that
 * names the file, fast, allocating nothing near what a lying header claims.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stories260K, syntheticBytes } from '../../../testing/models.ts'
import { fuzzParams } from '../../../testing/fuzz.ts'
import { arrayBufferBytes, guardAllocations, outcomeAsync } from '../../../testing/fuzz-checks.ts'
import { READER_CODES, expectSaneSlice, sliceSpec } from '../../../testing/fuzz-models.ts'
import { byteMutation, mutateBytes } from '../../../testing/fuzz-mutations.ts'
import { memorySource } from '../source/byte-source.ts'
import { LLAMA2C_HEADER_BYTES, loadLlama2c } from './llama2c.ts'
import type { SliceSpec } from '../model.ts'

const NAME = 'fuzz.bin'
const checkpoints = { stories260K: stories260K.weights, multiHead: syntheticBytes('multiHead') }
type Checkpoint = keyof typeof checkpoints
/** By name, so a counterexample prints short; mostly the small synthetic model, which loads faster. */
const checkpoint = fc.oneof({ weight: 1, arbitrary: fc.constant<Checkpoint>('stories260K') }, { weight: 3, arbitrary: fc.constant<Checkpoint>('multiHead') })

async function load(bytes: Uint8Array, spec?: SliceSpec) {
  const r = await outcomeAsync(() => loadLlama2c(memorySource(bytes, NAME), spec), READER_CODES, /fuzz\.bin|layer range/)
  if (r.ok) expectSaneSlice(r.value, spec)
  return r
}

let release: () => void
const before = arrayBufferBytes()
beforeAll(() => { release = guardAllocations(16 << 20) })
afterAll(() => {
  release()
  expect(arrayBufferBytes() - before).toBeLessThan(256 << 20)
})

describe('llama2.c checkpoints', () => {
  it('a non-finite weight is refused naming the file (counterexample the fuzzer found: the message named only the tensor)', async () => {
    const bytes = syntheticBytes('multiHead')
    new DataView(bytes.buffer).setFloat32(LLAMA2C_HEADER_BYTES, Number.NaN, true) // token_embedding[0]
    await expect(loadLlama2c(memorySource(bytes, 'broken.bin'))).rejects.toThrow(/^broken\.bin: tensor .* holds a non-finite value \(NaN\)/)
  })

  it('the valid checkpoints load, whole and by slices', async () => {
    await fc.assert(fc.asyncProperty(checkpoint, sliceSpec(7), async (name, spec) => {
      const bytes = checkpoints[name]
      const r = await load(bytes, spec)
      const inside = !spec || (spec.layers.start >= 0 && spec.layers.end <= new DataView(bytes.buffer, bytes.byteOffset).getInt32(8, true))
      expect(r.ok).toBe(inside)
    }), { ...fuzzParams(40), numRuns: Math.ceil(fuzzParams().numRuns / 10) })
  })

  it('damaged checkpoints: flipped bits and lying header fields, truncation, extension', async () => {
    await fc.assert(fc.asyncProperty(
      checkpoint,
      fc.array(byteMutation(), { minLength: 1, maxLength: 3 }),
      fc.constantFrom(LLAMA2C_HEADER_BYTES, undefined),
      sliceSpec(7),
      async (name, mutations, focus, spec) => { await load(mutateBytes(checkpoints[name], mutations, focus), spec) },
    ), fuzzParams(41))
  })

  it('headers of random sizes, over bodies of random length', async () => {
    const field = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, 2, 8, 64, 512, 1 << 20, (1 << 20) + 1, -512, 2 ** 31 - 1, -(2 ** 31)))
    await fc.assert(fc.asyncProperty(fc.array(field, { minLength: 7, maxLength: 7 }), fc.nat({ max: 4096 }), async (header, bodyBytes) => {
      const bytes = new Uint8Array(LLAMA2C_HEADER_BYTES + bodyBytes)
      header.forEach((v, i) => new DataView(bytes.buffer).setInt32(i * 4, v, true))
      await load(bytes)
    }), fuzzParams(42))
  })

  it('random bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 256 }), async (bytes) => { await load(bytes) }), fuzzParams(43))
  })
})
