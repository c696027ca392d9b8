export interface Series {
  name: string
  color: string
  values: (number | undefined)[]
}

const W = 320
const H = 120
const PAD = { l: 36, r: 8, t: 8, b: 18 }

/** A small SVG line chart of the last samples (one per second); undefined values break the line. */
export function LineChart({ title, unit, t, series }: { title: string; unit: string; t: number[]; series: Series[] }) {
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && Number.isFinite(v)))
  const max = niceMax(Math.max(1e-9, ...all))
  const n = t.length
  const x = (i: number) => PAD.l + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.l - PAD.r))
  const y = (v: number) => PAD.t + (1 - v / max) * (H - PAD.t - PAD.b)
  const path = (values: (number | undefined)[]) => {
    let d = ''
    let pen = false
    values.forEach((v, i) => {
      if (v === undefined || !Number.isFinite(v)) { pen = false; return }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`
      pen = true
    })
    return d
  }
  const latest = series.map((s) => [...s.values].reverse().find((v) => v !== undefined))
  const span = n > 1 ? Math.round((t[n - 1] - t[0]) / 1000) : 0
  return (
    <figure className="panel chart">
      <figcaption><h2>{title}</h2></figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title} over the last ${span} seconds: ${series.map((s, i) => `${s.name} ${latest[i] === undefined ? 'no data' : `${latest[i]!.toFixed(1)} ${unit}`}`).join(', ')}`}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(max * f)} y2={y(max * f)} className="grid-line" />
            <text x={PAD.l - 4} y={y(max * f) + 3} textAnchor="end" className="axis-text">{formatTick(max * f)}</text>
          </g>
        ))}
        <text x={PAD.l} y={H - 4} className="axis-text">−{span} s</text>
        <text x={W - PAD.r} y={H - 4} textAnchor="end" className="axis-text">now</text>
        {series.map((s) => <path key={s.name} d={path(s.values)} fill="none" stroke={s.color} strokeWidth={1.75} strokeLinejoin="round" />)}
      </svg>
      <ul className="legend">
        {series.map((s, i) => (
          <li key={s.name}><span className="swatch" style={{ background: s.color }} aria-hidden="true" />{s.name}: {latest[i] === undefined ? '–' : `${latest[i]!.toFixed(1)} ${unit}`}</li>
        ))}
      </ul>
    </figure>
  )
}

function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p
  return 10 * p
}

const formatTick = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(0) : v.toFixed(1))
