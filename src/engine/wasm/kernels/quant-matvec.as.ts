// AssemblyScript (compiled to WebAssembly by vite-plugin-asc.ts, not by tsc): products of Q8_0 /
// Q4_0 weight matrices kept in their GGML blocks with fp32 inputs, in 128-bit SIMD (and of the
// fp32 matrices a quantized model keeps beside them, matvecF32).
//
//   out (rows, outDim) = x (rows, inDim) @ W^T, W (outDim, inDim) in blocks of 32 inputs
//   out[r, i] = sum_b d_b * sum_j q_bj * x[r, 32 b + j]
//
// the contract of quantizedMatvec in src/engine/reference/quant-matvec.ts, its TypeScript twin. Block layouts:
//   Q8_0 (34 bytes): f16 d, int8 q[32]
//   Q4_0 (18 bytes): f16 d, 16 bytes; q[j] = (byte[j] & 15) - 8, q[j + 16] = (byte[j] >> 4) - 8
// The codes widen i8 -> i16 -> i32 -> f32 in registers; nothing is dequantized to memory for one
// input row. For several rows, each weight row's codes are widened once into `scratch` and every
// input row reads them from there, so the weights are streamed once per call, not once per row.
// Both paths add the same products in the same order, so a row gives the same bits either way.
//
// Pointers are byte offsets into the memory the host (quant-kernels.ts) imports and manages; this
// module allocates nothing. Call init() once with 256 KiB for the f16 -> f32 table first.

const Q8_0_BYTES: usize = 34
const Q4_0_BYTES: usize = 18

/** Where init() put the f32 value of every f16 bit pattern: a block scale is one load. */
let f16Table: usize = 0
/** Sum of the bytes touched ahead (touchRow): kept so the loads are not optimized away. */
let touched: u32 = 0

/**
 * Uses the f16 table (65536 f32, 256 KiB) at `table`, filling it when `fill` (an instance on a
 * memory another instance already filled, a helper thread's, only points at it).
 */
export function init(table: usize, fill: bool): void {
  f16Table = table
  if (fill) for (let h: u32 = 0; h < 65536; h++) store<f32>(table + (<usize>h << 2), f16ToF32(h))
}

/** Block scale d of the block at `at`, from its f16 bits. */
// @ts-ignore: decorator
@inline function scaleOf(at: usize): v128 {
  return v128.load32_splat(f16Table + (<usize>load<u16>(at) << 2))
}

/**
 * Reads one byte per 64-byte line of the weight row at `row`. The compute per block is heavy
 * enough that the out-of-order core keeps only a few lines in flight when weights come from
 * memory (measured: a cold matrix took 1.7x as long as a cached one); touching the next row in a
 * burst of independent loads at the start of each row fetches it in parallel (cold: 1.35x).
 */
// @ts-ignore: decorator
@inline function touchRow(row: usize, bytes: usize): void {
  let sum: u32 = 0
  for (let p: usize = 0; p < bytes; p += 64) sum += load<u8>(row + p)
  touched += sum
}

/** The f16 bits h as f32, exactly (normals, subnormals, infinities, NaN). */
// @ts-ignore: decorator
@inline function f16ToF32(h: u32): f32 {
  const magnitude = (h & 0x7fff) << 13
  // the f16 exponent lands in the f32 field unbiased by 112: scaling by 2^112 rebiases it, and
  // makes the f16 subnormals (f32 subnormals here) exact normals
  let value = reinterpret<f32>(magnitude) * reinterpret<f32>(0x77800000) // 2^112
  if ((h & 0x7c00) == 0x7c00) value = reinterpret<f32>(magnitude | 0x7f800000) // infinity, NaN
  return reinterpret<f32>(reinterpret<u32>(value) | ((h & 0x8000) << 16))
}

/**
 * sum_j q_j * x_j over one block, as four lane sums: the 32 codes as two i8x16 (j 0..15, j 16..31)
 * times x[0..31] at xp.
 */
