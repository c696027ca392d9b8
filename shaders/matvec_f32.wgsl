// Matrix-vector product for decode: y[m, rowOffset + o] = dot(W[o, :], x[m, :]) for each of `rows` input
// vectors. W is (n, k) row-major, k a multiple of 4 (read as vec4). A workgroup owns 64 consecutive
// output rows: 8 groups of 8 invocations, each group 8 rows. Within a group the 8 invocations take
// interleaved vec4s of k (adjacent lanes read adjacent memory) and each accumulates all 8 of the
// group's rows in named registers (every x load reused 8 times, nothing indexed dynamically); the
// group's 8 partial sums per row are then added in workgroup memory (3 steps, few barriers).
// Rows past n read row n - 1 and are never written. Dispatch: (ceil(n / 64), rows).

const LANES: u32 = 8u; // invocations sharing one group of rows

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

var<workgroup> partLo: array<vec4<f32>, 64>; // (64 invocations) partial sums of the group's rows 0..3
var<workgroup> partHi: array<vec4<f32>, 64>; // (64 invocations) partial sums of rows 4..7

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let lane = tid % LANES;
  let row0 = wg.x * 64u + (tid / LANES) * 8u;
  let m = wg.y;
  let last = p.n - 1u;
  let w0 = min(row0 + 0u, last) * p.k4;
  let w1 = min(row0 + 1u, last) * p.k4;
  let w2 = min(row0 + 2u, last) * p.k4;
  let w3 = min(row0 + 3u, last) * p.k4;
  let w4 = min(row0 + 4u, last) * p.k4;
  let w5 = min(row0 + 5u, last) * p.k4;
  let w6 = min(row0 + 6u, last) * p.k4;
  let w7 = min(row0 + 7u, last) * p.k4;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  let xBase = m * p.k4;
  for (var k = lane; k < p.k4; k += LANES) {
    let xv = x[xBase + k];
    lo += vec4<f32>(dot(w[w0 + k], xv), dot(w[w1 + k], xv), dot(w[w2 + k], xv), dot(w[w3 + k], xv));
    hi += vec4<f32>(dot(w[w4 + k], xv), dot(w[w5 + k], xv), dot(w[w6 + k], xv), dot(w[w7 + k], xv));
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
