// MoE FFN block: routing, token permutation and combine (the grouped expert GEMMs are in moe_gemm.wgsl),
// plus the backward ops and the loss of a layer-wise distillation step. Routing follows HF
// modeling_qwen2_moe.py: softmax in f32 → top-k → optional renormalisation → group the assignments by
// expert → experts → weighted sum back in token order. Everything stays on the GPU; no count is read
// back. Layouts (row-major; an assignment is a (token t, slot j) pair, j < kMax; a "slot" is its row in the
// expert-grouped order):
//   routerLogits, probs, dLogits: [T, E]       topIds: [T, kMax] u32 (NONE in unused slots)
//   topW, dTopW: [T, kMax] (0 in unused)       tokenSlot: [T, kMax] u32 (slot of each assignment, NONE unused)
//   slotToken: [T·kMax] u32 (token of each slot; slots of expert e are expertOffsets[e] .. expertOffsets[e+1]
//     in (token, j) order; NONE past the last used slot)
//   blockOffsets: [E, nBlocks] u32 (per-block counts, then their exclusive scan in (expert, block) order)
//   expertOffsets, tileOffsets: [E+1] u32 (first slot / first 64-row GEMM tile of each expert; [E] = totals)
//   ys, dys: [T·kMax, H] (expert outputs by slot)   y, dy: [T, H]   auxF: [E]   auxLoss: [1]
//   lossA, lossB: [len] (ŷ, y)   lossPartials: [groups]
// Each entry point binds its own buffers from binding 1; entry points reuse binding numbers (WGSL allows
// that across entry points), so each group of declarations below belongs to the kernels it names.

struct Params {
  T: u32,         // tokens
  E: u32,         // experts (≤ 256: one thread per expert in the permutation kernels)
  H: u32,         // hidden size
  kMax: u32,      // slots per token: topK, or 3 under dynamic k
  nBlocks: u32,   // ceil(T / BLOCK) token blocks of the permutation
  alpha: f32,     // dynamic k: 1 expert when the largest routing weight ≥ alpha,
  beta: f32,      //            3 when it is ≤ beta, else 2 (LaDiMo, Appendix A)
  coef: f32,      // weight of the load-balancing loss gradient added into dLogits (aux_grad, aux_grad_coef);
                  // α of L_tot (loss_total)
  len: u32,       // elements of ŷ and y (loss_partials, loss_total)
  groups: u32,    // partial sums of the loss
}

override NORM_TOPK: bool = false;   // renormalise the selected weights to sum to 1 (HF norm_topk_prob)
override DYNAMIC_K: bool = false;

const NONE = 0xffffffffu;
const MAX_K = 8u;
const BLOCK = 64u;   // tokens per permutation block
const TILE = 64u;    // rows per grouped-GEMM tile (BM in moe_gemm.wgsl)
const CHUNK = 2048u; // loss elements per workgroup of loss_partials (8 per thread)

@group(0) @binding(0) var<uniform> p: Params;

// Grids over tokens or blocks may be split over x and y (grid() in validate.ts).
fn flatWorkgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

var<workgroup> partialU: array<u32, 256>;
var<workgroup> partialF: array<f32, 256>;

// Exclusive prefix sum of v over a 256-thread workgroup (Hillis–Steele) and the total: (exclusive, total).
fn scan256(l: u32, v: u32) -> vec2<u32> {
  workgroupBarrier();   // a previous call may still be reading partialU
  partialU[l] = v;
  workgroupBarrier();
  for (var d = 1u; d < 256u; d <<= 1u) {
    let add = select(0u, partialU[l - d], l >= d);
    workgroupBarrier();
    partialU[l] += add;
    workgroupBarrier();
  }
  return vec2<u32>(partialU[l] - v, partialU[255]);
}

// Σ v over the first n (a power of two ≤ 256) threads, by a fixed tree so the result is the same every run.
fn sumWorkgroup(l: u32, v: f32, n: u32) -> f32 {
  workgroupBarrier();
  partialF[l] = v;
  workgroupBarrier();
  for (var d = n / 2u; d > 0u; d >>= 1u) {
    if (l < d) { partialF[l] += partialF[l + d]; }
    workgroupBarrier();
  }
  return partialF[0];
}

