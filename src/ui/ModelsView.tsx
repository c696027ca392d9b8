import { useCallback, useEffect, useState } from 'react'
import { startEngineWorker } from '../engine/worker/index.ts'
import type { ModelEntry } from '../model/source/registry.ts'
import { loadRemoteTokenizer } from '../model/source/remote.ts'
import { useApp } from './context.ts'
import { formatBytes } from './format.ts'
import { LoadProgressBar } from './LoadProgressBar.tsx'
import { loads, trackLoad } from './loads.ts'
import { clearAllModelCaches, markModelComplete, modelCacheStatus, type ModelCacheStatus } from './model-cache.ts'
import { useStore } from './store.ts'

/** Downloads: what is cached for offline use, what is loading now, and one click to clear it all. */
export function ModelsView() {
  const { models, runtime } = useApp()
  const { entries } = useStore(loads)
  const [cache, setCache] = useState<Record<string, ModelCacheStatus>>({})
  const [clearing, setClearing] = useState(false)
  const refresh = useCallback(async () => {
    const next: Record<string, ModelCacheStatus> = {}
    for (const m of models) next[m.id] = await modelCacheStatus(runtime.baseUrl, m).catch(() => ({ cachedBytes: 0, modelBytes: 0, complete: false }))
    setCache(next)
  }, [models, runtime])
  const doneCount = entries.filter((e) => e.state !== 'loading').length
  useEffect(() => { void refresh() }, [refresh, doneCount])

  const clear = async () => {
    setClearing(true)
    try { await clearAllModelCaches() } finally { setClearing(false); void refresh() }
  }

  return (
    <section aria-labelledby="models-title" className="view">
      <h1 id="models-title">Models</h1>
      <p className="lede">Downloaded layers stay in this browser's cache, so reloading (or chatting in this tab with no network) does not download them again.</p>
      <section className="panel" aria-labelledby="cached-title">
        <div className="list-head">
          <h2 id="cached-title">Cached models</h2>
          <button type="button" className="danger" onClick={() => void clear()} disabled={clearing}>{clearing ? 'Clearing…' : 'Clear cache'}</button>
        </div>
        <ul className="model-list" data-testid="model-list">
          {models.map((m) => <ModelCacheRow key={m.id} model={m} status={cache[m.id]} />)}
        </ul>
      </section>
      <section className="panel" aria-labelledby="loads-title">
        <h2 id="loads-title">Downloads and loads</h2>
        {entries.length === 0 ? <p className="muted">Nothing loaded in this tab yet.</p> : (
          <ul className="plain load-list">{[...entries].reverse().map((e) => <li key={e.key}><LoadProgressBar entry={e} /></li>)}</ul>
        )}
      </section>
    </section>
  )
}

function ModelCacheRow({ model, status }: { model: ModelEntry; status?: ModelCacheStatus }) {
  const { runtime } = useApp()
  const busy = useStore(loads).entries.some((e) => e.key === `download:${model.id}` && e.state === 'loading')
  const full = !!status?.complete
  const download = async () => {
    const load = trackLoad(`download:${model.id}`, `download: ${model.id}`)
    try {
      // the worker reads (and checks) every part, and the cache keeps each range it read; the tokenizer too
      const [worker] = await Promise.all([startEngineWorker({ baseUrl: runtime.baseUrl, entry: model, backend: 'ref' }, load.progress), loadRemoteTokenizer(runtime.baseUrl, model)])
      worker.terminate()
      await markModelComplete(runtime.baseUrl, model)
      load.done()
    } catch (err) {
      load.fail(err)
    }
  }
  return (
    <li data-testid={`model-${model.id}`} data-cached={status ? String(full) : undefined}>
      <div>
        <strong>{model.id}</strong> <span className="muted">{model.format}{model.weightType ? ` ${model.weightType}` : ''} · {model.config.nLayers} layers · dim {model.config.dim} · context {model.config.seqLen}</span>
      </div>
      <div className="row-tight">
        <span>{status ? (full ? `cached (${formatBytes(status.modelBytes)}): works offline` : status.cachedBytes > 0 ? `${formatBytes(Math.min(status.cachedBytes, status.modelBytes))} of ${formatBytes(status.modelBytes)} cached` : `not cached (${formatBytes(status.modelBytes)})`) : '…'}</span>
        {!full && <button type="button" className="secondary" onClick={() => void download()} disabled={busy}>{busy ? 'Downloading…' : 'Download'}</button>}
      </div>
    </li>
  )
}
