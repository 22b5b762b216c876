// Grouped expert GEMMs over the expert-grouped slots of moe.wgsl (HF Qwen2MoeMLP: down(silu(gate(x)) * up(x))),
// forward and backward. Slot s of expert e has expertOffsets[e] ≤ s < expertOffsets[e+1], tok(s) = slotToken[s].
// Forward, per slot s of expert e:
//   gate_up:       h[s]  = silu(x[tok(s)]·Wg_eᵀ) ⊙ (x[tok(s)]·Wu_eᵀ)   rows of x gathered, not copied
//   down:          ys[s] = h[s]·Wd_eᵀ
//   gate_up_train: gate_up that also keeps g = x[tok(s)]·Wg_eᵀ and u = x[tok(s)]·Wu_eᵀ (gu) for the backward
// Backward of a layer-wise distillation step (LaDiMo, arXiv 2408.04278), per slot s of expert e:
//   down_backward: dh = dys[s]·Wd_e, then SwiGLU backward in the epilogue:
//                  dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))),   du = dh ⊙ silu(g)
// and per expert e, summed over its slots in slot order (one thread per output element, no atomics, so the
// order is fixed and the result the same every run; an expert with no slots gets zeros):
//   down_grad:     dWd_e = Σ_s dys[s]ᵀ ⊗ h[s]
//   gate_up_grad:  dWg_e = Σ_s dg[s]ᵀ ⊗ x[tok(s)],   dWu_e = Σ_s du[s]ᵀ ⊗ x[tok(s)]   (rows of x gathered)
// and, for training through the block (src/train/moe.ts), the gradient of its input x:
//   gate_up_backward: dxs[s] = dg[s]·Wg_e + du[s]·Wu_e   (one GEMM of K = 2I over [Wg_e; Wu_e] stacked)
//   gather_slots:     dx[t] = Σ_j dxs[tokenSlot[t, j]]   (j ascending: a fixed order, no atomics)
// Layouts (row-major): x [T, H]; gate_proj Wg, up_proj Wu, dWg, dWu: [E, I, H] and down_proj Wd, dWd:
// [E, H, I] (HF out×in); h [T·kMax, I]; ys, dys [T·kMax, H]; gu, dgu [T·kMax, 2I] (columns 0..I gate,
// I..2I up: the gate‖up layout of activation.wgsl's FUSED). Rows of h, ys, gu and dgu past the last used
// slot are neither written nor read.
// Row-tile kernels (gate_up, down, gate_up_train, down_backward, gate_up_backward): N is the output width and K the input
// width. Tiling as shaders/matmul.wgsl: a 64×64 output tile per workgroup, 16×16 threads with a 4×4
// register tile each, K stepped by 16 through workgroup memory (k-major); gate_up keeps two accumulators
// (gate, up) so the SiLU·mul epilogue needs no extra pass. Workgroup (n tile, r): row tile r is tile
// r − tileOffsets[e] of the expert e with tileOffsets[e] ≤ r < tileOffsets[e+1]. The grid has the
// worst-case number of row tiles, since the counts never leave the GPU; workgroups past tileOffsets[E]
// exit at once. Weight-gradient kernels (down_grad, gate_up_grad) run grid (n tile, m tile, expert) with
// the expert's slots as the reduction; M is the rows of each expert's gradient.
// *_direct: the same seven products with no workgroup memory and no barrier, for software adapters (see
// shaders/matmul.wgsl's direct: SwiftShader switches coroutines at every barrier): 8×8 invocations per
// workgroup, one per 8×8 block of the same 64×64 tile, over the same grid, bindings and outputs.
// VEC4: every quad a kernel loads starts at a multiple of 4 (the forward: K % 4 == 0; the backward: see
// src/ops/moe-train.ts), so interior quads load as one vec4.
// Entry points reuse binding numbers (WGSL allows that across entry points): all but gather_slots bind
// expertOffsets at 1 and their A and W operands at 3 and 4; the declarations below name the kernels of the
// others.

struct Params {
  N: u32,   // output columns
  K: u32,   // row-tile kernels: reduction length
  E: u32,   // experts
  M: u32,   // weight-gradient kernels: rows of each expert's gradient (H for dWd, 2I for dWg‖dWu)
}

