// The register-tiled matrix-matrix product shared by matmul_f32, matmul_q8_0 and matmul_q4_0 (WGSL has
// no includes: src/engine/webgpu/shaders.ts appends this file to each of them). Y[i, rowOffset + j] =
// dot(X[i, :], W[j, :]) for i < rows, j < n. A workgroup of 8 x 8 invocations computes a 64 x 64 tile
// of Y, each invocation an 8 x 8 block held in 16 vec4 registers (written out by hand: indexed private
// arrays end up in memory on some compilers), stepping through k in slices of 16 staged in workgroup
// memory, transposed so the inner loop reads vec4s of 4 consecutive rows. Edges (rows, n not multiples
// of 64) are zero-padded in the staging tiles. Dispatch: (ceil(n / 64), ceil(rows / 64)).
// The kernel file before this one declares Params (with rows, n, rowOffset, yStride), the bindings
// p, w, x, y, and how its format is read:
//   fn kSteps() -> u32                                   slices of 16 inputs per row
//   fn loadX(row: u32, step: u32, kq: u32) -> vec4<f32>  inputs 16 step + 4 kq .. + 3 of X's row (0 past rows)
//   fn loadW(row: u32, step: u32, kq: u32) -> vec4<f32>  the same weights of W's row, as f32 (0 past n)

const TILE: u32 = 64u; // rows of X and rows of W per workgroup
const BK: u32 = 16u; // k per staging step

var<workgroup> xs: array<vec4<f32>, 256>; // (BK, TILE / 4): [k][4 consecutive rows of X]
var<workgroup> ws: array<vec4<f32>, 256>; // (BK, TILE / 4): [k][4 consecutive rows of W]

fn store(r: u32, c: u32, v0: vec4<f32>, v1: vec4<f32>) {
  if (r >= p.rows) { return; }
  let base = r * p.yStride + p.rowOffset;
  for (var j = 0u; j < 4u; j++) {
    if (c + j < p.n) { y[base + c + j] = v0[j]; }
    if (c + 4u + j < p.n) { y[base + c + 4u + j] = v1[j]; }
  }
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let col0 = wg.x * TILE; // first W row (output column)
  let row0 = wg.y * TILE; // first X row
  var c00 = vec4<f32>(0.0);
  var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0);
  var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0);
  var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0);
  var c31 = vec4<f32>(0.0);
  var c40 = vec4<f32>(0.0);
  var c41 = vec4<f32>(0.0);
  var c50 = vec4<f32>(0.0);
  var c51 = vec4<f32>(0.0);
  var c60 = vec4<f32>(0.0);
  var c61 = vec4<f32>(0.0);
  var c70 = vec4<f32>(0.0);
  var c71 = vec4<f32>(0.0);
  // staging: invocation tid loads inputs 16 step + 4 kq .. + 3 (kq = tid / 16) of rows 4 * (tid % 16)
  // .. + 3 and writes them transposed as 4 whole vec4s (one per k), so no two invocations write the same vec4
  let quad = tid % 16u;
  let kq = tid / 16u;
  for (var step = 0u; step < kSteps(); step++) {
    let x0 = loadX(row0 + quad * 4u, step, kq);
    let x1 = loadX(row0 + quad * 4u + 1u, step, kq);
    let x2 = loadX(row0 + quad * 4u + 2u, step, kq);
    let x3 = loadX(row0 + quad * 4u + 3u, step, kq);
    let w0 = loadW(col0 + quad * 4u, step, kq);
    let w1 = loadW(col0 + quad * 4u + 1u, step, kq);
    let w2 = loadW(col0 + quad * 4u + 2u, step, kq);
    let w3 = loadW(col0 + quad * 4u + 3u, step, kq);
    xs[(kq * 4u) * 16u + quad] = vec4<f32>(x0.x, x1.x, x2.x, x3.x);
    xs[(kq * 4u + 1u) * 16u + quad] = vec4<f32>(x0.y, x1.y, x2.y, x3.y);
    xs[(kq * 4u + 2u) * 16u + quad] = vec4<f32>(x0.z, x1.z, x2.z, x3.z);
    xs[(kq * 4u + 3u) * 16u + quad] = vec4<f32>(x0.w, x1.w, x2.w, x3.w);
    ws[(kq * 4u) * 16u + quad] = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
    ws[(kq * 4u + 1u) * 16u + quad] = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
    ws[(kq * 4u + 2u) * 16u + quad] = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
    ws[(kq * 4u + 3u) * 16u + quad] = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = xs[kk * 16u + lid.y * 2u];
      let a1 = xs[kk * 16u + lid.y * 2u + 1u];
      let b0 = ws[kk * 16u + lid.x * 2u];
      let b1 = ws[kk * 16u + lid.x * 2u + 1u];
      c00 += a0.x * b0;
      c01 += a0.x * b1;
      c10 += a0.y * b0;
      c11 += a0.y * b1;
      c20 += a0.z * b0;
      c21 += a0.z * b1;
      c30 += a0.w * b0;
      c31 += a0.w * b1;
      c40 += a1.x * b0;
      c41 += a1.x * b1;
      c50 += a1.y * b0;
      c51 += a1.y * b1;
      c60 += a1.z * b0;
      c61 += a1.z * b1;
      c70 += a1.w * b0;
      c71 += a1.w * b1;
    }
    workgroupBarrier();
  }
  let colBase = col0 + lid.x * 8u;
  store(row0 + lid.y * 8u + 0u, colBase, c00, c01);
  store(row0 + lid.y * 8u + 1u, colBase, c10, c11);
  store(row0 + lid.y * 8u + 2u, colBase, c20, c21);
  store(row0 + lid.y * 8u + 3u, colBase, c30, c31);
  store(row0 + lid.y * 8u + 4u, colBase, c40, c41);
  store(row0 + lid.y * 8u + 5u, colBase, c50, c51);
  store(row0 + lid.y * 8u + 6u, colBase, c60, c61);
  store(row0 + lid.y * 8u + 7u, colBase, c70, c71);
}
