// Rotary position embeddings (RoPE), in place on x: [T, heads, headDim] at positions pos0 + t.
// Pair i (0 ≤ i < headDim/2) turns by the angle (pos0 + t)·θ^(−2i/headDim):
//   (a, b) ← (a·cos − b·sin, a·sin + b·cos)
// INVERSE = true turns it back by the same angle, which is also the gradient (the rotation is orthogonal,
// so dx = Rᵀ·dy = R(−angle)·dy):
//   (a, b) ← (a·cos + b·sin, −a·sin + b·cos)
// INTERLEAVED = false: a = x[i], b = x[i + headDim/2]   (Hugging Face rotate_half, modeling_llama.py)
// INTERLEAVED = true:  a = x[2i], b = x[2i + 1]         (llama2.c run.c)
// One thread per pair over a 2-D grid of 64-thread workgroups, linearised with num_workgroups.

struct Params {
  T: u32,
  heads: u32,
  headDim: u32,
  pos0: u32,
  log2Theta: f32,   // log2(θ), computed in float64 on the host
}

override INTERLEAVED: bool = false;
override INVERSE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;   // [T, heads, headDim]

// π/2 in three parts (Cody–Waite): q·PIO2_HI is exact for q < 2^16, i.e. angles below ~10^5 rad; beyond
// that the f32 angle itself is already off by more than its rounding, as in every f32 implementation.
const TWO_OVER_PI = 0.63661977236758134;
const PIO2_HI = 1.5703125;
const PIO2_MID = 4.837512969970703125e-4;
const PIO2_LO = 7.54978995489188216e-8;

// (sin x, cos x) for x ≥ 0 to about 1e-7. WGSL allows sin/cos an absolute error of 2^-11 (and
// SwiftShader is that coarse), too much for RoPE, so: reduce to r in [−π/4, π/4] plus a quadrant,
// then Cephes' sinf/cosf minimax polynomials.
fn sincos(x: f32) -> vec2<f32> {
  let q = round(x * TWO_OVER_PI);
  let r = ((x - q * PIO2_HI) - q * PIO2_MID) - q * PIO2_LO;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let quadrant = u32(q) & 3u;
  var sc = vec2<f32>(s, c);
  if ((quadrant & 1u) == 1u) { sc = vec2<f32>(c, -s); }   // x = r + π/2
  if (quadrant >= 2u) { sc = -sc; }                      // x = r + π
  return sc;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.headDim / 2u;
  let k = gid.y * nwg.x * 64u + gid.x;
  if (k >= p.T * p.heads * half) { return; }
  let i = k % half;
  let vec = k / half;                 // (t, head)
  let t = vec / p.heads;
  let base = vec * p.headDim;
  var ia = base + i;
  var ib = base + i + half;
  if (INTERLEAVED) {
    ia = base + 2u * i;
    ib = ia + 1u;
  }

  let invFreq = exp2(-f32(2u * i) / f32(p.headDim) * p.log2Theta);
  let angle = f32(p.pos0 + t) * invFreq;
  let sc = sincos(angle);
  let s = select(sc.x, -sc.x, INVERSE);
  let c = sc.y;
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * c - b * s;
  x[ib] = a * s + b * c;
}