override VEC4: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> expertOffsets: array<u32>;      // [E+1]
@group(0) @binding(2) var<storage, read> tileOffsets: array<u32>;        // [E+1]       row-tile kernels
@group(0) @binding(2) var<storage, read> gradSlotToken: array<u32>;      // [T·kMax]    gate_up_grad
@group(0) @binding(3) var<storage, read> A: array<vec4<f32>>;            // x | h | x | dys | dys | dgu | dgu
@group(0) @binding(4) var<storage, read> W: array<vec4<f32>>;            // Wg | Wd | Wg | Wd | h | x | Wg
// gate_up, gate_up_train, gate_up_backward
@group(0) @binding(5) var<storage, read> Wu: array<vec4<f32>>;           // [E, I, H]
@group(0) @binding(6) var<storage, read> slotToken: array<u32>;          // [T·kMax]
@group(0) @binding(7) var<storage, read_write> hOut: array<f32>;         // [T·kMax, I]
// gate_up_train
@group(0) @binding(8) var<storage, read_write> guOut: array<f32>;        // [T·kMax, 2I]
// down
@group(0) @binding(5) var<storage, read_write> ys: array<f32>;           // [T·kMax, H]
// down_backward
@group(0) @binding(5) var<storage, read> guIn: array<f32>;               // [T·kMax, 2I]
@group(0) @binding(6) var<storage, read_write> dguOut: array<f32>;       // [T·kMax, 2I]
// gate_up_backward
@group(0) @binding(6) var<storage, read_write> dxsOut: array<f32>;       // [T·kMax, H]
// down_grad (dWd), gate_up_grad (dWg, dWu)
@group(0) @binding(5) var<storage, read_write> gradOut: array<f32>;      // dWd [E, H, I] | dWg [E, I, H]
@group(0) @binding(6) var<storage, read_write> gradOut2: array<f32>;     // dWu [E, I, H]

const NONE = 0xffffffffu;
const BM = 64u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]: As[k*16 + m/4][m%4], k-major as in matmul.wgsl
var<workgroup> Bs: array<vec4<f32>, 256>;   // [BK][BN/4]: W tile
var<workgroup> Us: array<vec4<f32>, 256>;   // [BK][BN/4]: Wu tile (gate_up, gate_up_train)
var<workgroup> tileExpert: u32;

fn remaining(start: u32, end: u32) -> u32 { return select(0u, end - start, end > start); }

// Four consecutive in-bounds elements from flat index i: one vec4 load when VEC4 (then i % 4 == 0), else four.
fn loadA4(i: u32) -> vec4<f32> {
  if (VEC4) { return A[i >> 2u]; }
  return vec4<f32>(A[i >> 2u][i & 3u], A[(i + 1u) >> 2u][(i + 1u) & 3u], A[(i + 2u) >> 2u][(i + 2u) & 3u], A[(i + 3u) >> 2u][(i + 3u) & 3u]);
}

fn loadW4(i: u32) -> vec4<f32> {
  if (VEC4) { return W[i >> 2u]; }
  return vec4<f32>(W[i >> 2u][i & 3u], W[(i + 1u) >> 2u][(i + 1u) & 3u], W[(i + 2u) >> 2u][(i + 2u) & 3u], W[(i + 3u) >> 2u][(i + 3u) & 3u]);
}

// Wu's loaders repeat W's: a WGSL function cannot take a storage buffer as a parameter.
fn loadWu4(i: u32) -> vec4<f32> {
  if (VEC4) { return Wu[i >> 2u]; }
  return vec4<f32>(Wu[i >> 2u][i & 3u], Wu[(i + 1u) >> 2u][(i + 1u) & 3u], Wu[(i + 2u) >> 2u][(i + 2u) & 3u], Wu[(i + 3u) >> 2u][(i + 3u) & 3u]);
}

