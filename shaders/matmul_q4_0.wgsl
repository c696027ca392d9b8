// Matrix-matrix product for prefill on Q4_0 weights: Y[i, rowOffset + j] = dot(X[i, :], W[j, :]) for
// i < rows, j < n, W read directly from its GGML blocks (per 32 inputs: f16 scale d, then 16 bytes;
// byte j holds input j in its low nibble and input j + 16 in its high nibble; w = d * (nibble - 8))
// and dequantized while the W tile is staged in workgroup memory; no f32 copy of W exists in any
// buffer. d * (nibble - 8) is exact in f32, so the staged weights are dequantizeTensor's values and
// the sums are matmul_f32's up to summation order.
// Tiling as matmul_f32: a workgroup of 8 x 8 invocations computes a 64 x 64 tile of Y, each
// invocation an 8 x 8 block in 16 vec4 registers, stepping through k in slices of 16 (half a block:
// the low nibbles, then the high ones) staged transposed in workgroup memory. A staging invocation
// dequantizes 4 consecutive weights of 4 rows: the block is 18 bytes, so it starts on a word or half
// a word in; the scale is the low or high half of its first word (unpack2x16float, no shader-f16
// needed) and the 4 nibble bytes are one word, stitched from two halves when they sit half a word
// off. Rows past n are zero-padded.
// X is (rows, k) row-major, k a multiple of 32. Dispatch: (ceil(n / 64), ceil(rows / 64)).

const TILE: u32 = 64u; // rows of X and rows of W per workgroup
const BK: u32 = 16u; // k per staging step: half a block
const BLOCK_BYTES: u32 = 18u;

struct Params {
  rows: u32,
  n: u32, // output rows in this weight chunk
  blocks: u32, // blocks per row of W (k / 32)
  rowOffset: u32,
  yStride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>; // (n, blocks, 18 bytes) little-endian, padded to a word
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, blocks * 8)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

var<workgroup> xs: array<vec4<f32>, 256>; // (BK, TILE / 4): [k][4 consecutive rows of X]
var<workgroup> ws: array<vec4<f32>, 256>; // (BK, TILE / 4): [k][4 consecutive rows of W]

fn loadX(row: u32, k4: u32) -> vec4<f32> {
  if (row < p.rows) { return x[row * p.blocks * 8u + k4]; }
  return vec4<f32>(0.0);
}

// weights 16 * part + 4 * quarter .. + 3 of block b of W's row `row` (part: which half of the
// block, quarter: which 4 of its 16), dequantized
fn loadW(row: u32, b: u32, part: u32, quarter: u32) -> vec4<f32> {
  if (row >= p.n) { return vec4<f32>(0.0); }
  let start = (row * p.blocks + b) * BLOCK_BYTES;
  let d = unpack2x16float(w[start >> 2u] >> ((start & 3u) * 8u)).x;
  let first = start + 2u + quarter * 4u; // nibble bytes 4 * quarter .. + 3
  let at = first >> 2u;
  let shift = (first & 3u) * 8u; // 0 or 16
  // (high << 16) << (16 - shift) is 0 when shift is 0 (a shift by 32 would be undefined)
  let v = (w[at] >> shift) | ((w[at + 1u] << 16u) << (16u - shift));
  // low nibbles for the first half of the block (part 0), high nibbles for the second (part 1)
  let q = (vec4<u32>(v) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(part * 4u))) & vec4<u32>(15u);
  return d * (vec4<f32>(q) - 8.0);
}

