import { INFER_PROTOCOL } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import { f16ToF32, f32ToF16 } from '../core/f16.ts'

/**
 * The activation protocol's frames (/tabmesh/1/infer): binary, little-endian, one frame per
 * length-prefixed message on a libp2p stream. A stream carries one session on one hop:
 *   client -> host: OPEN, then FORWARD*, then CLOSE
 *   host -> client: OPENED or ERROR, then one HIDDEN or ERROR per FORWARD
 * A FORWARD may start at or below the session's filled positions: that rolls the session's KV cache
 * back there (a rejected speculative draft, a replay). CLOSE with keep asks the host to keep the
 * session's first `length` positions as a prefix under the id OPENED gave it; a later OPEN by the
 * same client names that id and how many positions it reuses.
 * Tensors travel as raw f32 (or f16 when both ends agree), never JSON. Every length is checked
 * against the frame size before anything is allocated; a bad frame is a 'protocol' error.
 *
 * Layout: u8 version | u8 type | u32 request id | body
 *   OPEN     u8 dtype | u16 layer start | u16 layer end | u32 max length | u32 prefix id (0: none) |
 *            u32 prefix length | u8 id length | model id (utf-8)
 *   OPENED   u32 dim | u32 max rows per forward | u32 this session's prefix id | u32 positions reused
 *   FORWARD  u32 rows | u32 dim | u8 dtype | i32 positions[rows] | values[rows * dim]
 *   HIDDEN   u32 rows | u32 dim | u8 dtype | values[rows * dim]
 *   CLOSE    u8 keep (0 or 1) | u32 positions to keep
 *   ERROR    u8 code length | code (ascii) | u16 message length | message (utf-8)
 */
export const FRAME_VERSION = 2 // 2: prefixes (OPEN, OPENED, CLOSE) and rollback
export const MAX_FRAME_BYTES = 8 * 1024 * 1024 // a prefill chunk of 64 rows of dim 8192 in f32 fits twice over
const HEADER_BYTES = 6

export type Dtype = 'f32' | 'f16'
const DTYPES: Dtype[] = ['f32', 'f16']
const dtypeBytes = (d: Dtype) => (d === 'f32' ? 4 : 2)

export type Frame =
  | { type: 'open'; id: number; modelId: string; layerStart: number; layerEnd: number; maxLength: number; dtype: Dtype; prefixId: number; prefixLength: number }
  | { type: 'opened'; id: number; dim: number; maxRows: number; prefixId: number; reused: number }
  | { type: 'forward'; id: number; positions: Int32Array; hidden: Float32Array; dim: number; dtype: Dtype }
  | { type: 'hidden'; id: number; hidden: Float32Array; dim: number; dtype: Dtype }
  | { type: 'close'; id: number; keep: boolean; length: number }
  | { type: 'error'; id: number; code: string; message: string }

const TYPES = ['open', 'opened', 'forward', 'hidden', 'close', 'error'] as const

const fail = (why: string): never => {
  throw new TabmeshError('protocol', `bad ${INFER_PROTOCOL} frame: ${why}`)
}

function writeValues(view: DataView, offset: number, values: Float32Array, dtype: Dtype): void {
  if (dtype === 'f32') new Uint8Array(view.buffer, view.byteOffset + offset, values.length * 4).set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
  else for (let i = 0; i < values.length; i++) view.setUint16(offset + i * 2, f32ToF16(values[i]), true)
}

function readValues(view: DataView, offset: number, count: number, dtype: Dtype): Float32Array {
  const out = new Float32Array(count)
  if (dtype === 'f32') new Uint8Array(out.buffer).set(new Uint8Array(view.buffer, view.byteOffset + offset, count * 4))
  else for (let i = 0; i < count; i++) out[i] = f16ToF32(view.getUint16(offset + i * 2, true))
  return out
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Refuses a field the wire cannot carry as it is (DataView would wrap or truncate it silently). */
function checkField(frame: Frame, field: string, value: number, max: number, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TabmeshError('bad-argument', `a ${frame.type} frame's ${field} ${value} is not an integer in [${min}, ${max}]`)
  }
}

