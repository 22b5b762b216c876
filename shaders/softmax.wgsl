// Row softmax, log-softmax, cross-entropy and KL divergence over the last dimension.
// X: [rows, n] logits.
// main:               Y [rows, n] = softmax(X[r]), or log-softmax when LOG.
// cross_entropy:      targets [R] u32 class ids; loss [R] with loss[row0 + r] = logsumexp(X[r]) − X[r, targets[row0 + r]].
// cross_entropy_grad: loss as above, and dX [rows, n] = (softmax(X[r]) − onehot(targets[row0 + r]))·scale.
//   X may be one chunk of rows row0 .. row0 + rows − 1 of a longer sequence whose targets and loss are
//   whole (R rows), so the [R, vocab] logits never exist at once; row0 = 0 and R = rows otherwise.
// kl:                 XQ [rows, n] student logits (X the teacher's); loss [rows] = KL(softmax(X[r]) ‖ softmax(XQ[r])).
// kl_grad:            loss as kl, and dX [rows, n] = (softmax(XQ[r]) − softmax(X[r]))·scale, the gradient
//                     with respect to XQ (the teacher is a constant).
// One workgroup per row (rows linearised over a 2-D grid, so more than 65535 rows work), WG threads
// striding over n, so any n works. Row statistics are max-shifted (online: each thread keeps a running max
// and Σexp relative to it, in one read of the row), so no logit can overflow.
// A target ≥ n gives a NaN loss and a NaN gradient row: GPU-resident targets are invisible to the host,
// and NaN makes the bad row impossible to miss (crossEntropyFromTargets checks host targets up front).
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  rows: u32, n: u32,
  scale: f32,   // cross_entropy_grad, kl_grad: multiplies dX (e.g. 1/rows for a mean loss)
  row0: u32,    // cross_entropy*: row of targets and loss that X's first row is
}

override WG: u32 = 256;       // threads per row, a power of two
override LOG: bool = false;   // main: log-softmax instead of softmax

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;                // [rows, n]
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;          // main: [rows, n]
@group(0) @binding(2) var<storage, read> targets: array<u32>;          // cross_entropy*: [R]
@group(0) @binding(2) var<storage, read> XQ: array<f32>;               // kl*: [rows, n]
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;       // cross_entropy*: [R]; kl*: [rows]
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;         // cross_entropy_grad, kl_grad: [rows, n]

var<workgroup> red: array<f32, WG>;

// Max (or sum) of v over the workgroup, returned to every thread.
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
  workgroupBarrier();   // red is reused by the next reduction
  return r;
}

struct RowStats {
  max: f32,
  sumExp: f32,   // Σ exp(x − max)
}

fn logZ(st: RowStats) -> f32 { return st.max + log(st.sumExp); }

// Folds x into a thread's running (max, Σexp(· − max)).
fn online(st: RowStats, x: f32) -> RowStats {
  if (x <= st.max) { return RowStats(st.max, st.sumExp + exp(x - st.max)); }
  return RowStats(x, st.sumExp * exp(st.max - x) + 1.0);
}

// The row's statistics from every thread's running ones, returned to every thread.
fn rowOf(st: RowStats, lid: u32) -> RowStats {
  let m = workgroupReduce(st.max, lid, true);
  return RowStats(m, workgroupReduce(st.sumExp * exp(st.max - m), lid, false));
}

// Statistics of row X[base ..] (of XQ[base ..] for rowStatsQ). Any element of the row seeds the max, so
// no −∞ literal is needed.
fn rowStats(base: u32, lid: u32) -> RowStats {
  var st = RowStats(X[base], 0.0);
  for (var j = lid; j < p.n; j += WG) { st = online(st, X[base + j]); }
  return rowOf(st, lid);
}

fn rowStatsQ(base: u32, lid: u32) -> RowStats {
  var st = RowStats(XQ[base], 0.0);
  for (var j = lid; j < p.n; j += WG) { st = online(st, XQ[base + j]); }
  return rowOf(st, lid);
}

fn nan() -> f32 {
  var bits = 0x7fc00000u;   // a var, not a const: constant-folding a NaN is a shader-creation error
  return bitcast<f32>(bits);
}

fn rowIndex(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.n;
  let st = rowStats(base, lid);
  let lz = logZ(st);
  for (var j = lid; j < p.n; j += WG) {
    let x = X[base + j];
    if (LOG) { Y[base + j] = x - lz; } else { Y[base + j] = exp(x - st.max) / st.sumExp; }
  }
}

// Writes loss[row0 + row] (NaN for an out-of-range target) and returns the row's stats for the gradient.
fn rowLoss(row: u32, base: u32, lid: u32) -> RowStats {
  let st = rowStats(base, lid);
  if (lid == 0u) {
    let t = targets[p.row0 + row];
    var l = nan();
    if (t < p.n) { l = logZ(st) - X[base + t]; }
    loss[p.row0 + row] = l;
  }
  return st;
}

@compute @workgroup_size(WG)
fn cross_entropy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  rowLoss(row, row * p.n, lid);
}

@compute @workgroup_size(WG)
fn cross_entropy_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.n;
  let st = rowLoss(row, base, lid);
  let t = targets[p.row0 + row];
  let bad = t >= p.n;
  for (var j = lid; j < p.n; j += WG) {
    let onehot = select(0.0, 1.0, j == t);
    var g = (exp(X[base + j] - st.max) / st.sumExp - onehot) * p.scale;
    if (bad) { g = nan(); }
    dX[base + j] = g;
  }
}

// Writes loss[row] = Σ_j P_j·(log P_j − log Q_j) with P = softmax(X[row]), Q = softmax(XQ[row]); returns
// the two rows' statistics (teacher, student) for the gradient. log P_j − log Q_j is taken as
// (X_j − XQ_j) − c with c = logsumexp(X) − logsumexp(XQ) = (max_P − max_Q) + log(Σ_P / Σ_Q), and P_j as
// exp(X_j − max_P)/Σ_P: no large logsumexp is subtracted from a logit, which would cost ulps of the
// logits' magnitude in every term, and matters most when the student is close and the KL small.
fn klRow(row: u32, base: u32, lid: u32) -> array<RowStats, 2> {
  let sp = rowStats(base, lid);
  let sq = rowStatsQ(base, lid);
  let c = (sp.max - sq.max) + log(sp.sumExp / sq.sumExp);
  var s = 0.0;
  for (var j = lid; j < p.n; j += WG) {
    let x = X[base + j];
    s += exp(x - sp.max) * ((x - XQ[base + j]) - c);
  }
  s = workgroupReduce(s, lid, false);
  if (lid == 0u) { loss[row] = s / sp.sumExp; }
  return array<RowStats, 2>(sp, sq);
}

@compute @workgroup_size(WG)
fn kl(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
      @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  klRow(row, row * p.n, lid);
}

@compute @workgroup_size(WG)
fn kl_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = rowIndex(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.n;
  let st = klRow(row, base, lid);
  for (var j = lid; j < p.n; j += WG) {
    let q = exp(XQ[base + j] - st[1].max) / st[1].sumExp;
    dX[base + j] = (q - exp(X[base + j] - st[0].max) / st[0].sumExp) * p.scale;
  }
}
