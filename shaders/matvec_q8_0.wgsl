// Matrix-vector product on Q8_0 weights: y[m, rowOffset + o] = dot(W[o, :], x[m, :]), W read directly
// from its GGML blocks (per 32 inputs: f16 scale d, then 32 int8 q; w = d * q), dequantized in
// registers; no f32 copy of W exists. The blocks are 34 bytes, so a block starts either on a word or
// half a word in: the scale is the low or high half of its first word, and the quants are read as
// 8 words, each stitched from two halves when they sit half a word off (every word loaded once).
// The scale is decoded with unpack2x16float (no shader-f16 needed).
// The lanes of a group take interleaved blocks of k and keep that block of x in registers for all 8
// rows (shaders/matvec_blocks.wgsl); the row groups and the reduction are shaders/matvec_rows.wgsl. Both
// are appended to this file.

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
