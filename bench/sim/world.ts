/**
 * The world the simulated swarm lives in: the models, the devices tabs run on, where they are
 * (round-trip times), how long they stay (churn), and what a WebRTC dial costs. Every number here
 * is an assumption; each is stated next to its source and repeated in sim.json's `assumptions`.
 */
import type { Random } from './random.ts'
import { pairHash } from './random.ts'

// ---- models ------------------------------------------------------------------------------------

/** A model shape. Weights are 4-bit (q4 with group scales: 4.5 bits = 0.5625 bytes per parameter). */
export interface ModelSpec {
  id: string
  nLayers: number
  dim: number
  kvDim: number
  seqLen: number
  paramsPerLayer: number
  /** Share of chats that ask for this model. */
  popularity: number
}

export const Q4_BYTES_PER_PARAM = 0.5625

/**
 * Llama-3.2-1B, Llama-3-8B and Llama-3-70B shapes (hidden, GQA kv width, MLP width from their
 * configs): params per layer = 2 dim^2 + 2 dim kvDim (attention) + 3 dim ffn (MLP).
 */
export const MODELS: readonly ModelSpec[] = [
  { id: 'llama-1b-q4', nLayers: 16, dim: 2048, kvDim: 512, seqLen: 4096, paramsPerLayer: 2 * 2048 ** 2 + 2 * 2048 * 512 + 3 * 2048 * 8192, popularity: 0.3 },
  { id: 'llama-8b-q4', nLayers: 32, dim: 4096, kvDim: 1024, seqLen: 4096, paramsPerLayer: 2 * 4096 ** 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336, popularity: 0.5 },
  { id: 'llama-70b-q4', nLayers: 80, dim: 8192, kvDim: 1024, seqLen: 4096, paramsPerLayer: 2 * 8192 ** 2 + 2 * 8192 * 1024 + 3 * 8192 * 28672, popularity: 0.2 },
]

export const weightBytesPerLayer = (m: ModelSpec) => m.paramsPerLayer * Q4_BYTES_PER_PARAM

/**
 * Bytes one hosted layer needs, as src/swarm/tab-runtime.ts sizes it for layersThatFit: the
 * layer's weights plus the f32 KV cache of one full-length session (2 x seqLen x kvDim x 4).
 */
export const placementBytesPerLayer = (m: ModelSpec) => weightBytesPerLayer(m) + 2 * m.seqLen * m.kvDim * 4

/** KV bytes a host reserves for a session (src/swarm/host.ts kvBytesFor: 2 x layers x maxLength x kvDim x 4). */
export const sessionKvBytes = (m: ModelSpec, layers: number, maxLength: number) => 2 * layers * maxLength * m.kvDim * 4

/** The host's KV budget across sessions (src/swarm/host.ts default) and its session cap. */
export const HOST_KV_BUDGET = 256 * 1024 * 1024
export const HOST_MAX_SESSIONS = 8

// ---- devices -------------------------------------------------------------------------------------

export type Backend = 'webgpu' | 'wasm'

export interface Device {
  backend: Backend
  /** Bytes the tab is willing to hold (weights and KV). */
  memoryBudgetBytes: number
  /** Effective memory bandwidth while decoding, bytes/s: layer-tokens/s = this / layer weight bytes. */
  bandwidth: number
  /** Link rate for activations, bytes per ms (the lower of the uplink and WebRTC's SCTP ceiling). */
  linkBytesPerMs: number
  /** Rate at which it fetches weights, bytes per ms (cache hit or download). */
  loadBytesPerMs: number
}

/**
 * WebGPU share ~65% (WebGPU ships in Chrome/Edge desktop since 2023; Safari and Firefox later and
 * partly), the rest run WASM. Decode is memory-bound: WebLLM (Ruan et al. 2024) runs
 * Llama-3.1-8B q4 at ~41 tok/s on an M3 Max (~185 GB/s effective); a typical laptop iGPU gets a
 * tenth of that, so the median WebGPU tab gets 20 GB/s, WASM (SIMD, threads) 4 GB/s, log-normal
 * sigma 1 clamped to 0.1x-10x of the median.
 */
