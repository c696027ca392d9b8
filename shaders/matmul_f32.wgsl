// Matrix-matrix product for prefill on f32 weights: X (rows, k) and W (n, k), both row-major with k a
// multiple of 4. The tiling is shaders/matmul_tiles.wgsl, appended to this file.

struct Params {
  rows: u32,
  n: u32,
  k4: u32,
  rowOffset: u32,
  yStride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>; // (n, k4)
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // (rows, k4)
@group(0) @binding(3) var<storage, read_write> y: array<f32>; // (rows, yStride)

fn kSteps() -> u32 { return (p.k4 + 3u) / 4u; }

fn loadX(row: u32, step: u32, kq: u32) -> vec4<f32> {
  let k4 = step * 4u + kq;
  if (row < p.rows && k4 < p.k4) { return x[row * p.k4 + k4]; }
  return vec4<f32>(0.0);
}

fn loadW(row: u32, step: u32, kq: u32) -> vec4<f32> {
  let k4 = step * 4u + kq;
  if (row < p.n && k4 < p.k4) { return w[row * p.k4 + k4]; }
  return vec4<f32>(0.0);
}
