import type { Engine } from '../src/engine/engine.ts'
import { generateTokens, type GenerateOptions } from '../src/engine/generate.ts'
import { argmax } from '../src/engine/sampler.ts'

/** How far `actual` is from `expected`: the largest absolute difference over the largest |expected|. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Infinity
  let diff = 0
  let scale = 0
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]))
    scale = Math.max(scale, Math.abs(expected[i]))
  }
  return diff / scale
}

/** The tokens `engine` generates after `prompt`. */
export async function collectTokens(engine: Engine, prompt: number[], options: GenerateOptions): Promise<number[]> {
  const out: number[] = []
  for await (const t of generateTokens(engine, prompt, options)) out.push(t)
  return out
}

/**
 * Largest relative errors of `engine` against `ref` (both reset first, both holding the whole model):
 * a prompt read in one call (hidden states of every row, logits of the last), then `steps` decode
 * steps fed the reference's greedy ids (logits of each), and how many of those steps picked another id.
 */
export async function compareFullModel(engine: Engine, ref: Engine, prompt: number[], steps: number): Promise<{ prefill: number; logits: number; argmaxMismatches: number }> {
  await engine.reset()
  await ref.reset()
  const tokens = Int32Array.from(prompt)
  const positions = Int32Array.from(prompt, (_, i) => i)
  const expected = Float32Array.from(await ref.forward(Float32Array.from(await ref.embed(tokens)), positions))
  const actual = Float32Array.from(await engine.forward(Float32Array.from(await engine.embed(tokens)), positions))
  const prefill = relativeError(actual, expected)
  let refLogits = Float32Array.from(await ref.head(expected))
  let logits = relativeError(Float32Array.from(await engine.head(actual)), refLogits)
  let argmaxMismatches = 0
  for (let step = 0; step < steps; step++) {
    const next = argmax(refLogits)
    const position = Int32Array.of(prompt.length + step)
    const e = Float32Array.from(await engine.head(await engine.forward(Float32Array.from(await engine.embed(Int32Array.of(next))), position)))
    refLogits = Float32Array.from(await ref.head(await ref.forward(Float32Array.from(await ref.embed(Int32Array.of(next))), position)))
    logits = Math.max(logits, relativeError(e, refLogits))
    if (argmax(e) !== argmax(refLogits)) argmaxMismatches++
  }
  return { prefill, logits, argmaxMismatches }
}