// @ts-ignore: decorator
@inline function blockDot(lo: v128, hi: v128, xp: usize): v128 {
  const a = i16x8.extend_low_i8x16_s(lo) // j 0..7
  const b = i16x8.extend_high_i8x16_s(lo) // j 8..15
  const c = i16x8.extend_low_i8x16_s(hi) // j 16..23
  const d = i16x8.extend_high_i8x16_s(hi) // j 24..31
  const p0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a)), v128.load(xp))
  const p1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a)), v128.load(xp, 16))
  const p2 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b)), v128.load(xp, 32))
  const p3 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b)), v128.load(xp, 48))
  const p4 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(c)), v128.load(xp, 64))
  const p5 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(c)), v128.load(xp, 80))
  const p6 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(d)), v128.load(xp, 96))
  const p7 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(d)), v128.load(xp, 112))
  return f32x4.add(f32x4.add(f32x4.add(p0, p1), f32x4.add(p2, p3)), f32x4.add(f32x4.add(p4, p5), f32x4.add(p6, p7)))
}

/** The same sum with the codes already widened to f32 (8 x f32x4 at qp). */
// @ts-ignore: decorator
@inline function blockDotWidened(qp: usize, xp: usize): v128 {
  const p0 = f32x4.mul(v128.load(qp), v128.load(xp))
  const p1 = f32x4.mul(v128.load(qp, 16), v128.load(xp, 16))
  const p2 = f32x4.mul(v128.load(qp, 32), v128.load(xp, 32))
  const p3 = f32x4.mul(v128.load(qp, 48), v128.load(xp, 48))
  const p4 = f32x4.mul(v128.load(qp, 64), v128.load(xp, 64))
  const p5 = f32x4.mul(v128.load(qp, 80), v128.load(xp, 80))
  const p6 = f32x4.mul(v128.load(qp, 96), v128.load(xp, 96))
  const p7 = f32x4.mul(v128.load(qp, 112), v128.load(xp, 112))
  return f32x4.add(f32x4.add(f32x4.add(p0, p1), f32x4.add(p2, p3)), f32x4.add(f32x4.add(p4, p5), f32x4.add(p6, p7)))
}

// @ts-ignore: decorator
@inline function laneSum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
}

/** Q4_0 codes j 0..15 (low nibbles) minus 8, as i8x16. */
// @ts-ignore: decorator
@inline function q4Low(raw: v128): v128 {
  return i8x16.sub(v128.and(raw, i8x16.splat(0x0f)), i8x16.splat(8))
}

/** Q4_0 codes j 16..31 (high nibbles) minus 8, as i8x16. */
// @ts-ignore: decorator
@inline function q4High(raw: v128): v128 {
  return i8x16.sub(i8x16.shr_u(raw, 4), i8x16.splat(8))
}

/** Codes of one block widened to 32 f32 at qp. */
// @ts-ignore: decorator
@inline function widenBlock(lo: v128, hi: v128, qp: usize): void {
  const a = i16x8.extend_low_i8x16_s(lo)
  const b = i16x8.extend_high_i8x16_s(lo)
  const c = i16x8.extend_low_i8x16_s(hi)
  const d = i16x8.extend_high_i8x16_s(hi)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(a)))
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(a)), 16)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(b)), 32)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(b)), 48)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(c)), 64)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(c)), 80)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(d)), 96)
  v128.store(qp, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(d)), 112)
}

/**
 * Rows > 1: out[r, i] for every input row r from the widened codes (inDim f32 at scratch) and the
 * block scales (inDim / 32 f32 after them) of weight row i.
 */
// @ts-ignore: decorator
@inline function rowsFromScratch(scratch: usize, x: usize, out: usize, rows: i32, outDim: i32, inDim: i32, i: i32): void {
  const blocks = inDim >> 5
  const scales = scratch + (<usize>inDim << 2)
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>(r * inDim) << 2)
    let acc = f32x4.splat(0)
    for (let b = 0; b < blocks; b++) {
      const s = blockDotWidened(scratch + (<usize>b << 7), xr + (<usize>b << 7))
      acc = f32x4.add(acc, f32x4.mul(s, v128.load32_splat(scales + (<usize>b << 2))))
    }
    store<f32>(out + (<usize>(r * outDim + i) << 2), laneSum(acc))
  }
}

/**
 * out (rows, outDim) = x (rows, inDim) @ W^T for W in Q8_0 blocks at w, weight rows [first, last)
 * (the outputs of those rows; threads split a product by rows). scratch: (inDim + inDim / 32) f32,
 * used when rows > 1, one per thread.
 */