// Four consecutive elements from flat index i, `valid` of them in bounds (the rest zero).
fn quadA(i: u32, valid: u32) -> vec4<f32> {
  if (valid >= 4u) { return loadA4(i); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < valid; j++) { v[j] = A[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadW(i: u32, valid: u32) -> vec4<f32> {
  if (valid >= 4u) { return loadW4(i); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < valid; j++) { v[j] = W[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadWu(i: u32, valid: u32) -> vec4<f32> {
  if (valid >= 4u) { return loadWu4(i); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < valid; j++) { v[j] = Wu[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

// σ(g) without overflow: exp of a non-positive number only (as activation.wgsl).
fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
}

// The expert owning row tile r (the last e with tileOffsets[e] ≤ r; empty experts own no tile), or NONE
// past the last tile.
fn findTileExpert(r: u32) -> u32 {
  if (r >= tileOffsets[p.E]) { return NONE; }
  var lo = 0u;
  var hi = p.E - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (tileOffsets[mid] <= r) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

// findTileExpert searched by thread 0; the workgroup-uniform load lets every thread branch on it.
fn expertOfTile(r: u32, l: u32) -> u32 {
  if (l == 0u) { tileExpert = findTileExpert(r); }
  return workgroupUniformLoad(&tileExpert);
}

// Row-tile kernels. Stages rows aRow·K + [k0, k0+16) of A (aRow NONE: zeros) into As; thread l stages row l/4.
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

// The same for Wu_eᵀ into Us (gate_up, gate_up_train: the other kernels bind other buffers at Wu's binding).
fn stageWu(wBase: u32, n0: u32, k0: u32, l: u32) {
  let c = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (n0 + c < p.N) { v = quadWu(wBase + (n0 + c) * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { Us[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
}

// gate_up_backward: rows k0..k0+16 of [Wg_e; Wu_e] ([2I, H]: row k < I is Wg_e's row k, else Wu_e's row
// k − I) into Bs; quads run along n. I = p.K / 2.
fn stageGateUp(wBase: u32, n0: u32, k0: u32, l: u32) {
  let k = l / 16u; let nq = l % 16u;
  let n = n0 + nq * 4u;
  let row = k0 + k;
  let I = p.K / 2u;
  var v = vec4<f32>(0.0);
  if (row < I) {
    v = quadW(wBase + row * p.N + n, remaining(n, p.N));
  } else if (row < p.K) {
    v = quadWu(wBase + (row - I) * p.N + n, remaining(n, p.N));
  }
  Bs[k * 16u + nq] = v;
}

// The 16×64 tile of W_e itself into Bs, W_e stored [K, N] (down_backward: Wd_e is [H, I]); quads run along n.
fn stageB(wBase: u32, n0: u32, k0: u32, l: u32) {
  let k = l / 16u; let nq = l % 16u;
  let n = n0 + nq * 4u;
  var v = vec4<f32>(0.0);
  if (k0 + k < p.K) { v = quadW(wBase + (k0 + k) * p.N + n, remaining(n, p.N)); }
  Bs[k * 16u + nq] = v;
}

// Weight-gradient kernels: slot s (NONE: zeros) is reduction step k = l/16 of the tile. Stages A[s, m0..m0+64)
// (A [slots, M], so op(A) = Aᵀ) into As and W[bRow, n0..n0+64) (W [rows, N]) into Bs.
fn stageSlotA(s: u32, m0: u32, l: u32) {
  let k = l / 16u; let mq = l % 16u;
  let m = m0 + mq * 4u;
  var v = vec4<f32>(0.0);
  if (s != NONE) { v = quadA(s * p.M + m, remaining(m, p.M)); }
  As[k * 16u + mq] = v;
}

fn stageSlotB(bRow: u32, n0: u32, l: u32) {
  let k = l / 16u; let nq = l % 16u;
  let n = n0 + nq * 4u;
  var v = vec4<f32>(0.0);
  if (bRow != NONE) { v = quadW(bRow * p.N + n, remaining(n, p.N)); }
  Bs[k * 16u + nq] = v;
}

// acc += As·Bs over one BK step (thread (lid.x, lid.y) owns rows 4·lid.y.., columns 4·lid.x..).
fn mac(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
  for (var k = 0u; k < BK; k++) {
    let a = As[k * 16u + lid.y];
    let b = Bs[k * 16u + lid.x];
    (*acc)[0] += a.x * b; (*acc)[1] += a.y * b; (*acc)[2] += a.z * b; (*acc)[3] += a.w * b;
  }
}

// The gate_up main loop: accG = x[tok(s)]·Wg_eᵀ, accU = x[tok(s)]·Wu_eᵀ over the workgroup's tile, aRow the
// token this thread stages (NONE: zeros).
fn gateUpTile(aRow: u32, wBase: u32, n0: u32, l: u32, lid: vec3<u32>,
              accG: ptr<function, array<vec4<f32>, 4>>, accU: ptr<function, array<vec4<f32>, 4>>) {
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stageA(aRow, k0, l);
    stageW(wBase, n0, k0, l);
    stageWu(wBase, n0, k0, l);
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * 16u + lid.y];
      let g = Bs[k * 16u + lid.x];
      let u = Us[k * 16u + lid.x];
      (*accG)[0] += a.x * g; (*accG)[1] += a.y * g; (*accG)[2] += a.z * g; (*accG)[3] += a.w * g;
      (*accU)[0] += a.x * u; (*accU)[1] += a.y * u; (*accU)[2] += a.z * u; (*accU)[3] += a.w * u;
    }
    workgroupBarrier();
  }
}

// ------------------------------------------------------------------------------------- gate_up, down
// gate_up: bindings expertOffsets, tileOffsets, x (A), Wg (W), Wu, slotToken, h.
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
  gateUpTile(aRow, wBase, n0, l, lid, &accG, &accU);
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

// down: bindings expertOffsets, tileOffsets, h (A), Wd (W), ys.
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
    mac(&acc, lid);
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

// -------------------------------------------------------------------------------------- gate_up_train
// gate_up, also writing g and u: bindings as gate_up, then gu. h is gate_up's expression in gate_up's
// order, so training and inference forwards agree.
@compute @workgroup_size(16, 16)
fn gate_up_train(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = expertOfTile(wg.y, l);
  if (e == NONE) { return; }
  let m0 = expertOffsets[e] + (wg.y - tileOffsets[e]) * BM;
  let mEnd = expertOffsets[e + 1u];
  let n0 = wg.x * BN;
  let wBase = e * p.N * p.K;
  let slot = m0 + l / 4u;
  var aRow = NONE;
  if (slot < mEnd) { aRow = slotToken[slot]; }
  var accG: array<vec4<f32>, 4>;
  var accU: array<vec4<f32>, 4>;
  gateUpTile(aRow, wBase, n0, l, lid, &accG, &accU);
  for (var i = 0u; i < 4u; i++) {
    let s = m0 + lid.y * 4u + i;
    if (s >= mEnd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) {
        let g = accG[i][j];
        let u = accU[i][j];
        guOut[s * 2u * p.N + n] = g;
        guOut[s * 2u * p.N + p.N + n] = u;
        hOut[s * p.N + n] = g / (1.0 + exp(-g)) * u;   // silu(g) · u
      }
    }
  }
}

// -------------------------------------------------------------------------------------- down_backward
// dh = dys[s]·Wd_e (N = I, K = H), then dg, du from the saved g, u. Bindings expertOffsets, tileOffsets,
// dys (A), Wd (W), gu, dgu.
@compute @workgroup_size(16, 16)
fn down_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = expertOfTile(wg.y, l);
  if (e == NONE) { return; }
  let m0 = expertOffsets[e] + (wg.y - tileOffsets[e]) * BM;
  let mEnd = expertOffsets[e + 1u];
  let n0 = wg.x * BN;
  let wBase = e * p.K * p.N;
  let slot = m0 + l / 4u;
  let aRow = select(NONE, slot, slot < mEnd);                  // dys is in slot order
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stageA(aRow, k0, l);
    stageB(wBase, n0, k0, l);
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  let I = p.N;
  for (var i = 0u; i < 4u; i++) {
    let s = m0 + lid.y * 4u + i;
    if (s >= mEnd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < I) {
        let dh = acc[i][j];
        let g = guIn[s * 2u * I + n];
        let u = guIn[s * 2u * I + I + n];
        let sg = sigmoid(g);
        dguOut[s * 2u * I + n] = dh * u * sg * (1.0 + g * (1.0 - sg));
        dguOut[s * 2u * I + I + n] = dh * g * sg;
      }
    }
  }
}

// ---------------------------------------------------------------------------------- down_grad, gate_up_grad
// Workgroup (n tile, m tile, e): a 64×64 tile of expert e's weight gradient, reduced over e's slots 16 at a
// time in slot order. down_grad: bindings expertOffsets, (none), dys (A, M = H), h (W, N = I), dWd.
// gate_up_grad: expertOffsets, slotToken, dgu (A, M = 2I), x (W, N = H; row tok(s)), dWg, dWu.
@compute @workgroup_size(16, 16)
fn down_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = wg.z;
  let start = expertOffsets[e];
  let end = expertOffsets[e + 1u];
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = start; k0 < end; k0 += BK) {
    let s = k0 + l / 16u;
    let row = select(NONE, s, s < end);
    stageSlotA(row, m0, l);
    stageSlotB(row, n0, l);
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) { gradOut[(e * p.M + m) * p.N + n] = acc[i][j]; }
    }
  }
}

@compute @workgroup_size(16, 16)
fn gate_up_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = wg.z;
  let start = expertOffsets[e];
  let end = expertOffsets[e + 1u];
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = start; k0 < end; k0 += BK) {
    let s = k0 + l / 16u;
    var row = NONE;
    var token = NONE;
    if (s < end) {
      row = s;
      token = gradSlotToken[s];
    }
    stageSlotA(row, m0, l);
    stageSlotB(token, n0, l);
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  let I = p.M / 2u;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;   // row of dWg‖dWu: gate rows 0..I, up rows I..2I
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) {
        if (m < I) {
          gradOut[(e * I + m) * p.N + n] = acc[i][j];
        } else {
          gradOut2[(e * I + m - I) * p.N + n] = acc[i][j];
        }
      }
    }
  }
}

