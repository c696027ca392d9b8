import { readFileSync } from 'node:fs'
import { memorySource } from '../src/model/source/byte-source.ts'
import { loadLlama2c } from '../src/model/formats/llama2c.ts'
import type { SliceSpec } from '../src/model/model.ts'
import { makeSyntheticLlama2c, SYNTHETIC_SHAPES } from '../src/model/formats/synthetic.ts'
import { parseLlama2cTokenizer } from '../src/model/tokenizer/tokenizer.ts'
import { modelPaths, resolveModelsDir } from '../src/nodejs/models-dir.ts'
import { goldenIds } from './golden.ts'

/** Test helpers: the real stories260K from the models directory, and the synthetic models. */
export const stories260K = (() => {
  const paths = modelPaths(resolveModelsDir(), 'stories260K')
  return { weights: new Uint8Array(readFileSync(paths.weights)), tokenizer: new Uint8Array(readFileSync(paths.tokenizer)), paths }
})()

export const GOLDEN_IDS = goldenIds()

export const loadStories = (spec?: SliceSpec) => loadLlama2c(memorySource(stories260K.weights), spec)
export const storiesTokenizer = () => parseLlama2cTokenizer(stories260K.tokenizer, 512)

export type SyntheticName = keyof typeof SYNTHETIC_SHAPES
export const syntheticBytes = (name: SyntheticName, seed = 1234) => makeSyntheticLlama2c(SYNTHETIC_SHAPES[name], seed)
export const loadSynthetic = (name: SyntheticName, spec?: SliceSpec) => loadLlama2c(memorySource(syntheticBytes(name)), spec)
