/**
 * Model formats: read a layer range of a checkpoint by byte ranges (llama2.c, GGUF, safetensors with
 * config.json), the Llama-family differences they share, writers for GGUF and safetensors, and the
 * seeded synthetic models used by the device probe.
 */
export * from './llama2c.ts'
export * from './gguf.ts'
export * from './safetensors.ts'
export * from './llama-family.ts'
export * from './gguf-writer.ts'
export * from './safetensors-writer.ts'
export * from './llama2c-export.ts'
export * from './synthetic.ts'
