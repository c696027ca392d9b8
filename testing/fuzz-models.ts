/**
 * What the model-reader fuzz tests check on a slice that loaded from damaged bytes: it is a slice
 * an engine can use (a plausible config, every tensor the spec needs, each of the size its shape
 * says, all finite), and the slice specs they ask for.
 */
import fc from 'fast-check'
import { expect } from 'vitest'
import type { ErrorCode } from '../src/core/errors.ts'
import { sliceTensorShapes } from '../src/model/formats/llama-family.ts'
import { elementCount, type ModelConfig, type ModelSlice, type SliceSpec } from '../src/model/model.ts'

/** The codes a model reader may refuse bytes with. */
export const READER_CODES: readonly ErrorCode[] = ['model-format', 'model-mismatch']

/** A slice spec for a model of about `layers` layers (sometimes outside it, to check the refusal). */
export const sliceSpec = (layers: number): fc.Arbitrary<SliceSpec | undefined> => fc.option(
  fc.record({
    layers: fc.tuple(fc.integer({ min: -1, max: layers + 1 }), fc.integer({ min: -1, max: layers + 1 })).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })),
    embedding: fc.boolean(),
    head: fc.boolean(),
  }),
  { nil: undefined, freq: 3 },
)

export function expectSaneConfig(c: ModelConfig): void {
  for (const key of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headSize', 'kvDim', 'vocabSize', 'seqLen'] as const) {
    expect(Number.isInteger(c[key]) && c[key] > 0, `${key} = ${c[key]}`).toBe(true)
  }
  expect(c.headSize * c.nHeads).toBe(c.dim)
  expect(c.headSize % 2).toBe(0)
  expect(c.nHeads % c.nKvHeads).toBe(0)
  expect(c.kvDim).toBe(c.nKvHeads * c.headSize)
  expect(c.normEps > 0 && c.normEps < 1).toBe(true)
  expect(c.ropeTheta > 0).toBe(true)
  if (c.ropeScaling?.type === 'factors') {
    expect(c.ropeScaling.factors).toHaveLength(c.headSize / 2)
    for (const f of c.ropeScaling.factors) expect(Number.isFinite(f) && f > 0, `rope factor ${f}`).toBe(true)
  }
}

/** A slice an engine can take: every tensor the spec needs, of its shape's size, finite. */
export function expectSaneSlice(slice: ModelSlice, spec?: SliceSpec): void {
  expectSaneConfig(slice.config)
  if (spec) expect(slice.spec).toEqual(spec)
  const want = sliceTensorShapes(slice.config, slice.spec)
  if (slice.spec.head) want.set('classifier', [slice.config.vocabSize, slice.config.dim])
  if (!slice.spec.embedding) want.delete('token_embedding')
  for (const [name, shape] of want) {
    const t = slice.tensors.get(name)
    const q = slice.quantized?.get(name)
    expect(t ?? q, `tensor ${name}`).toBeDefined()
    if (t) {
      expect(t.shape, name).toEqual(shape)
      expect(t.data.length, name).toBe(elementCount(shape))
      for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) expect.fail(`${name}[${i}] = ${t.data[i]}`)
    }
  }
}
