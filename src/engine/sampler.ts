import { TabmeshError } from '../core/errors.ts'
import { createRng } from '../core/rng.ts'

/**
 * Token sampling as llama2.c's run.c does it, in float32 arithmetic, so a seed picks the same
 * tokens: temperature 0 is arg-max; otherwise softmax(logits / temperature), then top-p
 * (nucleus) sampling when 0 < topP < 1, else plain multinomial sampling.
 */
export interface SamplingOptions {
  temperature: number // 0 = greedy
  topP: number // nucleus mass; <= 0 or >= 1 samples from the whole distribution
  seed: number | bigint
}

export interface Sampler {
  /** Picks a token from logits (vocab). Overwrites logits with probabilities. */
  sample(logits: Float32Array): number
}

const f = Math.fround

export function argmax(values: Float32Array): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i
  return best
}

function softmaxF32(x: Float32Array): void {
  let max = x[0]
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i]
  let sum = 0
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(x[i] - max)
    sum = f(sum + x[i])
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum
}

export function checkSamplingOptions(o: SamplingOptions): void {
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) throw new TabmeshError('bad-argument', `temperature must be a number >= 0, got ${o.temperature}`)
  if (!Number.isFinite(o.topP)) throw new TabmeshError('bad-argument', `top-p must be a number, got ${o.topP}`)
  const seed = typeof o.seed === 'bigint' ? o.seed : BigInt(Number.isSafeInteger(o.seed) ? o.seed : -1)
  if (seed < 0n || seed >= 1n << 64n) throw new TabmeshError('bad-argument', `seed must be an integer in [0, 2^64), got ${o.seed}`)
}

export function createSampler(vocabSize: number, options: SamplingOptions): Sampler {
  checkSamplingOptions(options)
  const temperature = f(options.temperature)
  const topP = f(options.topP)
  const rng = createRng(options.seed)
  const candidates = new Int32Array(vocabSize) // (vocab) token ids kept by the top-p cutoff
  const order = new Int32Array(vocabSize) // (vocab) scratch for sorting candidates by probability
  let probs: Float32Array = new Float32Array(0)
  const byProbabilityDesc = (a: number, b: number) => probs[b] - probs[a]

  function sampleMultinomial(coin: number): number {
    let cdf = 0
    for (let i = 0; i < probs.length; i++) {
      cdf = f(cdf + probs[i])
      if (coin < cdf) return i
    }
    return probs.length - 1
  }

  function sampleTopP(coin: number): number {
    // tokens below this probability can never be in the nucleus; dropping them first makes the sort cheap
    const cutoff = f(f(1 - topP) / (vocabSize - 1))
    let n = 0
    for (let i = 0; i < vocabSize; i++) if (probs[i] >= cutoff) candidates[n++] = i
    const sorted = order.subarray(0, n)
    sorted.set(candidates.subarray(0, n))
    sorted.sort(byProbabilityDesc) // stable, like glibc's merge-sort qsort
    let cumulative = 0
    let last = n - 1
    for (let i = 0; i < n; i++) {
      cumulative = f(cumulative + probs[sorted[i]])
      if (cumulative > topP) { last = i; break }
    }
    const r = f(coin * cumulative)
    let cdf = 0
    for (let i = 0; i <= last; i++) {
      cdf = f(cdf + probs[sorted[i]])
      if (r < cdf) return sorted[i]
    }
    return sorted[last]
  }

  return {
    sample(logits) {
      if (logits.length !== vocabSize) throw new TabmeshError('bad-argument', `sampler: ${logits.length} logits for a vocabulary of ${vocabSize}`)
      if (temperature === 0) return argmax(logits)
      for (let i = 0; i < logits.length; i++) logits[i] = logits[i] / temperature
      softmaxF32(logits)
      probs = logits
      const coin = rng.nextF32()
      return topP <= 0 || topP >= 1 ? sampleMultinomial(coin) : sampleTopP(coin)
    },
  }
}
