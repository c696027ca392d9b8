// Token embedding lookup: out[r, :] = table[tokens[r], :], for the tokens that fall in this chunk of
// the table (rows [rowStart, rowStart + rowCount)); a table larger than one storage binding is split
// into chunks, one dispatch each. Dispatch: (ceil(dim / 64), rows).

struct Params {
  rows: u32,
  dim: u32,
  rowStart: u32,
  rowCount: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>; // (rows)
@group(0) @binding(2) var<storage, read> table: array<f32>; // (rowCount, dim)
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // (rows, dim)

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let r = gid.y;
  if (j >= p.dim || r >= p.rows) { return; }
  let t = tokens[r];
  if (t < p.rowStart || t >= p.rowStart + p.rowCount) { return; }
  out[r * p.dim + j] = table[(t - p.rowStart) * p.dim + j];
}
