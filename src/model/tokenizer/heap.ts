/**
 * A binary heap of fixed-width numeric records, all in one Float64Array (ids, positions and scores
 * are exact in f64), for the BPE merge loops. `first(data, a, b)` says whether the record at offset
 * a comes out before the record at offset b. It grows by doubling; a push or a pop allocates nothing.
 */
export interface RecordHeap {
  readonly size: number
  clear(): void
  /** Adds a record: its first `width` fields. */
  push(f0: number, f1?: number, f2?: number, f3?: number, f4?: number): void
  /** Removes the first record into out[0, width). */
  pop(out: Float64Array): void
}

export function createRecordHeap(width: number, first: (data: Float64Array, a: number, b: number) => boolean): RecordHeap {
  let data = new Float64Array(64 * width)
  let size = 0
  const before = (a: number, b: number) => first(data, a * width, b * width)
  const swap = (a: number, b: number) => {
    for (let k = 0, i = a * width, j = b * width; k < width; k++, i++, j++) { const t = data[i]; data[i] = data[j]; data[j] = t }
  }
  return {
    get size() { return size },
    clear() { size = 0 },
    push(f0, f1 = 0, f2 = 0, f3 = 0, f4 = 0) {
      if ((size + 1) * width > data.length) {
        const grown = new Float64Array(data.length * 2)
        grown.set(data)
        data = grown
      }
      const at = size * width
      data[at] = f0
      if (width > 1) data[at + 1] = f1
      if (width > 2) data[at + 2] = f2
      if (width > 3) data[at + 3] = f3
      if (width > 4) data[at + 4] = f4
      for (let c = size++; c > 0;) {
        const parent = (c - 1) >> 1
        if (!before(c, parent)) break
        swap(c, parent)
        c = parent
      }
    },
    pop(out) {
      for (let k = 0; k < width; k++) out[k] = data[k]
      swap(0, --size)
      for (let c = 0; ;) {
        const l = 2 * c + 1, r = l + 1
        let m = c
        if (l < size && before(l, m)) m = l
        if (r < size && before(r, m)) m = r
        if (m === c) break
        swap(c, m)
        c = m
      }
    },
  }
}
