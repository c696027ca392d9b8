// SwiGLU gate, in place: gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)).
// gate = w1 x, up = w3 x. Dispatch: (ceil(count / 256)).

struct Params {
  count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>; // (count)
@group(0) @binding(2) var<storage, read> up: array<f32>; // (count)

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.count) { return; }
  let g = gate[i];
  gate[i] = (g / (1.0 + exp(-g))) * up[i];
}
