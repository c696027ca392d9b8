// Residual connection, in place: x[i] += delta[i]. Dispatch: (ceil(count / 256)).

struct Params {
  count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // (count)
@group(0) @binding(2) var<storage, read> delta: array<f32>; // (count)

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.count) { return; }
  x[i] = x[i] + delta[i];
}
