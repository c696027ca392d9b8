import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clip, TabmeshError } from '../../core/errors.ts'
import { DEFAULT_MODEL_ID, type ModelEntry } from '../../model/source/registry.ts'
import { openLocalModel, REMOTE_ENTRY_FILE, resolveModelsDir } from '../models-dir.ts'
import { parseFlags } from './args.ts'

export const DESCRIBE_USAGE = `tabmesh describe [options]     print a model's registry entry (sizes, sha256 of every file and part, config)
  --model <id>           model id in the models directory (default ${DEFAULT_MODEL_ID})
  --models-dir <dir>     (default $TABMESH_MODELS or ../shared/models)
  --base-url <url>       the files are also published under this URL (e.g. https://huggingface.co/<repo>/resolve/main/):
                         each file gets url = <url><name>, and tabs fetch them from there
  --out <dir>            write <dir>/<id>/${REMOTE_ENTRY_FILE} instead of printing it: a models folder that serves
                         the entry alone, the bytes coming from --base-url`

/**
 * A model's registry entry, as the relay would serve it; with --base-url, an entry for a real
 * deployment whose weights stay on a public host: the relay serves only the entry, tabs read byte
 * ranges from the host (it must allow CORS with Range, as Hugging Face does) and check every part.
 */
/** `tabmesh describe`'s flags, checked: an unknown flag or a bad value is a 'bad-argument' error. */
export function parseDescribeFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    model: { type: 'string', default: DEFAULT_MODEL_ID }, 'models-dir': { type: 'string' }, 'base-url': { type: 'string' },
    out: { type: 'string' }, help: { type: 'boolean', default: false },
  })
  if (flags.help) return { help: true as const }
  const base = flags['base-url']
  if (base !== undefined && !/^https?:\/\/[^/]+\/(.*\/)?$/.test(base)) throw new TabmeshError('bad-argument', `--base-url ${clip(base, 100)}: give an http(s) URL ending in /`)
  if (flags.out && base === undefined) throw new TabmeshError('bad-argument', '--out writes an entry whose files come from --base-url; give --base-url too')
  return { help: false as const, model: flags.model!, modelsDir: flags['models-dir'], base, out: flags.out }
}

export async function describeCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseDescribeFlags(argv)
  if (flags.help) {
    out(DESCRIBE_USAGE)
    return 0
  }
  const { base } = flags
  const { entry } = await openLocalModel(resolveModelsDir(flags.modelsDir), flags.model)
  const described: ModelEntry = base === undefined ? entry : { ...entry, files: entry.files.map((f) => ({ ...f, url: new URL(encodeURIComponent(f.name), base).href })) }
  const json = JSON.stringify(described, null, 2)
  if (!flags.out) {
    out(json)
    return 0
  }
  const folder = join(flags.out, entry.id)
  mkdirSync(folder, { recursive: true })
  writeFileSync(join(folder, REMOTE_ENTRY_FILE), json + '\n')
  out(`wrote ${join(folder, REMOTE_ENTRY_FILE)}: ${entry.files.length} files from ${base}`)
  return 0
}
