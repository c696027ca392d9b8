import { watchedWasmMemories } from '../../../testing/heap-watch.ts' // first: before onnxruntime loads
import { expect, it } from 'vitest'
import { memorySource } from '../../model/source/byte-source.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import { quantizeSlice } from '../../model/quant/quant.ts'
import { makeSyntheticLlama2c, type SyntheticShape } from '../../model/formats/synthetic.ts'
import { loadStories } from '../../../testing/models.ts'
import { createWasmEngine } from './index.ts'

// A file of its own so onnxruntime's heap here is fresh: a wasm heap only grows, and what other
// tests leave in it would hide how much a quantized model takes.

/** 27M weights in matrices (109 MB as fp32), every dimension a multiple of 32. */
const SHAPE: SyntheticShape = { dim: 512, hiddenDim: 1536, nLayers: 8, nHeads: 8, nKvHeads: 4, vocabSize: 4096, seqLen: 128, sharedClassifier: false }

const heapBytes = () => Math.max(...watchedWasmMemories().map((m) => m.buffer.byteLength))

it('keeps Q4_0 and Q8_0 weights at about their quantized size in the onnxruntime heap (MatMulNBits), through decoding', async () => {
  // onnxruntime started with a tiny model: the heap it has before any big weights
  const tiny = await createWasmEngine(await loadStories())
  await tiny.forward(new Float32Array(64), Int32Array.of(0))
  await tiny.release()
  const baseline = heapBytes()

  const model = await loadLlama2c(memorySource(makeSyntheticLlama2c(SHAPE, 3)))
  const f32MatrixBytes = [...model.tensors].reduce((n, [name, t]) => n + (t.shape.length === 2 && name !== 'token_embedding' ? 4 * t.data.length : 0), 0)
  expect(f32MatrixBytes).toBeGreaterThan(100 << 20)
  const growth: Record<string, number> = {}
  for (const type of ['q4_0', 'q8_0'] as const) {
    const engine = await createWasmEngine(quantizeSlice(model, type), { quantized: 'matmulnbits' })
    let hidden = await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(1, 7, 9))), Int32Array.of(0, 1, 2))
    for (let pos = 3; pos < 11; pos++) {
      await engine.head(hidden)
      hidden = await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(pos))), Int32Array.of(pos))
    }
    growth[type] = heapBytes() - baseline
    await engine.release()
  }
  // MatMulNBits bytes per weight: 0.625 (Q4_0), 1.125 (Q8_0) of fp32's 4, plus onnxruntime's
  // fp32 scratch for one node (at most 16 MB) and activations; fp32 weights would be >= 1x.
  // The Q8_0 engine is made after the Q4_0 one is released, in memory the heap already has.
  expect(growth.q4_0).toBeLessThan(0.3 * f32MatrixBytes)
  expect(growth.q8_0).toBeLessThan(0.5 * f32MatrixBytes)
})
