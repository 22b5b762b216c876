// Per-neuron activation statistics of an FFN over a stream of row blocks (LLaMA-MoE v2, arXiv 2411.15708,
// residual MLP MoE: the most-used neurons become the shared expert). For the down_proj input
// A [T, C] = silu(x·Wgᵀ) ⊙ (x·Wuᵀ) of one block of tokens, column c adds to the running sums S [2, C]:
//   S[0, c] += #{t : |A[t, c]| > thr}          (firing count; f32 counts are exact below 2^24)
//   S[1, c] += Σ_t |A[t, c]|                    (magnitude sum)
// first = 1 writes S instead of adding (no clear needed). One thread per column; neighbouring threads read
// neighbouring addresses of each row.

struct Params {
  T: u32,      // rows in this block
  C: u32,      // columns (neurons)
  first: u32,  // 1: S is only written
  thr: f32,    // firing threshold on |A|
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;          // [T, C]
@group(0) @binding(2) var<storage, read_write> S: array<f32>;    // [2, C]: counts, magnitude sums

@compute @workgroup_size(64)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let c = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (c >= p.C) { return; }
  var count = 0.0;
  var mag = 0.0;
  for (var t = 0u; t < p.T; t++) {
    let a = abs(A[t * p.C + c]);
    mag += a;
    if (a > p.thr) { count += 1.0; }
  }
  if (p.first == 1u) {
    S[c] = count;
    S[p.C + c] = mag;
    return;
  }
  S[c] += count;
  S[p.C + c] += mag;
}
