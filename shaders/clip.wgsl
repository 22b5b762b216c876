// Global gradient-norm clipping (Pascanu et al. 2013, arXiv:1211.5063, Algorithm 2; as torch.nn.utils.
// clip_grad_norm_), on the GPU, so a training step never waits for a readback:
//   norm = sqrt(Σ over every trainable tensor Σ g²),  coef = min(1, maxNorm / (norm + 1e-6)),  g ← coef·g
// sumsq: partials[offset + w] = Σ g² over slice w of one gradient gIn [len] (about CHUNK elements each,
//        see sumsq); each tensor writes its own range of partials
// norm:  one workgroup: stats[0] = sqrt(Σ partials[0 .. count)), stats[1] = coef (1 when maxNorm = 0)
// scale: gOut [len] ← stats[1]·gOut
// Every sum runs in a fixed order (no atomics), so a run repeats bit for bit. Workgroups are linearised
// over a 2-D grid (num_workgroups); the grid may hold a few more than the work, which exit at once.
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  len: u32,       // sumsq, scale: elements of the gradient
  offset: u32,    // sumsq: index of its first partial
  count: u32,     // norm: partials of all gradients
  maxNorm: f32,   // norm: 0 turns clipping off (coef 1)
}

override WG: u32 = 256;   // threads per workgroup of norm and scale, a power of two
const CHUNK = 2048u;       // elements per partial (CHUNK in src/train/clip.ts)
const SUMSQ_WG = 64u;      // invocations per workgroup of sumsq

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gIn: array<f32>;              // sumsq: [len]
@group(0) @binding(1) var<storage, read> normPartials: array<f32>;     // norm: [count]
@group(0) @binding(1) var<storage, read_write> gOut: array<f32>;       // scale: [len]
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;   // sumsq: [≥ offset + chunks]
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;      // norm: [2] (norm, coef)
@group(0) @binding(2) var<storage, read> coefIn: array<f32>;           // scale: [2], coef at 1

var<workgroup> red: array<f32, WG>;

// Sum of v over the workgroup in a fixed tree order, valid in thread 0.
fn workgroupSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

// Invocation w of P = ⌈len / CHUNK⌉ sums elements w, w + P, w + 2P, ..., so adjacent invocations read
// adjacent elements, with no barrier: SwiftShader runs a workgroup that has one as a coroutine per 4-lane
// subgroup, switched at every barrier, which costs more than the sums themselves.
@compute @workgroup_size(SUMSQ_WG)
fn sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let P = (p.len + CHUNK - 1u) / CHUNK;
  let w = (wg.y * nwg.x + wg.x) * SUMSQ_WG + lid;
  if (w >= P) { return; }
  var s = 0.0;
  for (var idx = w; idx < p.len; idx += P) {
    let g = gIn[idx];
    s += g * g;
  }
  partials[p.offset + w] = s;
}

@compute @workgroup_size(WG)
fn norm(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.count; i += WG) { s += normPartials[i]; }
  let total = workgroupSum(s, lid);
  if (lid == 0u) {
    let n = sqrt(total);
    stats[0] = n;
    stats[1] = select(1.0, min(1.0, p.maxNorm / (n + 1e-6)), p.maxNorm > 0.0);
  }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid;
  if (i < p.len) { gOut[i] = gOut[i] * coefIn[1]; }
}
