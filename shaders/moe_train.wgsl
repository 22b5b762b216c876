// MoE training kernels for one layer-wise distillation step (LaDiMo, arXiv 2408.04278 §4.2–4.3):
//   L = L_mse + α·‖L_mse‖·L_aux,   L_mse = mean((ŷ − y)²),   ‖L_mse‖ detached (a coefficient, no gradient)
// The training-mode expert forward, the backward of the grouped expert GEMMs, the load-balancing gradient
// with its coefficient read from the GPU, and the loss. Slots, offsets and row tiles are those of moe.wgsl
// and moe_gemm.wgsl: slot s of expert e has expertOffsets[e] ≤ s < expertOffsets[e+1], tok(s) = slotToken[s].
// Per slot s of expert e:
//   gate_up_train: g = x[tok(s)]·Wg_eᵀ, u = x[tok(s)]·Wu_eᵀ, h = silu(g) ⊙ u   (gate_up that keeps g and u)
//   down_backward: dh = dys[s]·Wd_e, then SwiGLU backward in the epilogue:
//                  dg = dh ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))),   du = dh ⊙ silu(g)
// Per expert e, summed over its slots in slot order (one thread per output element, no atomics, so the
// order is fixed and the result the same every run; an expert with no slots gets zeros):
//   down_grad:     dWd_e = Σ_s dys[s]ᵀ ⊗ h[s]
//   gate_up_grad:  dWg_e = Σ_s dg[s]ᵀ ⊗ x[tok(s)],   dWu_e = Σ_s du[s]ᵀ ⊗ x[tok(s)]   (rows of x gathered)
// Layouts (row-major): x [T, H]; Wg, Wu, dWg, dWu [E, I, H]; Wd, dWd [E, H, I]; gu, dgu [T·kMax, 2I]
// (columns 0..I gate, I..2I up: the gate‖up layout of activation.wgsl's FUSED); h [T·kMax, I];
// dys [T·kMax, H]. Rows of gu, h and dgu past the last used slot are neither written nor read.
// Tiling as moe_gemm.wgsl: a 64×64 output tile per workgroup, 16×16 threads with a 4×4 register tile,
// K stepped by 16 through workgroup memory (k-major, as matmul.wgsl). Row-tile kernels (gate_up_train,
// down_backward) run the worst-case grid of row tiles; workgroups past tileOffsets[E] exit at once.
// Weight-gradient kernels run grid (n tile, m tile, expert) with the expert's slots as the reduction.
// VEC4: every quad a kernel loads starts at a multiple of 4 (see src/ops/moe-train.ts), so interior
// quads load as one vec4. Entry points reuse binding numbers; each group below names its kernels.

struct Params {
  M: u32,       // weight gradients: rows of each expert's gradient (H for dWd, 2I for dWg‖dWu)
  N: u32,       // output columns
  K: u32,       // row-tile kernels: reduction length (H)
  E: u32,       // experts
  T: u32,       // tokens (aux_grad_coef)
  len: u32,     // elements of ŷ and y (loss_partials, loss_total)
  groups: u32,  // partial sums of the loss
  alpha: f32,   // α of L_tot (aux_grad_coef, loss_total)
}

override VEC4: bool = false;

const NONE = 0xffffffffu;
const BM = 64u;
const BN = 64u;
const BK = 16u;
const CHUNK = 2048u;   // loss elements per workgroup of loss_partials (8 per thread)

@group(0) @binding(0) var<uniform> p: Params;

