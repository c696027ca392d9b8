/**
 * Chats, mirroring src/swarm/swarm-engine.ts: a client plans a route over all layers, opens the
 * hops (sessions.ts), prefills the prompt in chunks of 32
 * (src/engine/generate.ts), then generates token by token. When a host goes (it left, moved, or
 * was caught lying) the client notices (a 'leave' advert, or the table's stale sweep), bans the
 * peer for the session, plans that hop's span again, opens the replacement and replays the inputs
 * it kept: swarm-engine's rebuild replays history entry by entry, i.e. ceil(prompt/32) chunk calls
 * and then one call per generated token, each a round trip.
 *
 * Spot checks (src/trust/checks.ts; drawing and verifiers in sessions.ts). A lying host on a drawn hop is caught at
 * its first window (its tokens were held back for the check, so none reach the user):
 * reputation.failed revokes it for this client, and the hop is replaced and generation rewinds.
 * A lying host on a hop not drawn serves wrong tokens that nobody catches.
 */
import type { SimContext } from './context.ts'
import { checkLatencyMs, stepMs, tokenMs } from './routes.ts'
import { closeHop, openSpan, setPositions, SWARM, TRUST, type FailoverCause } from './sessions.ts'
import type { Chat, Hop, Peer } from './types.ts'
import { MODELS } from './world.ts'

export type { FailoverCause } from './sessions.ts'

function schedulePhaseEnd(ctx: SimContext, chat: Chat): void {
  const v = ++chat.version
  ctx.loop.at(chat.phaseEnd, () => {
    if (chat.version === v) phaseEnded(ctx, chat)
  })
}

function phaseEnded(ctx: SimContext, chat: Chat): void {
  const t = ctx.loop.now
  if (chat.phase === 'opening') {
    chat.firstTokenAt = t
    if (chat.measured) {
      ctx.metrics.ttftMs.push(t - chat.startedAt)
      ctx.metrics.byModel[chat.model.id].ttftMs.push(t - chat.startedAt)
    }
    for (const h of chat.hops) setPositions(ctx, h, chat.promptTokens)
  }
  chat.phase = 'generating'
  chat.lastT = t
  chat.tauMs = tokenMs(chat)
  for (const h of chat.hops) {
    if (!h.lying || !h.drawn || h.caughtAt !== undefined) continue
    h.caughtAt = t + checkLatencyMs(h)
    ctx.loop.at(h.caughtAt, () => caught(ctx, h))
  }
}

/** Moves the chat's generation on to `t`; true if it finished (then it is closed at its exact end). */
export function advance(ctx: SimContext, chat: Chat, t: number): boolean {
  if (chat.phase !== 'generating' || t <= chat.lastT) return false
  let n = (t - chat.lastT) / chat.tauMs
  let end = t
  const done = chat.tokens + n >= chat.targetTokens
  if (done) {
    n = chat.targetTokens - chat.tokens
    end = chat.lastT + n * chat.tauMs
  }
  chat.tokens += n
  chat.lastT = end
  if (chat.measured) ctx.metrics.tokens += n
  let wrong = false
  for (const h of chat.hops) {
    setPositions(ctx, h, h.positions + n)
    if (h.lying && !h.drawn) {
      wrong = true
      const key = `${chat.client.idx}:${h.host.idx}`
      ctx.wrongByPair.set(key, (ctx.wrongByPair.get(key) ?? 0) + n)
    }
  }
  if (wrong) {
    if (chat.measured && chat.wrong === 0) ctx.metrics.chatsWithWrongTokens++
    chat.wrong += n
    if (chat.measured) ctx.metrics.wrongTokens += n
  }
  if (done) endChat(ctx, chat, end, 'completed')
  return done
}

export function startChat(ctx: SimContext, client: Peer): void {
  const t = ctx.loop.now
  if (!client.alive || !client.client || client.client.chat) return
  const p = ctx.params
  const chat: Chat = {
    id: ctx.nextChatId++, client, model: ctx.rng.pick(MODELS, MODELS.map((m) => m.popularity)),
    promptTokens: p.promptTokens[0] + ctx.rng.int(p.promptTokens[1] - p.promptTokens[0] + 1), targetTokens: p.newTokens,
    tokens: 0, lastT: t, tauMs: Infinity, phase: 'opening', phaseEnd: t, version: 0, hops: [], banned: new Set(), startedAt: t,
    failovers: 0, lostMs: 0, lastFailoverToken: -1, wrong: 0, measured: ctx.measuring(),
  }
  client.client.chat = chat
  ctx.activeChats.add(chat)
  if (chat.measured) ctx.metrics.chatsStarted++
  const opened = openSpan(ctx, chat, { start: 0, end: chat.model.nLayers }, t)
  if (!opened) return endChat(ctx, chat, t, 'failed', `no-route:${chat.model.id}`)
  chat.hops = opened.hops
  let prefill = 0
  const chunks = Math.ceil(chat.promptTokens / SWARM.prefillChunk)
  for (const h of chat.hops) prefill += chunks * stepMs(client, h.host, chat.model, h.layers.end - h.layers.start, Math.min(SWARM.prefillChunk, chat.promptTokens))
  chat.phaseEnd = t + opened.ms + prefill
  if (chat.measured) {
    ctx.metrics.dialDelayMs.push(opened.dialMs)
    ctx.metrics.prefillMs.push(prefill)
  }
  schedulePhaseEnd(ctx, chat)
}

