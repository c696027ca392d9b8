/**
 * The model room: what a model is (model.ts: config, tensors, slices by layer range) and everything
 * that reads one — formats/ (checkpoints by byte range, writers), quant/ (GGML blocks), tokenizer/,
 * template/ (chat templates, prompt building) and source/ (byte sources, registry, loading, integrity).
 */
export * from './model.ts'
export * from './formats/index.ts'
export * from './quant/index.ts'
export * from './tokenizer/index.ts'
export * from './template/index.ts'
export * from './source/index.ts'
