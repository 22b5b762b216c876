// Adam / AdamW step, in place, for every element i of flat tensors of len elements
// (AdamW: Loshchilov & Hutter, arXiv:1711.05101, Algorithm 2; Adam: Kingma & Ba, arXiv:1412.6980, Alg. 1):
//   param ← param·decay                        decay = 1 − lr·weightDecay (decoupled; 1 gives Adam)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   param ← param − stepSize·m / (√v·rsqrtBc2 + eps)
// with the bias corrections folded in on the host, in float64: stepSize = lr/(1 − β1^t),
// rsqrtBc2 = 1/√(1 − β2^t); the same arithmetic as torch.optim.AdamW. 1 − β comes from the host too:
// in f32, 1 − f32(0.999) is off by 1.3e-5 relative, which would bias v by as much.
// grad: [len] read; param, m, v: [len] read_write. One element per thread, workgroups over a 2-D grid.

struct Params {
  len: u32,
  beta1: f32, beta2: f32,
  oneMinusBeta1: f32, oneMinusBeta2: f32,
  eps: f32,
  decay: f32, stepSize: f32, rsqrtBc2: f32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * WG + lid;
  if (i >= p.len) { return; }
  let g = grad[i];
  let mi = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[i] + p.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * p.decay - p.stepSize * mi / (sqrt(vi) * p.rsqrtBc2 + p.eps);
}
