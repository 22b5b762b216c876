// The Mixture-of-Depths ensemble's loss (Luo & Specia 2024, arXiv:2410.13077, §2.2–2.3): K members'
// next-token logits mixed by router weights g = softmax(A[r]), in probability or in logit space.
// Z:  [K, rows, n] the members' logits for a chunk of rows (member 0: the final layer, the teacher)
// A:  [R, K] router logits of the whole sequence; the chunk's row r is row row0 + r of A, targets, ce, kl, dA
// mix_loss:      ce[row0 + r] = −log P_mix(target), kl[row0 + r] = Σ_{i≥1} KL(p_0 ‖ p_i)
//   PROB:  P_mix = Σ_i g_i·softmax(Z_i);   otherwise (logits):  P_mix = softmax(Σ_i g_i·Z_i)
// mix_loss_grad: ce and kl as mix_loss, and the gradient of ceScale·ce + klScale·kl:
//   dZ [K, rows, n]; dA [R, K] (rows row0 .. row0 + rows − 1). The teacher p_0 is a constant in the KL.
//   PROB:  w_i = g_i·p_i(t) / P_mix(t) (member i's share of the target's probability),
//          dZ_i = ceScale·w_i·(p_i − onehot(t)),  dA_i = ceScale·(g_i − w_i)
//   LOGIT: q = softmax(Σ g_i Z_i), dZ_i = ceScale·g_i·(q − onehot(t)),
//          dA_j = ceScale·g_j·(c_j − Σ_i g_i c_i) with c_j = Σ_v q_v·Z_j[v] − Z_j[t]
//   KL:    dZ_i += klScale·(p_i − p_0) for i ≥ 1
// mix_logprobs:  Y [rows, n] = log P_mix (for greedy decoding and perplexity).
// One workgroup per row (rows linearised over a 2-D grid), WG threads striding over n; every member's
// row statistics are max-shifted as in softmax.wgsl. A target ≥ n gives NaN loss and gradient rows.

struct Params {
  rows: u32, n: u32, K: u32, row0: u32,
  ceScale: f32, klScale: f32,
}

const MAXK = 16u;             // members at most (the host checks)
override WG: u32 = 256;       // threads per row, a power of two
override PROB: bool = true;   // mix in probability space (else in logit space)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Z: array<f32>;                // [K, rows, n]
@group(0) @binding(2) var<storage, read> A: array<f32>;                // [R, K]
@group(0) @binding(3) var<storage, read> targets: array<u32>;          // mix_loss*: [R]
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;          // mix_logprobs: [rows, n]
@group(0) @binding(4) var<storage, read_write> ce: array<f32>;         // mix_loss*: [R]
@group(0) @binding(5) var<storage, read_write> kl: array<f32>;         // mix_loss*: [R]
@group(0) @binding(6) var<storage, read_write> dZ: array<f32>;         // mix_loss_grad: [K, rows, n]
@group(0) @binding(7) var<storage, read_write> dA: array<f32>;         // mix_loss_grad: [R, K]

var<workgroup> red: array<f32, WG>;

