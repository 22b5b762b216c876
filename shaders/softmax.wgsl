// Row softmax, log-softmax, cross-entropy and KL divergence over the last dimension.
// X: [rows, n] logits.
// main:               Y [rows, n] = softmax(X[r]), or log-softmax when LOG.
// ce_chunks, ce_rows:  the cross-entropy loss, in two passes: targets [R] u32 class ids; loss [R] with
//                     loss[row0 + r] = logsumexp(X[r]) − X[r, targets[row0 + r]].
// ce_grad:            after them, dX [rows, n] = (softmax(X[r]) − onehot(targets[row0 + r]))·scale.
//   X may be one chunk of rows row0 .. row0 + rows − 1 of a longer sequence whose targets and loss are
//   whole (R rows), so the [R, vocab] logits never exist at once; row0 = 0 and R = rows otherwise.
// kl:                 XQ [rows, n] student logits (X the teacher's); loss [rows] = KL(softmax(X[r]) ‖ softmax(XQ[r])).
// kl_grad:            loss as kl, and dX [rows, n] = (softmax(XQ[r]) − softmax(X[r]))·scale, the gradient
//                     with respect to XQ (the teacher is a constant).
// main, kl, kl_grad: one workgroup per row (rows linearised over a 2-D grid, so more than 65535 rows
// work), WG threads striding over n, so any n works. The cross-entropy passes use no workgroup memory and
// no barrier: ce_chunks folds CHUNK columns of a row per invocation, ce_rows combines a row's chunks in
// order, ce_grad writes one element per invocation. SwiftShader runs a workgroup that has a barrier as
// one coroutine per 4-lane subgroup, switched at every barrier, and the tree reductions of a 256-thread
// row cost it far more than the row's arithmetic. Row statistics are max-shifted (online: each thread or
// chunk keeps a running max and Σexp relative to it, in one read of the row), so no logit can overflow.
// A target ≥ n gives a NaN loss and a NaN gradient row: GPU-resident targets are invisible to the host,
// and NaN makes the bad row impossible to miss (crossEntropyFromTargets checks host targets up front).
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  rows: u32, n: u32,
  scale: f32,   // ce_grad, kl_grad: multiplies dX (e.g. 1/rows for a mean loss)
  row0: u32,    // ce_rows, ce_grad: row of targets and loss that X's first row is
}

override WG: u32 = 256;       // threads per row, a power of two
override LOG: bool = false;   // main: log-softmax instead of softmax

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;                // [rows, n]
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;          // main: [rows, n]
@group(0) @binding(2) var<storage, read> targets: array<u32>;          // ce_rows, ce_grad: [R]
@group(0) @binding(2) var<storage, read> XQ: array<f32>;               // kl*: [rows, n]
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;       // ce_rows: [R]; kl*: [rows]
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;         // ce_grad, kl_grad: [rows, n]
@group(0) @binding(5) var<storage, read_write> chunkSt: array<RowStats>;  // ce_chunks, ce_rows: [rows, chunks]
@group(0) @binding(6) var<storage, read_write> rowSt: array<RowStats>;    // ce_rows, ce_grad: [rows]

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

const CHUNK = 256u;   // columns per ce_chunks invocation (CE_CHUNK in src/ops/softmax.ts)
const PW = 64u;       // invocations per workgroup of the ce_* passes

fn flatInvocation(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wg.y * nwg.x + wg.x) * PW + lid; }

fn chunksPerRow() -> u32 { return (p.n + CHUNK - 1u) / CHUNK; }

// Statistics of chunk i = row·chunks + c: columns c·CHUNK .. of its row.
@compute @workgroup_size(PW)
fn ce_chunks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flatInvocation(wg, nwg, lid);
  let nc = chunksPerRow();
  if (i >= p.rows * nc) { return; }
  let base = (i / nc) * p.n;
  let j0 = (i % nc) * CHUNK;
  var st = RowStats(X[base + j0], 0.0);
  for (var j = j0; j < min(j0 + CHUNK, p.n); j++) { st = online(st, X[base + j]); }
  chunkSt[i] = st;
}

// A row's statistics from its chunks' (in order), and its loss (NaN for an out-of-range target).
@compute @workgroup_size(PW)
fn ce_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = flatInvocation(wg, nwg, lid);
  if (row >= p.rows) { return; }
  let nc = chunksPerRow();
  let c0 = row * nc;
  var m = chunkSt[c0].max;
  for (var c = 1u; c < nc; c++) { m = max(m, chunkSt[c0 + c].max); }
  var s = 0.0;
  for (var c = 0u; c < nc; c++) {
    let st = chunkSt[c0 + c];
    s += st.sumExp * exp(st.max - m);
  }
  let st = RowStats(m, s);
  rowSt[row] = st;
  let t = targets[p.row0 + row];
  var l = nan();
  if (t < p.n) { l = logZ(st) - X[row * p.n + t]; }
  loss[p.row0 + row] = l;
}

// Element i = row·n + j of the gradient.
@compute @workgroup_size(PW)
fn ce_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = flatInvocation(wg, nwg, lid);
  if (i >= p.rows * p.n) { return; }
  let row = i / p.n;
  let st = rowSt[row];
  let t = targets[p.row0 + row];
  var g = (exp(X[i] - st.max) / st.sumExp - select(0.0, 1.0, i % p.n == t)) * p.scale;
  if (t >= p.n) { g = nan(); }
  dX[i] = g;
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
