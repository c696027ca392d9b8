/**
 * Tokenizers: text to ids and back, streaming UTF-8 decode. llama2.c's tokenizer.bin (run.c's
 * algorithm), byte-level and sentencepiece BPE from tokenizer.json, and the vocabulary embedded in
 * GGUF files, all behind one Tokenizer interface.
 */
export * from './tokenizer.ts'
export * from './bpe.ts'
export * from './hf-tokenizer.ts'
export * from './gguf-tokenizer.ts'
export * from './spm-vocab.ts'
