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
// train: attention over a whole sequence (past = 0, k and v the T rows themselves), also writing the
//   logsumexp of each row's scores, LSE [T, Hq], for the backward.
// backward_dq, backward_dkv: the gradients, FlashAttention-2 style (Dao, arXiv 2307.08691, Alg. 2): the
//   scores are recomputed from q, k and LSE, P = exp(scale·q·k − LSE), so no [T, T] matrix exists.
//   With Δ = rowsum(dO ∘ O) and dS = P ∘ (dO·vᵀ − Δ):
//     dq = scale·dS·K,  dk = scale·dSᵀ·Q,  dv = Pᵀ·dO.
//   Without float atomics each gradient has one owner, so it is summed in a fixed order on every run:
//   backward_dq owns a query row (and writes its Δ), backward_dkv, dispatched after it, owns a key of one
//   kv head and walks every query row of the G heads that share it.
// train and the backward are one invocation per row or key, not tiles (see TW below).
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
var<workgroup> ss: array<f32, BR * BC>;      // scores of the chunk, [BR][BC]

// Index t·Hq + h of query row `row` (t, head-in-group) of kv head `kvh`.
fn headRow(row: u32, kvh: u32, G: u32) -> u32 {
  return (row / G) * p.Hq + kvh * G + row % G;
}

// Offset of query row `row` in Q and O.
fn qOffset(row: u32, kvh: u32, G: u32) -> u32 {
  return headRow(row, kvh, G) * p.D;
}

// Element i of a [BR or BC][D] tile: its place in the [..][MAX_D] workgroup array.
fn tileIndex(i: u32) -> u32 {
  return (i / p.D) * MAX_D + i % p.D;
}

// Element i of the query-row tile from row0 (Q): its offset in the tensor. Rows past the end repeat
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

// Row a of qs times row b of ks, over D.
fn dotQK(a: u32, b: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < p.D; d++) { s += qs[a * MAX_D + d] * ks[b * MAX_D + d]; }
  return s;
}

// The flash forward for workgroup (wgx, kvh): writes O for its rows.
fn flashForward(wgx: u32, kvh: u32, lid: u32) {
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
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  flashForward(wg.x, wg.y, lid);
}

// train, backward_dq, backward_dkv: one invocation per query row (t, h) (backward_dkv: per key (j, kv head))
// walks the keys it sees (the query rows that see it) serially, with no workgroup memory and no barrier.
// SwiftShader runs a workgroup with a barrier as one coroutine per 4-lane subgroup and switches them at
// every barrier; the 8×8 tiles' 3 to 6 barriers per tile cost far more than the tiles' arithmetic.
const TW = 32u;   // invocations per workgroup of these entries

// This invocation's index over a 2-D grid of TW-wide workgroups.
fn flatInvocation(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wg.y * nwg.x + wg.x) * TW + lid; }

// Attention over the whole sequence (past = 0) for row hr = t·Hq + h, with the logsumexp of its scores.
// Online softmax over the keys: a new running max rescales the sums so far.
@compute @workgroup_size(TW)
fn train(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let hr = flatInvocation(wg, nwg, lid);
  if (hr >= p.T * p.Hq) { return; }
  let D = p.D;
  let t = hr / p.Hq;
  let kvh = (hr % p.Hq) / (p.Hq / p.Hkv);
  let o = hr * D;
  var q: array<f32, MAX_D>;
  for (var d = 0u; d < D; d++) { q[d] = Q[o + d]; }
  var m = -3.0e38;   // running max; finite so that exp(m − s) is 0, not NaN, at the first key
  var l = 0.0;       // running sum of exp(s − m)
  var acc: array<f32, MAX_D>;
  for (var j = 0u; j <= t; j++) {
    let kb = (j * p.Hkv + kvh) * D;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s += q[d] * K[kb + d]; }
    s *= p.scale;
    if (s > m) {
      let alpha = exp(m - s);
      l *= alpha;
      for (var d = 0u; d < D; d++) { acc[d] *= alpha; }
      m = s;
    }
    let pj = exp(s - m);
    l += pj;
    for (var d = 0u; d < D; d++) { acc[d] += pj * V[kb + d]; }
  }
  for (var d = 0u; d < D; d++) { O[o + d] = acc[d] / l; }
  LSE[hr] = m + log(l);
}

// dQ and Δ of row hr = t·Hq + h over the keys it sees.
@compute @workgroup_size(TW)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let hr = flatInvocation(wg, nwg, lid);
  if (hr >= p.T * p.Hq) { return; }
  let D = p.D;
  let t = hr / p.Hq;
  let kvh = (hr % p.Hq) / (p.Hq / p.Hkv);
  let o = hr * D;
  var q: array<f32, MAX_D>;
  var g: array<f32, MAX_D>;   // dO of the row
  var delta = 0.0;            // Δ = dO·O
  for (var d = 0u; d < D; d++) {
    q[d] = Q[o + d];
    g[d] = dO[o + d];
    delta += g[d] * O[o + d];
  }
  Delta[hr] = delta;
  let lse = LSE[hr];
  var acc: array<f32, MAX_D>;
  for (var j = 0u; j <= t; j++) {
    let kb = (j * p.Hkv + kvh) * D;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < D; d++) {
      s += q[d] * K[kb + d];
      dp += g[d] * V[kb + d];
    }
    let ds = exp(s * p.scale - lse) * (dp - delta);
    for (var d = 0u; d < D; d++) { acc[d] += ds * K[kb + d]; }
  }
  for (var d = 0u; d < D; d++) { dQ[o + d] = acc[d] * p.scale; }
}

// dK, dV of key jh = j·Hkv + kvh over the query rows that see it: t = j .. T − 1, each of the G heads
// sharing kv head kvh, in that order.
@compute @workgroup_size(TW)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let jh = flatInvocation(wg, nwg, lid);
  if (jh >= p.T * p.Hkv) { return; }
  let D = p.D;
  let G = p.Hq / p.Hkv;
  let j = jh / p.Hkv;
  let h0 = (jh % p.Hkv) * G;   // first query head of this kv head
  let kb = jh * D;
  var k: array<f32, MAX_D>;
  var v: array<f32, MAX_D>;
  for (var d = 0u; d < D; d++) {
    k[d] = K[kb + d];
    v[d] = V[kb + d];
  }
  var dk: array<f32, MAX_D>;
  var dv: array<f32, MAX_D>;
  for (var t = j; t < p.T; t++) {
    for (var hh = 0u; hh < G; hh++) {
      let hr = t * p.Hq + h0 + hh;
      let o = hr * D;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s += k[d] * Q[o + d];
        dp += v[d] * dO[o + d];
      }
      let pj = exp(s * p.scale - LSE[hr]);
      let ds = pj * (dp - Delta[hr]);
      for (var d = 0u; d < D; d++) {
        dv[d] += pj * dO[o + d];
        dk[d] += ds * Q[o + d];
      }
    }
  }
  for (var d = 0u; d < D; d++) {
    dK[kb + d] = dk[d] * p.scale;
    dV[kb + d] = dv[d];
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
