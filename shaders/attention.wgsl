// Causal self-attention with grouped-query heads (LLaMA's self_attn after q_proj, k_proj, v_proj and RoPE):
//   out[t, h] = Σ_j softmax_j(scale · q[t, h]·k[j, h/G]) · v[j, h/G],  j = 0 .. past + t
// q: [T, Hq, D]; kCache, vCache: [S_max, Hkv, D] (row j holds position j); out: [T, Hq, D].
// G = Hq/Hkv query heads share one kv head. Query t sits at position past + t, so prefill (past = 0) and
// decode (T = 1, past > 0) are the same dispatch.
// Flash-style: a workgroup takes BR query rows of one kv head, and walks the keys in chunks of BC through
// workgroup memory keeping a running max and sum per row (online softmax), so memory does not grow with
// the sequence. Its rows are (t, head-in-group) pairs, so the G query heads that share a kv head also
// share every K/V tile (in decode, T = 1 still fills G rows). Thread (r, c) scores row r against key c
// of the chunk, then accumulates output dims c, c + BC, c + 2·BC, ... of row r. D ≤ MAX_D.
// train: main over a whole sequence (past = 0, k and v the T rows themselves), also writing the
//   logsumexp of each row's scores, LSE [T, Hq], for the backward.
// backward_dq, backward_dkv: the gradients, FlashAttention-2 style (Dao, arXiv 2307.08691, Alg. 2): the
//   scores are recomputed tile by tile from q, k and LSE, P = exp(scale·q·k − LSE), so no [T, T] matrix
//   exists. With Δ = rowsum(dO ∘ O) and dS = P ∘ (dO·vᵀ − Δ):
//     dq = scale·dS·K,  dk = scale·dSᵀ·Q,  dv = Pᵀ·dO.
//   Without float atomics each gradient has one owner, so it is summed in a fixed order on every run:
//   backward_dq owns BR query rows (and writes their Δ), backward_dkv, dispatched after it, owns BC keys of
//   one kv head and walks every query row of the G heads that share it. Workgroup memory stays under
//   16 KiB at D = 128 by holding one BR×D or BC×D tile at a time where the math allows (see each kernel).
// write_kv: copies new k, v rows [T, Hkv, D] into the caches at row `past`.

