import { useState } from 'react'
import { fitsLocally } from './chat-state.ts'
import { useApp } from './context.ts'
import { formatBytes } from './format.ts'
import type { Settings } from './settings.ts'
import { useStore } from './store.ts'

/** Model picker, where to run (swarm, this tab, or automatic) and the sampling settings. */
export function ChatOptionsBar() {
  const { settings, models } = useApp()
  const s = useStore(settings)
  // open on wide screens; on a phone the conversation gets the room until the user opens it
  const [wide] = useState(() => window.matchMedia('(min-width: 40rem)').matches)
  const entry = models.find((m) => m.id === s.chatModel)
  const weights = entry?.files.filter((f) => f.role === 'weights').reduce((n, f) => n + f.size, 0)
  const fits = entry ? fitsLocally(entry, s.memoryCapMb) : true
  const num = (key: 'temperature' | 'topP' | 'maxTokens' | 'seed', min: number, max: number, integer = false) => (e: React.ChangeEvent<HTMLInputElement>) => {
    const v = Number(e.target.value)
    if (e.target.value !== '' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v))) settings.update({ [key]: v })
  }
  return (
    <details className="panel chat-options" open={wide}>
      <summary>Model and sampling <span className="muted summary-values">{s.chatModel} · {s.chatMode === 'auto' ? 'auto' : s.chatMode === 'swarm' ? 'swarm' : 'this tab'} · T {s.temperature} · top-p {s.topP} · {s.maxTokens} tokens</span></summary>
      <div className="options-grid">
        <label className="wide">Model
          <select value={s.chatModel} onChange={(e) => settings.update({ chatModel: e.target.value })}>
            {models.length === 0 && <option value={s.chatModel}>{s.chatModel}</option>}
            {models.map((m) => <option key={m.id} value={m.id}>{m.id} ({m.config.nLayers} layers)</option>)}
          </select>
        </label>
        <label className="wide">Run on
          <select value={s.chatMode} onChange={(e) => settings.update({ chatMode: e.target.value as Settings['chatMode'] })} aria-describedby="mode-hint">
            <option value="auto">Automatic (swarm, else this tab)</option>
            <option value="swarm">The swarm</option>
            <option value="local" disabled={!fits}>This tab only{fits ? '' : ' (too big)'}</option>
          </select>
        </label>
        <label>Temperature
          <input type="number" min={0} max={2} step={0.1} value={s.temperature} onChange={num('temperature', 0, 2)} />
        </label>
        <label>Top-p
          <input type="number" min={0} max={1} step={0.05} value={s.topP} onChange={num('topP', 0, 1)} />
        </label>
        <label>Max tokens
          <input type="number" min={1} max={entry?.config.seqLen ?? 4096} step={1} value={s.maxTokens} onChange={num('maxTokens', 1, entry?.config.seqLen ?? 4096, true)} />
        </label>
        <label>Seed
          <input type="number" min={0} step={1} value={s.seed} onChange={num('seed', 0, 2 ** 31 - 1, true)} />
        </label>
      </div>
      <p id="mode-hint" className="hint">
        {entry && weights !== undefined && (fits
          ? `${entry.id} is ${formatBytes(weights)}: it fits in this tab, so it can run here without the swarm.`
          : `${entry.id} is ${formatBytes(weights)}, more than the ${s.memoryCapMb} MiB memory cap: it runs on the swarm.`)}
        {' '}Temperature 0 always picks the most likely token.
      </p>
    </details>
  )
}
