// Combines the per-chunk partial results of attention_decode_f32 / attention_prefill_f32 into the
// attention output: with M the largest chunk max, out = sum_c o_c exp(m_c - M) / sum_c l_c exp(m_c - M)
// over the chunks that hold positions <= pos_r. Workgroup (h, r) writes head h of row r.
// Dispatch: (nHeads, rows).

const WG: u32 = 64u;

struct Params {
  rows: u32,
  nHeads: u32,
  hs4: u32,
  outStride4: u32, // floats per row of out / 4
  chunk: u32,
  maxChunks: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<u32>; // (rows)
@group(0) @binding(2) var<storage, read> partO: array<vec4<f32>>; // (rows, nHeads, maxChunks, hs4)
@group(0) @binding(3) var<storage, read> partML: array<vec2<f32>>; // (rows, nHeads, maxChunks)
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>; // (rows, outStride4)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let r = wg.y;
  let chunks = positions[r] / p.chunk + 1u;
  let base = (r * p.nHeads + h) * p.maxChunks;
  var mMax = partML[base].x;
  for (var c = 1u; c < chunks; c++) { mMax = max(mMax, partML[base + c].x); }
  var total = 0.0;
  for (var c = 0u; c < chunks; c++) {
    let ml = partML[base + c];
    total += ml.y * exp(ml.x - mMax);
  }
  for (var d = tid; d < p.hs4; d += WG) {
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < chunks; c++) {
      acc += partO[(base + c) * p.hs4 + d] * exp(partML[base + c].x - mMax);
    }
    out[r * p.outStride4 + h * p.hs4 + d] = acc / total;
  }
}
