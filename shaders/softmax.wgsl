// Row softmax, log-softmax and cross-entropy over the last dimension.
// X: [rows, n] logits.
// main:               Y [rows, n] = softmax(X[r]), or log-softmax when LOG.
// cross_entropy:      targets [rows] u32 class ids; loss [rows] = logsumexp(X[r]) − X[r, targets[r]].
// cross_entropy_grad: loss as above, and dX [rows, n] = (softmax(X[r]) − onehot(targets[r]))·scale.
// One workgroup per row (rows linearised over a 2-D grid, so more than 65535 rows work), WG threads
// striding over n, so any n works. Each row is shifted by its max before exp, so no logit can overflow.
// A target ≥ n gives a NaN loss and a NaN gradient row: GPU-resident targets are invisible to the host,
// and NaN makes the bad row impossible to miss (crossEntropyFromTargets checks host targets up front).
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  rows: u32, n: u32,
  scale: f32,   // cross_entropy_grad: multiplies dX (e.g. 1/rows for a mean loss)
}

override WG: u32 = 256;       // threads per row, a power of two
override LOG: bool = false;   // main: log-softmax instead of softmax

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;                // [rows, n]
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;          // main: [rows, n]
@group(0) @binding(2) var<storage, read> targets: array<u32>;          // cross_entropy*: [rows]
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;       // cross_entropy*: [rows]
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;         // cross_entropy_grad: [rows, n]

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

fn rowStats(base: u32, lid: u32) -> RowStats {
  var m = X[base];   // any element of the row seeds the max, so no −∞ literal is needed
  for (var j = lid; j < p.n; j += WG) { m = max(m, X[base + j]); }
  m = workgroupReduce(m, lid, true);
  var s = 0.0;
  for (var j = lid; j < p.n; j += WG) { s += exp(X[base + j] - m); }
  s = workgroupReduce(s, lid, false);
  return RowStats(m, s);
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
  let logZ = st.max + log(st.sumExp);
  for (var j = lid; j < p.n; j += WG) {
    let x = X[base + j];
    if (LOG) { Y[base + j] = x - logZ; } else { Y[base + j] = exp(x - st.max) / st.sumExp; }
  }
}

// Writes loss[row] (NaN for an out-of-range target) and returns the row's stats for the gradient.
fn rowLoss(row: u32, base: u32, lid: u32) -> RowStats {
  let st = rowStats(base, lid);
  if (lid == 0u) {
    let t = targets[row];
    var l = nan();
    if (t < p.n) { l = st.max + log(st.sumExp) - X[base + t]; }
    loss[row] = l;
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
  let t = targets[row];
  let bad = t >= p.n;
  for (var j = lid; j < p.n; j += WG) {
    let onehot = select(0.0, 1.0, j == t);
    var g = (exp(X[base + j] - st.max) / st.sumExp - onehot) * p.scale;
    if (bad) { g = nan(); }
    dX[base + j] = g;
  }
}
