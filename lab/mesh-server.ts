/**
 * The relay process for the mesh suite and benchmark: the same server `tabmesh start` runs (libp2p
 * relay + HTTP), serving a mesh-only build. Prints one JSON line {url, peerId, multiaddrs} when
 * ready, then runs until killed, so tests can kill it like a crashed relay.
 *
 * Environment: TABMESH_SITE_DIR (required), TABMESH_E2E_PORT / TABMESH_RELAY_PORT (default free
 * ports), TABMESH_HOST (default 127.0.0.1), TABMESH_STUN / TABMESH_TURN (comma-separated URLs),
 * TABMESH_TURN_SECRET, TABMESH_OTHER_RELAYS (comma-separated multiaddrs GET /relay lists too).
 */
import { resolveModelsDir, scanModels } from '../src/nodejs/models-dir.ts'
import { startTabmeshServer } from '../src/nodejs/relay/server.ts'

const siteDir = process.env.TABMESH_SITE_DIR
if (!siteDir) throw new Error('TABMESH_SITE_DIR must name the built site')
const modelsDir = resolveModelsDir()
const list = (name: string) => (process.env[name] ?? '').split(',').filter((x) => x !== '')
const server = await startTabmeshServer({
  host: process.env.TABMESH_HOST ?? '127.0.0.1', port: Number(process.env.TABMESH_E2E_PORT ?? 0), relayPort: Number(process.env.TABMESH_RELAY_PORT ?? 0),
  siteDir, modelsDir, registry: { models: await scanModels(modelsDir) },
  ice: { stun: list('TABMESH_STUN'), turn: list('TABMESH_TURN'), turnSecret: process.env.TABMESH_TURN_SECRET },
  otherRelays: list('TABMESH_OTHER_RELAYS'),
})
console.log(JSON.stringify({ url: server.url, peerId: server.relay.peerId, multiaddrs: server.relay.multiaddrs }))
const stop = () => {
  setTimeout(() => process.exit(0), 2000).unref() // do not hang on a connection that will not close
  void server.stop().then(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
// the test runner holds our stdin: if it dies without killing us, stdin closes and we go too
process.stdin.on('end', stop).resume()
