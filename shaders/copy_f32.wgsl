// Plain copy, vec4 at a time: the adapter's achievable bandwidth, the baseline the kernel benchmark
// compares every other kernel against. Dispatch: (min(ceil(count4 / 256), 65535), ...) as a 2-D grid.

struct Params {
  count4: u32, // vec4s to copy
  rowWorkgroups: u32, // workgroups per row of the dispatch grid
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>; // (count4)
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>; // (count4)

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.rowWorkgroups * 256u + gid.x;
  if (i >= p.count4) { return; }
  dst[i] = src[i];
}