struct Params {
  T: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  past: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// main, train, backward_*
@group(0) @binding(1) var<storage, read> Q: array<f32>;          // [T, Hq, D]
@group(0) @binding(2) var<storage, read> K: array<f32>;          // [S_max, Hkv, D] (train, backward: [T, Hkv, D])
@group(0) @binding(3) var<storage, read> V: array<f32>;          // [S_max, Hkv, D]
@group(0) @binding(4) var<storage, read_write> O: array<f32>;    // [T, Hq, D]; backward_dq reads it
@group(0) @binding(5) var<storage, read_write> LSE: array<f32>;  // train writes, backward_* read: [T, Hq]
@group(0) @binding(6) var<storage, read> dO: array<f32>;         // backward_*: [T, Hq, D]
@group(0) @binding(7) var<storage, read_write> dQ: array<f32>;   // backward_dq: [T, Hq, D]
@group(0) @binding(8) var<storage, read_write> Delta: array<f32>;   // backward_dq writes, backward_dkv reads: [T, Hq]
@group(0) @binding(9) var<storage, read_write> dK: array<f32>;   // backward_dkv: [T, Hkv, D]
@group(0) @binding(10) var<storage, read_write> dV: array<f32>;  // backward_dkv: [T, Hkv, D]
// write_kv
@group(0) @binding(1) var<storage, read> kNew: array<f32>;       // [T, Hkv, D]
@group(0) @binding(2) var<storage, read> vNew: array<f32>;       // [T, Hkv, D]
@group(0) @binding(3) var<storage, read_write> kCache: array<f32>;   // [S_max, Hkv, D]
@group(0) @binding(4) var<storage, read_write> vCache: array<f32>;   // [S_max, Hkv, D]

const BR = 8u;                 // query rows per workgroup
const BC = 8u;                 // keys per chunk
const WG = BR * BC;
const MAX_D = 128u;
const NACC = MAX_D / BC;       // output dims per thread

var<workgroup> qs: array<f32, BR * MAX_D>;   // [BR][MAX_D]
var<workgroup> ks: array<f32, BC * MAX_D>;   // [BC][MAX_D]
var<workgroup> vs: array<f32, BC * MAX_D>;   // [BC][MAX_D]
var<workgroup> ss: array<f32, BR * BC>;      // scores of the chunk (backward_dkv: P), [BR][BC]
var<workgroup> dos: array<f32, BR * MAX_D>;  // backward_dq: dO rows, [BR][MAX_D]
var<workgroup> dss: array<f32, BR * BC>;     // backward_*: dS of the chunk, [BR][BC]
// Per entry: main, train qs ks vs ss; backward_dq qs dos ks dss; backward_dkv qs ks vs ss dss (≤ 12.8 KiB).

// Index t·Hq + h of query row `row` (t, head-in-group) of kv head `kvh`: its row of LSE and Delta.
fn headRow(row: u32, kvh: u32, G: u32) -> u32 {
  return (row / G) * p.Hq + kvh * G + row % G;
}

// Offset of query row `row` in Q, O, dO and dQ.
fn qOffset(row: u32, kvh: u32, G: u32) -> u32 {
  return headRow(row, kvh, G) * p.D;
}

// Element i of a [BR or BC][D] tile: its place in the [..][MAX_D] workgroup array.
fn tileIndex(i: u32) -> u32 {
  return (i / p.D) * MAX_D + i % p.D;
}

// Element i of the query-row tile from row0 (Q, dO): its offset in the tensor. Rows past the end repeat
// the last one, so every row of a tile is real data.
fn rowElem(row0: u32, i: u32, kvh: u32) -> u32 {
  let G = p.Hq / p.Hkv;
  return qOffset(min(row0 + i / p.D, p.T * G - 1u), kvh, G) + i % p.D;
}

// Element i of the key tile from j0 (K, V): its offset in the tensor; only valid for key j0 + i/D < S.
fn keyElem(j0: u32, i: u32, kvh: u32) -> u32 {
  return ((j0 + i / p.D) * p.Hkv + kvh) * p.D + i % p.D;
}

// Keys [j0, j0 + BC) of kv head kvh into ks (K) and vs (V). Keys from nkeys on are masked for every row,
// may lie past the end of the tensor, and are zero.
fn loadKV(j0: u32, nkeys: u32, kvh: u32, lid: u32) {
  for (var i = lid; i < BC * p.D; i += WG) {
    var kv = vec2<f32>(0.0);
    if (j0 + i / p.D < nkeys) {
      let g = keyElem(j0, i, kvh);
      kv = vec2<f32>(K[g], V[g]);
    }
    ks[tileIndex(i)] = kv.x;
    vs[tileIndex(i)] = kv.y;
  }
}

// backward_dq: keys [j0, j0 + BC) of K, or of V when fromV, into ks; zero from nkeys on as in loadKV.
fn loadKs(j0: u32, nkeys: u32, kvh: u32, lid: u32, fromV: bool) {
  for (var i = lid; i < BC * p.D; i += WG) {
    var v = 0.0;
    if (j0 + i / p.D < nkeys) {
      let g = keyElem(j0, i, kvh);
      if (fromV) { v = V[g]; } else { v = K[g]; }
    }
    ks[tileIndex(i)] = v;
  }
}

// Row a of qs times row b of ks, over D.
fn dotQK(a: u32, b: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < p.D; d++) { s += qs[a * MAX_D + d] * ks[b * MAX_D + d]; }
  return s;
}

