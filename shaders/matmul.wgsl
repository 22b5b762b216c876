// Batched GEMM: C[b] = alpha · op(A[b]) · op(B[b]) (+ C[b] when ACCUMULATE), op = identity or transpose.
// A: [batch, M, K] (or [batch, K, M] when TRANS_A); B: [batch, K, N] (or [batch, N, K] when TRANS_B);
// C: [batch, M, N]. Any M, N, K: edge tiles are bounds-checked. 64×64 output tile per workgroup,
// 16×16 threads with a 4×4 register tile each, K stepped by 16 through workgroup memory.
// VEC4: the contiguous dimension of A and B and the batch strides are multiples of 4, so interior
// quads load as one vec4; otherwise quads are gathered element by element.
// Backward: dA = dC·Bᵀ and dB = Aᵀ·dC are this same kernel with other TRANS flags (see src/ops/matmul.ts).

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,   // elements between batch items (0 broadcasts)
  alpha: f32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override VEC4: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;   // every tensor buffer is 16-byte padded
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

const BM = 64u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<vec4<f32>, 256>;   // [BK][BM/4]: As[k*16 + m/4][m%4]
var<workgroup> Bs: array<vec4<f32>, 256>;   // [BK][BN/4]

fn scalarA(i: u32) -> f32 { return A[i >> 2u][i & 3u]; }
fn scalarB(i: u32) -> f32 { return B[i >> 2u][i & 3u]; }

// Four consecutive elements of A from flat index i, of which `valid` lie in bounds (fewer than 4:
// the rest read as zero). A whole in-bounds quad is one vec4 load.
fn quadA(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return A[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = scalarA(i + j); }
  return v;
}

fn quadB(i: u32, valid: u32) -> vec4<f32> {
  if (VEC4 && valid >= 4u) { return B[i >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < min(valid, 4u); j++) { v[j] = scalarB(i + j); }
  return v;
}

fn remaining(start: u32, end: u32) -> u32 { return select(0u, end - start, end > start); }

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = p.M; let N = p.N; let K = p.K;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let baseA = wg.z * p.strideA;
  let baseB = wg.z * p.strideB;
  let l = lid.y * 16u + lid.x;
  var acc: array<vec4<f32>, 4>;

  for (var k0 = 0u; k0 < K; k0 += BK) {
    // ---- stage a 64×16 tile of op(A) into As (k-major)
    if (TRANS_A) {                       // A stored [K, M]: quads run along m
      let k = l / 16u; let mq = l % 16u;
      let m = m0 + mq * 4u;
      var v = vec4<f32>(0.0);
      if (k0 + k < K) { v = quadA(baseA + (k0 + k) * M + m, remaining(m, M)); }
      As[k * 16u + mq] = v;
    } else {                             // A stored [M, K]: quads run along k
      let r = l / 4u; let kq = l % 4u;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (m0 + r < M) { v = quadA(baseA + (m0 + r) * K + k, remaining(k, K)); }
      for (var j = 0u; j < 4u; j++) { As[(kq * 4u + j) * 16u + r / 4u][r % 4u] = v[j]; }
    }
    // ---- stage a 16×64 tile of op(B) into Bs (k-major)
    if (TRANS_B) {                       // B stored [N, K]: quads run along k
      let c = l / 4u; let kq = l % 4u;
      let k = k0 + kq * 4u;
      var v = vec4<f32>(0.0);
      if (n0 + c < N) { v = quadB(baseB + (n0 + c) * K + k, remaining(k, K)); }
      for (var j = 0u; j < 4u; j++) { Bs[(kq * 4u + j) * 16u + c / 4u][c % 4u] = v[j]; }
    } else {                             // B stored [K, N]: quads run along n
      let k = l / 16u; let nq = l % 16u;
      let n = n0 + nq * 4u;
      var v = vec4<f32>(0.0);
      if (k0 + k < K) { v = quadB(baseB + (k0 + k) * N + n, remaining(n, N)); }
      Bs[k * 16u + nq] = v;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * 16u + lid.y];
      let b = Bs[k * 16u + lid.x];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }

  let baseC = wg.z * p.strideC;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n < N) {
        let idx = baseC + m * N + n;
        var v = p.alpha * acc[i][j];
        if (ACCUMULATE) { v += C[idx]; }
        C[idx] = v;
      }
    }
  }
}