// ------------------------------------------------------------------------------------------------ route
// One thread per token: softmax over E, top-kMax by (prob descending, index ascending), per-token k,
// optional renormalisation.
@group(0) @binding(1) var<storage, read> routeLogits: array<f32>;          // [T, E]
@group(0) @binding(2) var<storage, read_write> routeProbs: array<f32>;     // [T, E]
@group(0) @binding(3) var<storage, read_write> routeTopIds: array<u32>;    // [T, kMax]
@group(0) @binding(4) var<storage, read_write> routeTopW: array<f32>;      // [T, kMax]

@compute @workgroup_size(64)
fn route(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg) * 64u + l;
  if (t >= p.T) { return; }
  let E = p.E;
  let row = t * E;
  // routing_weights = softmax(router_logits, dim=1, dtype=float)
  var m = routeLogits[row];
  for (var e = 1u; e < E; e++) { m = max(m, routeLogits[row + e]); }
  var sum = 0.0;
  for (var e = 0u; e < E; e++) { sum += exp(routeLogits[row + e] - m); }
  for (var e = 0u; e < E; e++) { routeProbs[row + e] = exp(routeLogits[row + e] - m) / sum; }

  // topk(routing_weights, kMax): pick j is the best expert ranked after pick j-1 in the total order
  // (p descending, e ascending), so ties go to the lower expert index and no "taken" set is needed.
  var ids: array<u32, MAX_K>;
  var ws: array<f32, MAX_K>;
  var prevP = 0.0;
  var prevE = NONE;
  for (var j = 0u; j < p.kMax; j++) {
    var best = NONE;
    var bestP = 0.0;
    for (var e = 0u; e < E; e++) {
      let pe = routeProbs[row + e];
      let ranksAfter = j == 0u || pe < prevP || (pe == prevP && e > prevE);
      if (ranksAfter && (best == NONE || pe > bestP)) { best = e; bestP = pe; }
    }
    ids[j] = best;
    ws[j] = bestP;
    prevP = bestP;
    prevE = best;
  }

  var k = p.kMax;
  if (DYNAMIC_K) { k = select(select(2u, 3u, ws[0] <= p.beta), 1u, ws[0] >= p.alpha); }
  var selected = 0.0;
  for (var j = 0u; j < k; j++) { selected += ws[j]; }
  for (var j = 0u; j < p.kMax; j++) {
    let a = t * p.kMax + j;
    if (j < k) {
      routeTopIds[a] = ids[j];
      routeTopW[a] = select(ws[j], ws[j] / selected, NORM_TOPK);   // topk_weight /= topk_weight.sum()
    } else {
      routeTopIds[a] = NONE;
      routeTopW[a] = 0.0;
    }
  }
}

// ------------------------------------------------------------------------------------- count, permute
// One workgroup per block of BLOCK tokens, one thread per expert. count: assignments of each expert in
// the block. permute: each expert walks the block's assignments in (token, j) order from its scanned
// offset, so the slot order is stable and the same every run (no atomics).
@group(0) @binding(1) var<storage, read> blockTopIds: array<u32>;            // topIds [T, kMax]
@group(0) @binding(2) var<storage, read_write> blockOffsets: array<u32>;     // [E, nBlocks]
@group(0) @binding(3) var<storage, read> permuteExpertOffsets: array<u32>;   // [E+1] (permute only)
@group(0) @binding(4) var<storage, read_write> slotToken: array<u32>;        // [T·kMax]
@group(0) @binding(5) var<storage, read_write> tokenSlot: array<u32>;        // [T, kMax]

var<workgroup> blockIds: array<u32, 512>;   // BLOCK·MAX_K expert ids, token-major

// Loads block b's expert ids into blockIds; returns how many there are.
fn loadBlock(b: u32, l: u32) -> u32 {
  let n = min(BLOCK, p.T - b * BLOCK) * p.kMax;
  for (var i = l; i < n; i += 256u) { blockIds[i] = blockTopIds[b * BLOCK * p.kMax + i]; }
  workgroupBarrier();
  return n;
}