// ----------------------------------------------------------------------------- gate_up_backward, gather_slots
// gate_up_backward: dxs[s] = dgu[s]·[Wg_e; Wu_e] (N = H, K = 2I), the input gradient of each slot. Bindings
// expertOffsets, tileOffsets, dgu (A), Wg (W), Wu, dxs.
@compute @workgroup_size(16, 16)
fn gate_up_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.y * 16u + lid.x;
  let e = expertOfTile(wg.y, l);
  if (e == NONE) { return; }
  let m0 = expertOffsets[e] + (wg.y - tileOffsets[e]) * BM;
  let mEnd = expertOffsets[e + 1u];
  let n0 = wg.x * BN;
  let wBase = e * (p.K / 2u) * p.N;
  let slot = m0 + l / 4u;
  let aRow = select(NONE, slot, slot < mEnd);                  // dgu is in slot order
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    stageA(aRow, k0, l);
    stageGateUp(wBase, n0, k0, l);
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let s = m0 + lid.y * 4u + i;
    if (s >= mEnd) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < p.N) { dxsOut[s * p.N + n] = acc[i][j]; }
    }
  }
}

// ------------------------------------------------------------------------------------- direct kernels
// An invocation's 8×8 block as four 4×4 blocks: [0] rows 0–3 × columns 0–3, [1] rows 0–3 × 4–7,
// [2] rows 4–7 × 0–3, [3] rows 4–7 × 4–7; each 4×4 block is four vectors over columns, one per row.
alias Block = array<vec4<f32>, 4>;
alias Acc = array<Block, 4>;

