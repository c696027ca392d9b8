import { open, stat } from 'node:fs/promises'
import { TabmeshError } from '../core/errors.ts'
import type { ByteSource } from '../model/source/byte-source.ts'

/** A local file read by byte range (Node only). */
export function fileSource(path: string): ByteSource {
  let bytesRead = 0
  let size: number | undefined
  const getSize = async () => {
    if (size === undefined) {
      try {
        size = (await stat(path)).size
      } catch (err) {
        throw new TabmeshError('model-not-found', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
    }
    return size
  }
  return {
    name: path,
    size: getSize,
    async read(offset, length) {
      const total = await getSize()
      if (offset < 0 || length < 0 || offset + length > total) {
        throw new TabmeshError('model-format', `${path}: read of ${length} bytes at ${offset} is past the end of the file (${total} bytes); the file is truncated or its header is wrong`)
      }
      const handle = await open(path, 'r')
      try {
        const out = new Uint8Array(length)
        const { bytesRead: got } = await handle.read(out, 0, length, offset)
        if (got !== length) throw new TabmeshError('model-format', `${path}: short read (${got} of ${length} bytes at ${offset})`)
        bytesRead += length
        return out
      } finally {
        await handle.close()
      }
    },
    get bytesRead() { return bytesRead },
  }
}
