/**
 * Seeded randomness for the swarm simulation: sfc32 (a small, fast generator that passes
 * PractRand) seeded through splitmix32, with the distributions the world model needs. Every
 * scenario owns one Random, so a seed gives the same run on every machine.
 */

export interface Random {
  /** Uniform in [0, 1), 53 random bits. */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  /** Standard normal (Box-Muller). */
  normal(): number
  /** Log-normal with the given median and sigma (of the underlying normal). */
  lognormal(median: number, sigma: number): number
  /** Exponential with the given mean. */
  exp(mean: number): number
  /** Weibull with shape k and scale lambda. */
  weibull(shape: number, scale: number): number
  /** Gamma(shape, 1) (Marsaglia-Tsang; shape < 1 by the boost u^(1/shape)). */
  gamma(shape: number): number
  /** An item by weight (weights need not sum to 1). */
  pick<T>(items: readonly T[], weights: readonly number[]): T
  /** An independent stream derived from this one's seed and `label`. */
  fork(label: number): Random
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}

export function createRandom(seed: number): Random {
  const init = splitmix32(seed)
  let a = init(), b = init(), c = init(), d = init()
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = ((c << 21) | (c >>> 11)) >>> 0
    c = (c + t) >>> 0
    return t
  }
  for (let i = 0; i < 12; i++) u32()
  const next = () => (u32() * 2 ** 21 + (u32() >>> 11)) / 2 ** 53
  let spare: number | undefined
  const r: Random = {
    next,
    int: (n) => Math.floor(next() * n),
    normal() {
      if (spare !== undefined) {
        const s = spare
        spare = undefined
        return s
      }
      const u = 1 - next()
      const v = next()
      const m = Math.sqrt(-2 * Math.log(u))
      spare = m * Math.sin(2 * Math.PI * v)
      return m * Math.cos(2 * Math.PI * v)
    },
    lognormal: (median, sigma) => median * Math.exp(sigma * r.normal()),
    exp: (mean) => -mean * Math.log(1 - next()),
    weibull: (shape, scale) => scale * Math.pow(-Math.log(1 - next()), 1 / shape),
    gamma(shape) {
      if (shape < 1) return r.gamma(shape + 1) * Math.pow(1 - next(), 1 / shape)
      const dd = shape - 1 / 3
      const cc = 1 / Math.sqrt(9 * dd)
      for (;;) {
        let x: number
        let v: number
        do {
          x = r.normal()
          v = 1 + cc * x
        } while (v <= 0)
        v = v * v * v
        const u = 1 - next()
        if (Math.log(u) < 0.5 * x * x + dd - dd * v + dd * Math.log(v)) return dd * v
      }
    },
    pick(items, weights) {
      let total = 0
      for (const w of weights) total += w
      let x = next() * total
      for (let i = 0; i < items.length; i++) {
        x -= weights[i]
        if (x < 0) return items[i]
      }
      return items[items.length - 1]
    },
    fork: (label) => createRandom((seed * 0x2545f491 + label * 0x9e3779b9 + 0x632be5ab) >>> 0),
  }
  return r
}

/** A uniform [0, 1) value fixed by two integers and a seed (symmetric in a and b): per-pair properties without storing them. */
export function pairHash(a: number, b: number, seed = 0): number {
  const lo = Math.min(a, b)
  const hi = Math.max(a, b)
  let h = Math.imul(lo ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(hi + 0x632be5ab, 0xc2b2ae35) ^ seed
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32
}