// Element (i, j) of a finished block. A copy, indexed at run time: the accumulator itself is only ever
// indexed by constants, so the compiler can keep it in registers.
fn at(c: Acc, i: u32, j: u32) -> f32 { return c[(i / 4u) * 2u + j / 4u][i % 4u][j % 4u]; }

// acc + a·b over one k-quad: a[kk][i] = op(A)[row i, k + kk], b[kk][j] = op(B)[k + kk, column j].
fn mac4(acc: Block, a: Block, b: Block) -> Block {
  return Block(
    acc[0] + a[0].x * b[0] + a[1].x * b[1] + a[2].x * b[2] + a[3].x * b[3],
    acc[1] + a[0].y * b[0] + a[1].y * b[1] + a[2].y * b[2] + a[3].y * b[3],
    acc[2] + a[0].z * b[0] + a[1].z * b[1] + a[2].z * b[2] + a[3].z * b[3],
    acc[3] + a[0].w * b[0] + a[1].w * b[1] + a[2].w * b[2] + a[3].w * b[3]);
}

// c += [a0; a1]·[b0, b1] over one k-quad (a0: rows 0–3, a1: rows 4–7; b0: columns 0–3, b1: 4–7).
fn mac8(c: ptr<function, Acc>, a0: Block, a1: Block, b0: Block, b1: Block) {
  (*c)[0] = mac4((*c)[0], a0, b0); (*c)[1] = mac4((*c)[1], a0, b1);
  (*c)[2] = mac4((*c)[2], a1, b0); (*c)[3] = mac4((*c)[3], a1, b1);
}

fn transposed(q: mat4x4<f32>) -> Block {
  let t = transpose(q);
  return Block(t[0], t[1], t[2], t[3]);
}

// A's row `row` (NONE: zeros) at k0..k0+4, A [rows, K]. RAW: a whole in-bounds quad of a real row.
fn rowQuad(row: u32, k0: u32, RAW: bool) -> vec4<f32> {
  if (RAW) { return loadA4(row * p.K + k0); }
  if (row == NONE) { return vec4<f32>(0.0); }
  return quadA(row * p.K + k0, remaining(k0, p.K));
}

// Rows `rows` of A at k0..k0+4 as four vectors over the rows, one per k.
fn blockA(rows: vec4<u32>, k0: u32, RAW: bool) -> Block {
  return transposed(mat4x4<f32>(rowQuad(rows.x, k0, RAW), rowQuad(rows.y, k0, RAW), rowQuad(rows.z, k0, RAW), rowQuad(rows.w, k0, RAW)));
}

// W_e (W stored [N, K]) rows n0..n0+4 at k0..k0+4 as four vectors over n, one per k; zeros outside.
fn blockW(wBase: u32, n0: u32, k0: u32, RAW: bool) -> Block {
  if (RAW) {
    let i = wBase + n0 * p.K + k0;
    return transposed(mat4x4<f32>(loadW4(i), loadW4(i + p.K), loadW4(i + 2u * p.K), loadW4(i + 3u * p.K)));
  }
  let vk = remaining(k0, p.K); let vn = remaining(n0, p.N);
  return transposed(mat4x4<f32>(
    quadW(wBase + n0 * p.K + k0, select(0u, vk, vn > 0u)), quadW(wBase + (n0 + 1u) * p.K + k0, select(0u, vk, vn > 1u)),
    quadW(wBase + (n0 + 2u) * p.K + k0, select(0u, vk, vn > 2u)), quadW(wBase + (n0 + 3u) * p.K + k0, select(0u, vk, vn > 3u))));
}

// The same for Wu_e (see loadWu4).
fn blockWu(wBase: u32, n0: u32, k0: u32, RAW: bool) -> Block {
  if (RAW) {
    let i = wBase + n0 * p.K + k0;
    return transposed(mat4x4<f32>(loadWu4(i), loadWu4(i + p.K), loadWu4(i + 2u * p.K), loadWu4(i + 3u * p.K)));
  }
  let vk = remaining(k0, p.K); let vn = remaining(n0, p.N);
  return transposed(mat4x4<f32>(
    quadWu(wBase + n0 * p.K + k0, select(0u, vk, vn > 0u)), quadWu(wBase + (n0 + 1u) * p.K + k0, select(0u, vk, vn > 1u)),
    quadWu(wBase + (n0 + 2u) * p.K + k0, select(0u, vk, vn > 2u)), quadWu(wBase + (n0 + 3u) * p.K + k0, select(0u, vk, vn > 3u))));
}

