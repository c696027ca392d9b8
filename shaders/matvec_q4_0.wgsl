// Matrix-vector product on Q4_0 weights: y[m, rowOffset + o] = dot(W[o, :], x[m, :]), W read directly
// from its GGML blocks (per 32 inputs: f16 scale d, then 16 bytes; byte j holds input j in its low
// nibble and input j + 16 in its high nibble; w = d * (nibble - 8)), dequantized in registers; no f32
// copy of W exists. The blocks are 18 bytes, so a block starts either on a word or half a word in: the
// scale is the low or high half of its first word, and the nibbles are read as 4 words, each stitched
// from two halves when they sit half a word off (every word loaded once). The scale is decoded with
// unpack2x16float (no shader-f16 needed).
// The lanes of a group take interleaved blocks of k and keep that block of x in registers for all 8
// rows (shaders/matvec_blocks.wgsl); the row groups and the reduction are shaders/matvec_rows.wgsl. Both
// are appended to this file.

const BLOCK_BYTES: u32 = 18u;

struct Params {
  rows: u32, // vectors in x (dispatch y)
  n: u32, // output rows in this weight chunk
  blocks: u32, // blocks per row of W (input width / 32)
  rowOffset: u32, // where this chunk's outputs start within a row of y
  yStride: u32, // floats per row of y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>; // (n, blocks, 18 bytes) little-endian, padded to a word
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, blocks * 8)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

// d * sum_j (q_j - 8) x_j over block g of W (counted from the start of this binding)
fn blockDot(g: u32, xs: ptr<function, array<vec4<f32>, 8>>) -> f32 {
  let start = g * BLOCK_BYTES;
  let d = unpack2x16float(w[start >> 2u] >> ((start & 3u) * 8u)).x;
  let at = (start + 2u) >> 2u; // word holding the first nibbles
  let shift = ((start + 2u) & 3u) * 8u; // 0 or 16
  var acc = 0.0;
  var low = w[at];
  for (var j = 0u; j < 4u; j++) {
    let high = w[at + 1u + j];
    // (high << 16) << (16 - shift) is 0 when shift is 0 (a shift by 32 would be undefined)
    let v = vec4<u32>((low >> shift) | ((high << 16u) << (16u - shift)));
    let lowNibbles = vec4<f32>((v >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - 8.0; // inputs 4j .. 4j + 3
    let highNibbles = vec4<f32>((v >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - 8.0; // inputs 16 + 4j ..
    acc += dot(lowNibbles, (*xs)[j]) + dot(highNibbles, (*xs)[4u + j]);
    low = high;
  }
  return acc * d;
}
