import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { resolveModelsDir } from '../node/models-dir.ts'

/** The 65 ids of stories260K's GOLDEN.md (BOS first), read from the models directory. */
export function goldenIds(modelsDir = resolveModelsDir()): number[] {
  const golden = readFileSync(join(modelsDir, 'stories260K/GOLDEN.md'), 'utf8')
  return golden.split('\n').find((l) => /^\s+1 \d+ \d+/.test(l))!.trim().split(/\s+/).map(Number)
}
