// SwiGLU, the activation of LLaMA's MLP: down_proj(silu(gate_proj(x)) · up_proj(x)). Elementwise:
//   main:     h = silu(g) · u,  silu(g) = g·σ(g)
//   backward: dg = dh · u · σ(g)·(1 + g·(1 − σ(g))),  du = dh · silu(g)
// main: g, u, h of one shape, n elements. With FUSED, g and u are the two halves of one gate‖up
// tensor gu: [rows, 2I] (columns 0..I gate, I..2I up; the MoE expert epilogue layout) bound as both
// G and U, and h: [rows, I].
// backward: g, u, dh, dg, du of one shape, n elements.
// One thread per output element over a 2-D grid of 64-thread workgroups, linearised with num_workgroups.

struct Params {
  n: u32,   // output elements
  I: u32,   // FUSED: columns of h (gu has 2I)
}

override FUSED: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
// main
@group(0) @binding(3) var<storage, read_write> H: array<f32>;
// backward
@group(0) @binding(3) var<storage, read> dH: array<f32>;
@group(0) @binding(4) var<storage, read_write> dG: array<f32>;
@group(0) @binding(5) var<storage, read_write> dU: array<f32>;

// σ(g) without overflow: exp of a non-positive number only.
fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.y * nwg.x * 64u + gid.x;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  var ig = i;
  var iu = i;
  if (FUSED) {
    ig = (i / p.I) * 2u * p.I + i % p.I;
    iu = ig + p.I;
  }
  let g = G[ig];
  H[i] = g * sigmoid(g) * U[iu];
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let g = G[i];
  let s = sigmoid(g);
  let dh = dH[i];
  dG[i] = dh * U[i] * s * (1.0 + g * (1.0 - s));
  dU[i] = dh * g * s;
}
