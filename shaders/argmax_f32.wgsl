// Index of the largest value (the first one on ties, like the sampler's argmax), in one workgroup:
// each invocation scans a strided slice, then a tree reduction. Dispatch: (1).

const WG: u32 = 256u;

struct Params {
  count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>; // (count)
@group(0) @binding(2) var<storage, read_write> result: array<u32>; // (1)

var<workgroup> bestValue: array<f32, 256>; // (WG)
var<workgroup> bestIndex: array<u32, 256>; // (WG)

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
  var v = -3.4e38;
  var idx = 0xffffffffu;
  for (var i = tid; i < p.count; i += WG) {
    let x = values[i];
    if (x > v || idx == 0xffffffffu) { v = x; idx = i; }
  }
  bestValue[tid] = v;
  bestIndex[tid] = idx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      let ov = bestValue[tid + s];
      let oi = bestIndex[tid + s];
      let mine = bestIndex[tid];
      if (oi != 0xffffffffu && (mine == 0xffffffffu || ov > bestValue[tid] || (ov == bestValue[tid] && oi < mine))) {
        bestValue[tid] = ov;
        bestIndex[tid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (tid == 0u) { result[0] = bestIndex[0]; }
}
