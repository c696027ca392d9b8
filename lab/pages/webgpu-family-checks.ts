import type { Engine } from '../../src/engine/engine.ts'
import { createReferenceEngine } from '../../src/engine/reference/reference.ts'
import { argmax } from '../../src/engine/sampler.ts'
import type { WebGpuEngine, WebGpuEngineOptions } from '../../src/engine/webgpu/engine.ts'
import { createRng } from '../../src/core/rng.ts'
import { memorySource } from '../../src/model/source/byte-source.ts'
import { loadLlama2c } from '../../src/model/formats/llama2c.ts'
import { LAYER_TENSORS, layerTensorName, layerTensorShape, type ModelSlice, type RopeScaling, type Tensor } from '../../src/model/model.ts'
import { dequantizeTensor, quantizeTensor, type QuantType } from '../../src/model/quant/index.ts'
import { makeSyntheticLlama2c, withFamilyFeatures, type SyntheticShape } from '../../src/model/formats/synthetic.ts'
import { greedyIds } from './engine-compare.ts'

/**
 * The webgpu engine on llama-family variations, against the reference engine on the same slice:
 * Qwen2-style q/k/v biases (seeded random bq, bk, bv added to a synthetic llama2.c model), RoPE
 * scaling (set on the config), and weight matrices kept as Q8_0 / Q4_0 blocks (quantizeTensor; the
 * reference then runs on dequantizeTensor of the same blocks, so the weights are numerically equal).
 * A run prefills in calls of several rows, decodes teacher-forced one row at a time, and generates
 * greedily; it also measures how far the reference moves when a feature is dropped from it, so a test
 * can tell that a GPU ignoring the feature would fail.
 */

/** head size 16: with llama3 scaling on an original context of 32 its 8 pairs hit all three branches */
export const FAMILY_SHAPE: SyntheticShape = { dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 96, sharedClassifier: false }

export interface FamilyOptions {
  bias: boolean // add seeded random bq, bk, bv (config.attentionBias)
  scaling?: RopeScaling
  quant?: QuantType // every layer matrix and the classifier kept in blocks
  prefillRows: number[] // rows of each prefill call, positions from 0 on
  decodeSteps: number // single-row calls after the prefill
  greedyTokens: number
  seed: number // weights, biases and tokens
  engine?: Omit<WebGpuEngineOptions, 'device'>
}

export interface FamilyRun {
  prefill: { calls: number; rows: number; maxHiddenDiff: number; maxHidden: number; maxLogitDiff: number; maxLogit: number; argmaxMismatches: number }
  decode: { steps: number; maxLogitDiff: number; maxLogit: number; argmaxMismatches: number }
  greedy: { reference: number[]; webgpu: number[] }
  /** Largest logit difference between the reference and the reference without the biases / without the scaling. */
  withoutBias?: number
  withoutScaling?: number
  /** engine.weightBytes with the biases minus without them, and the biases' padded bytes. */
  biasWeightBytes?: { counted: number; expected: number }
  quantizedMatrices: number
}

interface Trace {
  hidden: Float32Array[] // (rows, dim) per prefill call
  logits: Float32Array[] // (vocab) per call, prefill calls then decode steps
}

/** The model for `o`: the slice the webgpu engine runs and the fp32 slice the reference runs. */
export async function familyModel(o: Pick<FamilyOptions, 'bias' | 'scaling' | 'quant' | 'seed'>): Promise<{ gpu: ModelSlice; reference: ModelSlice }> {
  const base = await loadLlama2c(memorySource(makeSyntheticLlama2c(FAMILY_SHAPE, o.seed)))
  // biases in ±0.5 move the logits by units (withoutBias), yet greedy runs still vary for most seeds
  const reference = withFamilyFeatures(base, { biasSeed: o.bias ? o.seed + 7 : undefined, ropeScaling: o.scaling })
  const { config, tensors } = reference
  if (!o.quant) return { gpu: reference, reference }

  const gpuTensors = new Map(tensors)
  const refTensors = new Map(tensors)
  const quantized = new Map<string, ReturnType<typeof quantizeTensor>>()
  const names: { name: string; shape: number[] }[] = [{ name: 'classifier', shape: [config.vocabSize, config.dim] }]
  for (let l = 0; l < config.nLayers; l++) {
    for (const t of LAYER_TENSORS) {
      const shape = layerTensorShape(config, t)
      if (shape.length === 2) names.push({ name: layerTensorName(l, t), shape })
    }
  }
  for (const { name, shape } of names) {
    const q = quantizeTensor(name, [shape[0], shape[1]], (tensors.get(name) as Tensor).data, o.quant)
    quantized.set(name, q)
    gpuTensors.delete(name)
    refTensors.set(name, { name, shape, data: dequantizeTensor(q) })
  }
  return { gpu: { config, spec: base.spec, tensors: gpuTensors, quantized }, reference: { config, spec: base.spec, tensors: refTensors } }
}

