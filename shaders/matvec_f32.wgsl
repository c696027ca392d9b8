// Matrix-vector product for decode on f32 weights: W is (n, k) row-major, k a multiple of 4 (read as
// vec4); the lanes of a group take interleaved vec4s of k. The row groups and the reduction are
// shaders/matvec_rows.wgsl, appended to this file.

struct Params {
  rows: u32, // vectors in x (dispatch y)
  n: u32, // output rows in this weight chunk
  k4: u32, // input width / 4
  rowOffset: u32, // where this chunk's outputs start within a row of y
  yStride: u32, // floats per row of y
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>; // (n, k4)
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, k4)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

fn laneSums(rowsLo: vec4<u32>, rowsHi: vec4<u32>, m: u32, lane: u32) -> array<vec4<f32>, 2> {
  let lo4 = rowsLo * p.k4;
  let hi4 = rowsHi * p.k4;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  let xBase = m * p.k4;
  for (var k = lane; k < p.k4; k += LANES) {
    let xv = x[xBase + k];
    lo += vec4<f32>(dot(w[lo4.x + k], xv), dot(w[lo4.y + k], xv), dot(w[lo4.z + k], xv), dot(w[lo4.w + k], xv));
    hi += vec4<f32>(dot(w[hi4.x + k], xv), dot(w[hi4.y + k], xv), dot(w[hi4.z + k], xv), dot(w[hi4.w + k], xv));
  }
  return array<vec4<f32>, 2>(lo, hi);
}
