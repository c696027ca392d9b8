// Attention for decode, split over the sequence ("flash decoding"): workgroup (h, c, r) scores query
// head h of row r against cached positions [c * chunk, min((c + 1) * chunk, pos_r + 1)) of its key/value
// head (grouped-query: h / kvMul), and writes an unnormalised partial result with its own max and sum
// of exponentials; attention_merge_f32 combines the chunks. Keys and values are the layer's KV cache,
// (slots * seqLen, kvDim): row r reads the slot starting at position base_r, which the positions buffer
// holds at index cacheBases + r (cacheBases 0: every row's base is 0, one slot). headSize is a multiple
// of 4 and at most 256; chunk is at most 256.
// Dispatch: (nHeads, ceil((max pos + 1) / chunk), rows).

const WG: u32 = 64u;
const MAX_CHUNK: u32 = 256u;
const NEG_BIG: f32 = -3.0e38; // the max of an empty chunk: exp(NEG_BIG - m) is 0 for any real m

struct Params {
  rows: u32,
  nHeads: u32,
  kvMul: u32, // query heads per key/value head
  hs4: u32, // head size / 4
  kvDim4: u32, // kvDim / 4: floats per cached position / 4
  qStride4: u32, // floats per row of q / 4
  chunk: u32, // positions per chunk
  maxChunks: u32, // chunk slots per (row, head) in the partial buffers
  scale: f32, // 1 / sqrt(head size)
  cacheBases: u32, // index in positions of the rows' cache bases (first cached position of each row's slot); 0: every base is 0
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<u32>; // (rows), and (rows) bases at cacheBases when it is not 0
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>; // (rows, qStride4)
@group(0) @binding(3) var<storage, read> keys: array<vec4<f32>>; // (slots * seqLen, kvDim4)
@group(0) @binding(4) var<storage, read> values: array<vec4<f32>>; // (slots * seqLen, kvDim4)
@group(0) @binding(5) var<storage, read_write> partO: array<vec4<f32>>; // (rows, nHeads, maxChunks, hs4)
@group(0) @binding(6) var<storage, read_write> partML: array<vec2<f32>>; // (rows, nHeads, maxChunks): max, sum

var<workgroup> qs: array<vec4<f32>, 64>; // (hs4) this head's query
var<workgroup> scores: array<f32, 256>; // (chunk)
var<workgroup> red: array<f32, 64>; // (WG)

fn reduceMax(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] = max(red[tid], red[tid + s]); }
    workgroupBarrier();
  }
  let result = red[0];
  workgroupBarrier();
  return result;
}

fn reduceSum(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] = red[tid] + red[tid + s]; }
    workgroupBarrier();
  }
  let result = red[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wg.x;
  let c = wg.y;
  let r = wg.z;
  let pos = positions[r];
  let start = c * p.chunk;
  let end = min(start + p.chunk, pos + 1u); // empty when start > pos
  let kvOffset = (h / p.kvMul) * p.hs4;
  let base = select(0u, positions[p.cacheBases + r], p.cacheBases != 0u); // first cached position of the row's slot

  for (var d = tid; d < p.hs4; d += WG) {
    qs[d] = q[r * p.qStride4 + h * p.hs4 + d];
  }
  workgroupBarrier();

  var localMax = NEG_BIG;
  for (var t = start + tid; t < end; t += WG) {
    let kBase = (base + t) * p.kvDim4 + kvOffset;
    var s = 0.0;
    for (var d = 0u; d < p.hs4; d++) {
      s += dot(qs[d], keys[kBase + d]);
    }
    s *= p.scale;
    scores[t - start] = s;
    localMax = max(localMax, s);
  }
  let m = reduceMax(tid, localMax);

  var localSum = 0.0;
  for (var t = start + tid; t < end; t += WG) {
    let e = exp(scores[t - start] - m);
    scores[t - start] = e;
    localSum += e;
  }
  let l = reduceSum(tid, localSum); // the barrier inside also publishes scores

  let slot = (r * p.nHeads + h) * p.maxChunks + c;
  for (var d = tid; d < p.hs4; d += WG) {
    var o = vec4<f32>(0.0);
    for (var t = start; t < end; t++) {
      o += scores[t - start] * values[(base + t) * p.kvDim4 + kvOffset + d];
    }
    partO[slot * p.hs4 + d] = o;
  }
  if (tid == 0u) {
    partML[slot] = vec2<f32>(m, l);
  }
}