@compute @workgroup_size(256)
fn count(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) l: u32) {
  let b = flatWorkgroup(wg, nwg);
  if (b >= p.nBlocks) { return; }
  let n = loadBlock(b, l);
  for (var e = l; e < p.E; e += 256u) {
    var c = 0u;
    for (var i = 0u; i < n; i++) { c += select(0u, 1u, blockIds[i] == e); }
    blockOffsets[e * p.nBlocks + b] = c;
  }
}

@compute @workgroup_size(256)
fn permute(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) l: u32) {
  let b = flatWorkgroup(wg, nwg);
  if (b >= p.nBlocks) { return; }
  let n = loadBlock(b, l);
  let a0 = b * BLOCK * p.kMax;          // first assignment of the block
  let used = permuteExpertOffsets[p.E];  // slots in use: [0, used)
  for (var i = l; i < n; i += 256u) {
    if (blockIds[i] == NONE) { tokenSlot[a0 + i] = NONE; }
    if (a0 + i >= used) { slotToken[a0 + i] = NONE; }   // as many spare slots as unused assignments
  }
  for (var e = l; e < p.E; e += 256u) {
    var slot = blockOffsets[e * p.nBlocks + b];
    for (var i = 0u; i < n; i++) {
      if (blockIds[i] == e) {
        tokenSlot[a0 + i] = slot;
        slotToken[slot] = b * BLOCK + i / p.kMax;
        slot++;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ scan
// One workgroup: exclusive scan of the block counts in (expert, block) order, in place, giving each
// block its first slot per expert; the experts' first slots; and each expert's first row tile of the
// grouped GEMM (ceil(count / TILE) tiles per expert).
@group(0) @binding(1) var<storage, read_write> scanBlockOffsets: array<u32>;   // [E, nBlocks]
@group(0) @binding(2) var<storage, read_write> expertOffsets: array<u32>;      // [E+1]
@group(0) @binding(3) var<storage, read_write> tileOffsets: array<u32>;        // [E+1]

var<workgroup> expertStart: array<u32, 257>;

@compute @workgroup_size(256)
fn scan(@builtin(local_invocation_index) l: u32) {
  let n = p.E * p.nBlocks;
  let chunk = (n + 255u) / 256u;
  let lo = min(l * chunk, n);
  let hi = min(lo + chunk, n);
  var sum = 0u;
  for (var i = lo; i < hi; i++) { sum += scanBlockOffsets[i]; }
  let s = scan256(l, sum);
  var run = s.x;
  for (var i = lo; i < hi; i++) {
    let c = scanBlockOffsets[i];
    scanBlockOffsets[i] = run;
    if (i % p.nBlocks == 0u) { expertStart[i / p.nBlocks] = run; }
    run += c;
  }
  if (l == 0u) { expertStart[p.E] = s.y; }
  workgroupBarrier();
  var tiles = 0u;
  if (l < p.E) { tiles = (expertStart[l + 1u] - expertStart[l] + TILE - 1u) / TILE; }
  let tileStart = scan256(l, tiles);
  if (l < p.E) {
    expertOffsets[l] = expertStart[l];
    tileOffsets[l] = tileStart.x;
  }
  if (l == 0u) {
    expertOffsets[p.E] = expertStart[p.E];
    tileOffsets[p.E] = tileStart.y;
  }
}

// --------------------------------------------------------------------------------------------- combine
// One workgroup per token: y[t] = Σ_j topW[t,j] · ys[tokenSlot[t,j]], j ascending (HF index_add_ of
// the weighted expert outputs, in a fixed order).
@group(0) @binding(1) var<storage, read> combineYs: array<f32>;           // [T·kMax, H]
@group(0) @binding(2) var<storage, read> combineTopW: array<f32>;         // [T, kMax]
@group(0) @binding(3) var<storage, read> combineTokenSlot: array<u32>;    // [T, kMax]
@group(0) @binding(4) var<storage, read_write> combineY: array<f32>;      // [T, H]

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg);
  if (t >= p.T) { return; }
  for (var h = l; h < p.H; h += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < p.kMax; j++) {
      let s = combineTokenSlot[t * p.kMax + j];
      if (s != NONE) { acc += combineTopW[t * p.kMax + j] * combineYs[s * p.H + h]; }
    }
    combineY[t * p.H + h] = acc;
  }
}

// ------------------------------------------------------------------------------------ combine_backward
// One workgroup per token. From y[t] = Σ_j topW[t,j]·ys[s_tj]:
//   dTopW[t,j] = dy[t] · ys[s_tj]      dys[s_tj] = topW[t,j] · dy[t]
// Rows of dys past the last used slot belong to no assignment and are zeroed, so dys is fully defined.
@group(0) @binding(1) var<storage, read> cbDy: array<f32>;                // [T, H]
@group(0) @binding(2) var<storage, read> cbYs: array<f32>;                // [T·kMax, H]
@group(0) @binding(3) var<storage, read> cbTopW: array<f32>;              // [T, kMax]
@group(0) @binding(4) var<storage, read> cbTokenSlot: array<u32>;         // [T, kMax]
@group(0) @binding(5) var<storage, read> cbExpertOffsets: array<u32>;     // [E+1]
@group(0) @binding(6) var<storage, read_write> cbDTopW: array<f32>;       // [T, kMax]
@group(0) @binding(7) var<storage, read_write> cbDYs: array<f32>;         // [T·kMax, H]

@compute @workgroup_size(64)
fn combine_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg);
  if (t >= p.T) { return; }
  let used = cbExpertOffsets[p.E];
  for (var j = 0u; j < p.kMax; j++) {
    let a = t * p.kMax + j;
    let s = cbTokenSlot[a];
    let w = cbTopW[a];
    var part = 0.0;
    for (var h = l; h < p.H; h += 64u) {
      let g = cbDy[t * p.H + h];
      if (s != NONE) {
        part += g * cbYs[s * p.H + h];
        cbDYs[s * p.H + h] = w * g;
      }
      if (a >= used) { cbDYs[a * p.H + h] = 0.0; }
    }
    let d = sumWorkgroup(l, part, 64u);
    if (l == 0u) { cbDTopW[a] = d; }
  }
}

