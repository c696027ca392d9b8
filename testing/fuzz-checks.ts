/**
 * Assertions the fuzz tests (`*.fuzz.test.ts`) share: what may come out of an input surface (a
 * value, or a TabmeshError with an expected code and a clear message, nothing else), a time bound
 * per case, and a bound on any single allocation while a surface runs.
 */
import { expect } from 'vitest'
import { TabmeshError, type ErrorCode } from '../src/core/errors.ts'

/** Longest error message accepted: a message names what was wrong; it does not echo a hostile input back. */
export const MAX_ERROR_MESSAGE = 1000
/** A generous bound on one case: anything slower is a hang waiting for a bigger input. */
export const CASE_TIME_LIMIT_MS = 2000

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: TabmeshError }

/** Checks that `error` is a TabmeshError with one of `codes` and a clear message (non-empty, bounded, matching `mentions`). */
export function expectTypedError(error: unknown, codes: readonly ErrorCode[], mentions?: RegExp): asserts error is TabmeshError {
  if (!(error instanceof TabmeshError)) {
    // the original error, with its stack, is what the fuzz report needs
    throw new Error(`expected a TabmeshError (${codes.join(' | ')}), got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`, { cause: error })
  }
  expect(codes, `code of: ${error.message}`).toContain(error.code)
  expect(error.message.trim().length, 'an empty error message').toBeGreaterThan(0)
  expect(error.message.length, `a ${error.message.length}-character error message: ${error.message.slice(0, 200)}...`).toBeLessThanOrEqual(MAX_ERROR_MESSAGE)
  if (mentions) expect(error.message).toMatch(mentions)
}

function checkTime(started: number, label: string): void {
  const ms = performance.now() - started
  expect(ms, `${label} took ${ms.toFixed(0)} ms`).toBeLessThan(CASE_TIME_LIMIT_MS)
}

/** Judges one case's result: within the time bound, and a value or a typed error. */
function judge<T>(started: number, label: string, settled: { value: T } | { error: unknown }, codes: readonly ErrorCode[], mentions?: RegExp): Outcome<T> {
  checkTime(started, label)
  if ('value' in settled) return { ok: true, value: settled.value }
  expectTypedError(settled.error, codes, mentions)
  return { ok: false, error: settled.error }
}

/** Runs `fn` within the time bound; returns its value, or the TabmeshError it threw (checked by expectTypedError). */
export function outcome<T>(fn: () => T, codes: readonly ErrorCode[], mentions?: RegExp, label = 'a case'): Outcome<T> {
  const started = performance.now()
  let settled: { value: T } | { error: unknown }
  try { settled = { value: fn() } } catch (error) { settled = { error } }
  return judge(started, label, settled, codes, mentions)
}

/** outcome() for async surfaces (model readers). */
export async function outcomeAsync<T>(fn: () => Promise<T>, codes: readonly ErrorCode[], mentions?: RegExp, label = 'a case'): Promise<Outcome<T>> {
  const started = performance.now()
  let settled: { value: T } | { error: unknown }
  try { settled = { value: await fn() } } catch (error) { settled = { error } }
  return judge(started, label, settled, codes, mentions)
}

/** Thrown by the allocation guard; never a TabmeshError, so a fuzz property that meets one fails. */
export class AllocationLimitError extends Error {
  override name = 'AllocationLimitError'
}

const BUFFER_CONSTRUCTORS = [
  'ArrayBuffer', 'SharedArrayBuffer', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
] as const

/**
 * Until the returned function is called, any `new <TypedArray>(n)` / `new ArrayBuffer(n)` (also
 * through `.from` and `.of`) asking for more than `maxBytes` throws AllocationLimitError instead of
 * allocating: an input whose header claims gigabytes must be refused before anything that size is
 * made. Code looks these constructors up on the global object when it runs, so the guard sees the
 * readers' allocations.
 */
export function guardAllocations(maxBytes: number): () => void {
  const g = globalThis as unknown as Record<string, unknown>
  const originals = new Map<string, unknown>()
  for (const name of BUFFER_CONSTRUCTORS) {
    const ctor = g[name] as (abstract new (...args: unknown[]) => object) & { BYTES_PER_ELEMENT?: number }
    if (typeof ctor !== 'function') continue
    const width = ctor.BYTES_PER_ELEMENT ?? 1
    originals.set(name, ctor)
    g[name] = new Proxy(ctor, {
      construct(target, args, newTarget) {
        const n = args[0]
        if (typeof n === 'number' && n * width > maxBytes) {
          throw new AllocationLimitError(`new ${name}(${n}) would allocate ${n * width} bytes, over the ${maxBytes}-byte bound`)
        }
        return Reflect.construct(target, args, newTarget)
      },
    })
  }
  return () => {
    for (const [name, ctor] of originals) g[name] = ctor
  }
}

/** Bytes held in ArrayBuffers now (process-wide), for the across-the-run memory bound. */
export const arrayBufferBytes = (): number => process.memoryUsage().arrayBuffers
