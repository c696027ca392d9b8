/**
 * Hand-written SVG line charts: axes with ticks, labels, a legend, optional log scales and
 * horizontal threshold lines. No dependencies.
 */

export interface Series {
  name: string
  points: [number, number][]
  dashed?: boolean
}

export interface Chart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  logX?: boolean
  logY?: boolean
  /** Horizontal reference lines, e.g. a threshold. */
  hlines?: { y: number; label: string }[]
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']
const W = 720
const H = 440
const M = { left: 78, right: 190, top: 46, bottom: 58 }

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function fmt(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`
  return `${+v.toPrecision(3)}`
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v)
      }
    }
    return out
  }
  const span = hi - lo || 1
  const step0 = 10 ** Math.floor(Math.log10(span / 5))
  const step = [1, 2, 5, 10].map((k) => k * step0).find((s) => span / s <= 6) ?? step0 * 10
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toPrecision(10))
  return out
}

export function lineChart(c: Chart): string {
  const pts = c.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!c.logX || x > 0) && (!c.logY || y > 0))
  const ys = [...pts.map((p) => p[1]), ...(c.hlines ?? []).map((h) => h.y)]
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))]
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)]
  if (!c.logY) y0 = Math.min(0, y0)
  if (x0 === x1) [x0, x1] = [x0 * 0.9, x1 * 1.1 || 1]
  if (y0 === y1) [y0, y1] = [y0 * 0.9, y1 * 1.1 || 1]
  if (c.logY) [y0, y1] = [y0 / 1.3, y1 * 1.3]
  else y1 += (y1 - y0) * 0.08
  const tx = (x: number) => M.left + ((c.logX ? Math.log10(x) - Math.log10(x0) : x - x0) / (c.logX ? Math.log10(x1) - Math.log10(x0) : x1 - x0)) * (W - M.left - M.right)
  const ty = (y: number) => H - M.bottom - ((c.logY ? Math.log10(y) - Math.log10(y0) : y - y0) / (c.logY ? Math.log10(y1) - Math.log10(y0) : y1 - y0)) * (H - M.top - M.bottom)
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(`<text x="${W / 2 - M.right / 2 + M.left / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`)
  const [px0, px1, py0, py1] = [M.left, W - M.right, M.top, H - M.bottom]
  for (const v of ticks(y0, y1, !!c.logY)) {
    out.push(`<line x1="${px0}" x2="${px1}" y1="${ty(v)}" y2="${ty(v)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${px0 - 6}" y="${ty(v) + 4}" text-anchor="end">${fmt(v)}</text>`)
  }
  for (const v of ticks(x0, x1, !!c.logX)) {
    out.push(`<line x1="${tx(v)}" x2="${tx(v)}" y1="${py0}" y2="${py1}" stroke="#f0f0f0"/>`)
    out.push(`<text x="${tx(v)}" y="${py1 + 18}" text-anchor="middle">${fmt(v)}</text>`)
  }
  out.push(`<line x1="${px0}" x2="${px1}" y1="${py1}" y2="${py1}" stroke="black"/><line x1="${px0}" x2="${px0}" y1="${py0}" y2="${py1}" stroke="black"/>`)
  out.push(`<text x="${(px0 + px1) / 2}" y="${H - 14}" text-anchor="middle">${esc(c.xLabel)}${c.logX ? ' (log)' : ''}</text>`)
  out.push(`<text transform="translate(18 ${(py0 + py1) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}${c.logY ? ' (log)' : ''}</text>`)
  for (const h of c.hlines ?? []) {
    out.push(`<line x1="${px0}" x2="${px1}" y1="${ty(h.y)}" y2="${ty(h.y)}" stroke="#555" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${px1 - 4}" y="${ty(h.y) - 5}" text-anchor="end" fill="#555">${esc(h.label)}</text>`)
  }
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!c.logX || x > 0) && (!c.logY || y > 0))
    if (ok.length > 0) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''} points="${ok.map(([x, y]) => `${tx(x).toFixed(1)},${ty(y).toFixed(1)}`).join(' ')}"/>`)
      for (const [x, y] of ok) out.push(`<circle cx="${tx(x).toFixed(1)}" cy="${ty(y).toFixed(1)}" r="3" fill="${color}"/>`)
    }
    const ly = M.top + 10 + i * 20
    out.push(`<line x1="${W - M.right + 14}" x2="${W - M.right + 38}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`)
    out.push(`<text x="${W - M.right + 44}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
