/** Number and id formatting shared by the views. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '–'
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let u = 0
  while (Math.abs(n) >= 1000 && u < units.length - 1) { n /= 1000; u++ }
  return `${n.toFixed(u === 0 || n >= 100 ? 0 : 1)} ${units[u]}`
}

/** Memory sizes in binary units, as the memory cap is set (MiB). */
export const formatMiB = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`)

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–'
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ${s % 60} s`
  return `${Math.floor(m / 60)} h ${m % 60} min`
}

export const formatRate = (perSecond: number, unit: string) => (Number.isFinite(perSecond) ? `${perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1)} ${unit}/s` : '–')

/** The distinctive tail of a libp2p peer id (they all start with 12D3KooW). */
export const shortPeerId = (id: string) => `…${id.slice(-8)}`

export const layerText = (r: { start: number; end: number }) => (r.end - r.start === 1 ? `layer ${r.start}` : `layers ${r.start}–${r.end - 1}`)