export function encodeFrame(frame: Frame): Uint8Array {
  checkField(frame, 'id', frame.id, 0xffffffff)
  switch (frame.type) {
    case 'open':
      checkField(frame, 'layerStart', frame.layerStart, 0xffff)
      checkField(frame, 'layerEnd', frame.layerEnd, 0xffff)
      checkField(frame, 'maxLength', frame.maxLength, 0xffffffff)
      checkField(frame, 'prefixId', frame.prefixId, 0xffffffff)
      checkField(frame, 'prefixLength', frame.prefixLength, 0xffffffff)
      break
    case 'opened':
      checkField(frame, 'dim', frame.dim, 0xffffffff)
      checkField(frame, 'maxRows', frame.maxRows, 0xffffffff)
      checkField(frame, 'prefixId', frame.prefixId, 0xffffffff)
      checkField(frame, 'reused', frame.reused, 0xffffffff)
      break
    case 'close':
      checkField(frame, 'length', frame.length, 0xffffffff)
      break
    case 'forward':
    case 'hidden':
      checkField(frame, 'dim', frame.dim, 0xffffffff, 1)
      break
  }
  let body: number
  let text1: Uint8Array | undefined
  let text2: Uint8Array | undefined
  switch (frame.type) {
    case 'open':
      text1 = utf8.encode(frame.modelId)
      if (text1.length > 255) throw new TabmeshError('bad-argument', `an open frame's model id is ${text1.length} bytes of UTF-8; at most 255 fit`)
      body = 1 + 2 + 2 + 4 + 8 + 1 + text1.length
      break
    case 'opened': body = 16; break
    case 'forward': body = 9 + frame.positions.length * 4 + frame.hidden.length * dtypeBytes(frame.dtype); break
    case 'hidden': body = 9 + frame.hidden.length * dtypeBytes(frame.dtype); break
    case 'close': body = 5; break
    case 'error': text1 = utf8.encode(frame.code.slice(0, 64)); text2 = utf8.encode(frame.message.slice(0, 2000)); body = 1 + text1.length + 2 + text2.length; break
  }
  const bytes = new Uint8Array(HEADER_BYTES + body)
  if (bytes.length > MAX_FRAME_BYTES) throw new TabmeshError('bad-argument', `a ${frame.type} frame of ${bytes.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit; send fewer rows`)
  const v = new DataView(bytes.buffer)
  v.setUint8(0, FRAME_VERSION)
  v.setUint8(1, TYPES.indexOf(frame.type))
  v.setUint32(2, frame.id, true)
  let o = HEADER_BYTES
  switch (frame.type) {
    case 'open':
      v.setUint8(o, DTYPES.indexOf(frame.dtype)); v.setUint16(o + 1, frame.layerStart, true); v.setUint16(o + 3, frame.layerEnd, true)
      v.setUint32(o + 5, frame.maxLength, true); v.setUint32(o + 9, frame.prefixId, true); v.setUint32(o + 13, frame.prefixLength, true)
      v.setUint8(o + 17, text1!.length); bytes.set(text1!, o + 18)
      break
    case 'opened':
      v.setUint32(o, frame.dim, true); v.setUint32(o + 4, frame.maxRows, true); v.setUint32(o + 8, frame.prefixId, true); v.setUint32(o + 12, frame.reused, true)
      break
    case 'close':
      v.setUint8(o, frame.keep ? 1 : 0); v.setUint32(o + 1, frame.length, true)
      break
    case 'forward':
    case 'hidden': {
      const rows = frame.hidden.length / frame.dim
      if (!Number.isInteger(rows) || rows === 0 || (frame.type === 'forward' && rows !== frame.positions.length)) {
        throw new TabmeshError('bad-argument', `a ${frame.type} frame's ${frame.hidden.length} values do not make rows of ${frame.dim}${frame.type === 'forward' ? ` for ${frame.positions.length} positions` : ''}`)
      }
      v.setUint32(o, rows, true); v.setUint32(o + 4, frame.dim, true); v.setUint8(o + 8, DTYPES.indexOf(frame.dtype))
      o += 9
      if (frame.type === 'forward') {
        for (let i = 0; i < rows; i++) v.setInt32(o + i * 4, frame.positions[i], true)
        o += rows * 4
      }
      writeValues(v, o, frame.hidden, frame.dtype)
      break
    }
    case 'error':
      v.setUint8(o, text1!.length); bytes.set(text1!, o + 1); o += 1 + text1!.length
      v.setUint16(o, text2!.length, true); bytes.set(text2!, o + 2)
      break
  }
  return bytes
}

