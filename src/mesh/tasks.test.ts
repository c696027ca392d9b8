import { describe, expect, it } from 'vitest'
import { ADVERT_TOPIC, TASK_TOPIC, decodeMessage, encodeMessage, type TaskClaim, type TaskMessage } from './protocol.ts'
import { createTaskCoordinator, pickWinner, type AwardEvent, type TaskCoordinator } from './tasks.ts'
import { fakePeerId } from '../../testing/mesh-fixtures.ts'

/** Coordinators joined by an in-memory broadcast that encodes and validates like the wire does. */
function bus(count: number, delayMs = () => 1) {
  const nodes: { id: string; coordinator: TaskCoordinator; awards: AwardEvent[] }[] = []
  for (let i = 0; i < count; i++) {
    const id = fakePeerId(i)
    const coordinator = createTaskCoordinator({
      selfId: id,
      publish: async (m: TaskMessage) => {
        const data = encodeMessage(TASK_TOPIC, m)
        for (const other of nodes) {
          if (other.id === id) continue
          setTimeout(() => {
            const d = decodeMessage(TASK_TOPIC, data)
            if (d.ok && d.message.type !== 'advert') other.coordinator.handle(d.message)
          }, delayMs())
        }
      },
    })
    const awards: AwardEvent[] = []
    coordinator.onAward((e) => awards.push(e))
    nodes.push({ id, coordinator, awards })
  }
  return nodes
}

const claim = (claimer: string, score: number): TaskClaim => ({ v: 1, type: 'task-claim', taskId: 't', announcer: fakePeerId(0), claimer, score, sentAt: 0 })

describe('task claims', () => {
  it('picks the lowest score, then the lowest peer id, in any order', () => {
    const claims = [claim(fakePeerId(3), 5), claim(fakePeerId(2), 5), claim(fakePeerId(1), 7)]
    expect(pickWinner(claims)!.claimer).toBe(fakePeerId(2))
    expect(pickWinner([...claims].reverse())!.claimer).toBe(fakePeerId(2))
    expect(pickWinner([])).toBeUndefined()
  })

  it('awards an announced task to exactly one claimer, and every peer learns who', async () => {
    const nodes = bus(4, () => Math.random() * 20)
    nodes[1].coordinator.setClaimPolicy(() => 30)
    nodes[2].coordinator.setClaimPolicy(() => 10)
    nodes[3].coordinator.setClaimPolicy(() => 20)
    const outcome = await nodes[0].coordinator.announce({ kind: 'host-layers', modelId: 'stories260K', layers: { start: 0, end: 3 }, claimWindowMs: 100 })
    expect(outcome.winner).toBe(nodes[2].id)
    expect(outcome.claims).toHaveLength(3)
    await new Promise((r) => setTimeout(r, 50))
    expect(nodes.slice(1).map((n) => n.awards.map((a) => a.won))).toEqual([[false], [true], [false]])
    expect(nodes.slice(1).map((n) => n.coordinator.stats().won.length)).toEqual([0, 1, 0])
  })

  it('lets a policy pass, and awards nobody when nobody claims', async () => {
    const nodes = bus(3)
    nodes[1].coordinator.setClaimPolicy((t) => (t.modelId === 'other' ? 1 : undefined))
    const outcome = await nodes[0].coordinator.announce({ kind: 'serve-generation', modelId: 'stories260K', claimWindowMs: 50 })
    expect(outcome).toMatchObject({ winner: null, claims: [] })
  })

  it('ignores claims that arrive after the window', async () => {
    const nodes = bus(3, () => 80)
    nodes[1].coordinator.setClaimPolicy(() => 1)
    const outcome = await nodes[0].coordinator.announce({ kind: 'host-layers', modelId: 'stories260K', claimWindowMs: 100 }) // the claim needs 160 ms
    expect(outcome.winner).toBeNull()
  })

  it('resolves open announcements when stopped', async () => {
    const [node] = bus(1)
    const pending = node.coordinator.announce({ kind: 'host-layers', modelId: 'm', claimWindowMs: 10_000 })
    node.coordinator.stop()
    await expect(pending).resolves.toMatchObject({ winner: null })
  })

  it('encodes task messages that fit the task topic and not the advert topic', () => {
    expect(decodeMessage(ADVERT_TOPIC, encodeMessage(TASK_TOPIC, claim(fakePeerId(1), 1))).ok).toBe(false)
  })

  it('refuses an invalid task with a typed error', async () => {
    const [node] = bus(1)
    await expect(node.coordinator.announce({ kind: 'host-layers', modelId: 'bad id!', claimWindowMs: 100 })).rejects.toMatchObject({ code: 'bad-argument', message: expect.stringMatching(/modelId/) })
    await expect(node.coordinator.announce({ kind: 'host-layers', modelId: 'm', layers: { start: 4, end: 2 } })).rejects.toMatchObject({ code: 'bad-argument' })
  })
})
