// The lanes' work of the block-format matvec kernels (matvec_q8_0, matvec_q4_0), appended after the
// format's file and before shaders/matvec_rows.wgsl by src/engine/webgpu/shaders.ts: a lane takes
// interleaved blocks of 32 inputs, keeps the block of x in registers and reuses it for all 8 rows of
// its group. The format's file declares Params (with blocks: blocks per row of W) and
//   fn blockDot(g: u32, xs: ptr<function, array<vec4<f32>, 8>>) -> f32
//   the dot product of block g of W (counted from the start of the binding) with the 32 inputs xs
fn laneSums(rowsLo: vec4<u32>, rowsHi: vec4<u32>, m: u32, lane: u32) -> array<vec4<f32>, 2> {
  let lo4 = rowsLo * p.blocks;
  let hi4 = rowsHi * p.blocks;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  var xs: array<vec4<f32>, 8>; // (8) this block's 32 inputs
  let xBase = m * p.blocks * 8u;
  for (var b = lane; b < p.blocks; b += LANES) {
    for (var j = 0u; j < 8u; j++) { xs[j] = x[xBase + b * 8u + j]; }
    lo += vec4<f32>(blockDot(lo4.x + b, &xs), blockDot(lo4.y + b, &xs), blockDot(lo4.z + b, &xs), blockDot(lo4.w + b, &xs));
    hi += vec4<f32>(blockDot(hi4.x + b, &xs), blockDot(hi4.y + b, &xs), blockDot(hi4.z + b, &xs), blockDot(hi4.w + b, &xs));
  }
  return array<vec4<f32>, 2>(lo, hi);
}