// ------------------------------------------------------------------------------- grouped GEMM bindings
@group(0) @binding(1) var<storage, read> expertOffsets: array<u32>;      // [E+1]       all GEMMs
@group(0) @binding(2) var<storage, read> tileOffsets: array<u32>;        // [E+1]       gate_up_train, down_backward
@group(0) @binding(2) var<storage, read> gradSlotToken: array<u32>;      // [T·kMax]    gate_up_grad
@group(0) @binding(3) var<storage, read> A: array<vec4<f32>>;            // x | dys | dys | dgu
@group(0) @binding(4) var<storage, read> B: array<vec4<f32>>;            // Wg | Wd | h | x
// gate_up_train
@group(0) @binding(5) var<storage, read> Wu: array<vec4<f32>>;           // [E, I, H]
@group(0) @binding(6) var<storage, read> slotToken: array<u32>;          // [T·kMax]
@group(0) @binding(7) var<storage, read_write> guOut: array<f32>;        // [T·kMax, 2I]
@group(0) @binding(8) var<storage, read_write> hOut: array<f32>;         // [T·kMax, I]
// down_backward
@group(0) @binding(5) var<storage, read> guIn: array<f32>;               // [T·kMax, 2I]
@group(0) @binding(6) var<storage, read_write> dguOut: array<f32>;       // [T·kMax, 2I]
// down_grad (dWd), gate_up_grad (dWg, dWu)
@group(0) @binding(5) var<storage, read_write> gradOut: array<f32>;      // dWd [E, H, I] | dWg [E, I, H]
@group(0) @binding(6) var<storage, read_write> gradOut2: array<f32>;     // dWu [E, I, H]

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]: As[k*16 + m/4][m%4]
var<workgroup> Bs: array<vec4<f32>, 256>;   // [BK][BN/4]
var<workgroup> Us: array<vec4<f32>, 256>;   // [BK][BN/4]: Wu tile (gate_up_train)
var<workgroup> tileExpert: u32;

fn remaining(start: u32, end: u32) -> u32 { return select(0u, end - start, end > start); }

