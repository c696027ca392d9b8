// Matrix-matrix product for prefill on Q8_0 weights: Y[i, rowOffset + j] = dot(X[i, :], W[j, :]) for
// i < rows, j < n, W read directly from its GGML blocks (per 32 inputs: f16 scale d, then 32 int8 q;
// w = d * q) and dequantized while the W tile is staged in workgroup memory; no f32 copy of W exists
// in any buffer. d * q is exact in f32 (an 11-bit scale times an 8-bit integer), so the staged
// weights are dequantizeTensor's values and the sums are matmul_f32's up to summation order.
// The tiling is shaders/matmul_tiles.wgsl, appended to this file; its slices of 16 inputs are half a
// block each. A staging invocation dequantizes 4 consecutive weights of 4 rows: the block is 34 bytes, so it starts on a word or half a word in; the scale is the low or high
// half of its first word (unpack2x16float, no shader-f16 needed) and the 4 quants are one word,
// stitched from two halves when they sit half a word off. Rows past n are zero-padded.
// X is (rows, k) row-major, k a multiple of 32.

const BLOCK_BYTES: u32 = 34u;

struct Params {
  rows: u32,
  n: u32, // output rows in this weight chunk
  blocks: u32, // blocks per row of W (k / 32)
  rowOffset: u32,
  yStride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>; // (n, blocks, 34 bytes) little-endian, padded to a word
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, blocks * 8)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

fn kSteps() -> u32 { return p.blocks * 2u; } // two slices of 16 per block

fn loadX(row: u32, step: u32, kq: u32) -> vec4<f32> {
  if (row < p.rows) { return x[row * p.blocks * 8u + step * 4u + kq]; }
  return vec4<f32>(0.0);
}

// four signed bytes of a word, as floats
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// weights 16 * part + 4 * quarter .. + 3 of block b = step / 2 of W's row `row` (part = step % 2: which
// half of the block, quarter: which 4 of its 16), dequantized
fn loadW(row: u32, step: u32, quarter: u32) -> vec4<f32> {
  if (row >= p.n) { return vec4<f32>(0.0); }
  let part = step % 2u;
  let start = (row * p.blocks + step / 2u) * BLOCK_BYTES;
  let d = unpack2x16float(w[start >> 2u] >> ((start & 3u) * 8u)).x;
  let first = start + 2u + part * 16u + quarter * 4u; // byte of the first quant
  let at = first >> 2u;
  let shift = (first & 3u) * 8u; // 0 or 16
  // (high << 16) << (16 - shift) is 0 when shift is 0 (a shift by 32 would be undefined)
  let q = (w[at] >> shift) | ((w[at + 1u] << 16u) << (16u - shift));
  return d * i8x4(q);
}
