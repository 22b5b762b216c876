// Embedding lookup (LLaMA's embed_tokens): out[t, :] = table[ids[t], :].
// table: [vocab, dim]; ids: [T] u32; out: [T, dim].
// The host cannot see ids that live on the GPU, so an id ≥ vocab writes a row of NaN, which every
// later op carries to the loss and logits where it is caught. Rows are copied as u32 bits: a gather
// needs no arithmetic and the NaN is then an exact bit pattern. One thread per output element over a
// 2-D grid of 64-thread workgroups, linearised with num_workgroups.

struct Params {
  T: u32,
  dim: u32,
  vocab: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;       // [vocab, dim] f32 bits
@group(0) @binding(2) var<storage, read> ids: array<u32>;         // [T]
@group(0) @binding(3) var<storage, read_write> out: array<u32>;   // [T, dim] f32 bits

const NAN_BITS = 0x7fc00000u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= p.T * p.dim) { return; }
  let id = ids[i / p.dim];
  var v = NAN_BITS;
  if (id < p.vocab) { v = table[id * p.dim + i % p.dim]; }
  out[i] = v;
}
