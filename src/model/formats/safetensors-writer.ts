import { halfSplitRotaryRows } from './llama-family.ts'
import { LAYER_BIAS_TENSORS, LAYER_TENSORS, getTensor, layerTensorName, type ModelSlice } from '../model.ts'
import { GGML_TYPE } from '../quant/index.ts'
import { encodeTensor } from './gguf-writer.ts'
import { hfTensorName } from './safetensors.ts'
import { SPM_SPACE, spmMergePairs, type SpmVocab } from '../tokenizer/spm-vocab.ts'

/**
 * Writes the project's Hugging Face-style fixtures: model.safetensors (wq/wk rows in
 * rotate_half order, as Hugging Face stores them), config.json, and a Llama-2-style
 * tokenizer.json for a sentencepiece vocabulary.
 */

export interface SafetensorsTensorOut {
  name: string
  dtype: 'F32' | 'F16' | 'BF16'
  shape: number[]
  data: Uint8Array
}

/** Serializes tensors in the given order; the header is padded with spaces to 8 bytes. */
export function writeSafetensors(tensors: SafetensorsTensorOut[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata }
  let offset = 0
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] }
    offset += t.data.byteLength
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + headerBytes.byteLength + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true)
  out.set(headerBytes, 8)
  let at = 8 + headerBytes.byteLength
  for (const t of tensors) {
    out.set(t.data, at)
    at += t.data.byteLength
  }
  return out
}

export interface HfWriteOptions {
  dtype?: 'F32' | 'F16' | 'BF16'
  modelType?: 'llama' | 'qwen2' // qwen2 adds q/k/v biases (zeros when the model has none)
}

/** A whole model as model.safetensors plus its config.json object. */
export function modelToSafetensors(model: ModelSlice, options: HfWriteOptions = {}): { safetensors: Uint8Array; config: Record<string, unknown> } {
  const c = model.config
  const dtype = options.dtype ?? 'F32'
  const modelType = options.modelType ?? 'llama'
  const type = GGML_TYPE[dtype]
  const tensors: SafetensorsTensorOut[] = []
  const halfSplit = (data: Float32Array, rows: number, heads: number) =>
    new Float32Array(halfSplitRotaryRows(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), rows, data.byteLength / rows, heads).buffer)
  const add = (name: string, data: Float32Array, shape: number[]) => tensors.push({ name: hfTensorName(name), dtype, shape, data: encodeTensor(data, type) })
  const emb = getTensor(model, 'token_embedding')
  add('token_embedding', emb.data, emb.shape)
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of LAYER_TENSORS) {
      const tensor = getTensor(model, layerTensorName(l, t))
      let data = tensor.data
      if (t === 'wq') data = halfSplit(data, c.dim, c.nHeads)
      if (t === 'wk') data = halfSplit(data, c.kvDim, c.nKvHeads)
      add(tensor.name, data, tensor.shape)
    }
    if (modelType === 'qwen2') {
      for (const b of LAYER_BIAS_TENSORS) {
        const size = b === 'bq' ? c.dim : c.kvDim
        let data = model.tensors.get(`layers.${l}.${b}`)?.data ?? new Float32Array(size)
        if (b !== 'bv') data = halfSplit(data, size, b === 'bq' ? c.nHeads : c.nKvHeads)
        add(`layers.${l}.${b}`, data, [size])
      }
    }
  }
  const norm = getTensor(model, 'final_norm')
  add('final_norm', norm.data, norm.shape)
  if (!c.sharedClassifier) {
    const cls = getTensor(model, 'classifier')
    add('classifier', cls.data, cls.shape)
  }
  const config: Record<string, unknown> = {
    architectures: [modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: modelType,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headSize,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling?.type === 'linear' ? { rope_type: 'linear', factor: c.ropeScaling.factor }
      : c.ropeScaling?.type === 'llama3' ? { rope_type: 'llama3', factor: c.ropeScaling.factor, low_freq_factor: c.ropeScaling.lowFreqFactor, high_freq_factor: c.ropeScaling.highFreqFactor, original_max_position_embeddings: c.ropeScaling.originalContext }
        : null,
    tie_word_embeddings: c.sharedClassifier,
    hidden_act: 'silu',
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds ?? c.eosId,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  }
  return { safetensors: writeSafetensors(tensors), config }
}

/**
 * A Llama-2-style tokenizer.json for a sentencepiece vocabulary: BPE with byte fallback, merges
 * ranked by the merged piece's score, "▁" for spaces with a prepended dummy prefix, <s> added
 * in front by the post-processor.
 */
export function spmTokenizerJson(vocab: SpmVocab): Record<string, unknown> {
  const special = vocab.pieces.map((content, id) => ({ id, content, kind: vocab.kinds[id] })).filter((t) => t.kind === 'control' || t.kind === 'unknown')
  const bos = vocab.pieces[vocab.kinds.indexOf('control')]
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPM_SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPM_SPACE }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [vocab.kinds.indexOf('control')], tokens: [bos] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPM_SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: vocab.pieces[vocab.kinds.indexOf('unknown')],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab.pieces.map((p, id) => [p, id])),
      merges: spmMergePairs(vocab).map(([a, b]) => [a, b]),
    },
  }
}