fn store(r: u32, c: u32, v0: vec4<f32>, v1: vec4<f32>) {
  if (r >= p.rows) { return; }
  let base = r * p.yStride + p.rowOffset;
  for (var j = 0u; j < 4u; j++) {
    if (c + j < p.n) { y[base + c + j] = v0[j]; }
    if (c + 4u + j < p.n) { y[base + c + 4u + j] = v1[j]; }
  }
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let col0 = wg.x * TILE; // first W row (output column)
  let row0 = wg.y * TILE; // first X row
  var c00 = vec4<f32>(0.0);
  var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0);
  var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0);
  var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0);
  var c31 = vec4<f32>(0.0);
  var c40 = vec4<f32>(0.0);
  var c41 = vec4<f32>(0.0);
  var c50 = vec4<f32>(0.0);
  var c51 = vec4<f32>(0.0);
  var c60 = vec4<f32>(0.0);
  var c61 = vec4<f32>(0.0);
  var c70 = vec4<f32>(0.0);
  var c71 = vec4<f32>(0.0);
  // staging: invocation tid loads rows 4 * (tid % 16) .. + 3 at k4 = step * 4 + tid / 16 and writes
  // them transposed as 4 whole vec4s (one per k), so no two invocations write the same vec4
  let quad = tid % 16u;
  let kq = tid / 16u;
  let kSteps = p.blocks * 2u;
  for (var step = 0u; step < kSteps; step++) {
    let k4 = step * 4u + kq;
    let b = step / 2u;
    let part = step % 2u;
    let x0 = loadX(row0 + quad * 4u, k4);
    let x1 = loadX(row0 + quad * 4u + 1u, k4);
    let x2 = loadX(row0 + quad * 4u + 2u, k4);
    let x3 = loadX(row0 + quad * 4u + 3u, k4);
    let w0 = loadW(col0 + quad * 4u, b, part, kq);
    let w1 = loadW(col0 + quad * 4u + 1u, b, part, kq);
    let w2 = loadW(col0 + quad * 4u + 2u, b, part, kq);
    let w3 = loadW(col0 + quad * 4u + 3u, b, part, kq);
    xs[(kq * 4u) * 16u + quad] = vec4<f32>(x0.x, x1.x, x2.x, x3.x);
    xs[(kq * 4u + 1u) * 16u + quad] = vec4<f32>(x0.y, x1.y, x2.y, x3.y);
    xs[(kq * 4u + 2u) * 16u + quad] = vec4<f32>(x0.z, x1.z, x2.z, x3.z);
    xs[(kq * 4u + 3u) * 16u + quad] = vec4<f32>(x0.w, x1.w, x2.w, x3.w);
    ws[(kq * 4u) * 16u + quad] = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
    ws[(kq * 4u + 1u) * 16u + quad] = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
    ws[(kq * 4u + 2u) * 16u + quad] = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
    ws[(kq * 4u + 3u) * 16u + quad] = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = xs[kk * 16u + lid.y * 2u];
      let a1 = xs[kk * 16u + lid.y * 2u + 1u];
      let b0 = ws[kk * 16u + lid.x * 2u];
      let b1 = ws[kk * 16u + lid.x * 2u + 1u];
      c00 += a0.x * b0;
      c01 += a0.x * b1;
      c10 += a0.y * b0;
      c11 += a0.y * b1;
      c20 += a0.z * b0;
      c21 += a0.z * b1;
      c30 += a0.w * b0;
      c31 += a0.w * b1;
      c40 += a1.x * b0;
      c41 += a1.x * b1;
      c50 += a1.y * b0;
      c51 += a1.y * b1;
      c60 += a1.z * b0;
      c61 += a1.z * b1;
      c70 += a1.w * b0;
      c71 += a1.w * b1;
    }
    workgroupBarrier();
  }
  let colBase = col0 + lid.x * 8u;
  store(row0 + lid.y * 8u + 0u, colBase, c00, c01);
  store(row0 + lid.y * 8u + 1u, colBase, c10, c11);
  store(row0 + lid.y * 8u + 2u, colBase, c20, c21);
  store(row0 + lid.y * 8u + 3u, colBase, c30, c31);
  store(row0 + lid.y * 8u + 4u, colBase, c40, c41);
  store(row0 + lid.y * 8u + 5u, colBase, c50, c51);
  store(row0 + lid.y * 8u + 6u, colBase, c60, c61);
  store(row0 + lid.y * 8u + 7u, colBase, c70, c71);
}
