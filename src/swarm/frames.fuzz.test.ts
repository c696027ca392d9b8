/**
 * Fuzzing the activation frames (/tabmesh/1/infer): decodeFrame on random bytes and on valid frames
 * with bits flipped, cut short, extended, or with header lengths that lie (more rows or bytes than
 * present, gigabytes); encodeFrame on field values out of range. A valid frame round-trips exactly;
 * anything else is a 'protocol' error (decode) or a 'bad-argument' error (encode), fast, and nothing
 * of the size a header claims is allocated.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { f16ToF32 } from '../core/f16.ts'
import { fuzzParams } from '../../testing/fuzz.ts'
import { arrayBufferBytes, guardAllocations, outcome } from '../../testing/fuzz-checks.ts'
import { byteMutation, mutateBytes } from '../../testing/fuzz-mutations.ts'
import { MAX_FRAME_BYTES, decodeFrame, encodeFrame, type Dtype, type Frame } from './frames.ts'

const u32 = fc.nat({ max: 0xffffffff })
const u16 = fc.nat({ max: 0xffff })
const dtype = fc.constantFrom<Dtype>('f32', 'f16')
const utf8 = new TextEncoder()

/** Values exactly representable in `d`: any f32 bit pattern, or any f16 bit pattern widened. */
const values = (d: Dtype, count: number) => d === 'f32'
  ? fc.array(u32, { minLength: count, maxLength: count }).map((bits) => new Float32Array(Uint32Array.from(bits).buffer))
  : fc.array(u16, { minLength: count, maxLength: count }).map((bits) => Float32Array.from(bits, f16ToF32))

const tensor = (withPositions: boolean) => fc.record({ rows: fc.integer({ min: 1, max: 8 }), dim: fc.integer({ min: 1, max: 32 }), dtype })
  .chain(({ rows, dim, dtype: d }) => fc.record({
    id: u32,
    dim: fc.constant(dim),
    dtype: fc.constant(d),
    hidden: values(d, rows * dim),
    positions: withPositions ? fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: rows, maxLength: rows }).map((p) => Int32Array.from(p)) : fc.constant(undefined),
  }))

const validFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant('open' as const), id: u32,
    modelId: fc.string({ unit: 'grapheme', maxLength: 60 }).filter((s) => utf8.encode(s).length <= 255),
    layerStart: u16, layerEnd: u16, maxLength: u32, dtype, prefixId: u32, prefixLength: u32,
  }),
  fc.record({ type: fc.constant('opened' as const), id: u32, dim: u32, maxRows: u32, prefixId: u32, reused: u32 }),
  tensor(true).map(({ id, dim, dtype: d, hidden, positions }): Frame => ({ type: 'forward', id, positions: positions!, hidden, dim, dtype: d })),
  tensor(false).map(({ id, dim, dtype: d, hidden }): Frame => ({ type: 'hidden', id, hidden, dim, dtype: d })),
  fc.record({ type: fc.constant('close' as const), id: u32, keep: fc.boolean(), length: u32 }),
  fc.record({
    type: fc.constant('error' as const), id: u32,
    code: fc.stringMatching(/^[a-z-]{0,64}$/),
    message: fc.string({ unit: 'grapheme', maxLength: 100 }),
  }),
)

/** decodeFrame with the checks every outcome must pass: a 'protocol' error naming the frame, or a frame that re-encodes to the same frame. */
function decodeChecked(bytes: Uint8Array, maxBytes?: number): Frame | undefined {
  const r = outcome(() => decodeFrame(bytes, maxBytes), ['protocol'], /\/tabmesh\/1\/infer frame: /)
  if (!r.ok) return undefined
  const again = encodeFrame(r.value)
  expect(decodeFrame(again)).toEqual(r.value)
  // a decoded frame is canonical: re-encoding gives back its bytes (f16 NaN payloads aside, which widen to one NaN)
  const f16 = (r.value.type === 'hidden' || r.value.type === 'forward') && r.value.dtype === 'f16'
  if (!f16) expect(again).toEqual(bytes)
  return r.value
}

let release: () => void
const before = arrayBufferBytes()
beforeAll(() => { release = guardAllocations(4 * MAX_FRAME_BYTES) })
afterAll(() => {
  release()
  // across the whole run, no lasting growth beyond what the frames themselves take
  expect(arrayBufferBytes() - before).toBeLessThan(256 << 20)
})

