import { type BackendName, isBackendName } from '../../core/vocabulary.ts'
import { clip, TabmeshError } from '../../core/errors.ts'
import type { TabChatRequest } from '../../cli-tab/main.ts'
import { DEFAULT_MODEL_ID } from '../../model/source/registry.ts'
import { iceServersFromFlags, type IceServer } from '../../mesh/ice.ts'
import { numberFlag, parseFlags } from './args.ts'
import { withHeadlessTab, type HeadlessTab } from './browser.ts'
import { untilStopped } from './lifetime.ts'

/** The ICE flags of a tab (contribute, chat): instead of the site's (GET /relay). */
export const ICE_CLIENT_USAGE = `  --stun <url>           STUN server(s) for WebRTC, comma-separated (default: the site's, none with a multiaddr relay)
  --turn <url>           TURN server(s), with --turn-username and --turn-credential`

export const iceClientFlagSpec = {
  stun: { type: 'string', multiple: true }, turn: { type: 'string', multiple: true }, 'turn-username': { type: 'string' }, 'turn-credential': { type: 'string' },
} as const

/** Comma-separated and repeated flags as one list. */
export const listFlag = (values: readonly string[] | undefined): string[] => (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')

/** The ICE servers the flags name, or undefined when none is given (the site's are used then). */
export function iceFromFlags(flags: { stun?: string[]; turn?: string[]; 'turn-username'?: string; 'turn-credential'?: string }): IceServer[] | undefined {
  const stun = listFlag(flags.stun)
  const turn = listFlag(flags.turn)
  if (stun.length === 0 && turn.length === 0) return undefined
  return iceServersFromFlags({ stun, turn, turnUsername: flags['turn-username'], turnCredential: flags['turn-credential'] })
}

/** `tabmesh contribute` and `tabmesh chat`: a contributor or a client in headless Chromium. */
export const CONTRIBUTE_USAGE = `tabmesh contribute --relay <url|multiaddr> [options]   host layers for the swarm until stopped (Ctrl-C leaves cleanly)
  --relay <url|addr>     the tabmesh site (http://host:port/) or relays' libp2p multiaddrs, comma-separated
  --model M              model id (default ${DEFAULT_MODEL_ID})
  --layers a:b           layers to host (default: where the swarm is weakest)
  --backend B            auto | wasm | webgpu | ref (default auto)
  --models-dir <dir>     with a multiaddr relay: models to serve to the local page
` + ICE_CLIENT_USAGE

export const CHAT_USAGE = `tabmesh chat --relay <url|multiaddr> --prompt <text> [options]   generate through the swarm
  --prompt <text>        the prompt, as raw text (the model continues it)
  --chat                 send --prompt as a user message, in the model's chat template
  --system <text>        a system message before it (implies --chat)
  --max-tokens N, --temperature T, --top-p P, --seed S, --json   as for generate; --json adds the route
` + ICE_CLIENT_USAGE

/** Where --relay points: the site (http(s) URL) or the relays' multiaddrs (comma-separated). */
export function relayTarget(relay: string | undefined): { siteUrl?: string; multiaddrs?: string[] } {
  if (!relay) throw new TabmeshError('bad-argument', '--relay <url|multiaddr> is required')
  if (/^https?:\/\//.test(relay)) return { siteUrl: relay.endsWith('/') ? relay : relay + '/' }
  const addrs = listFlag([relay])
  if (addrs.length > 0 && addrs.every((a) => a.startsWith('/'))) return { multiaddrs: addrs }
  throw new TabmeshError('bad-argument', `--relay ${clip(relay, 100)} is neither an http(s) URL nor multiaddrs`)
}

async function onTab<T>(relay: string | undefined, modelsDir: string | undefined, iceServers: IceServer[] | undefined, work: (tab: HeadlessTab) => Promise<T>): Promise<T> {
  const target = relayTarget(relay)
  return withHeadlessTab({ siteUrl: target.siteUrl, modelsDir }, async (tab) => {
    if (target.multiaddrs || iceServers) await tab.call('configure', { relay: target.multiaddrs, iceServers })
    return work(tab)
  })
}

function parseLayers(value: string | undefined) {
  if (value === undefined) return undefined
  const m = /^(\d+):(\d+)$/.exec(value)
  // a layer index is a u16 on the wire (activation frames): larger ones are no model's
  if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) > 0xffff) throw new TabmeshError('bad-argument', `--layers ${clip(value, 40)} should be a:b with a < b <= 65535`)
  return { start: Number(m[1]), end: Number(m[2]) }
}

