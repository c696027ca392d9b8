// Plain copy: the adapter's achievable bandwidth, the baseline the kernel benchmark compares every
// other kernel against. Each workgroup copies a block of 1024 vec4s (16 KiB), each invocation 16 of
// them at a stride of 64 so neighbouring invocations touch neighbouring memory.
// Dispatch: (min(blocks, 65535), ceil(blocks / 65535)), blocks = ceil(count4 / 1024).

const PER_INVOCATION: u32 = 16u;

struct Params {
  count4: u32, // vec4s to copy
  rowWorkgroups: u32, // workgroups per row of the dispatch grid
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>; // (count4)
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>; // (count4)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let block = wg.y * p.rowWorkgroups + wg.x;
  let base = block * 64u * PER_INVOCATION + tid;
  for (var j = 0u; j < PER_INVOCATION; j++) {
    let i = base + j * 64u;
    if (i < p.count4) { dst[i] = src[i]; }
  }
}
