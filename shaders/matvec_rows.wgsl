// The row-group layout and reduction shared by matvec_f32, matvec_q8_0 and matvec_q4_0 (WGSL has no
// includes: src/engine/webgpu/shaders.ts appends this file to each of them). y[m, rowOffset + o] =
// dot(W[o, :], x[m, :]) for each of `rows` input vectors. A workgroup owns 64 consecutive output rows:
// 8 groups of 8 invocations, each group 8 rows. Within a group the 8 lanes split k between them
// (adjacent lanes read adjacent memory) and each accumulates all 8 of the group's rows in named
// registers (every x load reused 8 times, nothing indexed dynamically); the group's 8 partial sums per
// row are then added in workgroup memory (3 steps, few barriers). Rows past n read row n - 1 and are
// never written. Dispatch: (ceil(n / 64), rows).
// The kernel file before this one declares Params (with rows, n, rowOffset, yStride), the bindings
// p, w, x, y, and how its format is read:
//   fn laneSums(rowsLo: vec4<u32>, rowsHi: vec4<u32>, m: u32, lane: u32) -> array<vec4<f32>, 2>
//   this lane's share of the dot products of W's rows rowsLo and rowsHi with x's row m

const LANES: u32 = 8u; // invocations sharing one group of rows

var<workgroup> partLo: array<vec4<f32>, 64>; // (64 invocations) partial sums of the group's rows 0..3
var<workgroup> partHi: array<vec4<f32>, 64>; // (64 invocations) partial sums of rows 4..7

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let lane = tid % LANES;
  let row0 = wg.x * 64u + (tid / LANES) * 8u;
  let m = wg.y;
  let last = vec4<u32>(p.n - 1u);
  let own = laneSums(min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), last), min(vec4<u32>(row0) + vec4<u32>(4u, 5u, 6u, 7u), last), m, lane);
  partLo[tid] = own[0];
  partHi[tid] = own[1];
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
