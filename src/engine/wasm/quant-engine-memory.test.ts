import { expect, it } from 'vitest'
import { memorySource } from '../../model/source/byte-source.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import { quantizeSlice } from '../../model/quant/index.ts'
import { makeSyntheticLlama2c, type SyntheticShape } from '../../model/formats/synthetic.ts'
import { createWasmEngine } from './index.ts'
import { loadQuantKernels } from './quant-kernels.ts'

// A file of its own so the kernels' memory here is fresh: it only grows, and what other tests
// leave in it would hide how much a quantized model takes.


/** 27M weights in matrices (109 MB as fp32), every dimension a multiple of 32. */
const SHAPE: SyntheticShape = { dim: 512, hiddenDim: 1536, nLayers: 8, nHeads: 8, nKvHeads: 4, vocabSize: 4096, seqLen: 128, sharedClassifier: false }

it('holds Q4_0 and Q8_0 matrices at their block size in kernel memory, through decoding', async () => {
  const model = await loadLlama2c(memorySource(makeSyntheticLlama2c(SHAPE, 3)))
  const f32MatrixBytes = [...model.tensors].reduce((n, [name, t]) => n + (t.shape.length === 2 && name !== 'token_embedding' ? 4 * t.data.length : 0), 0)
  expect(f32MatrixBytes).toBeGreaterThan(100 << 20)
  const kernels = await loadQuantKernels()
  const memory = kernels.memory
  const kept: unknown[] = [] // every slice and engine stays alive: no blocks are freed midway
  for (const type of ['q4_0', 'q8_0'] as const) {
    const q = quantizeSlice(model, type)
    const blockBytes = [...q.quantized!.values()].reduce((n, m) => n + m.blocks.byteLength, 0)
    const before = memory.buffer.byteLength
    const held = kernels.weightBytes
    const engine = await createWasmEngine(q)
    kept.push(q, engine)
    let hidden = await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(1, 7, 9))), Int32Array.of(0, 1, 2))
    for (let pos = 3; pos < 11; pos++) {
      await engine.head(hidden)
      hidden = await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(pos))), Int32Array.of(pos))
    }
    // the blocks (0.5625 / 1.0625 bytes a weight), plus scratch for one call: inputs, outputs, one widened row
    expect(kernels.weightBytes - held).toBe(blockBytes)
    const growth = memory.buffer.byteLength - before
    expect(growth).toBeLessThan(blockBytes + (1 << 20))
    expect(growth).toBeLessThan((type === 'q4_0' ? 0.15 : 0.28) * f32MatrixBytes)
  }
})
