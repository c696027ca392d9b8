/**
 * Checks of the simulator's own machinery, run by `npm run sim -- --self-test` and by vitest
 * (sim.test.ts): the event loop's ordering, and that the churn samplers match their
 * parameters (median of sessions, mean of the stationary residual), seeded.
 */
import { createEventLoop } from './events.ts'
import { createRandom } from './random.ts'
import { quantile } from './stats.ts'
import { meanSessionS, sampleResidualS, sampleSessionS, weibullScale, type Churn } from './world.ts'

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`self-test failed: ${what}`)
  console.log(`ok  ${what}`)
}

export function selfTest(): void {
  const loop = createEventLoop()
  const seen: string[] = []
  loop.at(30, () => seen.push('c'))
  loop.at(10, () => {
    seen.push('a')
    loop.after(0, () => seen.push('a2')) // same time, scheduled later: runs after b
  })
  loop.at(10, () => seen.push('b'))
  loop.at(20, () => loop.at(5, () => seen.push('past->now'))) // never runs in the past
  loop.run(25)
  check(seen.join(',') === 'a,b,a2,past->now', `event loop runs by time, then scheduling order (${seen.join(',')})`)
  check(loop.now === 25 && loop.pending === 1, 'run(until) stops at until and keeps later events')

  const churn: Churn = { shape: 0.5, medianS: 1200 }
  const r = createRandom(7)
  const sessions = Array.from({ length: 200_000 }, () => sampleSessionS(r, churn))
  const median = quantile(sessions, 0.5)
  check(Math.abs(median / churn.medianS - 1) < 0.02, `Weibull session median ${median.toFixed(0)} s matches ${churn.medianS} s`)
  const m = sessions.reduce((a, b) => a + b, 0) / sessions.length
  check(Math.abs(m / meanSessionS(churn) - 1) < 0.05, `session mean ${m.toFixed(0)} s matches scale x Gamma(1 + 1/k) = ${meanSessionS(churn).toFixed(0)} s`)
  // stationary residual: E[R] = E[L^2] / (2 E[L]); for a Weibull E[L^2] = scale^2 Gamma(1 + 2/k)
  const residual = Array.from({ length: 200_000 }, () => sampleResidualS(r, churn))
  const rm = residual.reduce((a, b) => a + b, 0) / residual.length
  const scale = weibullScale(churn)
  const expected = (scale * scale * 24) / (2 * meanSessionS(churn)) // Gamma(5) = 24 for k = 0.5
  check(Math.abs(rm / expected - 1) < 0.05, `residual session mean ${rm.toFixed(0)} s matches E[L^2]/2E[L] = ${expected.toFixed(0)} s`)
  const a = createRandom(42)
  const b = createRandom(42)
  check(Array.from({ length: 5 }, () => a.next()).join() === Array.from({ length: 5 }, () => b.next()).join(), 'same seed, same stream')
}
