// Matrix-matrix product for prefill: Y[i, rowOffset + j] = dot(X[i, :], W[j, :]) for i < rows, j < n.
// X is (rows, k), W is (n, k), both row-major with k a multiple of 4. Register tiling: a workgroup of
// 8 x 8 invocations computes a 64 x 64 tile of Y, each invocation an 8 x 8 block held in registers,
// stepping through k in slices of 16 staged in workgroup memory (transposed, so the inner loop reads
// consecutive rows). Edges (rows, n not multiples of 64) are zero-padded in the staging tiles.
// Dispatch: (ceil(n / 64), ceil(rows / 64)).

const TILE: u32 = 64u; // rows of X and rows of W per workgroup
const BK: u32 = 16u; // k per staging step

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

var<workgroup> xs: array<f32, 1024>; // (BK, TILE): X tile transposed, [k][row]
var<workgroup> ws: array<f32, 1024>; // (BK, TILE): W tile transposed, [k][row]

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let col0 = wg.x * TILE; // first W row (output column)
  let row0 = wg.y * TILE; // first X row
  var acc: array<array<f32, 8>, 8>; // (8 rows of X, 8 rows of W) held in registers
  let kSteps = (p.k4 * 4u + BK - 1u) / BK;
  for (var step = 0u; step < kSteps; step++) {
    // stage: invocation tid loads row tid of the X tile and of the W tile, 16 k as 4 vec4
    for (var q = 0u; q < BK / 4u; q++) {
      let kk4 = step * (BK / 4u) + q;
      var xv = vec4<f32>(0.0);
      var wv = vec4<f32>(0.0);
      if (kk4 < p.k4) {
        if (row0 + tid < p.rows) { xv = x[(row0 + tid) * p.k4 + kk4]; }
        if (col0 + tid < p.n) { wv = w[(col0 + tid) * p.k4 + kk4]; }
      }
      for (var c = 0u; c < 4u; c++) {
        xs[(q * 4u + c) * TILE + tid] = xv[c];
        ws[(q * 4u + c) * TILE + tid] = wv[c];
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var a: array<f32, 8>;
      var b: array<f32, 8>;
      for (var i = 0u; i < 8u; i++) {
        a[i] = xs[kk * TILE + lid.y * 8u + i];
        b[i] = ws[kk * TILE + lid.x * 8u + i];
      }
      for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) {
          acc[i][j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + lid.y * 8u + i;
    if (r < p.rows) {
      for (var j = 0u; j < 8u; j++) {
        let c = col0 + lid.x * 8u + j;
        if (c < p.n) {
          y[r * p.yStride + p.rowOffset + c] = acc[i][j];
        }
      }
    }
  }
}
