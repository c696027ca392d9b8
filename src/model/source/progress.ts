import type { ByteSource } from './byte-source.ts'

export interface LoadProgress {
  loadedBytes: number
  totalBytes: number
  lastReadBytes: number // bytes of the read that triggered this report
}

/** A ByteSource that reports the bytes read so far after every read. */
export function withProgress(source: ByteSource, totalBytes: number, onProgress: (p: LoadProgress) => void): ByteSource {
  let loadedBytes = 0
  return {
    name: source.name,
    size: () => source.size(),
    async read(offset, length) {
      const bytes = await source.read(offset, length)
      loadedBytes += length
      onProgress({ loadedBytes: Math.min(loadedBytes, totalBytes), totalBytes, lastReadBytes: length })
      return bytes
    },
    get bytesRead() { return source.bytesRead },
  }
}
