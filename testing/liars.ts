/**
 * Contributors that lie, for the trust tests and benchmark: an Engine wrapper that corrupts what
 * an honest engine computes, one attack mode each (the threat model in README "Trust"). The
 * adversary, not the thing under test: it runs inside a real host (src/swarm/host.ts), so the
 * client sees it only through the activation protocol.
 */
import { createRng } from '../src/core/rng.ts'
import type { Engine } from '../src/engine/engine.ts'

export const ATTACKS = ['noise', 'perturb', 'echo', 'other-model', 'quantized', 'replay', 'fraction', 'collude'] as const
export type Attack = (typeof ATTACKS)[number]

export const ATTACK_SUMMARY: Record<Attack, string> = {
  noise: 'random values with the norm of the real output',
  perturb: 'the real output, plus noise of 5% of its norm on one position in seven',
  echo: 'skips its layers: returns its input',
  'other-model': 'runs a different model of the same shape',
  quantized: 'runs the model at Q4_0 instead of the real weights',
  replay: 'returns the answer it gave to an earlier request (stale states)',
  fraction: 'cheats on a random 10% of its forwards (5% noise), honest otherwise',
  collude: 'perturbs like `perturb`, and a second identity it controls, used as a verifier, tells the same lie',
}

/** Attacks, and a peer that takes work and never answers (as a verifier: it refuses to be of use). */
export type Misbehaviour = Attack | 'stall'

export interface LiarOptions {
  /** The honest engine for the same span (its KV cache is kept as an honest host's would be). */
  honest: Engine & { close?(): void }
  /** For other-model / quantized: the engine whose outputs are passed off as the real ones. */
  impostor?: Engine & { close?(): void }
  seed: number
  /** Forwards answered honestly before the first lie (default 0). */
  honestForwards?: number
  onLie?(): void
}

function gaussian(rng: ReturnType<typeof createRng>): number {
  const u = Math.max(rng.nextF32(), 1e-7)
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextF32())
}

/** Adds noise of `share` of the row's norm to row r of (n, dim), deterministic in (seed, position). */
function perturbRow(out: Float32Array, r: number, dim: number, share: number, seed: number, position: number): void {
  let norm = 0
  for (let d = 0; d < dim; d++) norm += out[r * dim + d] ** 2
  const rng = createRng(seed * 7919 + position)
  const scale = (share * Math.sqrt(norm)) / Math.sqrt(dim)
  for (let d = 0; d < dim; d++) out[r * dim + d] += scale * gaussian(rng)
}

export function lyingEngine(attack: Misbehaviour, o: LiarOptions): Engine & { close?(): void } {
  const { honest } = o
  const dim = honest.config.dim
  const rng = createRng(o.seed)
  const previous = new Map<number, Float32Array>() // replay: rows -> the last answer of that many rows
  let forwards = 0
  return {
    ...honest,
    backend: honest.backend,
    config: honest.config,
    spec: honest.spec,
    async forward(hidden, positions) {
      const real = (await honest.forward(hidden, positions)).slice()
      const impostor = o.impostor && (await o.impostor.forward(hidden, positions)).slice()
      if (forwards++ < (o.honestForwards ?? 0)) return real
      if (attack === 'stall') return new Promise<never>(() => {})
      const n = positions.length
      let out: Float32Array = real
      switch (attack) {
        case 'noise':
          for (let r = 0; r < n; r++) {
            let norm = 0
            for (let d = 0; d < dim; d++) norm += real[r * dim + d] ** 2
            const scale = Math.sqrt(norm / dim)
            for (let d = 0; d < dim; d++) out[r * dim + d] = scale * gaussian(rng)
          }
          break
        case 'perturb':
        case 'collude':
          for (let r = 0; r < n; r++) if (positions[r] % 7 === 3) perturbRow(out, r, dim, 0.05, o.seed, positions[r])
          break
        case 'echo':
          out = hidden.slice()
          break
        case 'other-model':
        case 'quantized':
          out = impostor!
          break
        case 'replay': {
          const stale = previous.get(n)
          previous.set(n, real.slice())
          if (!stale) return real
          out = stale
          break
        }
        case 'fraction':
          if (rng.nextF32() >= 0.1) return real
          for (let r = 0; r < n; r++) perturbRow(out, r, dim, 0.05, o.seed + forwards, positions[r])
          break
      }
      o.onLie?.()
      return out
    },
    close() {
      honest.close?.()
      o.impostor?.close?.()
    },
  }
}