// W_e stored [K, N] (Wd_e in down_backward): rows k0..k0+4 at n0..n0+4, already vectors over n, one per k.
fn blockKN(wBase: u32, k0: u32, n0: u32, RAW: bool) -> Block {
  if (RAW) {
    let i = wBase + k0 * p.N + n0;
    return Block(loadW4(i), loadW4(i + p.N), loadW4(i + 2u * p.N), loadW4(i + 3u * p.N));
  }
  let vk = remaining(k0, p.K); let vn = remaining(n0, p.N);
  return Block(
    quadW(wBase + k0 * p.N + n0, select(0u, vn, vk > 0u)), quadW(wBase + (k0 + 1u) * p.N + n0, select(0u, vn, vk > 1u)),
    quadW(wBase + (k0 + 2u) * p.N + n0, select(0u, vn, vk > 2u)), quadW(wBase + (k0 + 3u) * p.N + n0, select(0u, vn, vk > 3u)));
}

// Row k of [Wg_e; Wu_e] ([2I, H], I = K/2) at n0..n0+4 (gate_up_backward); zeros past 2I.
fn gateUpRow(wBase: u32, k: u32, n0: u32, RAW: bool) -> vec4<f32> {
  let I = p.K / 2u;
  if (k < I) {
    if (RAW) { return loadW4(wBase + k * p.N + n0); }
    return quadW(wBase + k * p.N + n0, remaining(n0, p.N));
  }
  if (k < p.K) {
    if (RAW) { return loadWu4(wBase + (k - I) * p.N + n0); }
    return quadWu(wBase + (k - I) * p.N + n0, remaining(n0, p.N));
  }
  return vec4<f32>(0.0);
}

fn blockGateUp(wBase: u32, k0: u32, n0: u32, RAW: bool) -> Block {
  return Block(gateUpRow(wBase, k0, n0, RAW), gateUpRow(wBase, k0 + 1u, n0, RAW), gateUpRow(wBase, k0 + 2u, n0, RAW), gateUpRow(wBase, k0 + 3u, n0, RAW));
}

// A row-tile invocation: its expert, its 8 slots s0.. (< mEnd), its 8 columns n0.., and its rows of A.
struct Rows {
  e: u32,
  s0: u32,
  mEnd: u32,
  n0: u32,
  a0: vec4<u32>,   // A rows of slots s0..s0+4 (NONE past mEnd)
  a1: vec4<u32>,   // of slots s0+4..s0+8
  raw: bool,       // all 8 slots and 8 columns in bounds: whole k-quads need no bounds checks
}

// The invocation's rows, or e = NONE when it has none. A's rows are the slots (h, dys, dgu are in slot order).
fn rowsOf(wg: vec3<u32>, lid: vec3<u32>) -> Rows {
  var r: Rows;
  r.e = findTileExpert(wg.y);
  if (r.e == NONE) { return r; }
  r.s0 = expertOffsets[r.e] + (wg.y - tileOffsets[r.e]) * BM + lid.y * 8u;
  r.mEnd = expertOffsets[r.e + 1u];
  r.n0 = wg.x * BN + lid.x * 8u;
  if (r.s0 >= r.mEnd || r.n0 >= p.N) { r.e = NONE; return r; }
  let s = vec4<u32>(0u, 1u, 2u, 3u) + r.s0;
  r.a0 = select(vec4<u32>(NONE), s, s < vec4<u32>(r.mEnd));
  r.a1 = select(vec4<u32>(NONE), s + 4u, s + 4u < vec4<u32>(r.mEnd));
  r.raw = r.s0 + 8u <= r.mEnd && r.n0 + 8u <= p.N;
  return r;
}

// rowsOf with A's rows the slots' tokens (x is gathered: gate_up, gate_up_train).
fn tokenRowsOf(wg: vec3<u32>, lid: vec3<u32>) -> Rows {
  var r = rowsOf(wg, lid);
  if (r.e == NONE) { return r; }
  for (var i = 0u; i < 4u; i++) {
    if (r.a0[i] != NONE) { r.a0[i] = slotToken[r.a0[i]]; }
    if (r.a1[i] != NONE) { r.a1[i] = slotToken[r.a1[i]]; }
  }
  return r;
}

// The k-quads to run without bounds checks: all whole quads when r.raw, else none.
fn rawQuads(r: Rows) -> u32 { return select(0u, p.K & ~3u, r.raw); }