export const DEVICE_ASSUMPTIONS = {
  webgpuShare: 0.65,
  bandwidthMedianGBps: { webgpu: 20, wasm: 4 },
  bandwidthSigma: 1,
  /** MiB offered to the swarm, and their shares (Steam HW survey RAM mix, a tab using a fraction). */
  memoryMiB: [256, 512, 1024, 2048, 4096, 8192],
  memoryShare: [0.1, 0.15, 0.25, 0.25, 0.17, 0.08],
  wasmMemoryCapMiB: 2048,
  /** Upload median 20 Mbit/s (2.5 MB/s), sigma 0.8, capped at LAB's 8 MB/s loopback WebRTC stream rate. */
  linkMedianBytesPerMs: 2500,
  linkSigma: 0.8,
  linkCapBytesPerMs: 8000,
  /** 30% load weights from the browser cache (~400 MB/s), the rest download at a median 30 MB/s. */
  cacheHitShare: 0.3,
  cacheBytesPerMs: 400_000,
  downloadMedianBytesPerMs: 30_000,
}

export function sampleDevice(r: Random): Device {
  const a = DEVICE_ASSUMPTIONS
  const backend: Backend = r.next() < a.webgpuShare ? 'webgpu' : 'wasm'
  let mib = r.pick(a.memoryMiB, a.memoryShare)
  if (backend === 'wasm') mib = Math.min(mib, a.wasmMemoryCapMiB)
  const median = a.bandwidthMedianGBps[backend] * 1e9
  const bandwidth = Math.min(10 * median, Math.max(0.1 * median, r.lognormal(median, a.bandwidthSigma)))
  const linkBytesPerMs = Math.min(a.linkCapBytesPerMs, r.lognormal(a.linkMedianBytesPerMs, a.linkSigma))
  const loadBytesPerMs = r.next() < a.cacheHitShare ? a.cacheBytesPerMs : r.lognormal(a.downloadMedianBytesPerMs, 0.7)
  return { backend, memoryBudgetBytes: mib * 1024 * 1024, bandwidth, linkBytesPerMs, loadBytesPerMs }
}

/** Layer-token steps per second a device sustains on one layer of `m` while decoding. */
export const layerTokensPerSecond = (d: Device, m: ModelSpec) => d.bandwidth / weightBytesPerLayer(m)

/**
 * Milliseconds to push `rows` positions through `layers` layers: one decode row is memory-bound
 * (weights read once); extra rows in the same call cost 1/16 of a row each on WebGPU (batched
 * matmuls), 1/4 on WASM.
 */
export function computeRowsMs(d: Device, lts: number, layers: number, rows: number): number {
  const extra = d.backend === 'webgpu' ? 1 / 16 : 1 / 4
  return ((layers / lts) * (1 + (rows - 1) * extra)) * 1000
}

// ---- where tabs are: round-trip times --------------------------------------------------------------

export const REGIONS = ['north-america', 'europe', 'asia', 'south-america', 'oceania'] as const
export const REGION_SHARE = [0.3, 0.3, 0.28, 0.07, 0.05]
/**
 * Median RTT between regions, ms, rounded from WonderNetwork's global ping statistics
 * (wondernetwork.com/pings; e.g. New York-London ~75, London-Frankfurt ~15, LA-Tokyo ~105,
 * London-Singapore ~170, Sydney-London ~260), as continental averages across city pairs.
 */
export const REGION_RTT_MS: readonly (readonly number[])[] = [
  [45, 100, 170, 140, 170],
  [100, 30, 220, 210, 280],
  [170, 220, 70, 300, 120],
  [140, 210, 300, 50, 300],
  [170, 280, 120, 300, 30],
]
/** Last-mile round trip added per end (FCC Measuring Broadband America: idle latency ~10-30 ms by technology). */
export const ACCESS_RTT_MEDIAN_MS = 10
export const ACCESS_RTT_SIGMA = 0.6
/** Per-pair spread around the regional median (routing detours). */
export const PAIR_RTT_SIGMA = 0.2
/** The relay that signals WebRTC dials sits in Europe. */
export const RELAY_REGION = 1

export interface Place {
  region: number
  accessMs: number
}

export function samplePlace(r: Random): Place {
  return { region: r.pick([0, 1, 2, 3, 4], REGION_SHARE), accessMs: r.lognormal(ACCESS_RTT_MEDIAN_MS, ACCESS_RTT_SIGMA) }
}

