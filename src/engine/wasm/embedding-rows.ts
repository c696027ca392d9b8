import { TabmeshError } from '../../core/errors.ts'
import { getTensor, type ModelSlice } from '../../model/model.ts'
import { dequantize, QUANT_BLOCK_BYTES, QUANT_BLOCK_SIZE, QUANT_GGML_TYPE } from '../../model/quant/index.ts'

/** Copies the embedding of token t into out at offset: fp32 rows, or one row of Q8_0 / Q4_0 blocks dequantized. */
export function embeddingRows(slice: ModelSlice): (t: number, out: Float32Array, offset: number) => void {
  const dim = slice.config.dim
  const q = slice.quantized?.get('token_embedding')
  if (!q) {
    const table = getTensor(slice, 'token_embedding').data // (vocab, dim)
    return (t, out, offset) => out.set(table.subarray(t * dim, (t + 1) * dim), offset)
  }
  if (q.shape[1] !== dim || dim % QUANT_BLOCK_SIZE !== 0) throw new TabmeshError('model-mismatch', `token_embedding: quantized shape (${q.shape.join(', ')}) does not hold rows of ${dim}`)
  const rowBytes = (dim / QUANT_BLOCK_SIZE) * QUANT_BLOCK_BYTES[q.type]
  const type = QUANT_GGML_TYPE[q.type]
  return (t, out, offset) => dequantize(type, q.blocks.subarray(t * rowBytes, (t + 1) * rowBytes), dim, out, offset, 'token_embedding')
}

/**
 * embed() of the wasm engines: each token's row (checked against the vocabulary) into one buffer
 * allocated here, (max_batch, dim); returns the view of the call's rows.
 */
export function createEmbedder(slice: ModelSlice, maxBatch: number): (tokens: Int32Array) => Float32Array {
  const c = slice.config
  const row = slice.spec.embedding ? embeddingRows(slice) : undefined
  const embedded = new Float32Array(maxBatch * c.dim) // (max_batch, dim)
  return (tokens) => {
    if (!row) throw new TabmeshError('bad-argument', 'this engine holds no token embedding')
    if (tokens.length < 1 || tokens.length > maxBatch) throw new TabmeshError('bad-argument', `embed: ${tokens.length} rows; between 1 and ${maxBatch} per call`)
    for (let r = 0; r < tokens.length; r++) {
      const t = tokens[r]
      if (!(t >= 0 && t < c.vocabSize)) throw new TabmeshError('bad-argument', `token id ${t} is outside the vocabulary`)
      row(t, embedded, r * c.dim)
    }
    return embedded.subarray(0, tokens.length * c.dim)
  }
}
