import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { TabmeshError } from '../errors.ts'
import { resolveModelsDir, scanModels, PROJECT_ROOT } from '../node/models-dir.ts'
import { startHttpServer } from '../relay/http-server.ts'
import { numberFlag, parseFlags } from './args.ts'

export const START_USAGE = `tabmesh start [options]      serve the built site and the models (run \`npm start\` to build first)
  --host <addr>          interface to bind (default 127.0.0.1)
  --port N               HTTP port (default 8080; 0 picks a free one)
  --models-dir <dir>     models to serve (default $TABMESH_MODELS or ../shared/models)
  --site-dir <dir>       built site (default dist/)`

export async function startCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseFlags(argv, {
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string' },
    'models-dir': { type: 'string' }, 'site-dir': { type: 'string' }, help: { type: 'boolean', default: false },
  })
  if (flags.help) {
    out(START_USAGE)
    return 0
  }
  const port = numberFlag(flags.port, 'port', 8080, (n) => Number.isInteger(n) && n >= 0 && n < 65536)
  const siteDir = flags['site-dir'] ?? join(PROJECT_ROOT, 'dist')
  if (!existsSync(join(siteDir, 'index.html'))) throw new TabmeshError('bad-argument', `${siteDir} holds no built site; run \`npm run build\` first (or \`npm start\`, which builds)`)
  const modelsDir = resolveModelsDir(flags['models-dir'])
  const models = await scanModels(modelsDir, (m) => console.error(`tabmesh: ${m}`))
  if (models.length === 0) throw new TabmeshError('model-not-found', `${modelsDir} holds no usable model`)
  let url: string
  try {
    ({ url } = await startHttpServer({ host: flags.host!, port, siteDir, modelsDir, registry: { models } }))
  } catch (err) {
    throw new TabmeshError('bad-argument', `cannot listen on ${flags.host}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  out(`tabmesh serving ${models.map((m) => m.id).join(', ')} from ${modelsDir}`)
  out(`open ${url}`)
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  return 0
}
