// RMSNorm of each row: out[r, j] = weight[j] * x[r, j] / sqrt(mean(x[r, :]^2) + eps).
// One workgroup per row; the sum of squares is a workgroup reduction. Dispatch: (rows).

const WG: u32 = 64u;

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>; // (rows, dim)
@group(0) @binding(2) var<storage, read> weight: array<f32>; // (dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (rows, dim)

var<workgroup> red: array<f32, 64>; // (WG)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let base = wg.x * p.dim;
  var ss = 0.0;
  for (var j = tid; j < p.dim; j += WG) {
    let v = x[base + j];
    ss += v * v;
  }
  red[tid] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] += red[tid + s]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
  for (var j = tid; j < p.dim; j += WG) {
    out[base + j] = weight[j] * (scale * x[base + j]);
  }
}
