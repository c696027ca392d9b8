/**
 * Plain TypeScript twins of the WGSL kernels in shaders/, with the reference engine's arithmetic
 * (sums in double precision, results stored as f32). The kernel tests run each kernel and its twin
 * on the same random inputs. The cos/sin table rope_f32 and ropeRef read is the engines' own
 * (ropeTable, src/engine/rope.ts), re-exported here with the twins.
 */

export { ropeTable } from '../src/engine/rope.ts'

/** Twin of matvec_f32 and matmul_f32: y[m, rowOffset + o] = W[o, :] . x[m, :]; W (n, k), x (rows, k). */
export function linearRef(y: Float32Array, w: Float32Array, x: Float32Array, rows: number, n: number, k: number, rowOffset: number, yStride: number): void {
  for (let m = 0; m < rows; m++) {
    for (let o = 0; o < n; o++) {
      let sum = 0
      for (let j = 0; j < k; j++) sum += w[o * k + j] * x[m * k + j]
      y[m * yStride + rowOffset + o] = sum
    }
  }
}

/** Twin of rmsnorm_f32: out (rows, dim). */
export function rmsnormRef(out: Float32Array, x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    let ss = 0
    for (let j = 0; j < dim; j++) ss += x[r * dim + j] * x[r * dim + j]
    const scale = 1 / Math.sqrt(ss / dim + eps)
    for (let j = 0; j < dim; j++) out[r * dim + j] = weight[j] * (scale * x[r * dim + j])
  }
}

/** Twin of rope_f32, in place on v (rows, width): pairs (2i, 2i+1) within each head; table as made by ropeTable. */
export function ropeRef(v: Float32Array, positions: ArrayLike<number>, rows: number, width: number, headSize: number, table: Float32Array): void {
  const half = headSize / 2
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < width; i += 2) {
      const pair = (i % headSize) / 2
      const t = (positions[r] * half + pair) * 2
      const cos = table[t]
      const sin = table[t + 1]
      const v0 = v[r * width + i]
      const v1 = v[r * width + i + 1]
      v[r * width + i] = v0 * cos - v1 * sin
      v[r * width + i + 1] = v0 * sin + v1 * cos
    }
  }
}

/** Twin of swiglu_f32: gate = silu(gate) * up. */
export function swigluRef(gate: Float32Array, up: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) {
    const g = gate[i]
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]
  }
}

/** Twin of bias_add_f32: x[r, i] += bias[i] for every row r of x (rows, width). */
export function biasAddRef(x: Float32Array, bias: Float32Array, rows: number, width: number): void {
  for (let r = 0; r < rows; r++) for (let i = 0; i < width; i++) x[r * width + i] += bias[i]
}

/** Twin of residual_add_f32: x += delta. */
export function residualAddRef(x: Float32Array, delta: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) x[i] += delta[i]
}

/** Twin of embedding_f32 (whole table): out (rows, dim). */
export function embeddingRef(out: Float32Array, table: Float32Array, tokens: ArrayLike<number>, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) out.set(table.subarray(tokens[r] * dim, (tokens[r] + 1) * dim), r * dim)
}

/** Twin of argmax_f32: the first index of the largest value. */
export function argmaxRef(values: Float32Array, count: number): number {
  let best = 0
  for (let i = 1; i < count; i++) if (values[i] > values[best]) best = i
  return best
}

/**
 * Twin of attention_decode_f32 / attention_prefill_f32 followed by attention_merge_f32: for each row r
 * and query head h, softmax(q . k_t / sqrt(headSize)) over t <= pos_r, times v_t; grouped-query heads
 * share key/value head h / (nHeads / nKvHeads). keys, values (seqLen, kvDim); out (rows, outStride).
 */
export function attentionRef(out: Float32Array, q: Float32Array, keys: Float32Array, values: Float32Array, positions: ArrayLike<number>,
  rows: number, nHeads: number, nKvHeads: number, headSize: number, qStride: number, outStride: number): void {
  const kvDim = nKvHeads * headSize
  const kvMul = nHeads / nKvHeads
  const scale = 1 / Math.sqrt(headSize)
  const maxPos = Math.max(...Array.from({ length: rows }, (_, r) => positions[r]))
  const att = new Float64Array(maxPos + 1) // (positions) scores, then weights
  for (let r = 0; r < rows; r++) {
    const pos = positions[r]
    for (let h = 0; h < nHeads; h++) {
      const kvBase = Math.floor(h / kvMul) * headSize
      let max = -Infinity
      for (let t = 0; t <= pos; t++) {
        let s = 0
        for (let i = 0; i < headSize; i++) s += q[r * qStride + h * headSize + i] * keys[t * kvDim + kvBase + i]
        att[t] = s * scale
        if (att[t] > max) max = att[t]
      }
      let sum = 0
      for (let t = 0; t <= pos; t++) {
        att[t] = Math.exp(att[t] - max)
        sum += att[t]
      }
      for (let i = 0; i < headSize; i++) {
        let acc = 0
        for (let t = 0; t <= pos; t++) acc += att[t] * values[t * kvDim + kvBase + i]
        out[r * outStride + h * headSize + i] = acc / sum
      }
    }
  }
}
