import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { TabmeshError } from '../../core/errors.ts'
import { resolveModelsDir, scanModels, PROJECT_ROOT } from '../models-dir.ts'
import { startTabmeshServer, type TabmeshServer } from '../relay/server.ts'
import { numberFlag, parseFlags } from './args.ts'
import { listenError } from './relay.ts'
import { listFlag } from './swarm.ts'
import { untilStopped } from './lifetime.ts'
import { launchHeadless, type HeadlessBrowser } from './browser.ts'

export const START_USAGE = `tabmesh start [options]      serve the built site and the models, and run the libp2p relay (run \`npm start\` to build first)
  --host <addr>          interface to bind (default 127.0.0.1)
  --port N               HTTP port (default 8080; 0 picks a free one)
  --relay-port N         libp2p WebSockets port (default 0: a free one; tabs learn it from GET /relay)
  --models-dir <dir>     models to serve (default $TABMESH_MODELS or ../shared/models)
  --site-dir <dir>       built site (default dist/)
  --contributors N       headless contributor tabs hosting the default model (default 2; 0 for none)
  --stun <url>           STUN server(s) tabs use for WebRTC (comma-separated or repeated), e.g. stun:stun.l.google.com:19302
  --turn <url>           TURN server(s), e.g. turn:turn.example.org:3478?transport=udp
  --turn-secret <s>      the TURN server's static-auth-secret (or $TABMESH_TURN_SECRET): short-lived credentials per tab
  --turn-ttl S           lifetime of those credentials (default 3600 s)
  --turn-username <u>, --turn-credential <c>   fixed TURN credentials instead of a secret
  --also-relay <addr>    another relay of this deployment (ws multiaddr with /p2p/<id>; repeatable): tabs link to all`

/** `tabmesh start`'s flags, checked before anything starts: an unknown flag or a bad value is a 'bad-argument' error. */
export function parseStartFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string' }, 'relay-port': { type: 'string' },
    'models-dir': { type: 'string' }, 'site-dir': { type: 'string' }, contributors: { type: 'string' }, help: { type: 'boolean', default: false },
    stun: { type: 'string', multiple: true }, turn: { type: 'string', multiple: true }, 'turn-secret': { type: 'string' }, 'turn-ttl': { type: 'string' },
    'turn-username': { type: 'string' }, 'turn-credential': { type: 'string' }, 'also-relay': { type: 'string', multiple: true },
  })
  if (flags.help) return { help: true as const }
  return {
    help: false as const,
    host: flags.host!,
    port: numberFlag(flags.port, 'port', 8080, (n) => Number.isInteger(n) && n >= 0 && n < 65536),
    relayPort: numberFlag(flags['relay-port'], 'relay-port', 0, (n) => Number.isInteger(n) && n >= 0 && n < 65536),
    contributors: numberFlag(flags.contributors, 'contributors', 2, (n) => Number.isInteger(n) && n >= 0 && n <= 16),
    modelsDir: flags['models-dir'],
    siteDir: flags['site-dir'],
    ice: {
      stun: listFlag(flags.stun), turn: listFlag(flags.turn), turnSecret: flags['turn-secret'] ?? process.env.TABMESH_TURN_SECRET,
      turnUsername: flags['turn-username'], turnCredential: flags['turn-credential'],
      turnTtlSeconds: numberFlag(flags['turn-ttl'], 'turn-ttl', 3600, (n) => Number.isInteger(n) && n >= 60 && n <= 7 * 86400),
    },
    otherRelays: listFlag(flags['also-relay']).map((a) => {
      if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+\/(ws|wss|tls\/ws)\/p2p\/\w+$/.test(a)) throw new TabmeshError('bad-argument', `--also-relay ${a.slice(0, 100)} is not a relay's ws multiaddr ending in /p2p/<peer id>`)
      return a
    }),
  }
}

export async function startCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseStartFlags(argv)
  if (flags.help) {
    out(START_USAGE)
    return 0
  }
  const { port, relayPort, contributors } = flags
  const siteDir = flags.siteDir ?? join(PROJECT_ROOT, 'dist')
  if (!existsSync(join(siteDir, 'index.html'))) throw new TabmeshError('bad-argument', `${siteDir} holds no built site; run \`npm run build\` first (or \`npm start\`, which builds)`)
  const modelsDir = resolveModelsDir(flags.modelsDir)
  // hashes come from the models directory's hash cache; a large file hashed anew reports progress
  const models = await scanModels(modelsDir, (m) => console.error(`tabmesh: ${m}`), { progress: (line) => console.error(`tabmesh: ${line}`) })
  if (models.length === 0) throw new TabmeshError('model-not-found', `${modelsDir} holds no usable model`)
  let server: TabmeshServer
  try {
    server = await startTabmeshServer({ host: flags.host, port, relayPort, siteDir, modelsDir, registry: { models }, ice: flags.ice, otherRelays: flags.otherRelays })
  } catch (err) {
    if (err instanceof TabmeshError) throw err
    throw new TabmeshError('bad-argument', `cannot listen on ${flags.host} (HTTP port ${port}, relay port ${relayPort}): ${listenError(err)}`)
  }
  out(`tabmesh serving ${models.map((m) => m.id).join(', ')} from ${modelsDir}`)
  for (const addr of server.relay.multiaddrs) out(`relay ${addr}`)
  for (const addr of flags.otherRelays) out(`also relay ${addr}`)
  const { stun, turn, turnSecret, turnTtlSeconds } = flags.ice
  if (stun.length + turn.length > 0) out(`ice ${[...stun, ...turn].join(' ')}${turn.length ? (turnSecret ? ` (TURN credentials minted per tab, valid ${turnTtlSeconds} s)` : ' (fixed TURN credentials)') : ''}`)
  let browser: HeadlessBrowser | undefined
  if (contributors > 0) {
    browser = await launchHeadless(server.url)
    for (let i = 0; i < contributors; i++) {
      const tab = await browser.open()
      const info = await tab.call('contribute', { backend: 'auto' })
      out(`contributor ${i + 1}: ${info.peerId} hosts layers [${info.layers.start}, ${info.layers.end}) of ${info.modelId} on ${info.backend}`)
    }
  }
  out(`open ${server.url}`)
  await untilStopped()
  await browser?.close().catch(() => {})
  await server.stop()
  return 0
}