// Four consecutive elements from flat index i, `valid` of them in bounds (the rest zero).
fn quadA(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return A[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = A[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadB(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return B[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = B[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

fn quadWu(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return Wu[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = Wu[(i + j) >> 2u][(i + j) & 3u]; }
  return v;
}

// σ(g) without overflow: exp of a non-positive number only (as activation.wgsl).
fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
}

// The expert owning row tile r, or NONE past the last tile (as moe_gemm.wgsl).
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

// Row-tile kernels. Stages row aRow (NONE: zeros), columns [k0, k0+16) of A [rows, K]; thread l: row l/4.
fn stageRows(aRow: u32, k0: u32, l: u32) {
  let r = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (aRow != NONE) { v = quadA(aRow * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * 16u + r / 4u][r % 4u] = v[j]; }
}

// The 16×64 tile of W_eᵀ into Bs, W_e stored [N, K] (gate_up_train: Wg); quads run along k.
fn stageBT(wBase: u32, n0: u32, k0: u32, l: u32) {
  let c = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (n0 + c < p.N) { v = quadB(wBase + (n0 + c) * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { Bs[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
}

// The same for Wu_eᵀ into Us.
fn stageWuT(wBase: u32, n0: u32, k0: u32, l: u32) {
  let c = l / 4u; let kq = l % 4u;
  let k = k0 + kq * 4u;
  var v = vec4<f32>(0.0);
  if (n0 + c < p.N) { v = quadWu(wBase + (n0 + c) * p.K + k, remaining(k, p.K)); }
  for (var j = 0u; j < 4u; j++) { Us[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
}

// The 16×64 tile of W_e into Bs, W_e stored [K, N] (down_backward: Wd_e is [H, I]); quads run along n.
fn stageB(wBase: u32, n0: u32, k0: u32, l: u32) {
  let k = l / 16u; let nq = l % 16u;
  let n = n0 + nq * 4u;
  var v = vec4<f32>(0.0);
  if (k0 + k < p.K) { v = quadB(wBase + (k0 + k) * p.N + n, remaining(n, p.N)); }
  Bs[k * 16u + nq] = v;
}

// Weight-gradient kernels: slot s (NONE: zeros) is reduction step k = l/16 of the tile. Stages A[s, m0..m0+64)
// (A [slots, M], so op(A) = Aᵀ) into As and B[bRow, n0..n0+64) (B [rows, N]) into Bs.
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
  if (bRow != NONE) { v = quadB(bRow * p.N + n, remaining(n, p.N)); }
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

// -------------------------------------------------------------------------------------- gate_up_train
// moe_gemm.wgsl's gate_up, also writing g and u: bindings expertOffsets, tileOffsets, x (A), Wg (B), Wu,
// slotToken, gu, h. h is gate_up's expression in gate_up's order, so training and inference forwards agree.
@compute @workgroup_size(16, 16)
fn gate_up_train(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
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
    stageRows(aRow, k0, l);
    stageBT(wBase, n0, k0, l);
    stageWuT(wBase, n0, k0, l);
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
// dys (A), Wd (B), gu, dgu.
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
    stageRows(aRow, k0, l);
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
// time in slot order. down_grad: bindings expertOffsets, (none), dys (A, M = H), h (B, N = I), dWd.
// gate_up_grad: expertOffsets, slotToken, dgu (A, M = 2I), x (B, N = H; row tok(s)), dWg, dWu.
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

// -------------------------------------------------------------------------------------- aux_grad_coef
// moe.wgsl's aux_grad with the coefficient read from the GPU: dLogits += α·c·∂L_aux/∂z, c = coef[0]
// (the MSE loss: LaDiMo's α·‖L_mse‖, detached). L_aux = E·Σ_i f_i·P_i ⇒ ∂L_aux/∂p_{t,i} = E·f_i/T, then
// through the softmax. One thread per token.
@group(0) @binding(1) var<storage, read> agProbs: array<f32>;             // [T, E]
@group(0) @binding(2) var<storage, read> agF: array<f32>;                 // [E]
@group(0) @binding(3) var<storage, read> agCoef: array<f32>;              // [1]
@group(0) @binding(4) var<storage, read_write> agDLogits: array<f32>;     // [T, E]

@compute @workgroup_size(64)
fn aux_grad_coef(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) l: u32) {
  let t = (wg.y * nwg.x + wg.x) * 64u + l;
  if (t >= p.T) { return; }
  let row = t * p.E;
  let scale = p.alpha * agCoef[0] * f32(p.E) / f32(p.T);
  var pdp = 0.0;
  for (var e = 0u; e < p.E; e++) { pdp += agProbs[row + e] * scale * agF[e]; }
  for (var e = 0u; e < p.E; e++) {
    agDLogits[row + e] += agProbs[row + e] * (scale * agF[e] - pdp);
  }
}

// ------------------------------------------------------------------------------ loss_partials, loss_total
// L_mse = mean((ŷ − y)²) in two fixed-order passes: loss_partials sums CHUNK elements per workgroup into
// partials[g]; loss_total (one workgroup) sums the partials, writes L_mse and L_tot = L_mse + α·L_mse·L_aux.
@group(0) @binding(1) var<storage, read> lossA: array<f32>;                // ŷ [len]
@group(0) @binding(2) var<storage, read> lossB: array<f32>;                // y [len]
@group(0) @binding(3) var<storage, read_write> lossPartials: array<f32>;   // [groups]

@group(0) @binding(1) var<storage, read> totPartials: array<f32>;          // [groups]
@group(0) @binding(2) var<storage, read> totAux: array<f32>;               // L_aux [1]
@group(0) @binding(3) var<storage, read_write> totMse: array<f32>;         // L_mse [1]
@group(0) @binding(4) var<storage, read_write> totTotal: array<f32>;       // L_tot [1]

var<workgroup> red: array<f32, 256>;

// Σ v over the 256 threads by a fixed tree, valid in every thread.
fn sum256(l: u32, v: f32) -> f32 {
  red[l] = v;
  workgroupBarrier();
  for (var d = 128u; d > 0u; d >>= 1u) {
    if (l < d) { red[l] += red[l + d]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(256)
fn loss_partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) l: u32) {
  let g = wg.y * nwg.x + wg.x;
  if (g >= p.groups) { return; }
  let start = g * CHUNK;
  let end = min(start + CHUNK, p.len);
  var acc = 0.0;
  for (var i = start + l; i < end; i += 256u) {
    let d = lossA[i] - lossB[i];
    acc += d * d;
  }
  let s = sum256(l, acc);
  if (l == 0u) { lossPartials[g] = s; }
}

@compute @workgroup_size(256)
fn loss_total(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var i = l; i < p.groups; i += 256u) { acc += totPartials[i]; }
  let mse = sum256(l, acc) / f32(p.len);
  if (l == 0u) {
    totMse[0] = mse;
    totTotal[0] = mse + p.alpha * mse * totAux[0];
  }
}
