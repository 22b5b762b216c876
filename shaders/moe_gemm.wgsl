// Grouped expert GEMMs over the expert-grouped slots of moe.wgsl (HF Qwen2MoeMLP: down(silu(gate(x)) * up(x))),
// for every slot s of expert e (slots expertOffsets[e] .. expertOffsets[e+1]):
//   gate_up: h[s]  = silu(x[slotToken[s]]·Wg_eᵀ) ⊙ (x[slotToken[s]]·Wu_eᵀ)   rows of x gathered, not copied
//   down:    ys[s] = h[s]·Wd_eᵀ
// x: [T, H]; gate_proj Wg, up_proj Wu: [E, I, H] and down_proj Wd: [E, H, I] (HF out×in); h: [T·kMax, I];
// ys: [T·kMax, H]. Here N is the output width (I for gate_up, H for down) and K the input width.
// Tiling as shaders/matmul.wgsl with TRANS_B: a 64×64 output tile per workgroup, 16×16 threads with a 4×4
// register tile each, K stepped by 16 through workgroup memory; gate_up keeps two accumulators (gate, up)
// so the SiLU·mul epilogue needs no extra pass. Workgroup (n tile, r): row tile r is tile r − tileOffsets[e]
// of the expert e with tileOffsets[e] ≤ r < tileOffsets[e+1]. The grid has the worst-case number of row
// tiles, since the counts never leave the GPU; workgroups past tileOffsets[E] exit at once.
// VEC4: K % 4 == 0, so interior quads of x, h and the weights load as one vec4.
// Both entry points share bindings 1–4; gate_up binds three more, down one (a different buffer at 5).

struct Params {
  N: u32,   // output columns
  K: u32,   // reduction length
  E: u32,   // experts
}

override VEC4: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> expertOffsets: array<u32>;   // [E+1]
@group(0) @binding(2) var<storage, read> tileOffsets: array<u32>;     // [E+1]
@group(0) @binding(3) var<storage, read> A: array<vec4<f32>>;         // x [T, H] (gate_up) or h [T·kMax, I] (down)
@group(0) @binding(4) var<storage, read> W: array<vec4<f32>>;         // Wg [E, I, H] (gate_up) or Wd [E, H, I] (down)
// gate_up only
@group(0) @binding(5) var<storage, read> Wu: array<vec4<f32>>;        // [E, I, H]
@group(0) @binding(6) var<storage, read> slotToken: array<u32>;       // [T·kMax]
@group(0) @binding(7) var<storage, read_write> hOut: array<f32>;      // [T·kMax, I]
// down only
@group(0) @binding(5) var<storage, read_write> ys: array<f32>;        // [T·kMax, H]

const NONE = 0xffffffffu;
const BM = 64u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4], k-major as in matmul.wgsl
var<workgroup> Bs: array<vec4<f32>, 256>;   // [BK][BN/4]: W tile
var<workgroup> Us: array<vec4<f32>, 256>;   // [BK][BN/4]: Wu tile (gate_up)
var<workgroup> tileExpert: u32;

fn remaining(start: u32, end: u32) -> u32 { return select(0u, end - start, end > start); }

fn quadA(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return A[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = A[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadW(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return W[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = W[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadWu(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return Wu[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = Wu[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

// The expert owning row tile r (the last e with tileOffsets[e] ≤ r; empty experts own no tile), or NONE
// past the last tile. Thread 0 searches; the workgroup-uniform load lets every thread branch on it.
fn expertOfTile(r: u32, l: u32) -> u32 {
  if (l == 0u) {
    var e = NONE;
    if (r < tileOffsets[p.E]) {
      var lo = 0u;
      var hi = p.E - 1u;
      while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (tileOffsets[mid] <= r) { lo = mid; } else { hi = mid - 1u; }
      }
      e = lo;
    }
    tileExpert = e;
  }
  return workgroupUniformLoad(&tileExpert);
}

// Stages rows aRow·K + [k0, k0+16) of A (aRow NONE: zeros) into As; thread l stages row l/4.
fn stageA(aRow: u32, k0: u32, l: u32) {
  let r = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (aRow != NONE) { v = quadA(aRow * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * 16u + r / 4u][r % 4u] = v[j]; }
}

// Stages the 16×64 tile of W_eᵀ (W_e stored [N, K]: quads run along k) into Bs.
fn stageW(wBase: u32, n0: u32, k0: u32, l: u32) {
  let c = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (n0 + c < p.N) { v = quadW(wBase + (n0 + c) * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { Bs[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
}

// The same for Wu_eᵀ into Us (gate_up only: down binds another buffer at Wu's binding).
fn stageWu(wBase: u32, n0: u32, k0: u32, l: u32) {
  let c = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (n0 + c < p.N) { v = quadWu(wBase + (n0 + c) * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { Us[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
}

@compute @workgroup_size(16, 16)
fn gate_up(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = expertOfTile(wg.y, l);
  if (e == NONE) { return; }
  let m0 = expertOffsets[e] + (wg.y - tileOffsets[e]) * BM;   // first slot of the tile
  let mEnd = expertOffsets[e + 1u];
  let n0 = wg.x * BN;
  let wBase = e * p.N * p.K;
  let slot = m0 + l / 4u;                                      // the slot this thread stages
  var aRow = NONE;                                             // its token: the row of x
  if (slot < mEnd) { aRow = slotToken[slot]; }
  var accG: array<vec4<f32>, 4>;
  var accU: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stageA(aRow, k0, l);
    stageW(wBase, n0, k0, l);
    stageWu(wBase, n0, k0, l);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * 16u + lid.y];
      let g = Bs[k * 16u + lid.x];
      let u = Us[k * 16u + lid.x];
      accG[0] += a.x * g; accG[1] += a.y * g; accG[2] += a.z * g; accG[3] += a.w * g;
      accU[0] += a.x * u; accU[1] += a.y * u; accU[2] += a.z * u; accU[3] += a.w * u;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let s = m0 + lid.y * 4u + i;
    if (s >= mEnd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) {
        let g = accG[i][j];
        hOut[s * p.N + n] = g / (1.0 + exp(-g)) * accU[i][j];   // silu(g) · u
      }
    }
  }
}

@compute @workgroup_size(16, 16)
fn down(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = expertOfTile(wg.y, l);
  if (e == NONE) { return; }
  let m0 = expertOffsets[e] + (wg.y - tileOffsets[e]) * BM;
  let mEnd = expertOffsets[e + 1u];
  let n0 = wg.x * BN;
  let wBase = e * p.N * p.K;
  let slot = m0 + l / 4u;
  let aRow = select(NONE, slot, slot < mEnd);                  // h is already in slot order
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stageA(aRow, k0, l);
    stageW(wBase, n0, k0, l);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * 16u + lid.y];
      let b = Bs[k * 16u + lid.x];
      acc[0] += a.x * b; acc[1] += a.y * b; acc[2] += a.z * b; acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let s = m0 + lid.y * 4u + i;
    if (s >= mEnd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) { ys[s * p.N + n] = acc[i][j]; }
    }
  }
}
