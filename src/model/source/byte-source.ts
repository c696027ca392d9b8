import { TabmeshError } from '../../core/errors.ts'

/**
 * Random access to the bytes of a model file, wherever it lives. Loading a layer range reads only
 * the byte ranges it needs through this interface, so a contributor hosting layers [a, b) never
 * downloads the rest. `bytesRead` counts what was actually fetched (tests assert on it).
 */
export interface ByteSource {
  readonly name: string
  /** Total size in bytes. */
  size(): Promise<number>
  /** Exactly `length` bytes starting at `offset`, or a TabmeshError. */
  read(offset: number, length: number): Promise<Uint8Array>
  readonly bytesRead: number
}

function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new TabmeshError('model-format', `${name}: read of ${length} bytes at ${offset} is past the end of the file (${size} bytes); the file is truncated or its header is wrong`)
  }
}

/** Bytes already in memory (a test fixture, or a file the user dropped on the page after reading it). */
export function memorySource(bytes: Uint8Array, name = 'memory'): ByteSource {
  let bytesRead = 0
  return {
    name,
    async size() { return bytes.byteLength },
    async read(offset, length) {
      checkRange(name, offset, length, bytes.byteLength)
      bytesRead += length
      return bytes.subarray(offset, offset + length)
    },
    get bytesRead() { return bytesRead },
  }
}

/** A File or Blob (drag-and-drop, <input type=file>, IndexedDB): slices are read lazily. */
export function blobSource(blob: Blob, name = 'blob'): ByteSource {
  let bytesRead = 0
  return {
    name,
    async size() { return blob.size },
    async read(offset, length) {
      checkRange(name, offset, length, blob.size)
      bytesRead += length
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer())
    },
    get bytesRead() { return bytesRead },
  }
}

/**
 * An HTTP resource read with Range requests. A server that ignores Range (200 instead of 206) is
 * refused rather than silently downloading everything for every slice.
 */
export function httpSource(url: string, options: { size?: number; fetch?: typeof fetch } = {}): ByteSource {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  let knownSize = options.size
  let bytesRead = 0
  async function size(): Promise<number> {
    if (knownSize !== undefined) return knownSize
    let res: Response
    try {
      res = await doFetch(url, { method: 'HEAD' })
    } catch (err) {
      throw new TabmeshError('fetch', `${url}: ${(err as Error).message}`)
    }
    const length = Number(res.headers.get('content-length'))
    if (!res.ok || !Number.isFinite(length)) throw new TabmeshError('fetch', `${url}: HEAD answered ${res.status} without a Content-Length`)
    knownSize = length
    return length
  }
  return {
    name: url,
    size,
    async read(offset, length) {
      checkRange(url, offset, length, await size())
      if (length === 0) return new Uint8Array(0)
      let res: Response
      try {
        res = await doFetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } })
      } catch (err) {
        throw new TabmeshError('fetch', `${url}: ${(err as Error).message}`)
      }
      if (res.status !== 206) throw new TabmeshError('fetch', `${url}: expected 206 Partial Content for a Range request, got ${res.status}`)
      const bytes = new Uint8Array(await res.arrayBuffer())
      if (bytes.byteLength !== length) throw new TabmeshError('fetch', `${url}: asked for ${length} bytes at ${offset}, got ${bytes.byteLength}`)
      bytesRead += length
      return bytes
    },
    get bytesRead() { return bytesRead },
  }
}