/** `tabmesh contribute`'s flags, checked: an unknown flag or a bad value is a 'bad-argument' error. */
export function parseContributeFlags(argv: string[]) {
  const flags = parseFlags(argv, {
    relay: { type: 'string' }, model: { type: 'string' }, layers: { type: 'string' }, backend: { type: 'string', default: 'auto' },
    'models-dir': { type: 'string' }, help: { type: 'boolean', default: false }, ...iceClientFlagSpec,
  })
  if (flags.help) return { help: true as const }
  const backend = flags.backend!
  if (!isBackendName(backend) && backend !== 'auto') throw new TabmeshError('bad-argument', `--backend ${clip(backend, 40)} is not one of auto, wasm, webgpu, ref`)
  return { help: false as const, relay: flags.relay, model: flags.model, layers: parseLayers(flags.layers), backend: backend as BackendName | 'auto', modelsDir: flags['models-dir'], iceServers: iceFromFlags(flags) }
}

export async function contributeCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseContributeFlags(argv)
  if (flags.help) return (out(CONTRIBUTE_USAGE), 0)
  const { backend, layers } = flags
  return onTab(flags.relay, flags.modelsDir, flags.iceServers, async (tab) => {
    const info = await tab.call('contribute', { model: flags.model, layers, backend })
    out(JSON.stringify({ contributing: info }))
    const why = await untilStopped()
    // the totals, read while the contribution still exists (stopping it drops them)
    const stats = await tab.call('contributorStats')
    await tab.call('stopContributing', `the contributor was stopped (${why})`)
    out(JSON.stringify({ stopped: stats ?? null }))
    return 0
  })
}

/** `tabmesh chat`'s flags (strict: an unknown flag is a user error). */
export function parseChatFlags(argv: string[]) {
  return parseFlags(argv, {
    relay: { type: 'string' }, model: { type: 'string' }, prompt: { type: 'string', default: '' }, 'max-tokens': { type: 'string' },
    temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean', default: false },
    chat: { type: 'boolean', default: false }, system: { type: 'string' },
    'models-dir': { type: 'string' }, help: { type: 'boolean', default: false }, ...iceClientFlagSpec,
  })
}

/**
 * The headless page's chat request for `tabmesh chat`'s flags: --prompt as raw text, or with
 * --chat / --system as a user message that the page renders with the model's chat template (buildPrompt).
 */
export function chatRequest(flags: ReturnType<typeof parseChatFlags>): TabChatRequest {
  const prompt = flags.prompt ?? ''
  const asChat = flags.chat || flags.system !== undefined
  return {
    model: flags.model, prompt,
    ...(asChat ? { messages: [{ role: 'user', content: prompt }], ...(flags.system !== undefined ? { system: flags.system } : {}) } : {}),
    maxTokens: numberFlag(flags['max-tokens'], 'max-tokens', 64, (n) => Number.isInteger(n) && n >= 0),
    temperature: numberFlag(flags.temperature, 'temperature', 0, (n) => n >= 0 && Number.isFinite(n)),
    topP: numberFlag(flags['top-p'], 'top-p', 0.9),
    seed: numberFlag(flags.seed, 'seed', 42, (n) => Number.isSafeInteger(n) && n >= 0),
  }
}

export async function chatCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const flags = parseChatFlags(argv)
  if (flags.help) return (out(CHAT_USAGE), 0)
  const request = chatRequest(flags)
  return onTab(flags.relay, flags['models-dir'], iceFromFlags(flags), async (tab) => {
    const r = await tab.call('chat', request)
    const route = r.routes.at(-1)?.map((h) => ({ peerId: h.peerId, layers: [h.layers.start, h.layers.end], ms: Math.round(h.ms * 10) / 10 })) ?? []
    out(flags.json
      ? JSON.stringify({ backend: 'swarm', promptTokens: r.promptTokens, tokens: r.tokens, text: r.text, tokensPerSecond: r.tokensPerSecond, route, failovers: r.events.filter((e) => e.type === 'failover').length })
      : r.text)
    return 0
  })
}
