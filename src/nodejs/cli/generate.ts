import { isBackendName, type BackendName } from '../../core/vocabulary.ts'
import { readFile } from 'node:fs/promises'
import { clip, TabmeshError } from '../../core/errors.ts'
import { createReferenceEngine } from '../../engine/reference/reference.ts'
import { generateTokens } from '../../engine/generate.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import { DEFAULT_MODEL_ID } from '../../model/source/registry.ts'
import { parseLlama2cTokenizer } from '../../model/tokenizer/tokenizer.ts'
import { fileSource } from '../file-source.ts'
import { openLocalModel, resolveModelsDir } from '../models-dir.ts'
import { loadEntrySlice, loadEntryTokenizer } from '../../model/source/entry.ts'
import { heldWeightBytes, type ModelSlice } from '../../model/model.ts'
import type { Tokenizer } from '../../model/tokenizer/tokenizer.ts'
import { numberFlag, parseFlags } from './args.ts'
import { withHeadlessTab } from './browser.ts'

export const GENERATE_USAGE = `tabmesh generate [options]
  --model <file|id>      a model id in the models directory, any format (default ${DEFAULT_MODEL_ID}), or a llama2.c checkpoint file
  --tokenizer <file>     with a checkpoint file: its tokenizer.bin
  --models-dir <dir>     where model ids are looked up (default $TABMESH_MODELS or ../shared/models)
  --prompt <text>        (default "")
  --max-tokens N         tokens to generate (default 64)
  --temperature T        0 = greedy (default 0)
  --top-p P              nucleus sampling mass, used when 0 < P < 1 (default 0.9)
  --seed S               random seed (default 42)
  --backend B            ref (Node), or wasm | webgpu | auto (in headless Chromium) (default ref)
  --json                 print one JSON object instead of text`

export interface GenerateResult {
  backend: string
  weightBytes: number // the model's weights as held in memory (Q8_0 / Q4_0 matrices at their block size)
  promptTokens: number[]
  tokens: number[]
  text: string
  tokensPerSecond: number
}

/** `tabmesh generate`'s flags, checked: an unknown flag or a bad value is a 'bad-argument' error (with --help, only the flags' shape is). */
export function parseGenerateFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    model: { type: 'string' }, tokenizer: { type: 'string' }, 'models-dir': { type: 'string' },
    prompt: { type: 'string', default: '' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-p': { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string', default: 'ref' },
    json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
  })
  if (flags.help) return { help: true as const }
  const backend = flags.backend!
  if (!isBackendName(backend) && backend !== 'auto') throw new TabmeshError('bad-argument', `--backend ${clip(backend, 40)} is not available; use ref, wasm, webgpu or auto`)
  return {
    help: false as const,
    model: flags.model ?? DEFAULT_MODEL_ID,
    tokenizer: flags.tokenizer,
    modelsDir: flags['models-dir'],
    prompt: flags.prompt ?? '',
    json: flags.json!,
    maxTokens: numberFlag(flags['max-tokens'], 'max-tokens', 64, (n) => Number.isInteger(n) && n >= 0),
    temperature: numberFlag(flags.temperature, 'temperature', 0, (n) => n >= 0 && Number.isFinite(n)),
    topP: numberFlag(flags['top-p'], 'top-p', 0.9),
    seed: numberFlag(flags.seed, 'seed', 42, (n) => Number.isSafeInteger(n) && n >= 0),
    backend: backend as BackendName | 'auto',
  }
}

export async function generateCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseGenerateFlags(argv)
  if (flags.help) {
    out(GENERATE_USAGE)
    return 0
  }
  const { maxTokens, temperature, topP, seed, backend, model } = flags
  const isFile = /[\\/]/.test(model) || model.endsWith('.bin')
  if (backend !== 'ref') {
    if (isFile || flags.tokenizer) throw new TabmeshError('bad-argument', `--backend ${backend} runs in Chromium against the models directory: give --model a model id (and --models-dir), not files`)
    const request = { model, prompt: flags.prompt, maxTokens, temperature, topP, seed, backend }
    const result = await withHeadlessTab({ modelsDir: flags.modelsDir }, (tab) => tab.call('generate', request))
    out(flags.json ? JSON.stringify(result) : result.text)
    return 0
  }
  let slice: ModelSlice
  let tokenizer: Tokenizer
  if (isFile) {
    const tokenizerPath = flags.tokenizer
    if (!tokenizerPath) throw new TabmeshError('bad-argument', '--tokenizer <file> is needed when --model is a file path')
    slice = await loadLlama2c(fileSource(model))
    let tokenizerBytes: Uint8Array
    try {
      tokenizerBytes = new Uint8Array(await readFile(tokenizerPath))
    } catch (err) {
      throw new TabmeshError('model-not-found', `cannot read tokenizer ${tokenizerPath}: ${(err as NodeJS.ErrnoException).code}`)
    }
    tokenizer = parseLlama2cTokenizer(tokenizerBytes, slice.config.vocabSize, tokenizerPath)
  } else {
    // a model id: any format, through the same registry loaders the tabs use; Q8_0 / Q4_0 stay in blocks
    if (flags.tokenizer) throw new TabmeshError('bad-argument', '--tokenizer goes with a checkpoint file; a model id brings its own tokenizer')
    const local = await openLocalModel(resolveModelsDir(flags.modelsDir), model)
    slice = await loadEntrySlice(local.entry, local.open, undefined, { keepQuantized: true })
    tokenizer = await loadEntryTokenizer(local.entry, local.open)
  }
  const engine = createReferenceEngine(slice)
  const promptTokens = tokenizer.encode(flags.prompt)

  const tokens: number[] = []
  const started = performance.now()
  for await (const t of generateTokens(engine, promptTokens, { maxTokens, temperature, topP, seed })) tokens.push(t)
  const seconds = (performance.now() - started) / 1000
  const text = tokenizer.decode(tokens, promptTokens[promptTokens.length - 1])
  const result: GenerateResult = { backend: engine.backend, weightBytes: heldWeightBytes(slice), promptTokens, tokens, text, tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0 }
  out(flags.json ? JSON.stringify(result) : text)
  return 0
}