@compute @workgroup_size(8, 8)
fn gate_up_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = tokenRowsOf(wg, lid);
  if (r.e == NONE) { return; }
  var g: Acc; var u: Acc;
  gateUpDirect(r, &g, &u);
  let G = g; let U = u;
  for (var i = 0u; i < 8u; i++) {
    let s = r.s0 + i;
    if (s >= r.mEnd) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = r.n0 + j;
      if (n < p.N) {
        let gv = at(G, i, j);
        hOut[s * p.N + n] = gv / (1.0 + exp(-gv)) * at(U, i, j);   // silu(g) · u
      }
    }
  }
}

// g = x[tok(s)]·Wg_eᵀ and u = x[tok(s)]·Wu_eᵀ over the invocation's block (gate_up_direct, gate_up_train_direct).
fn gateUpDirect(r: Rows, g: ptr<function, Acc>, u: ptr<function, Acc>) {
  let wBase = r.e * p.N * p.K;
  var k0 = 0u;
  for (; k0 < rawQuads(r); k0 += 4u) {
    let a0 = blockA(r.a0, k0, true); let a1 = blockA(r.a1, k0, true);
    mac8(g, a0, a1, blockW(wBase, r.n0, k0, true), blockW(wBase, r.n0 + 4u, k0, true));
    mac8(u, a0, a1, blockWu(wBase, r.n0, k0, true), blockWu(wBase, r.n0 + 4u, k0, true));
  }
  for (; k0 < p.K; k0 += 4u) {
    let a0 = blockA(r.a0, k0, false); let a1 = blockA(r.a1, k0, false);
    mac8(g, a0, a1, blockW(wBase, r.n0, k0, false), blockW(wBase, r.n0 + 4u, k0, false));
    mac8(u, a0, a1, blockWu(wBase, r.n0, k0, false), blockWu(wBase, r.n0 + 4u, k0, false));
  }
}

@compute @workgroup_size(8, 8)
fn gate_up_train_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = tokenRowsOf(wg, lid);
  if (r.e == NONE) { return; }
  var g: Acc; var u: Acc;
  gateUpDirect(r, &g, &u);
  let G = g; let U = u;
  for (var i = 0u; i < 8u; i++) {
    let s = r.s0 + i;
    if (s >= r.mEnd) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = r.n0 + j;
      if (n < p.N) {
        let gv = at(G, i, j);
        let uv = at(U, i, j);
        guOut[s * 2u * p.N + n] = gv;
        guOut[s * 2u * p.N + p.N + n] = uv;
        hOut[s * p.N + n] = gv / (1.0 + exp(-gv)) * uv;   // silu(g) · u, as gate_up_direct
      }
    }
  }
}

@compute @workgroup_size(8, 8)
fn down_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = rowsOf(wg, lid);
  if (r.e == NONE) { return; }
  let wBase = r.e * p.N * p.K;
  var c: Acc;
  var k0 = 0u;
  for (; k0 < rawQuads(r); k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, true), blockA(r.a1, k0, true), blockW(wBase, r.n0, k0, true), blockW(wBase, r.n0 + 4u, k0, true));
  }
  for (; k0 < p.K; k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, false), blockA(r.a1, k0, false), blockW(wBase, r.n0, k0, false), blockW(wBase, r.n0 + 4u, k0, false));
  }
  let C = c;
  for (var i = 0u; i < 8u; i++) {
    let s = r.s0 + i;
    if (s >= r.mEnd) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = r.n0 + j;
      if (n < p.N) { ys[s * p.N + n] = at(C, i, j); }
    }
  }
}

@compute @workgroup_size(8, 8)
fn down_backward_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = rowsOf(wg, lid);
  if (r.e == NONE) { return; }
  let wBase = r.e * p.K * p.N;
  var c: Acc;
  var k0 = 0u;
  for (; k0 < rawQuads(r); k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, true), blockA(r.a1, k0, true), blockKN(wBase, k0, r.n0, true), blockKN(wBase, k0, r.n0 + 4u, true));
  }
  for (; k0 < p.K; k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, false), blockA(r.a1, k0, false), blockKN(wBase, k0, r.n0, false), blockKN(wBase, k0, r.n0 + 4u, false));
  }
  let C = c;
  let I = p.N;
  for (var i = 0u; i < 8u; i++) {
    let s = r.s0 + i;
    if (s >= r.mEnd) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = r.n0 + j;
      if (n < I) {
        let dh = at(C, i, j);
        let g = guIn[s * 2u * I + n];
        let u = guIn[s * 2u * I + I + n];
        let sg = sigmoid(g);
        dguOut[s * 2u * I + n] = dh * u * sg * (1.0 + g * (1.0 - sg));
        dguOut[s * 2u * I + I + n] = dh * g * sg;
      }
    }
  }
}

