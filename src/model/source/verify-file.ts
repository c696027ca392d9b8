import { TabmeshError } from '../../core/errors.ts'
import { memorySource, type ByteSource } from './byte-source.ts'
import type { RegistryFile } from './registry.ts'

/**
 * Whole-file integrity: a file is read completely, its sha256 (Web Crypto, in Node and browsers)
 * compared with the registry's, and only then used; a mismatch is refused and nothing of it is
 * returned. This suits files read whole anyway (tokenizers, configs, small models); a contributor
 * loading one layer range of a large model checks its parts instead (integrity.ts).
 */

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Throws unless `bytes` hash to `expected` (lowercase hex); the message names the file. */
export async function checkSha256(bytes: Uint8Array, expected: string, name: string): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new TabmeshError('model-mismatch', `${name}: the registry's sha256 ${JSON.stringify(expected)} is not 64 lowercase hex digits`)
  const got = await sha256Hex(bytes)
  if (got !== expected) {
    throw new TabmeshError('model-mismatch', `${name}: sha256 ${got} does not match the registry's ${expected}; the file is corrupt or not the one the registry lists, refusing it`)
  }
}

/**
 * Reads all of `source`, checks its size and sha256 against the registry entry, and returns the
 * verified bytes as an in-memory source (so later reads cannot see different bytes).
 */
export async function verifiedSource(source: ByteSource, file: Pick<RegistryFile, 'name' | 'size' | 'sha256'>): Promise<ByteSource> {
  const size = await source.size()
  if (size !== file.size) throw new TabmeshError('model-mismatch', `${source.name}: ${size} bytes, but the registry lists ${file.name} with ${file.size}; refusing it`)
  const bytes = await source.read(0, size)
  await checkSha256(bytes, file.sha256, source.name)
  return memorySource(bytes, source.name)
}