fn workgroupReduce(v: f32, lid: u32, isMax: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let o = red[lid + s];
      red[lid] = select(red[lid] + o, max(red[lid], o), isMax);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn nan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

fn rowIndex(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

// A row's statistics: every member's max and Σexp(z − max), the router's log-weights, and (LOGIT) the
// mixed logits' max and Σexp; the same in every thread.
struct Row {
  mx: array<f32, MAXK>,
  se: array<f32, MAXK>,
  logG: array<f32, MAXK>,
  mixMax: f32,
  mixSe: f32,
}

fn zAt(i: u32, row: u32, j: u32) -> f32 { return Z[(i * p.rows + row) * p.n + j]; }

fn lse(st: Row, i: u32) -> f32 { return st.mx[i] + log(st.se[i]); }

// Σ_i g_i·Z_i[j] (LOGIT mixing).
fn mixed(st: Row, row: u32, j: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < p.K; i++) { s += exp(st.logG[i]) * zAt(i, row, j); }
  return s;
}

fn rowStats(row: u32, lid: u32) -> Row {
  var st: Row;
  let a0 = (p.row0 + row) * p.K;
  var am = A[a0];
  for (var i = 1u; i < p.K; i++) { am = max(am, A[a0 + i]); }
  var as_ = 0.0;
  for (var i = 0u; i < p.K; i++) { as_ += exp(A[a0 + i] - am); }
  for (var i = 0u; i < p.K; i++) { st.logG[i] = A[a0 + i] - am - log(as_); }
  for (var i = 0u; i < p.K; i++) {
    var m = zAt(i, row, 0u);
    for (var j = lid; j < p.n; j += WG) { m = max(m, zAt(i, row, j)); }
    m = workgroupReduce(m, lid, true);
    var s = 0.0;
    for (var j = lid; j < p.n; j += WG) { s += exp(zAt(i, row, j) - m); }
    st.mx[i] = m;
    st.se[i] = workgroupReduce(s, lid, false);
  }
  if (!PROB) {
    var m = mixed(st, row, 0u);
    for (var j = lid; j < p.n; j += WG) { m = max(m, mixed(st, row, j)); }
    m = workgroupReduce(m, lid, true);
    var s = 0.0;
    for (var j = lid; j < p.n; j += WG) { s += exp(mixed(st, row, j) - m); }
    st.mixMax = m;
    st.mixSe = workgroupReduce(s, lid, false);
  }
  return st;
}

// log P_mix(j) for PROB: logsumexp_i (log g_i + Z_i[j] − lse_i).
fn logMixProb(st: Row, row: u32, j: u32) -> f32 {
  var m = st.logG[0] + zAt(0u, row, j) - lse(st, 0u);
  for (var i = 1u; i < p.K; i++) { m = max(m, st.logG[i] + zAt(i, row, j) - lse(st, i)); }
  var s = 0.0;
  for (var i = 0u; i < p.K; i++) { s += exp(st.logG[i] + zAt(i, row, j) - lse(st, i) - m); }
  return m + log(s);
}

fn logMix(st: Row, row: u32, j: u32) -> f32 {
  if (PROB) { return logMixProb(st, row, j); }
  return mixed(st, row, j) - st.mixMax - log(st.mixSe);
}

// Writes ce and kl of the row (as softmax.wgsl's klRow, log p_0 − log p_i = (Z_0 − Z_i) − c_i with
// c_i = (max_0 − max_i) + log(Σ_0 / Σ_i), so no logsumexp is subtracted from a logit).
fn rowLoss(row: u32, lid: u32) -> Row {
  let st = rowStats(row, lid);
  var klSum = 0.0;
  for (var i = 1u; i < p.K; i++) {
    let c = (st.mx[0] - st.mx[i]) + log(st.se[0] / st.se[i]);
    var s = 0.0;
    for (var j = lid; j < p.n; j += WG) {
      let z0 = zAt(0u, row, j);
      s += exp(z0 - st.mx[0]) * ((z0 - zAt(i, row, j)) - c);
    }
    klSum += workgroupReduce(s, lid, false) / st.se[0];
  }
  if (lid == 0u) {
    let t = targets[p.row0 + row];
    var l = nan();
    if (t < p.n) { l = -logMix(st, row, t); }
    ce[p.row0 + row] = l;
    kl[p.row0 + row] = klSum;
  }
  return st;
}

@compute @workgroup_size(WG)
fn mix_loss(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  rowLoss(row, lid);
}

@compute @workgroup_size(WG)
fn mix_loss_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  let st = rowLoss(row, lid);
  let t = targets[p.row0 + row];
  let bad = t >= p.n;
  let tt = min(t, p.n - 1u);
  // cw_i: the factor of member i's CE gradient row; the router's gradient from the same quantities
  var cw: array<f32, MAXK>;
  var dAr: array<f32, MAXK>;
  if (PROB) {
    let lp = logMixProb(st, row, tt);
    for (var i = 0u; i < p.K; i++) {
      let w = exp(st.logG[i] + zAt(i, row, tt) - lse(st, i) - lp);
      cw[i] = w;
      dAr[i] = exp(st.logG[i]) - w;
    }
  } else {
    var c: array<f32, MAXK>;
    var gc = 0.0;
    for (var i = 0u; i < p.K; i++) {
      var s = 0.0;
      for (var j = lid; j < p.n; j += WG) {
        s += exp(mixed(st, row, j) - st.mixMax) * zAt(i, row, j);
      }
      c[i] = workgroupReduce(s, lid, false) / st.mixSe - zAt(i, row, tt);
      cw[i] = exp(st.logG[i]);
      gc += cw[i] * c[i];
    }
    for (var i = 0u; i < p.K; i++) { dAr[i] = cw[i] * (c[i] - gc); }
  }
  for (var i = 0u; i < p.K; i++) {
    for (var j = lid; j < p.n; j += WG) {
      let onehot = select(0.0, 1.0, j == t);
      var pj: f32;
      if (PROB) { pj = exp(zAt(i, row, j) - st.mx[i]) / st.se[i]; }
      else { pj = exp(mixed(st, row, j) - st.mixMax) / st.mixSe; }
      var g = p.ceScale * cw[i] * (pj - onehot);
      if (i > 0u) {
        let pi = exp(zAt(i, row, j) - st.mx[i]) / st.se[i];
        let p0 = exp(zAt(0u, row, j) - st.mx[0]) / st.se[0];
        g += p.klScale * (pi - p0);
      }
      if (bad) { g = nan(); }
      dZ[(i * p.rows + row) * p.n + j] = g;
    }
  }
  if (lid == 0u) {
    for (var i = 0u; i < p.K; i++) {
      dA[(p.row0 + row) * p.K + i] = select(p.ceScale * dAr[i], nan(), bad);
    }
  }
}

@compute @workgroup_size(WG)
fn mix_logprobs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  let st = rowStats(row, lid);
  for (var j = lid; j < p.n; j += WG) { Y[row * p.n + j] = logMix(st, row, j); }
}
