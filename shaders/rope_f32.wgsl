// Rotary position embedding, in place: rotates the pairs (2i, 2i + 1) within each head of every row
// by the angle of the row's position. cos/sin come from a table computed once on the CPU exactly as
// the reference engine computes it (ropeTable: angle f32(pos * inverse frequency), the model's RoPE
// scaling applied).
// Dispatch: (ceil(rows * width / 2 / 64)).

struct Params {
  rows: u32,
  width: u32, // floats per row (all heads)
  halfHead: u32, // head size / 2: pairs per head
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<u32>; // (rows)
@group(0) @binding(2) var<storage, read> cosSin: array<vec2<f32>>; // (seqLen, halfHead): cos, sin
@group(0) @binding(3) var<storage, read_write> v: array<vec2<f32>>; // (rows, width / 2)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pairsPerRow = p.width / 2u;
  let i = gid.x;
  if (i >= p.rows * pairsPerRow) { return; }
  let r = i / pairsPerRow;
  let pair = (i % pairsPerRow) % p.halfHead;
  let cs = cosSin[positions[r] * p.halfHead + pair];
  let a = v[i];
  v[i] = vec2<f32>(a.x * cs.x - a.y * cs.y, a.x * cs.y + a.y * cs.x);
}
