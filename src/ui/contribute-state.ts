import type { ProbeResult } from '../engine/probe.ts'
import type { Contribution, TabRuntime } from '../swarm/tab-runtime.ts'
import { trackLoad } from './loads.ts'
import type { Settings, SettingsStore } from './settings.ts'
import { createStore } from './store.ts'

/**
 * The contribute toggle's controller: hosts layers while the toggle is on and no pause condition
 * holds (tab hidden, on battery, user active with idle-only), and stops through the runtime's
 * hand-off (draining advert, then an error frame per session) when it should not.
 */
export interface ContributionInfo extends Omit<Contribution, 'contributor' | 'worker'> {
  memoryBudgetBytes: number
  chosenBy: 'probe' | 'setting'
}

export interface ContributionStats {
  sessionsServed: number
  activeSessions: number
  queueDepth: number
  tokensProcessed: number
  startedAt: number
}

export interface ContributeViewState {
  status: 'off' | 'starting' | 'on' | 'paused' | 'stopping' | 'error'
  pausedBecause?: string
  error?: string
  info?: ContributionInfo
  stats?: ContributionStats
  probe?: ProbeResult
  /** What the pause conditions can see here. */
  env: { hidden: boolean; onBattery: boolean | undefined; idle: boolean }
}

export const contribution = createStore<ContributeViewState>({
  status: 'off',
  env: { hidden: typeof document !== 'undefined' && document.hidden, onBattery: undefined, idle: false },
})

/** Input-free time after which the user counts as away (idle-only contributing). */
export const IDLE_AFTER_MS = 60_000

export function pauseReason(s: Settings, env: ContributeViewState['env']): string | undefined {
  if (s.pauseWhenHidden && env.hidden) return 'the tab is hidden'
  if (s.pauseOnBattery && env.onBattery === true) return 'the device is on battery'
  if (s.idleOnly && !env.idle) return 'you are using the device (idle-only)'
  return undefined
}

const optionsKey = (s: Settings) => JSON.stringify([s.contributeModel, s.backend, s.memoryCapMb, s.layers])

interface BatteryManager extends EventTarget { charging: boolean }

export function startContributeController(runtime: TabRuntime, settings: SettingsStore): () => void {
  let running: string | undefined // options key of the live contribution
  let failed: string | undefined // options key that failed to start (not retried until something changes)
  let chain = Promise.resolve()
  const env = () => contribution.get().env

  async function step() {
    const s = settings.get()
    const why = pauseReason(s, env())
    const key = optionsKey(s)
    const want = s.contribute && !why
    if (running && (!want || running !== key)) {
      contribution.set({ status: 'stopping' })
      await runtime.stopContributing(why ? `the contributor paused: ${why}` : 'the contributor stopped').catch((err) => console.warn('tabmesh: stopping failed', err))
      running = undefined
    }
    if (!s.contribute) failed = undefined
    if (want && !running && failed !== key) {
      contribution.set({ status: 'starting', error: undefined, pausedBecause: undefined, info: undefined, stats: undefined })
      const load = trackLoad('contribute', `contributing: ${s.contributeModel}${s.layers ? ` layers ${s.layers.start}–${s.layers.end - 1}` : ''}`)
      const memoryBudgetBytes = s.memoryCapMb * 2 ** 20
      try {
        const c = await runtime.contribute({ model: s.contributeModel, layers: s.layers, backend: s.backend, memoryBudgetBytes, onProgress: load.progress })
        load.done()
        running = key
        failed = undefined
        contribution.set({
          status: 'on',
          info: {
            peerId: c.peerId, modelId: c.modelId, layers: c.layers, backend: c.backend, layerTokensPerSecond: c.layerTokensPerSecond,
            bytesDownloaded: c.bytesDownloaded, bytesFromCache: c.bytesFromCache, memoryBudgetBytes, chosenBy: s.backend === 'auto' ? 'probe' : 'setting',
          },
          probe: c.worker.loaded.probe ?? contribution.get().probe,
        })
        // the device probe (backends, SIMD, threads, cores) for the page, if loading did not run it
        if (!c.worker.loaded.probe && !contribution.get().probe) c.worker.probe().then((probe) => contribution.set({ probe }), () => {})
      } catch (err) {
        load.fail(err)
        failed = key
        contribution.set({ status: 'error', error: (err as Error).message })
      }
      return
    }
    if (!running && contribution.get().status !== 'error') contribution.set({ status: s.contribute ? 'paused' : 'off', pausedBecause: s.contribute ? why : undefined, info: undefined, stats: undefined })
    if (!s.contribute && contribution.get().status === 'error') contribution.set({ status: 'off', error: undefined })
  }

  const reconcile = () => { chain = chain.then(step, step) }
  const setEnv = (patch: Partial<ContributeViewState['env']>) => {
    const next = { ...env(), ...patch }
    if (JSON.stringify(next) === JSON.stringify(env())) return
    contribution.set({ env: next })
    reconcile()
  }

  const unsubscribe = settings.subscribe(reconcile)
  const onVisibility = () => setEnv({ hidden: document.hidden })
  document.addEventListener('visibilitychange', onVisibility)

  let lastInput = performance.now()
  const onInput = () => {
    lastInput = performance.now()
    if (env().idle) setEnv({ idle: false })
  }
  const inputs = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'] as const
  for (const t of inputs) window.addEventListener(t, onInput, { passive: true })
  const idleCheck = setInterval(() => setEnv({ idle: document.hidden || performance.now() - lastInput > IDLE_AFTER_MS }), 5000)

  let battery: BatteryManager | undefined
  const onCharging = () => setEnv({ onBattery: !battery!.charging })
  const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryManager> }
  nav.getBattery?.().then((b) => {
    battery = b
    b.addEventListener('chargingchange', onCharging)
    onCharging()
  }, () => {})

  const statsTimer = setInterval(() => {
    const c = runtime.contribution()
    if (!c || contribution.get().status !== 'on') return
    const s = c.contributor.stats()
    contribution.set({ stats: { sessionsServed: s.sessionsServed, activeSessions: s.activeSessions, queueDepth: s.queueDepth, tokensProcessed: s.tokensProcessed, startedAt: s.startedAt } })
  }, 1000)

  reconcile()
  return () => {
    unsubscribe()
    document.removeEventListener('visibilitychange', onVisibility)
    for (const t of inputs) window.removeEventListener(t, onInput)
    clearInterval(idleCheck)
    clearInterval(statsTimer)
    battery?.removeEventListener('chargingchange', onCharging)
  }
}
