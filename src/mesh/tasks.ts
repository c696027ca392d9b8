/**
 * Task announcements and claims: a peer announces a unit of work ("host layers [a,b) of model M",
 * "serve a generation"), capable peers claim it within the claim window, and the announcer awards
 * it to exactly one: the lowest claim by (score, peer id). Only the announcer's award counts, so
 * two peers can never both believe they won, even if they saw different sets of claims.
 */
import { type LayerRange } from '../core/vocabulary.ts'
import { TabmeshError } from '../core/errors.ts'
import { taskAnnounceSchema, type TaskAnnounce, type TaskAward, type TaskClaim, type TaskKind, type TaskMessage } from './protocol.ts'

export interface TaskRequest {
  kind: TaskKind
  modelId: string
  layers?: LayerRange
  minMemoryBytes?: number
  /** How long claims are collected (default 300 ms: gossip p99 on loopback is under 100 ms). */
  claimWindowMs?: number
}

export interface TaskOutcome {
  taskId: string
  /** The peer the task was awarded to, or null if nobody claimed it in time. */
  winner: string | null
  claims: TaskClaim[]
  announcedAt: number
}

/** Decides whether this node claims a task: a score (lower wins, e.g. a route cost) or undefined to pass. */
export type ClaimPolicy = (task: TaskAnnounce) => number | undefined

export interface AwardEvent {
  award: TaskAward
  /** The announcement, if this node saw it. */
  task: TaskAnnounce | undefined
  /** True when this node is the winner. */
  won: boolean
}

export interface TaskCoordinatorOptions {
  selfId: string
  publish(message: TaskMessage): Promise<void>
  now?: () => number
  log?: (line: string) => void
}

export interface TaskStats {
  announced: number
  claimsSent: number
  claimsReceived: number
  awardsSent: number
  won: string[]
}

export interface TaskCoordinator {
  /** Announces a task and resolves with the award once the claim window closes; rejects with TabmeshError('bad-argument') for an invalid request. */
  announce(request: TaskRequest): Promise<TaskOutcome>
  setClaimPolicy(policy: ClaimPolicy | undefined): void
  /** Feeds a validated message of the task topic. */
  handle(message: TaskMessage): void
  /** Subscribes to awards (ours and others'); returns the unsubscribe function. */
  onAward(listener: (event: AwardEvent) => void): () => void
  stats(): TaskStats
  stop(): void
}

/** The winning claim: lowest score, then lowest claimer id. Deterministic for any order of claims. */
export function pickWinner(claims: Iterable<TaskClaim>): TaskClaim | undefined {
  let best: TaskClaim | undefined
  for (const c of claims) {
    if (!best || c.score < best.score || (c.score === best.score && c.claimer < best.claimer)) best = c
  }
  return best
}

const MAX_REMEMBERED = 256 // announcements seen from others, kept to pair awards with them

export function createTaskCoordinator(options: TaskCoordinatorOptions): TaskCoordinator {
  const { selfId } = options
  const now = options.now ?? (() => Date.now())
  const log = options.log ?? (() => {})
  const open = new Map<string, { claims: Map<string, TaskClaim>; timer: ReturnType<typeof setTimeout>; abandon: () => void }>()
  const seen = new Map<string, TaskAnnounce>() // tasks of others, oldest first
  const listeners = new Set<(event: AwardEvent) => void>()
  const stats: TaskStats = { announced: 0, claimsSent: 0, claimsReceived: 0, awardsSent: 0, won: [] }
  let policy: ClaimPolicy | undefined

  const emit = (event: AwardEvent) => {
    for (const l of listeners) {
      try {
        l(event)
      } catch (err) {
        console.error('tabmesh: award listener failed', err)
      }
    }
  }

  const send = (message: TaskMessage) =>
    options.publish(message).catch((err: Error) => log(`tabmesh: publishing ${message.type} ${message.taskId} failed: ${err.message}`))

  return {
    announce(request) {
      const taskId = randomTaskId()
      const announcedAt = now()
      const announce: TaskAnnounce = {
        v: 1, type: 'task-announce', taskId, announcer: selfId, kind: request.kind, modelId: request.modelId,
        ...(request.layers ? { layers: request.layers } : {}),
        ...(request.minMemoryBytes !== undefined ? { minMemoryBytes: request.minMemoryBytes } : {}),
        claimWindowMs: request.claimWindowMs ?? 300, sentAt: announcedAt,
      }
      const check = taskAnnounceSchema.safeParse(announce)
      if (!check.success) {
        const issue = check.error.issues[0]
        return Promise.reject(new TabmeshError('bad-argument', `invalid task: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'schema mismatch'}`))
      }
      stats.announced++
      return new Promise<TaskOutcome>((resolve) => {
        const claims = new Map<string, TaskClaim>()
        const timer = setTimeout(() => {
          open.delete(taskId)
          const winner = pickWinner(claims.values())
          const award: TaskAward = { v: 1, type: 'task-award', taskId, announcer: selfId, winner: winner?.claimer ?? null, claims: claims.size, sentAt: now() }
          stats.awardsSent++
          void send(award)
          emit({ award, task: announce, won: false })
          resolve({ taskId, winner: award.winner, claims: [...claims.values()], announcedAt })
        }, announce.claimWindowMs)
        const abandon = () => resolve({ taskId, winner: null, claims: [], announcedAt })
        open.set(taskId, { claims, timer, abandon })
        void send(announce)
      })
    },
    setClaimPolicy(p) {
      policy = p
    },
    handle(message) {
      switch (message.type) {
        case 'task-announce': {
          if (message.announcer === selfId) return
          seen.set(message.taskId, message)
          if (seen.size > MAX_REMEMBERED) seen.delete(seen.keys().next().value as string)
          let score: number | undefined
          try {
            score = policy?.(message)
          } catch (err) {
            log(`tabmesh: claim policy failed on ${message.taskId}: ${(err as Error).message}`)
          }
          if (score === undefined || !Number.isFinite(score) || score < 0) return
          stats.claimsSent++
          void send({ v: 1, type: 'task-claim', taskId: message.taskId, announcer: message.announcer, claimer: selfId, score: Math.min(score, 1e12), sentAt: now() })
          return
        }
        case 'task-claim': {
          if (message.announcer !== selfId) return
          const task = open.get(message.taskId)
          if (!task || message.claimer === selfId) return
          stats.claimsReceived++
          const previous = task.claims.get(message.claimer)
          if (!previous || message.score < previous.score) task.claims.set(message.claimer, message)
          return
        }
        case 'task-award': {
          if (message.announcer === selfId) return
          const task = seen.get(message.taskId)
          const won = message.winner === selfId
          if (won) stats.won.push(message.taskId)
          emit({ award: message, task, won })
        }
      }
    },
    onAward(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    stats: () => ({ ...stats, won: [...stats.won] }),
    stop() {
      for (const task of open.values()) {
        clearTimeout(task.timer)
        task.abandon()
      }
      open.clear()
    },
  }
}

function randomTaskId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}
