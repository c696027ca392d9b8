import type { Engine } from '../engine/engine.ts'
import { generateTokens, type GenerateOptions } from '../engine/generate.ts'

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