@compute @workgroup_size(8, 8)
fn gate_up_backward_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = rowsOf(wg, lid);
  if (r.e == NONE) { return; }
  let wBase = r.e * (p.K / 2u) * p.N;
  var c: Acc;
  var k0 = 0u;
  for (; k0 < rawQuads(r); k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, true), blockA(r.a1, k0, true), blockGateUp(wBase, k0, r.n0, true), blockGateUp(wBase, k0, r.n0 + 4u, true));
  }
  for (; k0 < p.K; k0 += 4u) {
    mac8(&c, blockA(r.a0, k0, false), blockA(r.a1, k0, false), blockGateUp(wBase, k0, r.n0, false), blockGateUp(wBase, k0, r.n0 + 4u, false));
  }
  let C = c;
  for (var i = 0u; i < 8u; i++) {
    let s = r.s0 + i;
    if (s >= r.mEnd) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = r.n0 + j;
      if (n < p.N) { dxsOut[s * p.N + n] = at(C, i, j); }
    }
  }
}

// Weight gradients, one slot: c += A[s, m0..m0+8]ᵀ ⊗ W[row, n0..n0+8] (A [slots, M], W [rows, N]; zeros outside).
fn outer8(c: ptr<function, Acc>, s: u32, row: u32, m0: u32, n0: u32) {
  let a0 = quadA(s * p.M + m0, remaining(m0, p.M)); let a1 = quadA(s * p.M + m0 + 4u, remaining(m0 + 4u, p.M));
  let b0 = quadW(row * p.N + n0, remaining(n0, p.N)); let b1 = quadW(row * p.N + n0 + 4u, remaining(n0 + 4u, p.N));
  (*c)[0] = Block((*c)[0][0] + a0.x * b0, (*c)[0][1] + a0.y * b0, (*c)[0][2] + a0.z * b0, (*c)[0][3] + a0.w * b0);
  (*c)[1] = Block((*c)[1][0] + a0.x * b1, (*c)[1][1] + a0.y * b1, (*c)[1][2] + a0.z * b1, (*c)[1][3] + a0.w * b1);
  (*c)[2] = Block((*c)[2][0] + a1.x * b0, (*c)[2][1] + a1.y * b0, (*c)[2][2] + a1.z * b0, (*c)[2][3] + a1.w * b0);
  (*c)[3] = Block((*c)[3][0] + a1.x * b1, (*c)[3][1] + a1.y * b1, (*c)[3][2] + a1.z * b1, (*c)[3][3] + a1.w * b1);
}

// Grid (n tile, m tile, e) as down_grad; each invocation sums its 8×8 block over e's slots in slot order.
@compute @workgroup_size(8, 8)
fn down_grad_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = wg.z;
  let m0 = wg.y * BM + lid.y * 8u;
  let n0 = wg.x * BN + lid.x * 8u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  var c: Acc;
  for (var s = expertOffsets[e]; s < expertOffsets[e + 1u]; s++) { outer8(&c, s, s, m0, n0); }
  let C = c;
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + j;
      if (n < p.N) { gradOut[(e * p.M + m) * p.N + n] = at(C, i, j); }
    }
  }
}

@compute @workgroup_size(8, 8)
fn gate_up_grad_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let e = wg.z;
  let m0 = wg.y * BM + lid.y * 8u;
  let n0 = wg.x * BN + lid.x * 8u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  var c: Acc;
  for (var s = expertOffsets[e]; s < expertOffsets[e + 1u]; s++) { outer8(&c, s, gradSlotToken[s], m0, n0); }
  let C = c;
  let I = p.M / 2u;
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + i;   // row of dWg‖dWu: gate rows 0..I, up rows I..2I
    if (m >= p.M) { break; }
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + j;
      if (n < p.N) {
        if (m < I) {
          gradOut[(e * I + m) * p.N + n] = at(C, i, j);
        } else {
          gradOut2[(e * I + m - I) * p.N + n] = at(C, i, j);
        }
      }
    }
  }
}

// gather_slots: one workgroup per token t (N = H columns, K = kMax, M = T; the grid may be split over x
// and y): dx[t] = Σ_j dxs[tokenSlot[t, j]] over the token's used assignments, j ascending. Every row of dx
// is written (0 for a token with no assignment). Bindings tokenSlot, dxs, dx.
@group(0) @binding(1) var<storage, read> gatherTokenSlot: array<u32>;   // [T, kMax]
@group(0) @binding(2) var<storage, read> gatherRows: array<f32>;        // dxs [T·kMax, H]
@group(0) @binding(3) var<storage, read_write> gatherOut: array<f32>;   // dx [T, H]

@compute @workgroup_size(64)
fn gather_slots(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) l: u32) {
  let t = wg.y * nwg.x + wg.x;
  if (t >= p.M) { return; }
  for (var c = l; c < p.N; c += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < p.K; j++) {
      let s = gatherTokenSlot[t * p.K + j];
      if (s != NONE) { acc += gatherRows[s * p.N + c]; }
    }
    gatherOut[t * p.N + c] = acc;
  }
}