// The flash forward for workgroup (wgx, kvh): writes O for its rows and returns the logsumexp of the
// scores of this thread's row.
fn flashForward(wgx: u32, kvh: u32, lid: u32) -> f32 {
  let D = p.D;
  let G = p.Hq / p.Hkv;
  let nrows = p.T * G;
  let row0 = wgx * BR;
  let r = lid / BC;
  let c = lid % BC;
  // Rows past the end repeat the last row (so every row has a key) and write nothing.
  let row = min(row0 + r, nrows - 1u);
  let last = p.past + row / G;                              // last key position this row sees
  let nkeys = p.past + (min(row0 + BR, nrows) - 1u) / G + 1u;  // keys any row of the workgroup sees

  for (var i = lid; i < BR * D; i += WG) { qs[tileIndex(i)] = Q[rowElem(row0, i, kvh)]; }

  var m = -3.0e38;   // running max; finite so that exp(m − m_new) is 0, not NaN, on the first chunk
  var l = 0.0;       // running sum of exp(s − m)
  var acc: array<f32, NACC>;
  for (var j0 = 0u; j0 < nkeys; j0 += BC) {
    workgroupBarrier();   // the previous chunk's tiles are no longer read
    loadKV(j0, nkeys, kvh, lid);
    workgroupBarrier();

    ss[r * BC + c] = dotQK(r, c) * p.scale;
    workgroupBarrier();

    // Online softmax update of row r; the BC threads of a row compute the same m and l.
    var mNew = m;
    for (var cc = 0u; cc < BC; cc++) {
      if (j0 + cc <= last) { mNew = max(mNew, ss[r * BC + cc]); }
    }
    let alpha = exp(m - mNew);
    l *= alpha;
    for (var a = 0u; a < NACC; a++) { acc[a] *= alpha; }
    for (var cc = 0u; cc < BC; cc++) {
      if (j0 + cc <= last) {
        let pj = exp(ss[r * BC + cc] - mNew);
        l += pj;
        for (var a = 0u; a < NACC; a++) {
          let d = c + a * BC;
          if (d < D) { acc[a] += pj * vs[cc * MAX_D + d]; }
        }
      }
    }
    m = mNew;
  }

  if (row0 + r < nrows) {
    let o = qOffset(row, kvh, G);
    for (var a = 0u; a < NACC; a++) {
      let d = c + a * BC;
      if (d < D) { O[o + d] = acc[a] / l; }
    }
  }
  return m + log(l);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  flashForward(wg.x, wg.y, lid);
}

@compute @workgroup_size(WG)
fn train(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lse = flashForward(wg.x, wg.y, lid);
  let G = p.Hq / p.Hkv;
  let row = wg.x * BR + lid / BC;
  if (lid % BC == 0u && row < p.T * G) { LSE[headRow(row, wg.y, G)] = lse; }
}

// dQ for BR query rows of kv head wg.y (rows as in main) over the keys they see. The Q and dO rows stay
// in qs and dos; each key chunk passes through ks twice: V (dP = dO·vᵀ), then K (scores, dq += dS·K).
@compute @workgroup_size(WG)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D = p.D;
  let G = p.Hq / p.Hkv;
  let nrows = p.T * G;
  let kvh = wg.y;
  let row0 = wg.x * BR;
  let r = lid / BC;
  let c = lid % BC;
  let row = min(row0 + r, nrows - 1u);
  let last = row / G;                                 // last key this row sees
  let nkeys = (min(row0 + BR, nrows) - 1u) / G + 1u;  // keys any row of the workgroup sees
  let o = qOffset(row, kvh, G);
  let hr = headRow(row, kvh, G);

  for (var i = lid; i < BR * D; i += WG) {
    let g = rowElem(row0, i, kvh);
    qs[tileIndex(i)] = Q[g];
    dos[tileIndex(i)] = dO[g];
  }
  workgroupBarrier();
  // Δ = dO·O of row r; the BC threads of the row compute the same value.
  var delta = 0.0;
  for (var d = 0u; d < D; d++) { delta += dos[r * MAX_D + d] * O[o + d]; }
  if (c == 0u && row0 + r < nrows) { Delta[hr] = delta; }
  let lse = LSE[hr];

  var acc: array<f32, NACC>;   // dq of row r, dims c, c + BC, ...
  for (var j0 = 0u; j0 < nkeys; j0 += BC) {
    workgroupBarrier();   // the previous chunk's K is no longer read
    loadKs(j0, nkeys, kvh, lid, true);
    workgroupBarrier();
    var dp = 0.0;
    for (var d = 0u; d < D; d++) { dp += dos[r * MAX_D + d] * ks[c * MAX_D + d]; }
    workgroupBarrier();
    loadKs(j0, nkeys, kvh, lid, false);
    workgroupBarrier();
    var ds = 0.0;
    if (j0 + c <= last) { ds = exp(dotQK(r, c) * p.scale - lse) * (dp - delta); }
    dss[r * BC + c] = ds;
    workgroupBarrier();
    for (var cc = 0u; cc < BC; cc++) {
      let w = dss[r * BC + cc];
      for (var a = 0u; a < NACC; a++) {
        let d = c + a * BC;
        if (d < D) { acc[a] += w * ks[cc * MAX_D + d]; }
      }
    }
  }

  if (row0 + r < nrows) {
    for (var a = 0u; a < NACC; a++) {
      let d = c + a * BC;
      if (d < D) { dQ[o + d] = acc[a] * p.scale; }
    }
  }
}

