/**
 * What the relay tells tabs about ICE (GET /relay): the STUN and TURN servers of the deployment,
 * and for a TURN server that shares a secret with the relay, credentials minted per request that
 * expire after `turnTtlSeconds`, in coturn's TURN REST API scheme (`use-auth-secret`):
 *
 *   username   = "<unix expiry seconds>:<name>"
 *   credential = base64(HMAC-SHA1(secret, username))
 *
 * coturn checks the HMAC and the expiry itself, so the relay and the TURN server share only the
 * secret; a leaked credential is worthless after its expiry.
 */
import { createHmac } from 'node:crypto'
import { TabmeshError } from '../../core/errors.ts'
import { iceServersFromFlags, parseIceServers, type IceConfig, type IceServer } from '../../mesh/ice.ts'

export interface RelayIceOptions {
  /** stun: URLs (e.g. stun:stun.l.google.com:19302). */
  stun?: string[]
  /** turn:/turns: URLs of one TURN deployment. */
  turn?: string[]
  /** The TURN server's static-auth-secret: credentials are minted per request. */
  turnSecret?: string
  /** Or fixed long-term credentials (no expiry). */
  turnUsername?: string
  turnCredential?: string
  /** Lifetime of minted credentials (default 3600 s). */
  turnTtlSeconds?: number
}

/** Credentials for coturn's REST API scheme, valid until now + ttl. */
export function turnRestCredentials(secret: string, name: string, ttlSeconds: number, nowMs = Date.now()): { username: string; credential: string; expiresAt: number } {
  const expiry = Math.floor(nowMs / 1000) + Math.max(1, Math.floor(ttlSeconds))
  const username = `${expiry}:${name}`
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64'), expiresAt: expiry * 1000 }
}

/**
 * Checks the options once, at start (a bad URL or a TURN URL with no way to authenticate is a
 * 'bad-argument' error), and returns what GET /relay answers for each request.
 */
export function relayIceConfig(o: RelayIceOptions): (nowMs?: number) => IceConfig {
  const ttl = o.turnTtlSeconds ?? 3600
  if (!(Number.isInteger(ttl) && ttl >= 60 && ttl <= 7 * 86400)) throw new TabmeshError('bad-argument', `--turn-ttl ${ttl} should be whole seconds between 60 and 604800`)
  const turn = o.turn ?? []
  if (turn.length > 0 && o.turnSecret === undefined && (o.turnUsername === undefined || o.turnCredential === undefined)) {
    throw new TabmeshError('bad-argument', 'a TURN server needs --turn-secret (or $TABMESH_TURN_SECRET) or --turn-username and --turn-credential')
  }
  if (o.turnSecret !== undefined && turn.length === 0) throw new TabmeshError('bad-argument', '--turn-secret without --turn: which TURN server is it for?')
  if (o.turnSecret !== undefined && o.turnSecret.length < 8) throw new TabmeshError('bad-argument', 'the TURN secret is too short (8 characters at least)')
  // validate the URLs once, with placeholder credentials when they are minted per request
  const fixed: IceServer[] = iceServersFromFlags({ stun: o.stun, turn, turnUsername: o.turnUsername ?? 'x', turnCredential: o.turnCredential ?? 'x' })
  if (o.turnSecret === undefined) {
    const servers = iceServersFromFlags({ stun: o.stun, turn, turnUsername: o.turnUsername, turnCredential: o.turnCredential })
    return () => ({ iceServers: servers })
  }
  const secret = o.turnSecret
  const stunOnly = fixed.filter((s) => !s.urls.some((u) => u.startsWith('turn')))
  return (nowMs = Date.now()) => {
    const { username, credential, expiresAt } = turnRestCredentials(secret, 'tabmesh', ttl, nowMs)
    return { iceServers: parseIceServers([...stunOnly, { urls: turn, username, credential }]), expiresAt }
  }
}
