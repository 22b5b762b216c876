// RMSNorm over the last dimension (LLaMA's LlamaRMSNorm: input_layernorm, post_attention_layernorm, norm),
// and its gradient. With r = 1/sqrt(mean(x[row, :]²) + eps) per row:
// main:            y[row, i]  = x[row, i]·r·weight[i]
// backward:        dx[row, i] (+)= r·(weight[i]·dy[row, i] − x[row, i]·r²·Σ_j weight[j]·dy[row, j]·x[row, j] / dim),
//                  and rstd[row] = r for backward_weight
// backward_weight: dWeight[i] (+)= Σ_row dy[row, i]·x[row, i]·rstd[row], in a fixed order
// x, y, dy, dx: [rows, dim]; weight, dWeight: [dim]; rstd: [rows]. Any dim.
// main, backward: one workgroup per row: each thread folds a strided slice of the row, a tree reduction
// in workgroup memory gives the row's sum, then every thread writes its slice. Rows are spread over a
// 2-D grid (more than 65535 rows) and linearised with num_workgroups.
// main_rows, backward_rows: the same for rows of at most a few thousand (the wrapper decides), one
// invocation per row and no barrier. SwiftShader runs a workgroup that has a barrier as one coroutine per
// 4-lane subgroup, switched at every barrier, which costs far more than a short row's arithmetic.
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
}

// Threads per workgroup, a power of two ≥ COLS (the trees halve it); the wrapper shrinks it for short
// rows (e.g. per-head norms) so most threads are not idle.
override WG: u32 = 256;
// backward, backward_weight: add into dx / dWeight instead of overwriting them (gradient accumulation).
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;             // [rows, dim]
@group(0) @binding(2) var<storage, read> weight: array<f32>;        // main, backward: [dim]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;       // main: [rows, dim]
@group(0) @binding(3) var<storage, read> dy: array<f32>;            // backward*: [rows, dim]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;      // backward: [rows, dim]
@group(0) @binding(4) var<storage, read_write> dWeight: array<f32>; // backward_weight: [dim]
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;    // backward writes, backward_weight reads: [rows]

var<workgroup> partial: array<f32, WG>;

// Sum of v over the workgroup, returned to every thread.
fn workgroupSum(v: f32, lid: u32) -> f32 {
  partial[lid] = v;
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lid < half) { partial[lid] += partial[lid + half]; }
  }
  workgroupBarrier();
  let s = partial[0];
  workgroupBarrier();   // partial is reused by the next sum
  return s;
}

// Index of this workgroup in the 2-D grid (a row for main and backward, a column block for backward_weight).
fn flatWorkgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = flatWorkgroup(wg, nwg);
  // The grid overshoots by less than one grid row; a whole workgroup returns, so barriers stay uniform.
  if (row >= p.rows) { return; }
  let base = row * p.dim;

  var s = 0.0;
  for (var i = lid; i < p.dim; i += WG) {
    let v = x[base + i];
    s += v * v;
  }
  let inv = inverseSqrt(workgroupSum(s, lid) / f32(p.dim) + p.eps);
  for (var i = lid; i < p.dim; i += WG) {
    y[base + i] = x[base + i] * inv * weight[i];
  }
}

@compute @workgroup_size(WG)
fn backward(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = flatWorkgroup(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.dim;

  var ss = 0.0;   // Σ x²
  var gx = 0.0;   // Σ weight·dy·x
  for (var i = lid; i < p.dim; i += WG) {
    let v = x[base + i];
    ss += v * v;
    gx += weight[i] * dy[base + i] * v;
  }
  let r = inverseSqrt(workgroupSum(ss, lid) / f32(p.dim) + p.eps);
  let c = workgroupSum(gx, lid) * r * r / f32(p.dim);
  for (var i = lid; i < p.dim; i += WG) {
    var d = r * (weight[i] * dy[base + i] - x[base + i] * c);
    if (ACCUMULATE) { d += dx[base + i]; }
    dx[base + i] = d;
  }
  if (lid == 0u) { rstd[row] = r; }
}

const ROW_WG = 64u;   // invocations (rows) per workgroup of main_rows and backward_rows

@compute @workgroup_size(ROW_WG)
fn main_rows(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = flatWorkgroup(wg, nwg) * ROW_WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var s = 0.0;
  for (var i = 0u; i < p.dim; i++) {
    let v = x[base + i];
    s += v * v;
  }
  let inv = inverseSqrt(s / f32(p.dim) + p.eps);
  for (var i = 0u; i < p.dim; i++) {
    y[base + i] = x[base + i] * inv * weight[i];
  }
}

@compute @workgroup_size(ROW_WG)
fn backward_rows(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = flatWorkgroup(wg, nwg) * ROW_WG + lid;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var ss = 0.0;   // Σ x²
  var gx = 0.0;   // Σ weight·dy·x
  for (var i = 0u; i < p.dim; i++) {
    let v = x[base + i];
    ss += v * v;
    gx += weight[i] * dy[base + i] * v;
  }
  let r = inverseSqrt(ss / f32(p.dim) + p.eps);
  let c = gx * r * r / f32(p.dim);
  for (var i = 0u; i < p.dim; i++) {
    var d = r * (weight[i] * dy[base + i] - x[base + i] * c);
    if (ACCUMULATE) { d += dx[base + i]; }
    dx[base + i] = d;
  }
  rstd[row] = r;
}

// A workgroup owns COLS columns; its WG/COLS lanes take every (WG/COLS)-th row, then a tree over the lanes
// adds their partial sums, so every column is summed in the same order on every run (no atomics).
const COLS = 32u;

@compute @workgroup_size(WG)
fn backward_weight(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let lanes = WG / COLS;
  let c = lid % COLS;
  let lane = lid / COLS;
  let col = flatWorkgroup(wg, nwg) * COLS + c;
  var s = 0.0;
  if (col < p.dim) {
    for (var row = lane; row < p.rows; row += lanes) {
      let i = row * p.dim + col;
      s += dy[i] * x[i] * rstd[row];
    }
  }
  partial[lid] = s;
  for (var half = lanes / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lane < half) { partial[lid] += partial[lid + half * COLS]; }
  }
  workgroupBarrier();
  if (lane == 0u && col < p.dim) {
    var w = partial[c];
    if (ACCUMULATE) { w += dWeight[col]; }
    dWeight[col] = w;
  }
}
