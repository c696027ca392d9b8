import { describe, expect, it } from 'vitest'
import { TabmeshError } from '../core/errors.ts'
import { createIceProvider, hasTurn, iceServersFromFlags, parseIceServers, parseIceServersJson, type IceConfig } from './ice.ts'

describe('ICE server lists', () => {
  it('accepts STUN and TURN servers as RTCIceServer, urls made a list', () => {
    expect(parseIceServers([{ urls: 'stun:stun.example.org:3478' }, { urls: ['turn:t.example.org:3478?transport=udp', 'turns:t.example.org:5349'], username: 'u', credential: 'c' }])).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turn:t.example.org:3478?transport=udp', 'turns:t.example.org:5349'], username: 'u', credential: 'c' },
    ])
    expect(iceServersFromFlags({ stun: ['stun:a:1'], turn: ['turn:b:2'], turnUsername: 'u', turnCredential: 'c' })).toEqual([{ urls: ['stun:a:1'] }, { urls: ['turn:b:2'], username: 'u', credential: 'c' }])
    expect(iceServersFromFlags({})).toEqual([])
  })

  it.each([
    ['not a list', { urls: 'stun:a' }, /expected array/i],
    ['a URL of another scheme', [{ urls: 'http://evil.example/' }], /starts with stun:, stuns:, turn: or turns:/],
    ['TURN without credentials', [{ urls: 'turn:t:3478' }], /needs a username and a credential/],
    ['an unknown key', [{ urls: 'stun:a', extra: 1 }], /unrecognized key/i],
    ['too many servers', Array.from({ length: 9 }, () => ({ urls: 'stun:a' })), /too big|at most|8/i],
    ['an oversized URL', [{ urls: 'stun:' + 'a'.repeat(300) }], /too big|at most|256/i],
  ])('refuses %s with a typed error', (_what, value, message) => {
    const err = (() => { try { parseIceServers(value) } catch (e) { return e } })() as TabmeshError
    expect(err).toBeInstanceOf(TabmeshError)
    expect(err.code).toBe('bad-argument')
    expect(err.message).toMatch(message)
  })

  it('refuses JSON that is not JSON, naming where it came from', () => {
    expect(() => parseIceServersJson('[{urls:', 'data-ice-servers')).toThrow(/data-ice-servers: not JSON/)
  })

  it('knows whether a TURN server is among them', () => {
    expect(hasTurn(parseIceServers([{ urls: 'stun:a' }]))).toBe(false)
    expect(hasTurn(parseIceServers([{ urls: ['stun:a', 'turns:b'], username: 'u', credential: 'c' }]))).toBe(true)
  })
})

describe('ICE provider', () => {
  it('gives a fixed list to every connection', async () => {
    const p = createIceProvider([{ urls: ['stun:a:1'] }])
    expect(await p.rtcConfiguration()).toEqual({ iceServers: [{ urls: ['stun:a:1'] }] })
  })

  it('fetches the list again when the TURN credentials are about to expire, once for concurrent dials', async () => {
    let t = 0
    let fetches = 0
    const answer = (n: number): IceConfig => ({ iceServers: [{ urls: ['turn:t:3478'], username: `${n}:tabmesh`, credential: 'c' }], expiresAt: t + 3_600_000 })
    const p = createIceProvider(async () => answer(++fetches), answer(0), { now: () => t })
    expect((await p.rtcConfiguration()).iceServers?.[0].username).toBe('0:tabmesh')
    expect(fetches).toBe(0)
    t = 3_600_000 - 60_000 // a minute left: under the 5 min margin
    const [a, b] = await Promise.all([p.rtcConfiguration(), p.rtcConfiguration()])
    expect(fetches).toBe(1)
    expect(a.iceServers?.[0].username).toBe('1:tabmesh')
    expect(b.iceServers?.[0].username).toBe('1:tabmesh')
  })

  it('keeps the old list when the refresh fails or answers garbage, and logs it', async () => {
    let t = 0
    const lines: string[] = []
    const first: IceConfig = { iceServers: [{ urls: ['stun:a:1'] }], expiresAt: 1000 }
    const p = createIceProvider(async () => ({ iceServers: [{ urls: ['http://x'] }] }), first, { now: () => t, log: (l) => lines.push(l) })
    t = 500
    expect((await p.rtcConfiguration()).iceServers).toEqual([{ urls: ['stun:a:1'] }])
    expect(lines.join('\n')).toMatch(/could not refresh the ICE servers/)
    // and it does not try again on every dial
    await p.rtcConfiguration()
    expect(lines).toHaveLength(1)
  })
})