// ------------------------------------------------------------------------------------- router_backward
// One thread per token: dLogits from dTopW through the top-k selection (and renormalisation) and the
// softmax. The selection itself (and dynamic k) is piecewise constant, so it has no gradient.
//   no renorm: w_j = p_{e_j}               ⇒ dp_{e_j} = dw_j
//   renorm:    w_j = p_{e_j} / S, S = Σ_i p_{e_i} ⇒ dp_{e_j} = (dw_j − Σ_i dw_i·w_i) / S
//   softmax:   dz = p ⊙ (dp − Σ_e p_e·dp_e), dp_e = 0 for the unselected experts
@group(0) @binding(1) var<storage, read> rbDTopW: array<f32>;             // [T, kMax]
@group(0) @binding(2) var<storage, read> rbProbs: array<f32>;             // [T, E]
@group(0) @binding(3) var<storage, read> rbTopIds: array<u32>;            // [T, kMax]
@group(0) @binding(4) var<storage, read_write> rbDLogits: array<f32>;     // [T, E]

@compute @workgroup_size(64)
fn router_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg) * 64u + l;
  if (t >= p.T) { return; }
  let row = t * p.E;
  let a0 = t * p.kMax;
  var S = 0.0;
  for (var j = 0u; j < p.kMax; j++) {
    let e = rbTopIds[a0 + j];
    if (e != NONE) { S += rbProbs[row + e]; }
  }
  var c = 0.0;   // Σ_i dw_i·w_i
  if (NORM_TOPK) {
    for (var j = 0u; j < p.kMax; j++) {
      let e = rbTopIds[a0 + j];
      if (e != NONE) { c += rbDTopW[a0 + j] * rbProbs[row + e] / S; }
    }
  }
  var dp: array<f32, MAX_K>;
  var pdp = 0.0;   // Σ_e p_e·dp_e
  for (var j = 0u; j < p.kMax; j++) {
    let e = rbTopIds[a0 + j];
    if (e != NONE) {
      dp[j] = select(rbDTopW[a0 + j], (rbDTopW[a0 + j] - c) / S, NORM_TOPK);
      pdp += rbProbs[row + e] * dp[j];
    }
  }
  for (var e = 0u; e < p.E; e++) { rbDLogits[row + e] = -rbProbs[row + e] * pdp; }
  for (var j = 0u; j < p.kMax; j++) {
    let e = rbTopIds[a0 + j];
    if (e != NONE) { rbDLogits[row + e] = rbProbs[row + e] * (dp[j] - pdp); }
  }
}

