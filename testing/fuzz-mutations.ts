/**
 * fast-check arbitraries that damage valid inputs, for the fuzz tests: byte-level (flip bits,
 * overwrite, truncate, extend, splice) and JSON-level (delete a key, change a value's type, add an
 * unknown key, duplicate a key in the text). Each mutation is a plain value that fast-check can
 * shrink, applied deterministically to the input.
 */
import fc from 'fast-check'

export type ByteMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'u32'; at: number; value: number } // a length or count field that lies

const position = fc.nat({ max: 1 << 30 })
const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]

export const byteMutation = (maxExtend = 64): fc.Arbitrary<ByteMutation> => fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: maxExtend }) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: maxExtend }) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: position, value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat({ max: 0xffffffff })) }),
)

/**
 * Applies mutations in order. Positions are taken modulo the current length, or, with `focus`,
 * modulo min(length, focus) so that most damage lands in a header.
 */
export function mutateBytes(input: Uint8Array, mutations: readonly ByteMutation[], focus?: number): Uint8Array {
  let bytes: Uint8Array = input.slice()
  for (const m of mutations) {
    const span = Math.max(1, Math.min(bytes.length, focus ?? bytes.length))
    const at = 'at' in m ? m.at % span : 0
    switch (m.kind) {
      case 'flip': if (bytes.length > 0) bytes[at] ^= 1 << m.bit; break
      case 'set': if (bytes.length > 0) bytes[at] = m.value; break
      case 'truncate': bytes = bytes.slice(0, at); break
      case 'extend': bytes = concat(bytes, m.bytes); break
      case 'insert': bytes = concat(bytes.subarray(0, at), m.bytes, bytes.subarray(at)); break
      case 'delete': bytes = concat(bytes.subarray(0, at), bytes.subarray(at + m.length)); break
      case 'u32':
        if (bytes.length >= 4) new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(Math.min(at, bytes.length - 4), m.value, true)
        break
    }
  }
  return bytes
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

export type JsonMutation =
  | { kind: 'delete'; path: number }
  | { kind: 'replace'; path: number; value: unknown }
  | { kind: 'add'; path: number; key: string; value: unknown }

/** Any JSON value, small: the replacements a JSON mutation puts in. */
export const smallJson = (): fc.Arbitrary<unknown> => fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(null, true, false, 0, -1, 1, 1.5, 2 ** 22 - 1, 2 ** 53, -(2 ** 31), 1e308, '', 'x', '0', [], {}) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
)

export const jsonMutation = (): fc.Arbitrary<JsonMutation> => fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), path: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), path: fc.nat(), value: smallJson() }),
  fc.record({ kind: fc.constant('add' as const), path: fc.nat(), key: fc.oneof(fc.constantFrom('v', 'type', 'extra', '__proto__', 'constructor', 'id', 'length'), fc.string({ maxLength: 12 })), value: smallJson() }),
)

type Container = Record<string, unknown> | unknown[]

/** Every (container, key) in a JSON tree, the root's own slot first, in a fixed order. */
function slots(root: { value: unknown }): [Container | { value: unknown }, string | number][] {
  const out: [Container | { value: unknown }, string | number][] = [[root, 'value']]
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => { out.push([v, i]); walk(x) })
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) { out.push([v as Record<string, unknown>, k]); walk(x) }
  }
  walk(root.value)
  return out
}

/** Applies JSON mutations to a deep copy of `value`. */
export function mutateJson(value: unknown, mutations: readonly JsonMutation[]): unknown {
  const root = { value: structuredClone(value) }
  for (const m of mutations) {
    const all = slots(root)
    const [container, key] = all[m.path % all.length]
    const target = container as Record<string | number, unknown>
    switch (m.kind) {
      case 'delete':
        if (Array.isArray(container)) container.splice(key as number, 1)
        else if (container !== root) delete target[key]
        else root.value = undefined
        break
      case 'replace':
        target[key] = structuredClone(m.value)
        break
      case 'add': {
        const slot = target[key]
        if (Array.isArray(slot)) slot.push(structuredClone(m.value))
        else if (slot !== null && typeof slot === 'object') Object.defineProperty(slot, m.key, { value: structuredClone(m.value), enumerable: true, writable: true, configurable: true })
        break
      }
    }
  }
  return root.value
}

/** JSON text of `value` with one of its keys repeated (JSON.parse keeps the last), when it has any. */
export function duplicateKey(json: string, keyIndex: number, value: unknown): string {
  const keys = [...json.matchAll(/"((?:[^"\\]|\\.)*)":/g)]
  if (keys.length === 0 || !json.endsWith('}')) return json
  const key = keys[keyIndex % keys.length][1]
  return `${json.slice(0, -1)},"${key}":${JSON.stringify(value) ?? 'null'}}`
}
