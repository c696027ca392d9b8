/**
 * Where model bytes come from: byte sources (HTTP Range, Blob, memory), the registry of models
 * served beside the site (sizes and sha256 per file and part), loading a registry entry's slice,
 * tokenizer and chat template, integrity checks, Cache Storage and load progress.
 */
export * from './byte-source.ts'
export * from './registry.ts'
export * from './entry.ts'
export * from './remote.ts'
export * from './integrity.ts'
export * from './verify-file.ts'
export * from './cache.ts'
export * from './progress.ts'
