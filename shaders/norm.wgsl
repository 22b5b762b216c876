// RMSNorm over the last dimension (LLaMA's LlamaRMSNorm: input_layernorm, post_attention_layernorm, norm):
//   y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · weight
// x: [rows, dim]; weight: [dim]; y: [rows, dim]. Any dim.
// One workgroup per row: each thread sums the squares of a strided slice of the row, a tree reduction in
// workgroup memory gives the row's sum, then every thread scales its slice. Rows are spread over a 2-D
// grid (more than 65535 rows) and linearised with num_workgroups.

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
}

// Threads per row, a power of two (the tree halves it); the wrapper shrinks it for short rows
// (e.g. per-head norms) so most threads are not idle.
override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, dim]
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // [dim]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // [rows, dim]

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.y * nwg.x + wg.x;
  // The grid overshoots by less than one grid row; a whole workgroup returns, so barriers stay uniform.
  if (row >= p.rows) { return; }
  let base = row * p.dim;

  var s = 0.0;
  for (var i = lid; i < p.dim; i += WG) {
    let v = x[base + i];
    s += v * v;
  }
  partial[lid] = s;
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lid < half) { partial[lid] += partial[lid + half]; }
  }
  workgroupBarrier();

  let inv = inverseSqrt(partial[0] / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += WG) {
    y[base + i] = x[base + i] * inv * weight[i];
  }
}
