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
// main
@group(0) @binding(1) var<storage, read> Q: array<f32>;          // [T, Hq, D]
@group(0) @binding(2) var<storage, read> K: array<f32>;          // [S_max, Hkv, D]
@group(0) @binding(3) var<storage, read> V: array<f32>;          // [S_max, Hkv, D]
@group(0) @binding(4) var<storage, read_write> O: array<f32>;    // [T, Hq, D]
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

// Offset of query row `row` (t, head-in-group) of kv head `kvh` in Q and O.
fn qOffset(row: u32, kvh: u32, G: u32) -> u32 {
  let t = row / G;
  let h = kvh * G + row % G;
  return (t * p.Hq + h) * p.D;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let D = p.D;
  let G = p.Hq / p.Hkv;
  let nrows = p.T * G;
  let kvh = wg.y;
  let row0 = wg.x * BR;
  let r = lid / BC;
  let c = lid % BC;
  // Rows past the end repeat the last row (so every row has a key) and write nothing.
  let row = min(row0 + r, nrows - 1u);
  let last = p.past + row / G;                              // last key position this row sees
  let nkeys = p.past + (min(row0 + BR, nrows) - 1u) / G + 1u;  // keys any row of the workgroup sees

  for (var i = lid; i < BR * D; i += WG) {
    let rr = min(row0 + i / D, nrows - 1u);
    qs[(i / D) * MAX_D + i % D] = Q[qOffset(rr, kvh, G) + i % D];
  }

  var m = -3.0e38;   // running max; finite so that exp(m − m_new) is 0, not NaN, on the first chunk
  var l = 0.0;       // running sum of exp(s − m)
  var acc: array<f32, NACC>;
  for (var j0 = 0u; j0 < nkeys; j0 += BC) {
    workgroupBarrier();   // the previous chunk's tiles are no longer read
    for (var i = lid; i < BC * D; i += WG) {
      let j = j0 + i / D;
      // Keys from nkeys on are masked for every row and may lie past the end of the cache.
      var kv = vec2<f32>(0.0);
      if (j < nkeys) {
        let g = (j * p.Hkv + kvh) * D + i % D;
        kv = vec2<f32>(K[g], V[g]);
      }
      ks[(i / D) * MAX_D + i % D] = kv.x;
      vs[(i / D) * MAX_D + i % D] = kv.y;
    }
    workgroupBarrier();

    var s = 0.0;
    for (var d = 0u; d < D; d++) { s += qs[r * MAX_D + d] * ks[c * MAX_D + d]; }
    ss[r * BC + c] = s * p.scale;
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

@compute @workgroup_size(64)
fn write_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  let n = p.T * p.Hkv * p.D;
  if (i >= n) { return; }
  let dst = p.past * p.Hkv * p.D + i;
  kCache[dst] = kNew[i];
  vCache[dst] = vNew[i];
}
