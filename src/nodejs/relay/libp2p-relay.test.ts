import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRelayNode, type RelayNode } from './libp2p-relay.ts'

const ROOT = join(import.meta.dirname, '../../..')
let relay: RelayNode

beforeAll(async () => {
  relay = await startRelayNode({ port: 0, maxReservations: 2 })
})
afterAll(() => relay?.stop())

/**
 * `count` new peers, each in turn, ask the relay for a reservation (testing/relay-reservations.ts,
 * in a Node process of its own: dialing WebSockets needs --experimental-websocket on Node 20).
 */
async function reservations(count: number, mode: 'hold' | 'leave'): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--experimental-websocket', '--no-warnings', '--import', 'tsx', join(ROOT, 'testing/relay-reservations.ts'), relay.multiaddrs[0], String(count), mode], { cwd: ROOT, timeout: 60_000 })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as string[]
}

const reserved = () => relay.libp2p.services.relay.reservations.size

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (condition()) return true
  return condition()
}

describe('libp2p relay: reservations', () => {
  it('refuses reservations past its limit with RESERVATION_REFUSED, and frees the slots of peers that left', async () => {
    // three peers at once against two slots: the third is refused, typed by the relay protocol
    expect(await reservations(3, 'hold')).toEqual(['OK', 'OK', 'RESERVATION_REFUSED'])
    // they all disconnected: their reservations are gone (circuit-relay-v2 alone keeps them 2 h)
    expect(await until(() => reserved() === 0, 5000)).toBe(true)
    // so peers that reserve and leave cannot lock the relay: more of them than slots all get one
    const outcomes: string[] = []
    for (let i = 0; i < 4; i++) {
      outcomes.push(...(await reservations(1, 'leave')))
      expect(await until(() => reserved() === 0, 5000)).toBe(true)
    }
    expect(outcomes).toEqual(['OK', 'OK', 'OK', 'OK'])
  }, 120_000)
})
