/**
 * Fingerprints of hidden states: what the client keeps of every row a hop returned, and what a
 * check compares. A fingerprint is a secret random projection of the row (m signs per dimension,
 * drawn by the client and never sent): m floats instead of dim, and by Johnson-Lindenstrauss the
 * distance between two fingerprints estimates the distance between the rows, in every direction.
 * TOPLOC keeps the top-k values instead; those see a change to the few largest components only,
 * while a perturbation spread over small components (or aimed at the ones a peer guesses are not
 * kept) moves a secret projection all the same.
 *
 * Compare: relative error |F(a) - F(b)| / |F(b)| per row, against a tolerance calibrated on honest
 * executions (tolerances.ts).
 */
import { TabmeshError } from '../core/errors.ts'
import { createRng } from '../core/rng.ts'

export const FINGERPRINT_SIZE = 32 // m: floats kept per row

export interface Fingerprinter {
  readonly dim: number
  readonly size: number
  /** rows (n, dim) -> fingerprints (n, size). */
  sketch(rows: Float32Array): Float32Array
}

/** A projection of ±1/sqrt(m) entries from `seed` (keep the seed secret: a peer that knew it could aim its lies). */
export function createFingerprinter(dim: number, seed: number, size = FINGERPRINT_SIZE): Fingerprinter {
  if (!(Number.isInteger(dim) && dim > 0 && Number.isInteger(size) && size > 0)) throw new TabmeshError('bad-argument', `fingerprint of ${size} floats over rows of ${dim}`)
  const rng = createRng(seed)
  const scale = 1 / Math.sqrt(size)
  const projection = new Float32Array(size * dim) // (size, dim)
  for (let i = 0; i < projection.length; i++) projection[i] = (rng.nextU32() & 1 ? scale : -scale)
  return {
    dim,
    size,
    sketch(rows) {
      const n = rows.length / dim
      if (!Number.isInteger(n)) throw new TabmeshError('bad-argument', `${rows.length} values are not rows of ${dim}`)
      const out = new Float32Array(n * size) // (n, size)
      for (let r = 0; r < n; r++) {
        const row = r * dim
        for (let j = 0; j < size; j++) {
          const p = j * dim
          let s = 0
          for (let d = 0; d < dim; d++) s += projection[p + d] * rows[row + d]
          out[r * size + j] = s
        }
      }
      return out
    },
  }
}

/** Relative distance |a - b| / |b| of row `r` of two fingerprint arrays ((n, size) each). */
export function rowDistance(a: Float32Array, b: Float32Array, r: number, size = FINGERPRINT_SIZE): number {
  let diff = 0
  let norm = 0
  for (let j = r * size; j < (r + 1) * size; j++) {
    const d = a[j] - b[j]
    diff += d * d
    norm += b[j] * b[j]
  }
  if (!(norm > 0)) return diff > 0 ? Infinity : 0
  const distance = Math.sqrt(diff / norm)
  return Number.isNaN(distance) ? Infinity : distance
}

/** The largest row distance between two (n, size) fingerprint arrays, and the row where it is. */
export function maxDistance(a: Float32Array, b: Float32Array, size = FINGERPRINT_SIZE): { distance: number; row: number } {
  if (a.length !== b.length || a.length % size !== 0) return { distance: Infinity, row: 0 }
  let worst = { distance: 0, row: 0 }
  for (let r = 0; r < a.length / size; r++) {
    const distance = rowDistance(a, b, r, size)
    if (distance > worst.distance) worst = { distance, row: r }
  }
  return worst
}
