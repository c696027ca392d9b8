/**
 * Per-key token buckets: each key (a peer on a topic) may send `burst` messages at once and
 * `ratePerSecond` on average. The number of tracked keys is bounded, so a flood of fresh peer ids
 * cannot grow memory without limit: the least recently used key is forgotten first.
 */
export interface RateLimitOptions {
  ratePerSecond: number
  burst: number
  /** Keys remembered at most (default 4096). */
  maxKeys?: number
  now?: () => number
}

export interface RateLimiter {
  /** Takes one token for `key`; false when the key is over its rate. */
  take(key: string): boolean
  readonly size: number
}

interface Bucket {
  tokens: number
  updatedAt: number // ms
}

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { ratePerSecond, burst } = options
  const maxKeys = options.maxKeys ?? 4096
  const now = options.now ?? (() => Date.now())
  const buckets = new Map<string, Bucket>() // insertion order = least recently used first

  return {
    take(key: string): boolean {
      const t = now()
      let bucket = buckets.get(key)
      if (bucket === undefined) {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value as string)
        bucket = { tokens: burst, updatedAt: t }
      } else {
        buckets.delete(key)
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.updatedAt) / 1000) * ratePerSecond)
        bucket.updatedAt = t
      }
      buckets.set(key, bucket)
      if (bucket.tokens < 1) return false
      bucket.tokens -= 1
      return true
    },
    get size() {
      return buckets.size
    },
  }
}