/** Round trip between two tabs, ms (deterministic per pair). */
export function rttMs(a: Place & { idx: number }, b: Place & { idx: number }): number {
  const u = Math.min(0.999999, Math.max(1e-6, pairHash(a.idx, b.idx, 0x5eed)))
  // probit by a logistic approximation: good enough for a spread factor
  const z = Math.log(u / (1 - u)) / 1.702
  return REGION_RTT_MS[a.region][b.region] * Math.exp(PAIR_RTT_SIGMA * z) + a.accessMs + b.accessMs
}

export const relayRttMs = (a: Place) => REGION_RTT_MS[a.region][RELAY_REGION] + a.accessMs + 2

// ---- dials ---------------------------------------------------------------------------------------------

/**
 * A WebRTC dial (src/mesh/node.ts openStream to a peer with no direct connection): 400 ms of ICE
 * gathering and DTLS/SCTP set-up measured on loopback (LAB.md), plus the SDP offer/answer relayed
 * through the relay (client-relay + relay-peer RTT), plus 3 RTTs between the two (ICE
 * connectivity check, DTLS handshake, data channel open). About 10% of first dials hang (LAB.md);
 * openStream aborts such a dial after 5 s and dials once more at once (src/mesh/node.ts).
 */
export const DIAL = { baseMs: 400, directRtts: 3, hangShare: 0.1, hangTimeoutMs: 5000 }

/** A dial's total time, and the time of the attempt that connected (what the node's dial stats record). */
export function dialMs(r: Random, client: Place, host: Place, rtt: number): { totalMs: number; attemptMs: number } {
  const once = DIAL.baseMs + relayRttMs(client) + relayRttMs(host) + DIAL.directRtts * rtt
  return { totalMs: r.next() < DIAL.hangShare ? DIAL.hangTimeoutMs + once : once, attemptMs: once }
}

// ---- churn -----------------------------------------------------------------------------------------

/**
 * Session lengths are Weibull (Stutzbach & Rejaie, IMC 2006: P2P session lengths are heavy-tailed,
 * Weibull shape 0.34-0.59; Javadi et al., MASCOTS 2009: SETI@home availability intervals fit
 * Weibull/log-normal). Browser tabs stay less than desktop clients: median 20 min, shape 0.5,
 * divided by the scenario's churn multiplier.
 */
export interface Churn {
  shape: number
  medianS: number
}

export const weibullScale = (c: Churn) => c.medianS / Math.pow(Math.LN2, 1 / c.shape)

/** Mean session length, s: scale x Gamma(1 + 1/k). */
export function meanSessionS(c: Churn): number {
  return weibullScale(c) * gammaFn(1 + 1 / c.shape)
}

export const sampleSessionS = (r: Random, c: Churn) => r.weibull(c.shape, weibullScale(c))

/**
 * Remaining time of a tab present at a random moment of a stationary swarm: U x L where L is
 * length-biased (density ~ t f(t)); for a Weibull, (L/scale)^k is then Gamma(1 + 1/k).
 */
export function sampleResidualS(r: Random, c: Churn): number {
  const y = r.gamma(1 + 1 / c.shape)
  return r.next() * weibullScale(c) * Math.pow(y, 1 / c.shape)
}

/** Lanczos approximation of the gamma function. */
export function gammaFn(x: number): number {
  const g = 7
  const p = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7]
  if (x < 0.5) return Math.PI / (Math.sin(Math.PI * x) * gammaFn(1 - x))
  x -= 1
  let a = p[0]
  const t = x + g + 0.5
  for (let i = 1; i < g + 2; i++) a += p[i] / (x + i)
  return Math.sqrt(2 * Math.PI) * Math.pow(t, x + 0.5) * Math.exp(-t) * a
}

/**
 * How a departure is noticed. 60% of tabs close cleanly: 'pagehide' publishes a 'leave' advert
 * (src/mesh/node.ts) that reaches the client within a gossip propagation (~0.1-0.4 s). The rest
 * vanish (crash, sleep, network loss, a discarded background tab): the peer table drops a peer
 * silent for staleAfterMs = 2200 ms after its last 1 s heartbeat, swept every 100 ms, i.e.
 * 1.2-2.3 s after it went.
 */
export const DEPARTURE = { gracefulShare: 0.6, gracefulMs: [100, 400], silentMs: [1200, 2300] }

export function detectionMs(r: Random, graceful: boolean): number {
  const [lo, hi] = graceful ? DEPARTURE.gracefulMs : DEPARTURE.silentMs
  return lo + r.next() * (hi - lo)
}