/** Parses one frame; throws a 'protocol' TabmeshError for anything malformed. Never trusts a length. */
export function decodeFrame(bytes: Uint8Array, maxBytes = MAX_FRAME_BYTES): Frame {
  if (bytes.length > maxBytes) fail(`${bytes.length} bytes exceeds the ${maxBytes}-byte limit`)
  if (bytes.length < HEADER_BYTES) fail(`${bytes.length} bytes is shorter than the header`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const version = v.getUint8(0)
  if (version !== FRAME_VERSION) fail(`version ${version}, this peer speaks ${FRAME_VERSION}`)
  const type = TYPES[v.getUint8(1)] ?? fail(`unknown type ${v.getUint8(1)}`)
  const id = v.getUint32(2, true)
  const o = HEADER_BYTES
  const need = (n: number) => { if (bytes.length < n) fail(`${type} frame cut short (${bytes.length} of ${n} bytes)`) }
  const exact = (n: number) => { if (bytes.length !== n) fail(`${type} frame has ${bytes.length} bytes, its fields say ${n}`) }
  const dtypeAt = (at: number) => DTYPES[v.getUint8(at)] ?? fail(`unknown dtype ${v.getUint8(at)}`)
  const text = (at: number, n: number) => {
    try { return fromUtf8.decode(bytes.subarray(at, at + n)) } catch { return fail('text is not UTF-8') }
  }
  switch (type) {
    case 'open': {
      need(o + 18)
      const idLength = v.getUint8(o + 17)
      exact(o + 18 + idLength)
      return {
        type, id, dtype: dtypeAt(o), layerStart: v.getUint16(o + 1, true), layerEnd: v.getUint16(o + 3, true), maxLength: v.getUint32(o + 5, true),
        prefixId: v.getUint32(o + 9, true), prefixLength: v.getUint32(o + 13, true), modelId: text(o + 18, idLength),
      }
    }
    case 'opened':
      exact(o + 16)
      return { type, id, dim: v.getUint32(o, true), maxRows: v.getUint32(o + 4, true), prefixId: v.getUint32(o + 8, true), reused: v.getUint32(o + 12, true) }
    case 'forward':
    case 'hidden': {
      need(o + 9)
      const rows = v.getUint32(o, true)
      const dim = v.getUint32(o + 4, true)
      const dtype = dtypeAt(o + 8)
      if (rows === 0 || dim === 0) fail(`${type} with ${rows} rows of ${dim}`)
      const positionsBytes = type === 'forward' ? rows * 4 : 0
      exact(o + 9 + positionsBytes + rows * dim * dtypeBytes(dtype))
      const hidden = readValues(v, o + 9 + positionsBytes, rows * dim, dtype)
      if (type === 'hidden') return { type, id, hidden, dim, dtype }
      const positions = new Int32Array(rows)
      for (let i = 0; i < rows; i++) positions[i] = v.getInt32(o + 9 + i * 4, true)
      return { type, id, positions, hidden, dim, dtype }
    }
    case 'close': {
      exact(o + 5)
      const keep = v.getUint8(o)
      if (keep > 1) fail(`keep flag ${keep}`)
      return { type, id, keep: keep === 1, length: v.getUint32(o + 1, true) }
    }
    case 'error': {
      need(o + 1)
      const codeLength = v.getUint8(o)
      need(o + 1 + codeLength + 2)
      const messageLength = v.getUint16(o + 1 + codeLength, true)
      exact(o + 1 + codeLength + 2 + messageLength)
      return { type, id, code: text(o + 1, codeLength), message: text(o + 3 + codeLength, messageLength) }
    }
  }
}
