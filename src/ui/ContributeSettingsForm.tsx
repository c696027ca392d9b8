import { useApp } from './context.ts'
import { IDLE_AFTER_MS } from './contribute-state.ts'
import type { Settings } from './settings.ts'
import { useStore } from './store.ts'

const BACKENDS: { value: Settings['backend']; label: string }[] = [
  { value: 'auto', label: 'Automatic (fastest measured)' },
  { value: 'webgpu', label: 'WebGPU' },
  { value: 'wasm', label: 'WebAssembly' },
  { value: 'ref', label: 'Reference (plain JavaScript)' },
]

/** The contributor's settings; saved as they change. Changing one while on restarts hosting. */
export function ContributeSettingsForm() {
  const { settings, models } = useApp()
  const s = useStore(settings)
  const entry = models.find((m) => m.id === s.contributeModel)
  const nLayers = entry?.config.nLayers
  const hasBattery = 'getBattery' in navigator
  const setLayers = (start: number, end: number) => settings.update({ layers: { start, end } })
  return (
    <form className="panel settings" aria-labelledby="contribute-settings-title" onSubmit={(e) => e.preventDefault()}>
      <h2 id="contribute-settings-title">Settings</h2>
      <div className="row">
        <label>Model to host
          <select value={s.contributeModel} onChange={(e) => settings.update({ contributeModel: e.target.value, layers: undefined })}>
            {models.length === 0 && <option value={s.contributeModel}>{s.contributeModel}</option>}
            {models.map((m) => <option key={m.id} value={m.id}>{m.id} ({m.config.nLayers} layers)</option>)}
          </select>
        </label>
        <label>Backend
          <select value={s.backend} onChange={(e) => settings.update({ backend: e.target.value as Settings['backend'] })}>
            {BACKENDS.map((b) => <option key={b.value} value={b.value}>{b.label}</option>)}
          </select>
        </label>
        <label>Memory cap (MiB)
          <input type="number" min={16} step={16} value={s.memoryCapMb} onChange={(e) => { const v = Number(e.target.value); if (v >= 1) settings.update({ memoryCapMb: Math.round(v) }) }} />
        </label>
      </div>
      <fieldset>
        <legend>Layers to host</legend>
        <label className="check">
          <input type="radio" name="layer-choice" checked={s.layers === undefined} onChange={() => settings.update({ layers: undefined })} />
          Automatic: where the swarm is weakest, as many as the memory cap holds
        </label>
        <label className="check">
          <input type="radio" name="layer-choice" checked={s.layers !== undefined} onChange={() => setLayers(0, nLayers ?? 1)} />
          These layers:
        </label>
        {s.layers && (
          <div className="row">
            <label>First layer
              <input type="number" min={0} max={(nLayers ?? 4096) - 1} value={s.layers.start}
                onChange={(e) => { const v = Number(e.target.value); if (Number.isInteger(v) && v >= 0 && v < s.layers!.end) setLayers(v, s.layers!.end) }} />
            </label>
            <label>Last layer
              <input type="number" min={s.layers.start} max={(nLayers ?? 4097) - 1} value={s.layers.end - 1}
                onChange={(e) => { const v = Number(e.target.value); if (Number.isInteger(v) && v >= s.layers!.start && (nLayers === undefined || v < nLayers)) setLayers(s.layers!.start, v + 1) }} />
            </label>
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>When to pause</legend>
        <label className="check">
          <input type="checkbox" checked={s.pauseWhenHidden} onChange={(e) => settings.update({ pauseWhenHidden: e.target.checked })} />
          While this tab is hidden
        </label>
        <label className="check">
          <input type="checkbox" checked={s.pauseOnBattery} onChange={(e) => settings.update({ pauseOnBattery: e.target.checked })} disabled={!hasBattery} />
          While on battery{!hasBattery && ' (this browser does not report the battery)'}
        </label>
        <label className="check">
          <input type="checkbox" checked={s.idleOnly} onChange={(e) => settings.update({ idleOnly: e.target.checked })} />
          Only when idle (no input here for {IDLE_AFTER_MS / 60_000} min)
        </label>
      </fieldset>
    </form>
  )
}
