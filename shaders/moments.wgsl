// Per-column running moments of a stream of row blocks: the count n, the mean and M2 = Σ (x − mean)²
// of every column, merged block by block with the parallel update of Chan, Golub & LeVeque (1979), so the
// variance M2/(n−1) never suffers the cancellation of Σx² − n·mean² in f32. DIVE (arXiv 2506.09351,
// pruning-based expert reconstruction) scores each FFN channel, as FLAP (arXiv 2312.11983) does, by the
// variance of the down_proj input.
//   update: X [T, C] one block of rows; S [2, C] the running (mean row, M2 row) over the n rows before it.
//     m_b = (1/T)·Σ_t X[t,c];  q_b = Σ_t (X[t,c] − m_b)²               (two passes over the block)
//     n = 0:  S = (m_b, q_b)                                          (S is only written: no clear needed)
//     n > 0:  δ = m_b − mean;  mean += δ·T/(n+T);  M2 += q_b + δ²·n·T/(n+T)
// One thread per column; neighbouring threads read neighbouring addresses of each row.

struct Params {
  T: u32,   // rows in this block
  C: u32,   // columns
  n: u32,   // rows merged into S before this block
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;          // [T, C]
@group(0) @binding(2) var<storage, read_write> S: array<f32>;    // [2, C]: mean, M2

@compute @workgroup_size(64)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let c = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (c >= p.C) { return; }
  var sum = 0.0;
  for (var t = 0u; t < p.T; t++) { sum += X[t * p.C + c]; }
  let T = f32(p.T);
  let mb = sum / T;
  var qb = 0.0;
  for (var t = 0u; t < p.T; t++) {
    let d = X[t * p.C + c] - mb;
    qb += d * d;
  }
  if (p.n == 0u) {
    S[c] = mb;
    S[p.C + c] = qb;
    return;
  }
  let n = f32(p.n);
  let delta = mb - S[c];
  S[c] += delta * (T / (n + T));
  S[p.C + c] += qb + delta * delta * (n * T / (n + T));
}
