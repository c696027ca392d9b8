// Matrix-vector product for decode: y[m, rowOffset + o] = dot(W[o, :], x[m, :]) for each of `rows` input
// vectors. W is (n, k) row-major, k a multiple of 4 (read as vec4). A workgroup owns OUTPUTS consecutive
// output rows; each invocation accumulates all of them over a strided slice of k (so every x load is
// reused OUTPUTS times), then the workgroup sums the 64 partial sums of each output.
// Dispatch: (ceil(n / OUTPUTS), rows).

const WG: u32 = 64u;
const OUTPUTS: u32 = 8u;

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

var<workgroup> partial: array<f32, 512>; // (OUTPUTS, WG)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.x * OUTPUTS;
  let m = wg.y;
  var acc: array<f32, 8>;
  let xBase = m * p.k4;
  for (var k = tid; k < p.k4; k += WG) {
    let xv = x[xBase + k];
    for (var r = 0u; r < OUTPUTS; r++) {
      let o = row0 + r;
      if (o < p.n) {
        acc[r] += dot(w[o * p.k4 + k], xv);
      }
    }
  }
  for (var r = 0u; r < OUTPUTS; r++) {
    partial[r * WG + tid] = acc[r];
  }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      for (var r = 0u; r < OUTPUTS; r++) {
        partial[r * WG + tid] += partial[r * WG + tid + s];
      }
    }
    workgroupBarrier();
  }
  if (tid < OUTPUTS && row0 + tid < p.n) {
    y[m * p.yStride + p.rowOffset + row0 + tid] = partial[tid * WG];
  }
}
