import { PLAIN_CONTINUATION_TEMPLATE } from '../template/index.ts'
import { modelToGguf, type LlamaGgufOptions } from './gguf-writer.ts'
import type { ModelSlice } from '../model.ts'
import { modelToSafetensors, spmTokenizerJson, type HfWriteOptions } from './safetensors-writer.ts'
import type { SpmVocab } from '../tokenizer/spm-vocab.ts'

/**
 * A llama2.c model (weights and its tokenizer.bin vocabulary) as the files of another format's model
 * folder: one .gguf with the tokenizer in its metadata, or model.safetensors + config.json +
 * tokenizer.json (sentencepiece-style BPE) + tokenizer_config.json. Story models get the plain
 * continuation chat template. Used by `tabmesh convert` and the format tests.
 */
export function llama2cAsGguf(model: ModelSlice, vocab: SpmVocab, options: LlamaGgufOptions = {}): Uint8Array {
  return modelToGguf(model, { vocab, chatTemplate: PLAIN_CONTINUATION_TEMPLATE, ...options })
}

export function llama2cAsHfFiles(model: ModelSlice, vocab: SpmVocab, options: HfWriteOptions = {}): Record<string, Uint8Array | string> {
  const { safetensors, config } = modelToSafetensors(model, options)
  return {
    'model.safetensors': safetensors,
    'config.json': JSON.stringify(config, null, 2),
    'tokenizer.json': JSON.stringify(spmTokenizerJson(vocab)),
    'tokenizer_config.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', chat_template: PLAIN_CONTINUATION_TEMPLATE }),
  }
}
