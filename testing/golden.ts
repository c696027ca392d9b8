import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { resolveModelsDir } from '../src/nodejs/models-dir.ts'

const readGolden = (modelsDir: string) => readFileSync(join(modelsDir, 'stories260K/GOLDEN.md'), 'utf8')

/** The 65 ids of stories260K's GOLDEN.md (BOS first), read from the models directory. */
export function goldenIds(modelsDir = resolveModelsDir()): number[] {
  return readGolden(modelsDir).split('\n').find((l) => /^\s+1 \d+ \d+/.test(l))!.trim().split(/\s+/).map(Number)
}

/** The greedy text of GOLDEN.md (the indented block under "Decoded text"). */
export function goldenText(modelsDir = resolveModelsDir()): string {
  return /Decoded text[^\n]*\n\n((?: {4}.*\n)+)/.exec(readGolden(modelsDir))![1].trimEnd().split('\n').map((l) => l.slice(4)).join('\n')
}
