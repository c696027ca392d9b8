// Attention for prefill (many query rows at once), split over the sequence: workgroup (h, c) takes
// query head h of every row (one invocation per row, up to 64) against cached positions
// [c * chunk, (c + 1) * chunk), causally masked per row (t <= pos_r). Keys and values are staged in
// workgroup memory 16 positions at a time and shared by all rows; each row keeps a running max and
// sum of exponentials (online softmax) and an unnormalised output, written as a partial result that
// attention_merge_f32 combines across chunks. Keys and values are the layer's KV cache,
// (slots * seqLen, kvDim); every row reads one slot, which starts at the position the positions buffer
// holds at index cacheBases (cacheBases 0: base 0, one slot). headSize is a multiple of 4 and at most 128.
// Dispatch: (nHeads, ceil((max pos + 1) / chunk)).

const BT: u32 = 16u; // positions staged per step
const MAX_HS4: u32 = 32u; // head size 128 / 4
const NEG_BIG: f32 = -3.0e38;

struct Params {
  rows: u32,
  nHeads: u32,
  kvMul: u32,
  hs4: u32,
  kvDim4: u32,
  qStride4: u32,
  chunk: u32,
  maxChunks: u32,
  scale: f32,
  cacheBases: u32, // index in positions of the rows' cache bases (row 0's is every row's); 0: base 0
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<u32>; // (rows), and the base at cacheBases when it is not 0
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>; // (rows, qStride4)
@group(0) @binding(3) var<storage, read> keys: array<vec4<f32>>; // (slots * seqLen, kvDim4)
@group(0) @binding(4) var<storage, read> values: array<vec4<f32>>; // (slots * seqLen, kvDim4)
@group(0) @binding(5) var<storage, read_write> partO: array<vec4<f32>>; // (rows, nHeads, maxChunks, hs4)
@group(0) @binding(6) var<storage, read_write> partML: array<vec2<f32>>; // (rows, nHeads, maxChunks)

var<workgroup> kb: array<vec4<f32>, 512>; // (BT, MAX_HS4)
var<workgroup> vb: array<vec4<f32>, 512>; // (BT, MAX_HS4)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let c = wg.y;
  let hasRow = tid < p.rows;
  let r = min(tid, p.rows - 1u);
  let pos = positions[r];
  let kvOffset = (h / p.kvMul) * p.hs4;
  let base = select(0u, positions[p.cacheBases], p.cacheBases != 0u); // first cached position of the rows' slot

  // the last position any row needs, so every invocation runs the same number of steps
  var maxPos = 0u;
  for (var i = 0u; i < p.rows; i++) { maxPos = max(maxPos, positions[i]); }
  let start = c * p.chunk;
  let end = min(start + p.chunk, maxPos + 1u);

  var qr: array<vec4<f32>, 32>; // (MAX_HS4) this row's query, pre-scaled
  var o: array<vec4<f32>, 32>; // (MAX_HS4) unnormalised output
  for (var d = 0u; d < p.hs4; d++) {
    qr[d] = q[r * p.qStride4 + h * p.hs4 + d] * p.scale;
  }
  var m = NEG_BIG;
  var l = 0.0;

  for (var t0 = start; t0 < end; t0 += BT) {
    let count = min(BT, end - t0);
    for (var i = tid; i < count * p.hs4; i += 64u) {
      let j = i / p.hs4;
      let d = i % p.hs4;
      let src = (base + t0 + j) * p.kvDim4 + kvOffset + d;
      kb[j * MAX_HS4 + d] = keys[src];
      vb[j * MAX_HS4 + d] = values[src];
    }
    workgroupBarrier();
    if (hasRow) {
      for (var j = 0u; j < count; j++) {
        if (t0 + j > pos) { break; }
        var s = 0.0;
        for (var d = 0u; d < p.hs4; d++) { s += dot(qr[d], kb[j * MAX_HS4 + d]); }
        if (s > m) {
          // a new running max: rescale what was accumulated under the old one
          let correction = exp(m - s);
          l *= correction;
          for (var d = 0u; d < p.hs4; d++) { o[d] *= correction; }
          m = s;
        }
        let e = exp(s - m);
        l += e;
        for (var d = 0u; d < p.hs4; d++) { o[d] += e * vb[j * MAX_HS4 + d]; }
      }
    }
    workgroupBarrier();
  }

  if (hasRow) {
    let slot = (r * p.nHeads + h) * p.maxChunks + c;
    for (var d = 0u; d < p.hs4; d++) { partO[slot * p.hs4 + d] = o[d]; }
    partML[slot] = vec2<f32>(m, l);
  }
}
