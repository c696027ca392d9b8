// Matrix-vector product on Q8_0 weights: y[m, rowOffset + o] = dot(W[o, :], x[m, :]), W read directly
// from its GGML blocks (per 32 inputs: f16 scale d, then 32 int8 q; w = d * q), dequantized in
// registers; no f32 copy of W exists. The blocks are 34 bytes, so a block starts either on a word or
// half a word in: the scale is the low or high half of its first word, and the quants are read as
// 8 words, each stitched from two halves when they sit half a word off (every word loaded once).
// The scale is decoded with unpack2x16float (no shader-f16 needed).
// Layout as matvec_f32: a workgroup owns 64 consecutive output rows, 8 groups of 8 invocations, each
// group 8 rows; the 8 lanes of a group take interleaved blocks of k, keep that block of x in
// registers and reuse it for all 8 rows; partial sums are added in workgroup memory.
// Rows past n read row n - 1 and are never written. Dispatch: (ceil(n / 64), rows).

const LANES: u32 = 8u; // invocations sharing one group of rows
const BLOCK_BYTES: u32 = 34u;

struct Params {
  rows: u32, // vectors in x (dispatch y)
  n: u32, // output rows in this weight chunk
  blocks: u32, // blocks per row of W (input width / 32)
  rowOffset: u32, // where this chunk's outputs start within a row of y
  yStride: u32, // floats per row of y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>; // (n, blocks, 34 bytes) little-endian, padded to a word
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, blocks * 8)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

var<workgroup> partLo: array<vec4<f32>, 64>; // (64 invocations) partial sums of the group's rows 0..3
var<workgroup> partHi: array<vec4<f32>, 64>; // (64 invocations) partial sums of rows 4..7

// four signed bytes of a word, as floats
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// d * sum_j q_j x_j over block g of W (counted from the start of this binding)
fn blockDot(g: u32, xs: ptr<function, array<vec4<f32>, 8>>) -> f32 {
  let start = g * BLOCK_BYTES;
  let d = unpack2x16float(w[start >> 2u] >> ((start & 3u) * 8u)).x;
  let at = (start + 2u) >> 2u; // word holding the first quant
  let shift = ((start + 2u) & 3u) * 8u; // 0 or 16
  var acc = 0.0;
  var low = w[at];
  for (var j = 0u; j < 8u; j++) {
    let high = w[at + 1u + j];
    // (high << 16) << (16 - shift) is 0 when shift is 0 (a shift by 32 would be undefined)
    let q = (low >> shift) | ((high << 16u) << (16u - shift));
    acc += dot(i8x4(q), (*xs)[j]);
    low = high;
  }
  return acc * d;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let lane = tid % LANES;
  let row0 = wg.x * 64u + (tid / LANES) * 8u;
  let m = wg.y;
  let last = p.n - 1u;
  let g0 = min(row0 + 0u, last) * p.blocks;
  let g1 = min(row0 + 1u, last) * p.blocks;
  let g2 = min(row0 + 2u, last) * p.blocks;
  let g3 = min(row0 + 3u, last) * p.blocks;
  let g4 = min(row0 + 4u, last) * p.blocks;
  let g5 = min(row0 + 5u, last) * p.blocks;
  let g6 = min(row0 + 6u, last) * p.blocks;
  let g7 = min(row0 + 7u, last) * p.blocks;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  var xs: array<vec4<f32>, 8>; // (8) this block's 32 inputs
  let xBase = m * p.blocks * 8u;
  for (var b = lane; b < p.blocks; b += LANES) {
    for (var j = 0u; j < 8u; j++) { xs[j] = x[xBase + b * 8u + j]; }
    lo += vec4<f32>(blockDot(g0 + b, &xs), blockDot(g1 + b, &xs), blockDot(g2 + b, &xs), blockDot(g3 + b, &xs));
    hi += vec4<f32>(blockDot(g4 + b, &xs), blockDot(g5 + b, &xs), blockDot(g6 + b, &xs), blockDot(g7 + b, &xs));
  }
  partLo[tid] = lo;
  partHi[tid] = hi;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      partLo[tid] += partLo[tid + s];
      partHi[tid] += partHi[tid + s];
    }
    workgroupBarrier();
  }
  // lane j of the group writes row j
  if (row0 + lane < p.n) {
    let group = tid - lane;
    var sums = partLo[group];
    if (lane >= 4u) { sums = partHi[group]; }
    y[m * p.yStride + p.rowOffset + row0 + lane] = sums[lane % 4u];
  }
}
