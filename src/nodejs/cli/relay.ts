import { startRelayNode, type RelayNode } from '../relay/libp2p-relay.ts'
import { TabmeshError } from '../../core/errors.ts'
import { numberFlag, parseFlags } from './args.ts'
import { untilStopped } from './lifetime.ts'

export const RELAY_USAGE = `tabmesh relay [options]      run the libp2p relay alone (WebRTC signalling and gossip for tabs)
  --host <addr>          interface to bind (default 127.0.0.1)
  --port N               WebSockets port (default 9090; 0 picks a free one)
  --max-reservations N   tabs it can relay for (default 1024)`

const isPort = (n: number) => Number.isInteger(n) && n >= 0 && n < 65536

/** Starts the libp2p relay, turning a busy port into a one-line user error. */
export async function listenRelay(host: string, port: number, maxReservations?: number): Promise<RelayNode> {
  try {
    return await startRelayNode({ host, port, maxReservations })
  } catch (err) {
    throw new TabmeshError('bad-argument', `cannot run the libp2p relay on ${host}:${port}: ${listenError(err)}`)
  }
}

/** The short reason a listen failed (EADDRINUSE, ...); libp2p wraps it in a long multi-line message. */
export function listenError(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  if (e.code && /^E[A-Z]+$/.test(e.code)) return e.code
  const code = /\b(EADDRINUSE|EADDRNOTAVAIL|EACCES|EPERM)\b/.exec(String(e.message))
  return code ? code[1] : String(e.message).split('\n')[0]
}

/** `tabmesh relay`'s flags, checked: an unknown flag or a bad value is a 'bad-argument' error. */
export function parseRelayFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string' }, 'max-reservations': { type: 'string' },
    help: { type: 'boolean', default: false },
  })
  if (flags.help) return { help: true as const }
  return {
    help: false as const,
    host: flags.host!,
    port: numberFlag(flags.port, 'port', 9090, isPort),
    maxReservations: numberFlag(flags['max-reservations'], 'max-reservations', 1024, (n) => Number.isInteger(n) && n > 0 && n <= 100_000),
  }
}

export async function relayCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseRelayFlags(argv)
  if (flags.help) {
    out(RELAY_USAGE)
    return 0
  }
  const { port, maxReservations } = flags
  const relay = await listenRelay(flags.host, port, maxReservations)
  for (const addr of relay.multiaddrs) out(`relay ${addr}`)
  await untilStopped()
  await relay.stop()
  return 0
}
