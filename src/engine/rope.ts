import type { ModelConfig } from '../model/model.ts'

/**
 * RoPE for every backend, defined once: the inverse frequencies with the model's scaling, and the
 * cos/sin table the engines rotate by. The reference and WebGPU engines read the table as it is;
 * the WASM engine's ONNX graph takes its cos and sin columns as the RotaryEmbedding caches. One
 * table, so every backend rotates by the very same f32 values.
 */

/**
 * RoPE's inverse frequency for each pair (2i, 2i+1) of a head, with the model's scaling applied
 * (formulas from Hugging Face transformers' rope utilities; llama.cpp computes the same).
 */
export function ropeInverseFrequencies(c: ModelConfig): Float32Array {
  const half = c.headSize / 2
  const out = new Float32Array(half) // (head_size / 2)
  const s = c.ropeScaling
  for (let i = 0; i < half; i++) {
    const base = Math.fround(1 / Math.pow(c.ropeTheta, (2 * i) / c.headSize))
    if (!s) out[i] = base
    else if (s.type === 'linear') out[i] = base / s.factor
    else if (s.type === 'factors') out[i] = base / s.factors[i]
    else {
      const wavelength = (2 * Math.PI) / base
      const lowWavelength = s.originalContext / s.lowFreqFactor
      const highWavelength = s.originalContext / s.highFreqFactor
      if (wavelength < highWavelength) out[i] = base
      else if (wavelength > lowWavelength) out[i] = base / s.factor
      else {
        const smooth = (s.originalContext / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
        out[i] = (1 - smooth) * (base / s.factor) + smooth * base
      }
    }
  }
  return out
}

/**
 * cos and sin of every (position, pair): angle f32(pos * inverseFrequency[pair]), its cos and sin
 * taken in double precision and stored as f32. Layout (seqLen, inverseFrequency.length, 2):
 * [pos][pair][cos, sin]. The engines pass ropeInverseFrequencies(config) and config.seqLen; the
 * kernel checks pass frequencies of their own.
 */
export function ropeTable(seqLen: number, inverseFrequency: Float32Array): Float32Array {
  const half = inverseFrequency.length
  const table = new Float32Array(seqLen * half * 2) // (seqLen, half, cos|sin)
  for (let pos = 0; pos < seqLen; pos++) {
    for (let pair = 0; pair < half; pair++) {
      const angle = Math.fround(pos * inverseFrequency[pair])
      table[(pos * half + pair) * 2] = Math.cos(angle)
      table[(pos * half + pair) * 2 + 1] = Math.sin(angle)
    }
  }
  return table
}
