// Elementwise arithmetic on flat f32 tensors of n elements.
//   add:      out[i] = a[i] + b[i]                     (residual connections)
//   add_bias: out[i] = a[i] + b[i % cols]              (q/k/v biases of Qwen2: rows of [rows, cols])
//   scale:    out[i] = s · a[i]
// The *_inplace entry points write a itself and never touch out: WebGPU forbids binding one buffer
// to two writable bindings, so `x += y` needs its own entry point rather than out = a.
// Workgroups tile a 2-D grid (x fastest) so n may exceed 65535 × 256.

struct Params {
  n: u32,
  cols: u32,   // add_bias only
  s: f32,      // scale only
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { out[i] = a[i] + b[i]; }
}

@compute @workgroup_size(256)
fn add_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { a[i] += b[i]; }
}

@compute @workgroup_size(256)
fn add_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { out[i] = a[i] + b[i % p.cols]; }
}

@compute @workgroup_size(256)
fn add_bias_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { a[i] += b[i % p.cols]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { out[i] = p.s * a[i]; }
}

@compute @workgroup_size(256)
fn scale_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i < p.n) { a[i] *= p.s; }
}
