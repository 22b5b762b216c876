// Attention MoE's combine (LLaMA-MoE v2, arXiv 2411.15708, attention MoE): the experts are the KV head groups, each
// a KV head with the query heads that share it (GQA); a token's attention output keeps only the heads of
// its selected groups, each weighted by its routing weight times the scale factor s:
//   gate: out[t, h, d] = s · w_t(g(h)) · att[t, h, d],   g(h) = h / headsPerGroup,
//         w_t(g) = Σ_{j < kMax} [topIds[t, j] = g] · topW[t, j]   (0 for an unselected group)
// o_proj of out is then Σ_{g ∈ top-k} s·w_g · o_proj_g(attn_g): o_proj is linear in the head slices.
// One thread per (t, h, d), over a 2-D grid of workgroups.
// Backward: the gate is linear in att, so ∂/∂att is the gate applied to dOut (the `gate` entry again), and
//   weight_grad: dTopW[t, j] = s · Σ_{h ∈ group topIds[t, j]} Σ_d att[t, h, d] · dOut[t, h, d]   (0 for NONE)
// one thread per (t, j), summing its group's headsPerGroup·D products.

struct Params {
  T: u32,
  heads: u32,
  D: u32,             // head dimension
  kMax: u32,
  headsPerGroup: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> att: array<f32>;        // [T, heads, D]
@group(0) @binding(2) var<storage, read> topIds: array<u32>;     // [T, kMax]
@group(0) @binding(3) var<storage, read> topW: array<f32>;       // [T, kMax]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [T, heads, D]
// weight_grad's own
@group(0) @binding(3) var<storage, read> dOut: array<f32>;         // [T, heads, D]
@group(0) @binding(4) var<storage, read_write> dTopW: array<f32>;  // [T, kMax]

@compute @workgroup_size(256)
fn gate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.T * p.heads * p.D) { return; }
  let t = i / (p.heads * p.D);
  let g = ((i / p.D) % p.heads) / p.headsPerGroup;
  var w = 0.0;
  for (var j = 0u; j < p.kMax; j++) {
    if (topIds[t * p.kMax + j] == g) { w += topW[t * p.kMax + j]; }
  }
  // an unselected group contributes exactly 0, whatever its attention output
  out[i] = select(0.0, p.scale * w * att[i], w != 0.0);
}

@compute @workgroup_size(256)
fn weight_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.T * p.kMax) { return; }
  let t = i / p.kMax;
  let g = topIds[i];
  let G = p.heads / p.headsPerGroup;
  var acc = 0.0;
  if (g < G) {   // an unused slot (NONE) has no group and no gradient
    let n = p.headsPerGroup * p.D;
    let base = (t * p.heads + g * p.headsPerGroup) * p.D;
    for (var e = 0u; e < n; e++) { acc += att[base + e] * dOut[base + e]; }
  }
  dTopW[i] = p.scale * acc;
}
