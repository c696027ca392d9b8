/**
 * npm run bench:batch -> bench/results/batch-node.json and a table.
 * The hosts alone, in one process: 3 real hosts (src/swarm/host.ts) over the WASM kernels' batch
 * engine, each holding 4 layers of a 12-layer synthetic model (dim 256), reached over in-memory
 * channels that deliver each frame after a fixed one-way delay (TABMESH_BATCH_DELAY_MS, default 1 ms:
 * half the stream round trip bench:swarm measures between Chromium processes), and 1, 2, 4, 8 and
 * 16 client sessions at once (the real swarm engine, speculation off). Aggregate tokens/s against
 * one session in the same run, p50/p95 per-token latency, and sessions per forward pass. It shows
 * what batching and pipelining give when the machine is not also running a browser per tab (what
 * bench:swarm measures). Fails (exit 1) when a session's ids differ from the first one's.
 * Runs through Vite's SSR loader (bench/vite-run.ts): the wasm backend imports AssemblyScript sources.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createReferenceEngine } from '../src/engine/reference/reference.ts'
import { createWasmBatchEngine } from '../src/engine/wasm/index.ts'
import { generateTokens } from '../src/engine/generate.ts'
import { loadLlama2c } from '../src/model/formats/llama2c.ts'
import { makeSyntheticLlama2c } from '../src/model/formats/synthetic.ts'
import { memorySource } from '../src/model/source/byte-source.ts'
import type { FrameChannel } from '../src/swarm/channel.ts'
import { createSwarmHost, type SwarmHost } from '../src/swarm/host.ts'
import { linearCost } from '../src/swarm/route.ts'
import { createSwarmEngine } from '../src/swarm/swarm-engine.ts'

const ROOT = resolve(fileURLToPath(import.meta.url), '../..')
const DELAY_MS = Number(process.env.TABMESH_BATCH_DELAY_MS ?? 1)
const TOKENS = 64
const model = await loadLlama2c(memorySource(makeSyntheticLlama2c({ dim: 256, hiddenDim: 688, nLayers: 12, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, sharedClassifier: true }, 99)))
const c = model.config

/** Two ends of a channel whose frames arrive `delayMs` after they are sent, in order. */
function delayedPair(delayMs: number, peers: [string, string]): [FrameChannel, FrameChannel] {
  const queues: Uint8Array[][] = [[], []]
  const waiters: ((() => void) | undefined)[] = [undefined, undefined]
  let closed = false
  const end = (me: number): FrameChannel => ({
    send(message) {
      if (closed) throw new Error('channel closed')
      const copy = message.slice()
      setTimeout(() => { queues[1 - me].push(copy); const w = waiters[1 - me]; waiters[1 - me] = undefined; w?.() }, delayMs)
    },
    async *messages() {
      for (;;) {
        while (queues[me].length > 0) yield queues[me].shift()!
        if (closed) return
        await new Promise<void>((r) => { waiters[me] = r })
      }
    },
    close() { closed = true; for (const w of waiters) w?.() },
    get closed() { return closed },
    remotePeer: peers[me],
  })
  return [end(0), end(1)]
}

const spans = [{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 12 }]
const hosts: { peerId: string; layers: typeof spans[number]; host: SwarmHost }[] = []
for (const [i, layers] of spans.entries()) {
  const engine = await createWasmBatchEngine({ ...model, spec: { layers, embedding: false, head: false } })
  hosts.push({ peerId: `host-${i}`, layers, host: createSwarmHost({ modelId: 'deep12', config: c, hosted: layers, engine, maxSessions: 64, maxSessionsPerClient: 64 }) })
}
const local = () => createReferenceEngine({ ...model, spec: { layers: { start: 0, end: 0 }, embedding: true, head: true } })

async function session(client: string): Promise<{ tokens: number[]; times: number[]; started: number }> {
  const engine = createSwarmEngine({
    local: local(), modelId: 'deep12', maxLength: 128, hopTimeoutMs: 60_000,
    candidates: () => hosts.map((h) => ({ peerId: h.peerId, layers: h.layers, cost: linearCost(1, 1) })),
    connect: async (id) => { const [a, b] = delayedPair(DELAY_MS, [id, client]); void hosts.find((h) => h.peerId === id)!.host.serve(b); return a },
  })
  const tokens: number[] = []
  const times: number[] = []
  const started = performance.now()
  for await (const t of generateTokens(engine, [1, 400, 401, 402], { maxTokens: TOKENS, temperature: 0, topP: 0.9, seed: 1 })) {
    tokens.push(t)
    times.push(performance.now())
  }
  engine.close()
  return { tokens, times, started }
}

const percentile = (xs: number[], p: number) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]
await session('warm-up')
const rows: Record<string, number | string>[] = []
const throughput: Record<number, number> = {}
let reference: string | undefined
let mismatched = 0
for (const n of [1, 2, 4, 8, 16]) {
  const before = hosts.map((h) => h.host.stats())
  const outs = await Promise.all(Array.from({ length: n }, (_, i) => session(`client-${n}-${i}`)))
  const seconds = (Math.max(...outs.map((o) => o.times.at(-1)!)) - Math.min(...outs.map((o) => o.started))) / 1000
  throughput[n] = outs.reduce((s, o) => s + o.tokens.length, 0) / seconds
  for (const o of outs) {
    reference ??= JSON.stringify(o.tokens)
    if (JSON.stringify(o.tokens) !== reference) mismatched++
  }
  const gaps = outs.flatMap((o) => o.times.slice(1).map((t, i) => t - o.times[i]))
  const after = hosts.map((h) => h.host.stats())
  const perPass = after.map((s, i) => (s.batchedRequests - before[i].batchedRequests) / Math.max(1, s.batches - before[i].batches))
  rows.push({ sessions: n, aggregateTokensPerSecond: +throughput[n].toFixed(1), speedup: +(throughput[n] / throughput[1]).toFixed(2), tokenLatencyP50Ms: +percentile(gaps, 0.5).toFixed(1), tokenLatencyP95Ms: +percentile(gaps, 0.95).toFixed(1), sessionsPerPass: perPass.map((x) => x.toFixed(1)).join('/') })
}
console.table(rows)
const result = {
  model: 'deep12 (dim 256, 12 layers, 3 hosts x 4 layers, wasm kernels)', delayMs: DELAY_MS, tokens: TOKENS, rows,
  concurrencySpeedup4: throughput[4] / throughput[1], concurrencySpeedup8: throughput[8] / throughput[1], idsMismatched: mismatched,
  measuredAt: new Date().toISOString(),
}
console.log(`in one process: concurrencySpeedup4 ${result.concurrencySpeedup4.toFixed(2)}, concurrencySpeedup8 ${result.concurrencySpeedup8.toFixed(2)}, sessions with other ids: ${mismatched}`)
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
writeFileSync(join(ROOT, 'bench/results/batch-node.json'), JSON.stringify(result, null, 2) + '\n')
if (mismatched > 0) process.exitCode = 1