// dK, dV for BC keys of kv head wg.y. K and V stay in ks and vs while the query rows that see them (from
// row j0·G on, in order) pass through qs in chunks of BR: Q (scores, P), then dO (dP, dS; dv += Pᵀ·dO),
// then Q again (dk += dSᵀ·Q). Scores use thread (r, c) = (query row, key); the sums thread (key, dims).
@compute @workgroup_size(WG)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D = p.D;
  let G = p.Hq / p.Hkv;
  let nrows = p.T * G;
  let kvh = wg.y;
  let j0 = wg.x * BC;
  let r = lid / BC;
  let c = lid % BC;
  let key = lid / BR;   // the key this thread sums for,
  let kd = lid % BR;    // and its dims kd, kd + BR, ... (BR = BC, so NACC of them cover MAX_D)

  loadKV(j0, p.T, kvh, lid);
  var dk: array<f32, NACC>;
  var dv: array<f32, NACC>;
  for (var i0 = j0 * G; i0 < nrows; i0 += BR) {
    let row = min(i0 + r, nrows - 1u);
    let hr = headRow(row, kvh, G);
    // Query t = row / G sees keys 0..t; rows past the end see none.
    let seen = i0 + r < nrows && j0 + c <= row / G;
    workgroupBarrier();   // the previous chunk's qs, ss and dss are no longer read
    for (var i = lid; i < BR * D; i += WG) { qs[tileIndex(i)] = Q[rowElem(i0, i, kvh)]; }
    workgroupBarrier();
    var pj = 0.0;
    if (seen) { pj = exp(dotQK(r, c) * p.scale - LSE[hr]); }
    workgroupBarrier();
    for (var i = lid; i < BR * D; i += WG) { qs[tileIndex(i)] = dO[rowElem(i0, i, kvh)]; }
    workgroupBarrier();
    var dp = 0.0;
    for (var d = 0u; d < D; d++) { dp += qs[r * MAX_D + d] * vs[c * MAX_D + d]; }
    ss[r * BC + c] = pj;
    dss[r * BC + c] = select(0.0, pj * (dp - Delta[hr]), seen);
    workgroupBarrier();
    for (var rr = 0u; rr < BR; rr++) {
      let w = ss[rr * BC + key];
      for (var a = 0u; a < NACC; a++) {
        let d = kd + a * BR;
        if (d < D) { dv[a] += w * qs[rr * MAX_D + d]; }
      }
    }
    workgroupBarrier();
    for (var i = lid; i < BR * D; i += WG) { qs[tileIndex(i)] = Q[rowElem(i0, i, kvh)]; }
    workgroupBarrier();
    for (var rr = 0u; rr < BR; rr++) {
      let w = dss[rr * BC + key];
      for (var a = 0u; a < NACC; a++) {
        let d = kd + a * BR;
        if (d < D) { dk[a] += w * qs[rr * MAX_D + d]; }
      }
    }
  }

  let j = j0 + key;
  if (j < p.T) {
    let o = (j * p.Hkv + kvh) * D;
    for (var a = 0u; a < NACC; a++) {
      let d = kd + a * BR;
      if (d < D) {
        dK[o + d] = dk[a] * p.scale;
        dV[o + d] = dv[a];
      }
    }
  }
}

@compute @workgroup_size(64)
fn write_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  let n = p.T * p.Hkv * p.D;
  if (i >= n) { return; }
  let dst = p.past * p.Hkv * p.D + i;
  kCache[dst] = kNew[i];
  vCache[dst] = vNew[i];
}
