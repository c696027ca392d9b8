import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { clip, quoted, TabmeshError } from '../../core/errors.ts'
import type { LlamaGgufOptions } from '../../model/formats/gguf-writer.ts'
import { llama2cAsGguf, llama2cAsHfFiles } from '../../model/formats/llama2c-export.ts'
import { loadLlama2c } from '../../model/formats/llama2c.ts'
import { DEFAULT_MODEL_ID } from '../../model/source/registry.ts'
import type { HfWriteOptions } from '../../model/formats/safetensors-writer.ts'
import { llama2cVocab } from '../../model/tokenizer/spm-vocab.ts'
import { fileSource } from '../file-source.ts'
import { modelPaths, resolveModelsDir } from '../models-dir.ts'
import { parseFlags } from './args.ts'

export const CONVERT_USAGE = `tabmesh convert [options]      write a llama2.c model out as GGUF or safetensors (a new model folder)
  --model <id>           llama2.c model id in the models directory (default ${DEFAULT_MODEL_ID})
  --models-dir <dir>     where --model is read (default $TABMESH_MODELS or ../shared/models)
  --to gguf|safetensors  output format (default gguf)
  --type T               gguf: F32 | F16 | Q8_0 | Q4_0 | Q4_K | Q6_K; safetensors: F32 | F16 | BF16 (default F32)
  --out <dir>            models directory to write the new folder into (default: the models directory)
  --id <id>              the new folder's name (default <model>-<type>, e.g. stories260K-q8_0)`

const GGUF_TYPES = ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'] as const
const SAFETENSORS_TYPES = ['F32', 'F16', 'BF16'] as const

/**
 * The project's own GGUF and safetensors models, made from a llama2.c checkpoint and its
 * tokenizer.bin: the tokenizer goes into the GGUF metadata, or into a sentencepiece-style
 * tokenizer.json; matrices are quantized as llama.cpp would (rows that are not whole blocks stay F32).
 */
/** `tabmesh convert`'s flags, checked: an unknown flag or a bad value is a 'bad-argument' error. */
export function parseConvertFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    model: { type: 'string', default: DEFAULT_MODEL_ID }, 'models-dir': { type: 'string' }, to: { type: 'string', default: 'gguf' },
    type: { type: 'string', default: 'F32' }, out: { type: 'string' }, id: { type: 'string' }, help: { type: 'boolean', default: false },
  })
  if (flags.help) return { help: true as const }
  const to = flags.to!
  const type = flags.type!.toUpperCase()
  if (to !== 'gguf' && to !== 'safetensors') throw new TabmeshError('bad-argument', `--to ${clip(to, 40)}: use gguf or safetensors`)
  const allowed: readonly string[] = to === 'gguf' ? GGUF_TYPES : SAFETENSORS_TYPES
  if (!allowed.includes(type)) throw new TabmeshError('bad-argument', `--type ${clip(flags.type!, 40)} cannot be written as ${to}; use ${allowed.join(', ')}`)
  const id = flags.id ?? `${flags.model}-${type.toLowerCase()}${to === 'safetensors' ? '-hf' : ''}`
  if (!/^[\w.-]+$/.test(id)) throw new TabmeshError('bad-argument', `--id ${quoted(id, 40)}: use letters, digits, '.', '_' and '-'`)
  return { help: false as const, model: flags.model!, modelsDir: flags['models-dir'], to: to as 'gguf' | 'safetensors', type, out: flags.out, id }
}

export async function convertCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseConvertFlags(argv)
  if (flags.help) {
    out(CONVERT_USAGE)
    return 0
  }
  const { to, type, id } = flags
  const modelsDir = resolveModelsDir(flags.modelsDir)
  const folder = join(flags.out ?? modelsDir, id)
  if (existsSync(folder)) throw new TabmeshError('bad-argument', `${folder} already exists; pick another --id or remove it`)

  const paths = modelPaths(modelsDir, flags.model!)
  const model = await loadLlama2c(fileSource(paths.weights))
  const vocab = llama2cVocab(new Uint8Array(await readFile(paths.tokenizer)), paths.tokenizer)
  const files = to === 'gguf'
    ? { [`${id}.gguf`]: llama2cAsGguf(model, vocab, { type: type as LlamaGgufOptions['type'], name: flags.model }) }
    : llama2cAsHfFiles(model, vocab, { dtype: type as HfWriteOptions['dtype'] })
  mkdirSync(folder, { recursive: true })
  for (const [name, data] of Object.entries(files)) writeFileSync(join(folder, name), data)
  const bytes = Object.values(files).reduce((n, d) => n + (typeof d === 'string' ? d.length : d.byteLength), 0)
  out(`wrote ${folder} (${to} ${type}, ${bytes} bytes)`)
  return 0
}
