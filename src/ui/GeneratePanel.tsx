import { useEffect, useRef, useState } from 'react'
import type { Engine } from '../engine/engine.ts'
import { generateTokens } from '../engine/generate.ts'
import { startEngineWorker, type EngineWorker } from '../engine/worker-engine.ts'
import type { BackendName } from '../engine/engine.ts'
import { DEFAULT_MODEL_ID, type ModelEntry } from '../model/registry.ts'
import { loadRemoteTokenizer } from '../model/remote.ts'
import type { Tokenizer } from '../model/tokenizer.ts'

interface Loaded {
  worker: EngineWorker
  engine: Engine
  tokenizer: Tokenizer
}

/** Prompt in, streamed text out, running the whole model in this tab's engine worker. */
export function GeneratePanel({ models }: { models: ModelEntry[] }) {
  const [modelId, setModelId] = useState(models.find((m) => m.id === DEFAULT_MODEL_ID)?.id ?? models[0].id)
  const [backend, setBackend] = useState<BackendName | 'auto'>(() => (new URLSearchParams(location.search).get('backend') as BackendName | null) ?? 'ref')
  const [loaded, setLoaded] = useState<Loaded>()
  const [status, setStatus] = useState('loading model…')
  const [prompt, setPrompt] = useState('')
  const [maxTokens, setMaxTokens] = useState(64)
  const [temperature, setTemperature] = useState(0)
  const [topP, setTopP] = useState(0.9)
  const [seed, setSeed] = useState(42)
  const [output, setOutput] = useState('')
  const [ids, setIds] = useState<number[]>([])
  const [running, setRunning] = useState(false)
  const stop = useRef(false)

  useEffect(() => {
    const entry = models.find((m) => m.id === modelId)!
    let cancelled = false
    let worker: EngineWorker | undefined
    setLoaded(undefined)
    setStatus(`loading ${entry.id}…`)
    const onProgress = (p: { loadedBytes: number; totalBytes: number }) => !cancelled && setStatus(`loading ${entry.id}: ${Math.round((100 * p.loadedBytes) / p.totalBytes)}%`)
    const base = location.origin + '/'
    Promise.all([startEngineWorker({ baseUrl: base, entry, backend }, onProgress), loadRemoteTokenizer(base, entry)]).then(
      async ([w, tokenizer]) => {
        worker = w
        if (cancelled) return w.terminate()
        setLoaded({ worker: w, engine: await w.open(), tokenizer })
        setStatus(`${entry.id} ready (${w.loaded.backend} engine in a worker)`)
      },
      (err: Error) => !cancelled && setStatus(`could not load ${entry.id}: ${err.message}`),
    )
    return () => {
      cancelled = true
      worker?.terminate()
    }
  }, [modelId, models, backend])

  async function run() {
    if (!loaded) return
    setRunning(true)
    setOutput('')
    setIds([])
    stop.current = false
    const { engine, tokenizer } = loaded
    try {
      const promptTokens = tokenizer.encode(prompt)
      const decoder = tokenizer.createStreamDecoder(promptTokens[promptTokens.length - 1])
      const started = performance.now()
      const got: number[] = []
      for await (const t of generateTokens(engine, promptTokens, { maxTokens, temperature, topP, seed })) {
        got.push(t)
        const piece = decoder.push(t)
        if (piece) setOutput((o) => o + piece)
        if (stop.current) break
      }
      setOutput((o) => o + decoder.flush())
      setIds(got)
      const seconds = (performance.now() - started) / 1000
      setStatus(`${got.length} tokens in ${seconds.toFixed(2)} s (${(got.length / seconds).toFixed(0)} tokens/s)`)
    } catch (err) {
      setStatus((err as Error).message)
    } finally {
      setRunning(false)
    }
  }

  return (
    <section aria-labelledby="generate-title" className="panel">
      <h2 id="generate-title">Generate in this tab</h2>
      <form onSubmit={(e) => { e.preventDefault(); void run() }}>
        <label>Model
          <select value={modelId} onChange={(e) => setModelId(e.target.value)} disabled={running}>
            {models.map((m) => <option key={m.id} value={m.id}>{m.id} ({m.config.nLayers} layers)</option>)}
          </select>
        </label>
        <label>Backend
          <select value={backend} onChange={(e) => setBackend(e.target.value as BackendName | 'auto')} disabled={running}>
            {['auto', 'ref', 'wasm', 'webgpu'].map((b) => <option key={b} value={b}>{b}</option>)}
          </select>
        </label>
        <label>Prompt
          <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={3} placeholder="Once upon a time" />
        </label>
        <div className="row">
          <label>Max tokens <input type="number" min={1} value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))} /></label>
          <label>Temperature <input type="number" min={0} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} /></label>
          <label>Top-p <input type="number" min={0} max={1} step={0.05} value={topP} onChange={(e) => setTopP(Number(e.target.value))} /></label>
          <label>Seed <input type="number" min={0} value={seed} onChange={(e) => setSeed(Number(e.target.value))} /></label>
        </div>
        <div className="row">
          <button type="submit" disabled={!loaded || running}>Generate</button>
          <button type="button" disabled={!running} onClick={() => { stop.current = true }}>Stop</button>
        </div>
      </form>
      <p role="status" data-testid="status">{status}</p>
      <output data-testid="output" data-ids={ids.join(' ')} data-done={String(!running && ids.length > 0)}>{output}</output>
    </section>
  )
}
