import type { Engine } from '../../src/engine/engine.ts'
import { argmax } from '../../src/engine/sampler.ts'
import { createRng } from '../../src/core/rng.ts'
import { collectTokens } from '../../testing/compare.ts'

/** Comparisons of an engine with the reference that lab pages share. */

/** Greedy ids from a fresh cache. */
export async function greedyIds(engine: Engine, prompt: number[], maxTokens: number, prefillChunk: number): Promise<number[]> {
  await engine.reset()
  return collectTokens(engine, prompt, { maxTokens, temperature: 0, topP: 1, seed: 0, prefillChunk })
}

/**
 * Teacher-forced run over the whole context: the same seeded random tokens through `reference` and
 * `engine` (both reset first) in calls of `rowsPerCall` rows (cycled), comparing the last row's
 * logits after every call.
 */
export async function teacherForced(reference: Engine, engine: Engine, rowsPerCall: number[], seed: number) {
  const c = reference.config
  await reference.reset()
  await engine.reset()
  const rng = createRng(seed)
  const tokens = Int32Array.from({ length: c.seqLen }, () => Math.floor(rng.nextF32() * c.vocabSize))
  let maxLogitDiff = 0, maxLogit = 0, argmaxMismatches = 0, calls = 0, lastPosition = -1
  for (let start = 0; start < c.seqLen; calls++) {
    const n = Math.min(rowsPerCall[calls % rowsPerCall.length], c.seqLen - start)
    const ids = tokens.subarray(start, start + n)
    const positions = Int32Array.from({ length: n }, (_, i) => start + i)
    const a = (await reference.head(await reference.forward(await reference.embed(ids), positions))).slice()
    const b = await engine.head(await engine.forward(await engine.embed(ids), positions))
    for (let i = 0; i < a.length; i++) {
      maxLogitDiff = Math.max(maxLogitDiff, Math.abs(a[i] - b[i]))
      maxLogit = Math.max(maxLogit, Math.abs(a[i]))
    }
    if (argmax(a) !== argmax(b)) argmaxMismatches++
    lastPosition = start + n - 1
    start += n
  }
  return { calls, lastPosition, seqLen: c.seqLen, maxLogitDiff, maxLogit, argmaxMismatches }
}
