// Per-expert output biases of a MoE block: each selected expert adds its own down_proj bias, weighted
// by its routing weight, as a dense FFN with a bias on down_proj would (DIVE arXiv 2506.09351: the
// experts are FLAP-pruned FFNs, and FLAP's bias compensation, arXiv 2312.11983, is such a bias).
//   add: y[t, h] += Σ_{j < kMax, topIds[t,j] ≠ NONE} topW[t, j] · bias[topIds[t, j], h]
//        one thread per (t, h), over a 2-D grid of workgroups;
//   backward: dTopW[t, j] += Σ_h dy[t, h] · bias[topIds[t, j], h]  (the biases are constants: FLAP's
//        compensation stays fixed while DIVE retrains, so the routing weights are all they pass a gradient to)
//        one thread per (t, j), a serial loop over h, no barriers.

struct Params {
  T: u32,
  H: u32,
  kMax: u32,
  E: u32,
}

const NONE = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> topIds: array<u32>;     // [T, kMax]
@group(0) @binding(2) var<storage, read> topW: array<f32>;       // [T, kMax]
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // [E, H]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;    // [T, H]
// backward's own bindings 2 and 4 (an entry point uses one variable per binding)
@group(0) @binding(2) var<storage, read_write> dTopW: array<f32>;  // [T, kMax]
@group(0) @binding(4) var<storage, read> dy: array<f32>;           // [T, H]

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.T * p.H) { return; }
  let t = i / p.H;
  let h = i % p.H;
  var acc = y[i];
  for (var j = 0u; j < p.kMax; j++) {
    let e = topIds[t * p.kMax + j];
    if (e != NONE && e < p.E) { acc += topW[t * p.kMax + j] * bias[e * p.H + h]; }
  }
  y[i] = acc;
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (i >= p.T * p.kMax) { return; }
  let e = topIds[i];
  if (e == NONE || e >= p.E) { return; }
  let t = i / p.kMax;
  var acc = 0.0;
  for (var h = 0u; h < p.H; h++) { acc += dy[t * p.H + h] * bias[e * p.H + h]; }
  dTopW[i] += acc;
}