export function matvecQ8_0(w: usize, x: usize, out: usize, rows: i32, outDim: i32, inDim: i32, scratch: usize, first: i32, last: i32): void {
  const blocks = inDim >> 5
  const rowBytes = <usize>blocks * Q8_0_BYTES
  for (let i = first; i < last; i++) {
    const wr = w + <usize>i * rowBytes
    if (i + 1 < last) touchRow(wr + rowBytes, rowBytes)
    if (rows == 1) {
      let acc = f32x4.splat(0)
      for (let b = 0; b < blocks; b++) {
        const at = wr + <usize>b * Q8_0_BYTES
        const s = blockDot(v128.load(at, 2), v128.load(at, 18), x + (<usize>b << 7))
        acc = f32x4.add(acc, f32x4.mul(s, scaleOf(at)))
      }
      store<f32>(out + (<usize>i << 2), laneSum(acc))
    } else {
      const scales = scratch + (<usize>inDim << 2)
      for (let b = 0; b < blocks; b++) {
        const at = wr + <usize>b * Q8_0_BYTES
        widenBlock(v128.load(at, 2), v128.load(at, 18), scratch + (<usize>b << 7))
        v128.store32_lane(scales + (<usize>b << 2), scaleOf(at), 0)
      }
      rowsFromScratch(scratch, x, out, rows, outDim, inDim, i)
    }
  }
}

/** As matvecQ8_0 for W in Q4_0 blocks. */
export function matvecQ4_0(w: usize, x: usize, out: usize, rows: i32, outDim: i32, inDim: i32, scratch: usize, first: i32, last: i32): void {
  const blocks = inDim >> 5
  const rowBytes = <usize>blocks * Q4_0_BYTES
  for (let i = first; i < last; i++) {
    const wr = w + <usize>i * rowBytes
    if (i + 1 < last) touchRow(wr + rowBytes, rowBytes)
    if (rows == 1) {
      let acc = f32x4.splat(0)
      for (let b = 0; b < blocks; b++) {
        const at = wr + <usize>b * Q4_0_BYTES
        const raw = v128.load(at, 2)
        const s = blockDot(q4Low(raw), q4High(raw), x + (<usize>b << 7))
        acc = f32x4.add(acc, f32x4.mul(s, scaleOf(at)))
      }
      store<f32>(out + (<usize>i << 2), laneSum(acc))
    } else {
      const scales = scratch + (<usize>inDim << 2)
      for (let b = 0; b < blocks; b++) {
        const at = wr + <usize>b * Q4_0_BYTES
        const raw = v128.load(at, 2)
        widenBlock(q4Low(raw), q4High(raw), scratch + (<usize>b << 7))
        v128.store32_lane(scales + (<usize>b << 2), scaleOf(at), 0)
      }
      rowsFromScratch(scratch, x, out, rows, outDim, inDim, i)
    }
  }
}

/**
 * out (rows, outDim) = x (rows, inDim) @ W^T for fp32 W (outDim, inDim) at w: four lane sums of
 * 16 inputs per step, then the inDim % 16 left over one by one. Each weight row is read once
 * from memory and then from cache for every input row. Weight rows [first, last), as above.
 */
export function matvecF32(w: usize, x: usize, out: usize, rows: i32, outDim: i32, inDim: i32, first: i32, last: i32): void {
  const rowBytes = <usize>inDim << 2
  const vectorEnd = <usize>(inDim & ~15) << 2
  for (let i = first; i < last; i++) {
    const wr = w + <usize>i * rowBytes
    for (let r = 0; r < rows; r++) {
      const xr = x + <usize>r * rowBytes
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
      for (let p: usize = 0; p < vectorEnd; p += 64) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load(wr + p), v128.load(xr + p)))
        a1 = f32x4.add(a1, f32x4.mul(v128.load(wr + p, 16), v128.load(xr + p, 16)))
        a2 = f32x4.add(a2, f32x4.mul(v128.load(wr + p, 32), v128.load(xr + p, 32)))
        a3 = f32x4.add(a3, f32x4.mul(v128.load(wr + p, 48), v128.load(xr + p, 48)))
      }
      let sum = laneSum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)))
      for (let p = vectorEnd; p < rowBytes; p += 4) sum += load<f32>(wr + p) * load<f32>(xr + p)
      store<f32>(out + (<usize>(r * outDim + i) << 2), sum)
    }
  }
}
