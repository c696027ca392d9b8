// Bias added to every row, in place: x[r, i] += bias[i] for x (rows, width) (Qwen2's q, k and v
// projection biases). Dispatch: (ceil(rows * width / 256)).

struct Params {
  count: u32, // rows * width
  width: u32, // floats per row, the length of bias
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>; // (rows, width)
@group(0) @binding(2) var<storage, read> bias: array<f32>; // (width)

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.count) { return; }
  x[i] = x[i] + bias[i % p.width];
}
