import type { Server } from 'node:http'
import { createHmac } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { fetchRelayConfig } from '../../mesh/index.ts'
import { relayIceConfig, turnRestCredentials } from './ice-config.ts'
import { startHttpServer } from './http-server.ts'

describe('TURN credentials (coturn REST API scheme)', () => {
  it('are "<expiry>:<name>" and base64(HMAC-SHA1(secret, username))', () => {
    // the credential checked against `openssl dgst -sha1 -hmac north-secret -binary | base64`
    const c = turnRestCredentials('north-secret', 'tabmesh', 3600, (1_700_000_000 - 3600) * 1000)
    expect(c).toEqual({ username: '1700000000:tabmesh', credential: 'pxZfdVM+7Dm1Nhu57099UB0/y5U=', expiresAt: 1_700_000_000_000 })
  })

  it('are minted per request with a secret, and expire after the ttl', () => {
    const config = relayIceConfig({ stun: ['stun:s:3478'], turn: ['turn:t:3478?transport=udp'], turnSecret: 'a-long-secret', turnTtlSeconds: 600 })
    const now = 1_800_000_000_000
    const c = config(now)
    expect(c.expiresAt).toBe(now + 600_000)
    expect(c.iceServers[0]).toEqual({ urls: ['stun:s:3478'] })
    const turn = c.iceServers[1]
    expect(turn.urls).toEqual(['turn:t:3478?transport=udp'])
    expect(turn.credential).toBe(createHmac('sha1', 'a-long-secret').update(turn.username!).digest('base64'))
    expect(config(now + 1000).iceServers[1].username).not.toBe(turn.username)
  })

  it.each([
    [{ turn: ['turn:t:1'] }, /needs --turn-secret/],
    [{ turnSecret: 'a-long-secret' }, /without --turn/],
    [{ turn: ['turn:t:1'], turnSecret: 'short' }, /too short/],
    [{ stun: ['https://x'] }, /starts with stun:/],
    [{ turn: ['turn:t:1'], turnSecret: 'a-long-secret', turnTtlSeconds: 5 }, /--turn-ttl/],
  ])('refuses a configuration that cannot work: %j', (options, message) => {
    expect(() => relayIceConfig(options)).toThrow(message)
  })
})

describe('GET /relay', () => {
  let server: Server | undefined
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())))

  it('names the relays and the ICE servers, which a tab reads and validates', async () => {
    const ice = relayIceConfig({ stun: ['stun:s:3478'], turn: ['turn:t:3478'], turnSecret: 'a-long-secret' })
    const relay = () => ({ peerId: 'Qm', multiaddrs: ['/ip4/127.0.0.1/tcp/1/ws/p2p/A', '/ip4/127.0.0.1/tcp/2/ws/p2p/B'], iceServers: ice().iceServers, iceExpiresAt: ice().expiresAt })
    let url: string
    ;({ server, url } = await startHttpServer({ host: '127.0.0.1', port: 0, siteDir: '/nonexistent', modelsDir: '/nonexistent', registry: { models: [] }, relay }))
    const config = await fetchRelayConfig(url)
    expect(config.multiaddrs).toHaveLength(2)
    expect(config.iceServers.map((s) => s.urls[0])).toEqual(['stun:s:3478', 'turn:t:3478'])
    expect(config.iceServers[1].username).toMatch(/^\d+:tabmesh$/)
    expect(config.expiresAt).toBeGreaterThan(Date.now() + 3_000_000)
  })
})
