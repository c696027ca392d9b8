/**
 * ICE servers for WebRTC between tabs: STUN lets a tab behind a home router learn its public
 * address (server-reflexive candidates, enough through most NATs); TURN relays the media for tabs
 * behind NATs that map every destination to a new port (symmetric NAT) or block UDP.
 *
 * Where they come from: the site's GET /relay (the relay's configuration, with TURN credentials it
 * issues for a short time: coturn's REST-API scheme, see src/nodejs/relay/turn.ts), CLI flags, or
 * the embed's `data-ice-servers` attribute. None on loopback: host candidates are enough there.
 *
 * Every list is validated here, whoever sent it: a list from a site or a page is data, and a
 * malformed one is refused with TabmeshError('bad-argument') rather than handed to
 * RTCPeerConnection (which throws on the first dial, far from the cause).
 */
import { z } from 'zod'
import { clip, TabmeshError } from '../core/errors.ts'

/** One ICE server, as RTCIceServer (urls always a list here). */
export interface IceServer {
  urls: string[]
  username?: string
  credential?: string
}

/** What GET /relay says about ICE: the servers, and when the TURN credentials among them expire. */
export interface IceConfig {
  iceServers: IceServer[]
  /** Unix ms after which the TURN credentials are void (absent: they do not expire). */
  expiresAt?: number
}

export const MAX_ICE_SERVERS = 8
const MAX_URLS = 4

const iceUrl = z.string().max(256).regex(/^(stun|stuns|turn|turns):[^\s]+$/, 'an ICE server URL starts with stun:, stuns:, turn: or turns:')
const iceServerSchema = z.object({
  urls: z.union([iceUrl, z.array(iceUrl).min(1).max(MAX_URLS)]),
  username: z.string().max(256).optional(),
  credential: z.string().max(256).optional(),
}).strict().refine((s) => !(Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => u.startsWith('turn')) || (s.username !== undefined && s.credential !== undefined), 'a TURN server needs a username and a credential')

const iceServersSchema = z.array(iceServerSchema).max(MAX_ICE_SERVERS)

/** Validates a list of ICE servers from anywhere (JSON from a site, an attribute, flags). */
export function parseIceServers(value: unknown, where = 'ICE servers'): IceServer[] {
  const parsed = iceServersSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new TabmeshError('bad-argument', `${where}: ${issue.path.length ? `[${issue.path.join('.')}] ` : ''}${clip(issue.message, 160)}`)
  }
  return parsed.data.map((s) => ({ urls: Array.isArray(s.urls) ? s.urls : [s.urls], ...(s.username !== undefined ? { username: s.username, credential: s.credential } : {}) }))
}

/** Parses the JSON text of a list of ICE servers (an embed attribute, a CLI flag). */
export function parseIceServersJson(text: string, where = 'ICE servers'): IceServer[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new TabmeshError('bad-argument', `${where}: not JSON: ${clip(text)}`)
  }
  return parseIceServers(value, where)
}

/** The ICE servers of plain flags: STUN URLs, and TURN URLs sharing one username and credential. */
export function iceServersFromFlags(flags: { stun?: readonly string[]; turn?: readonly string[]; turnUsername?: string; turnCredential?: string }): IceServer[] {
  const servers: IceServer[] = []
  if (flags.stun?.length) servers.push({ urls: [...flags.stun] })
  if (flags.turn?.length) servers.push({ urls: [...flags.turn], username: flags.turnUsername, credential: flags.turnCredential })
  return parseIceServers(servers, 'ICE flags')
}

/** Whether a list holds a TURN server (the only way through a symmetric NAT). */
export const hasTurn = (servers: readonly IceServer[]) => servers.some((s) => s.urls.some((u) => u.startsWith('turn')))

/** A fixed list, or one that is fetched again when its credentials are about to expire. */
export type IceSource = readonly IceServer[] | (() => Promise<IceConfig>)

export interface IceProvider {
  /** The RTCConfiguration for the next connection (libp2p's webRTC asks once per connection). */
  rtcConfiguration(): Promise<RTCConfiguration>
  /** The servers in use now (for the UI and logs). */
  current(): IceServer[]
}

/**
 * The RTCConfiguration each new WebRTC connection gets. With a fetched source, the list is fetched
 * again when its credentials have less than `refreshBeforeMs` left (default 5 min); if that fails,
 * the old list is used (a STUN server still helps) and the failure logged.
 */
export function createIceProvider(source: IceSource = [], initial?: IceConfig, options: { refreshBeforeMs?: number; now?: () => number; log?: (line: string) => void } = {}): IceProvider {
  const now = options.now ?? (() => Date.now())
  const refreshBeforeMs = options.refreshBeforeMs ?? 5 * 60_000
  let config: IceConfig = typeof source === 'function' ? (initial ?? { iceServers: [] }) : { iceServers: [...source] }
  let refreshing: Promise<void> | undefined
  const stale = () => typeof source === 'function' && config.expiresAt !== undefined && config.expiresAt - now() < refreshBeforeMs
  const refresh = async () => {
    if (typeof source !== 'function') return
    try {
      const next = await source()
      config = { iceServers: parseIceServers(next.iceServers), expiresAt: next.expiresAt }
    } catch (err) {
      options.log?.(`tabmesh: could not refresh the ICE servers (${(err as Error).message}); using the old ones`)
      // do not retry on every dial: try again after a minute
      config = { ...config, expiresAt: now() + refreshBeforeMs + 60_000 }
    }
  }
  return {
    async rtcConfiguration() {
      if (stale()) await (refreshing ??= refresh().finally(() => { refreshing = undefined }))
      return { iceServers: config.iceServers.map((s) => ({ ...s, urls: [...s.urls] })) }
    },
    current: () => config.iceServers,
  }
}