export function endChat(ctx: SimContext, chat: Chat, t: number, outcome: 'completed' | 'failed' | 'aborted', why = ''): void {
  if (chat.phase === 'done') return
  for (const h of chat.hops) closeHop(h, t)
  chat.phase = 'done'
  chat.version++
  ctx.activeChats.delete(chat)
  const client = chat.client
  if (client.client) client.client.chat = undefined
  if (chat.measured) {
    const m = ctx.metrics
    if (outcome === 'completed') {
      m.chatsCompleted++
      const tps = chat.targetTokens / ((t - chat.firstTokenAt!) / 1000)
      m.tokensPerSecond.push(tps)
      m.byModel[chat.model.id].tokensPerSecond.push(tps)
      if (chat.failovers > 0) m.chatsWithFailover++
    } else if (outcome === 'failed') {
      m.chatsFailed++
      m.failedBy[why] = (m.failedBy[why] ?? 0) + 1
    }
    else m.chatsAborted++
  }
  if (client.alive) ctx.loop.at(t + ctx.rng.exp(ctx.params.thinkMeanS * 1000), () => startChat(ctx, client))
}

/** At the end of the measured span: the speed of a chat still generating (tokens so far over time since its first token, stalls included). */
export function sampleUnfinished(ctx: SimContext, chat: Chat, t: number): void {
  if (!chat.measured || chat.firstTokenAt === undefined || chat.tokens < 16 || t <= chat.firstTokenAt) return
  const tps = chat.tokens / ((t - chat.firstTokenAt) / 1000)
  ctx.metrics.tokensPerSecond.push(tps)
  ctx.metrics.byModel[chat.model.id].tokensPerSecond.push(tps)
}

/** A drawn lying hop's first window fails its check: revoke, replace, rewind. */
function caught(ctx: SimContext, hop: Hop): void {
  const chat = hop.chat
  const t = ctx.loop.now
  if (!hop.live || chat.phase === 'done') return
  if (advance(ctx, chat, t)) return
  const client = chat.client.client!
  client.reputation.failed(hop.host.id)
  client.failures.set(hop.host.id, (client.failures.get(hop.host.id) ?? 0) + 1)
  const key = `${chat.client.idx}:${hop.host.idx}`
  if (chat.measured) {
    ctx.metrics.caught++
    ctx.metrics.tokensBeforeCaught.push(ctx.wrongByPair.get(key) ?? 0)
  }
  ctx.wrongByPair.delete(key)
  // tokens after the failed window were held back (at most maxPendingWindows windows ahead)
  chat.tokens -= Math.min(chat.tokens - hop.tokensAtStart, TRUST.windowRows * TRUST.maxPendingWindows)
  replaceHop(ctx, chat, hop, t, 0, 'caught')
}

/** Replaces `hop` after it failed at `t`, noticed `detectMs` later: ban, re-plan its span, open, replay. */
export function replaceHop(ctx: SimContext, chat: Chat, hop: Hop, t: number, detectMs: number, cause: FailoverCause): void {
  const i = chat.hops.indexOf(hop)
  if (i < 0 || chat.phase === 'done') return
  const m = ctx.metrics
  closeHop(hop, t)
  chat.banned.add(hop.host.id)
  if (cause !== 'caught') {
    const failures = chat.client.client!.failures
    failures.set(hop.host.id, (failures.get(hop.host.id) ?? 0) + 1) // mesh-swarm-engine: recordOutcome(ok: false)
    chat.failovers++
    if (chat.measured) {
      m.failovers++
      if (cause === 'graceful') m.failoversGraceful++
      else if (cause === 'silent') m.failoversSilent++
      else m.failoversMoved++
      if (Math.floor(chat.tokens) !== chat.lastFailoverToken) {
        m.tokensNeedingFailover++
        chat.lastFailoverToken = Math.floor(chat.tokens)
      }
    }
    if (chat.failovers > SWARM.maxFailovers) return endChat(ctx, chat, t, 'failed', 'max-failovers')
  }
  const opened = openSpan(ctx, chat, hop.layers, t + detectMs)
  if (!opened) return endChat(ctx, chat, t, 'failed', 'failover-no-route')
  chat.hops.splice(i, 1, ...opened.hops)
  if (chat.phase === 'opening') {
    // the prefill goes on through the replacement
    chat.phaseEnd = Math.max(chat.phaseEnd, t) + detectMs + opened.ms
    return schedulePhaseEnd(ctx, chat)
  }
  const client = chat.client
  const done = Math.floor(chat.tokens)
  const chunks = Math.ceil(chat.promptTokens / SWARM.prefillChunk)
  let replay = 0
  let batched = 0
  for (const h of opened.hops) {
    const layers = h.layers.end - h.layers.start
    const chunk = stepMs(client, h.host, chat.model, layers, SWARM.prefillChunk)
    replay += chunks * chunk + done * stepMs(client, h.host, chat.model, layers, 1)
    batched += Math.ceil((chat.promptTokens + done) / SWARM.prefillChunk) * chunk
    setPositions(ctx, h, chat.promptTokens + done)
  }
  const recovery = detectMs + opened.ms + replay
  chat.phaseEnd = (chat.phase === 'recovering' ? Math.max(chat.phaseEnd, t) : t) + recovery
  chat.phase = 'recovering'
  chat.lostMs += recovery
  if (chat.measured && cause !== 'caught') {
    m.failoverMs.push(recovery)
    m.replayMs.push(replay)
    m.replayBatchedMs.push(detectMs + opened.ms + batched)
  }
  schedulePhaseEnd(ctx, chat)
}
