import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stories260K, syntheticBytes, type SyntheticName } from './models.ts'
import { memorySource } from '../src/model/source/byte-source.ts'
import type { LlamaGgufOptions } from '../src/model/formats/gguf-writer.ts'
import { llama2cAsGguf, llama2cAsHfFiles } from '../src/model/formats/llama2c-export.ts'
import { loadLlama2c } from '../src/model/formats/llama2c.ts'
import type { ModelSlice } from '../src/model/model.ts'
import { llama2cVocab } from '../src/model/tokenizer/spm-vocab.ts'

/**
 * Test helper (Node): the project's own GGUF and safetensors fixtures, written at test time into a
 * temporary folder from stories260K and the synthetic llama2.c models. Nothing here is committed.
 */
export async function llama2cModel(name: 'stories260K' | SyntheticName): Promise<ModelSlice> {
  return loadLlama2c(memorySource(name === 'stories260K' ? stories260K.weights : syntheticBytes(name)))
}

export const storiesVocab = () => llama2cVocab(stories260K.tokenizer, 'tok512.bin')

export function storiesGguf(options: LlamaGgufOptions = {}): Promise<Uint8Array> {
  return llama2cModel('stories260K').then((m) => llama2cAsGguf(m, storiesVocab(), { name: 'stories260K', ...options }))
}

/** A folder of files that removes itself. */
export function tempFolder(prefix = 'tabmesh-formats-') {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return {
    dir,
    write(name: string, data: Uint8Array | string): string {
      const path = join(dir, name)
      writeFileSync(path, data)
      return path
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** stories260K as a Hugging Face folder: model.safetensors, config.json, tokenizer.json, tokenizer_config.json. */
export async function storiesHfFiles(dtype: 'F32' | 'F16' | 'BF16' = 'F32') {
  return llama2cAsHfFiles(await llama2cModel('stories260K'), storiesVocab(), { dtype }) as { 'model.safetensors': Uint8Array; 'config.json': string; 'tokenizer.json': string; 'tokenizer_config.json': string }
}