async function trace(e: Engine, tokens: Int32Array, prefillRows: number[], decodeSteps: number, withHidden: boolean): Promise<Trace> {
  await e.reset()
  const t: Trace = { hidden: [], logits: [] }
  let pos = 0
  const call = async (n: number) => {
    const ids = tokens.subarray(pos, pos + n)
    const positions = Int32Array.from({ length: n }, (_, i) => pos + i)
    const hidden = await e.forward(await e.embed(ids), positions)
    if (withHidden && n > 1) t.hidden.push(hidden.slice())
    t.logits.push((await e.head(hidden)).slice())
    pos += n
  }
  for (const n of prefillRows) await call(n)
  for (let i = 0; i < decodeSteps; i++) await call(1)
  return t
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
const maxDiff = (a: Float32Array, b: Float32Array) => {
  let m = 0
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i])
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d
  }
  return m
}

type EngineFactory = (slice: ModelSlice, options: WebGpuEngineOptions) => Promise<WebGpuEngine>

export async function runFamily(device: GPUDevice, createEngine: EngineFactory, o: FamilyOptions): Promise<FamilyRun> {
  const { gpu: gpuSlice, reference: refSlice } = await familyModel(o)
  const c = refSlice.config
  const rng = createRng(o.seed + 1)
  const prefillTotal = o.prefillRows.reduce((a, b) => a + b, 0)
  const tokens = Int32Array.from({ length: prefillTotal + o.decodeSteps }, () => 3 + Math.floor(rng.nextF32() * (c.vocabSize - 3)))
  const reference = createReferenceEngine(refSlice)
  const gpu = await createEngine(gpuSlice, { ...o.engine, device })
  try {
    const a = await trace(reference, tokens, o.prefillRows, o.decodeSteps, true)
    const b = await trace(gpu, tokens, o.prefillRows, o.decodeSteps, true)
    const compareLogits = (from: number, to: number) => {
      let diff = 0, max = 0, mismatches = 0
      for (let i = from; i < to; i++) {
        diff = Math.max(diff, maxDiff(a.logits[i], b.logits[i]))
        max = Math.max(max, maxAbs(a.logits[i]))
        if (argmax(a.logits[i]) !== argmax(b.logits[i])) mismatches++
      }
      return { maxLogitDiff: diff, maxLogit: max, argmaxMismatches: mismatches }
    }
    let maxHiddenDiff = 0, maxHidden = 0
    for (let i = 0; i < a.hidden.length; i++) {
      maxHiddenDiff = Math.max(maxHiddenDiff, maxDiff(a.hidden[i], b.hidden[i]))
      maxHidden = Math.max(maxHidden, maxAbs(a.hidden[i]))
    }
    const prompt = Array.from(tokens.subarray(0, 6))
    const run: FamilyRun = {
      prefill: { calls: o.prefillRows.length, rows: prefillTotal, maxHiddenDiff, maxHidden, ...compareLogits(0, o.prefillRows.length) },
      decode: { steps: o.decodeSteps, ...compareLogits(o.prefillRows.length, a.logits.length) },
      greedy: { reference: await greedyIds(reference, prompt, o.greedyTokens, 5), webgpu: await greedyIds(gpu, prompt, o.greedyTokens, 5) },
      quantizedMatrices: gpuSlice.quantized?.size ?? 0,
    }
    // the reference without one feature, on the same weights and tokens
    const ablated = async (slice: ModelSlice) => {
      const t = await trace(createReferenceEngine(slice), tokens, o.prefillRows, o.decodeSteps, false)
      return Math.max(...t.logits.map((l, i) => maxDiff(a.logits[i], l)))
    }
    if (o.bias) {
      run.withoutBias = await ablated({ ...refSlice, config: { ...c, attentionBias: undefined } })
      const plain = await createEngine({ ...gpuSlice, config: { ...c, attentionBias: undefined } }, { ...o.engine, device })
      const pad16 = (bytes: number) => Math.max(16, Math.ceil(bytes / 16) * 16)
      run.biasWeightBytes = { counted: gpu.weightBytes - plain.weightBytes, expected: c.nLayers * (pad16(c.dim * 4) + 2 * pad16(c.kvDim * 4)) }
      plain.destroy()
    }
    if (o.scaling) run.withoutScaling = await ablated({ ...refSlice, config: { ...c, ropeScaling: undefined } })
    return run
  } finally {
    gpu.destroy()
  }
}