// ------------------------------------------------------------------------ noisy_logits, noisy_backward
// Noisy top-k gating while training (Shazeer et al. 2017, arXiv 1701.06538 §3.1, as LLaMA-MoE's
// TopKBalancedNoisyGate): the router logits gain ε ⊙ (softplus(x·Wnᵀ) + eps), ε ~ N(0, 1) drawn on the
// host, before the softmax temperature τ. z holds x·Wrᵀ/τ already (coef = eps, alpha = 1/τ, len = T·E):
//   noisy_logits:   z += ε · (softplus(m) + eps) / τ        (m = x·Wnᵀ; in place)
//   noisy_backward: dm = dz · ε · sigmoid(m) / τ            (the derivative of softplus is sigmoid)
// softplus(v) = max(v, 0) + log(1 + exp(−|v|)) cannot overflow. One thread per element.
@group(0) @binding(1) var<storage, read> ngM: array<f32>;              // m [T, E]
@group(0) @binding(2) var<storage, read> ngNormals: array<f32>;        // ε [T, E]
@group(0) @binding(3) var<storage, read_write> ngOut: array<f32>;      // z (noisy_logits) or dm (noisy_backward) [T, E]
@group(0) @binding(4) var<storage, read> ngDz: array<f32>;             // dz [T, E] (noisy_backward)

@compute @workgroup_size(64)
fn noisy_logits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) l: u32) {
  let i = flatWorkgroup(wg, nwg) * 64u + l;
  if (i >= p.len) { return; }
  let v = ngM[i];
  ngOut[i] += ngNormals[i] * (max(v, 0.0) + log(1.0 + exp(-abs(v))) + p.coef) * p.alpha;
}

@compute @workgroup_size(64)
fn noisy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) l: u32) {
  let i = flatWorkgroup(wg, nwg) * 64u + l;
  if (i >= p.len) { return; }
  ngOut[i] = ngDz[i] * ngNormals[i] * p.alpha / (1.0 + exp(-ngM[i]));
}

// ---------------------------------------------------------------------------------- aux_loss, aux_grad
// Switch Transformer load-balancing loss (Fedus et al. 2021, arXiv 2101.03961, eq. 4–6), N = E experts:
//   L_aux = N · Σ_i f_i · P_i,   f_i = (assignments routed to i) / (all assignments)  (no gradient),
//   P_i = (1/T) Σ_t p_{t,i}   ⇒   ∂L_aux/∂p_{t,i} = N·f_i / T, then through the softmax as above.
// aux_loss: one workgroup, one thread per expert, fixed-order sums. aux_grad: one thread per token,
// adds coef·∂L_aux/∂z into dLogits. aux_grad_coef: the same with the coefficient coef·c, c = coefIn[0] read
// on the GPU (a distillation step passes the MSE loss: LaDiMo's α·‖L_mse‖, detached; arXiv 2408.04278 §4.3).
@group(0) @binding(1) var<storage, read> auxProbs: array<f32>;            // [T, E]
@group(0) @binding(2) var<storage, read> auxTopIds: array<u32>;           // [T, kMax]
@group(0) @binding(3) var<storage, read_write> auxF: array<f32>;          // [E]
@group(0) @binding(4) var<storage, read_write> auxLoss: array<f32>;       // [1]

@compute @workgroup_size(256)
fn aux_loss(@builtin(local_invocation_index) l: u32) {
  var routed = 0u;
  var P = 0.0;
  if (l < p.E) {
    for (var t = 0u; t < p.T; t++) { P += auxProbs[t * p.E + l]; }
    for (var a = 0u; a < p.T * p.kMax; a++) { routed += select(0u, 1u, auxTopIds[a] == l); }
  }
  let assignments = scan256(l, routed).y;
  let f = f32(routed) / f32(assignments);
  P /= f32(p.T);
  if (l < p.E) { auxF[l] = f; }
  let fP = sumWorkgroup(l, f * P, 256u);
  if (l == 0u) { auxLoss[0] = f32(p.E) * fP; }
}