describe('activation frames', () => {
  it('a valid frame round-trips exactly', () => {
    fc.assert(fc.property(validFrame, (frame) => {
      const bytes = encodeFrame(frame)
      expect(decodeFrame(bytes)).toEqual(frame)
      expect(encodeFrame(decodeFrame(bytes))).toEqual(bytes)
    }), fuzzParams(20))
  })

  it('random bytes: a protocol error or a canonical frame', () => {
    const header = fc.tuple(fc.constantFrom(0, 1, 2, 255), fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 300 }))
      .map(([version, type, rest]) => Uint8Array.of(version, type, ...rest))
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), header), (bytes) => {
      decodeChecked(bytes)
    }), fuzzParams(21))
  })

  it('valid frames with bits flipped, cut short, extended, or header fields that lie', () => {
    fc.assert(fc.property(validFrame, fc.array(byteMutation(), { minLength: 1, maxLength: 3 }), (frame, mutations) => {
      decodeChecked(mutateBytes(encodeFrame(frame), mutations, 24))
    }), fuzzParams(22))
  })

  it('row and dim counts that claim more than the frame holds, up to gigabytes, are refused without allocating them', () => {
    fc.assert(fc.property(tensor(true), fc.boolean(), u32, u32, ({ id, dim, dtype: d, hidden, positions }, forward, rows, dims) => {
      const bytes = encodeFrame(forward ? { type: 'forward', id, positions: positions!, hidden, dim, dtype: d } : { type: 'hidden', id, hidden, dim, dtype: d })
      const view = new DataView(bytes.buffer)
      view.setUint32(6, rows, true)
      view.setUint32(10, dims, true)
      const frame = decodeChecked(bytes)
      if (frame && (frame.type === 'hidden' || frame.type === 'forward')) expect(frame.hidden.length).toBe(hidden.length)
    }), fuzzParams(23))
  })

  it('frames over the size limit are refused before anything is read', () => {
    fc.assert(fc.property(fc.integer({ min: 6, max: 4096 }), fc.integer({ min: 1, max: 1024 }), (limit, over) => {
      const r = outcome(() => decodeFrame(new Uint8Array(limit + over), limit), ['protocol'], /exceeds the \d+-byte limit/)
      expect(r.ok).toBe(false)
    }), fuzzParams(24))
  })

  it('encodeFrame: fields out of range are a bad-argument error, never a frame that decodes to something else', () => {
    const anyNumber = fc.oneof(u32, fc.integer(), fc.double(), fc.constantFrom(-1, 2 ** 32, 2 ** 16, 2 ** 53, NaN, Infinity, 0.5))
    const loose = fc.oneof(
      fc.record({ type: fc.constant('open' as const), id: anyNumber, modelId: fc.string({ unit: 'binary', maxLength: 300 }), layerStart: anyNumber, layerEnd: anyNumber, maxLength: anyNumber, dtype }),
      fc.record({ type: fc.constant('opened' as const), id: anyNumber, dim: anyNumber, maxRows: anyNumber }),
      fc.record({ type: fc.constant('close' as const), id: anyNumber }),
      fc.record({ type: fc.constant('error' as const), id: anyNumber, code: fc.string({ unit: 'binary', maxLength: 80 }), message: fc.string({ unit: 'binary', maxLength: 80 }) }),
      fc.record({ type: fc.constant('hidden' as const), id: anyNumber, dim: fc.oneof(fc.integer({ min: -2, max: 40 }), anyNumber), dtype, hidden: fc.float32Array({ maxLength: 64 }) }),
      fc.record({
        type: fc.constant('forward' as const), id: anyNumber, dim: fc.integer({ min: -2, max: 40 }), dtype, hidden: fc.float32Array({ maxLength: 64 }),
        positions: fc.array(fc.oneof(fc.integer(), anyNumber), { maxLength: 8 }).map((p) => Int32Array.from(p)),
      }),
    ) as fc.Arbitrary<Frame>
    let encoded = 0
    fc.assert(fc.property(loose, (frame) => {
      const r = outcome(() => encodeFrame(frame), ['bad-argument'], new RegExp(frame.type))
      if (!r.ok) return
      encoded++
      const back = decodeFrame(r.value)
      const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x)) // -0 is 0 on the wire
      // what was sent is what arrives: text as UTF-8 carries it (lone surrogates become U+FFFD)
      const wellFormed = (s: string) => new TextDecoder().decode(utf8.encode(s))
      switch (frame.type) {
        case 'open': expect(back).toEqual(plain({ ...frame, modelId: wellFormed(frame.modelId) })); break
        case 'error': expect(back).toEqual(plain({ ...frame, code: wellFormed(frame.code.slice(0, 64)), message: wellFormed(frame.message.slice(0, 2000)) })); break
        case 'hidden': case 'forward': expect(back).toMatchObject(plain({ id: frame.id, dim: frame.dim })); break
        default: expect(back).toEqual(plain(frame))
      }
    }), fuzzParams(25))
    expect(encoded).toBeGreaterThan(0)
  })
})