@group(0) @binding(1) var<storage, read> agProbs: array<f32>;             // [T, E]      aux_grad, aux_grad_coef
@group(0) @binding(2) var<storage, read> agF: array<f32>;                 // [E]         aux_grad, aux_grad_coef
@group(0) @binding(3) var<storage, read_write> agDLogits: array<f32>;     // [T, E]      aux_grad
@group(0) @binding(3) var<storage, read> agCoef: array<f32>;              // [1]         aux_grad_coef
@group(0) @binding(4) var<storage, read_write> agcDLogits: array<f32>;    // [T, E]      aux_grad_coef

// Σ_e p_{t,e}·scale·f_e over the row of token t: the softmax term of ∂L_aux/∂z_t scaled by `scale`.
fn auxGradPdp(row: u32, scale: f32) -> f32 {
  var pdp = 0.0;
  for (var e = 0u; e < p.E; e++) { pdp += agProbs[row + e] * scale * agF[e]; }
  return pdp;
}

@compute @workgroup_size(64)
fn aux_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg) * 64u + l;
  if (t >= p.T) { return; }
  let row = t * p.E;
  let scale = p.coef * f32(p.E) / f32(p.T);
  let pdp = auxGradPdp(row, scale);
  for (var e = 0u; e < p.E; e++) {
    agDLogits[row + e] += agProbs[row + e] * (scale * agF[e] - pdp);
  }
}

@compute @workgroup_size(64)
fn aux_grad_coef(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) l: u32) {
  let t = flatWorkgroup(wg, nwg) * 64u + l;
  if (t >= p.T) { return; }
  let row = t * p.E;
  let scale = p.coef * agCoef[0] * f32(p.E) / f32(p.T);
  let pdp = auxGradPdp(row, scale);
  for (var e = 0u; e < p.E; e++) {
    agcDLogits[row + e] += agProbs[row + e] * (scale * agF[e] - pdp);
  }
}

// ------------------------------------------------------------------------------ loss_partials, loss_total
// The loss of a layer-wise distillation step (LaDiMo, arXiv 2408.04278 §4.2–4.3), ‖L_mse‖ detached:
//   L_tot = L_mse + α·L_mse·L_aux,   L_mse = mean((ŷ − y)²),   α = coef
// in two fixed-order passes: loss_partials sums CHUNK elements per workgroup into partials[g]; loss_total
// (one workgroup) sums the partials and writes L_mse and L_tot.
@group(0) @binding(1) var<storage, read> lossA: array<f32>;                // ŷ [len]
@group(0) @binding(2) var<storage, read> lossB: array<f32>;                // y [len]
@group(0) @binding(3) var<storage, read_write> lossPartials: array<f32>;   // [groups]

@group(0) @binding(1) var<storage, read> totPartials: array<f32>;          // [groups]
@group(0) @binding(2) var<storage, read> totAux: array<f32>;               // L_aux [1]
@group(0) @binding(3) var<storage, read_write> totMse: array<f32>;         // L_mse [1]
@group(0) @binding(4) var<storage, read_write> totTotal: array<f32>;       // L_tot [1]

@compute @workgroup_size(256)
fn loss_partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) l: u32) {
  let g = flatWorkgroup(wg, nwg);
  if (g >= p.groups) { return; }
  let start = g * CHUNK;
  let end = min(start + CHUNK, p.len);
  var acc = 0.0;
  for (var i = start + l; i < end; i += 256u) {
    let d = lossA[i] - lossB[i];
    acc += d * d;
  }
  let s = sumWorkgroup(l, acc, 256u);
  if (l == 0u) { lossPartials[g] = s; }
}

@compute @workgroup_size(256)
fn loss_total(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var i = l; i < p.groups; i += 256u) { acc += totPartials[i]; }
  let mse = sumWorkgroup(l, acc, 256u) / f32(p.len);
  if (l == 0u) {
    totMse[0] = mse;
    totTotal[0] = mse + p.coef * mse * totAux[0];
  }
}
