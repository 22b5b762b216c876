// Batched GEMM: C[b] = alpha · op(A[b]) · op(B[b]) (+ C[b] when ACCUMULATE), op = identity or transpose.
// A: [batch, M, K] (or [batch, K, M] when TRANS_A); B: [batch, K, N] (or [batch, N, K] when TRANS_B);
// C: [batch, M, N]. Any M, N, K: edge tiles are bounds-checked. 64×64 output tile per workgroup,
// 16×16 threads with a 4×4 register tile each, K stepped by 16 through workgroup memory.
// VEC4: the contiguous dimension of A and B and the batch strides are multiples of 4, so interior
// quads load as one vec4; otherwise quads are gathered element by element.
// Backward: dA = dC·Bᵀ and dB = Aᵀ·dC are this same kernel with other TRANS flags (see src/ops/matmul.ts).
// direct: the same product with no workgroup memory and no barrier, for software adapters: SwiftShader
// runs a workgroup that has a barrier as one coroutine per 4-lane subgroup, switched at every barrier,
// which costs the tiled kernel more than its arithmetic. One invocation per 8×8 block of C reads op(A)
// and op(B) from memory in 4×4 blocks; 8×8 invocations (a 64×64 block of C) per workgroup.

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

  store(m0 + lid.y * 4u, n0 + lid.x * 4u, wg.z, acc);
}

// C[batch][m0 + i, n0 + j] = alpha·acc[i][j] (+ C when ACCUMULATE), inside C.
fn store(m0: u32, n0: u32, batch: u32, acc: array<vec4<f32>, 4>) {
  let baseC = batch * p.strideC;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n < p.N) {
        let idx = baseC + m * p.N + n;
        var v = p.alpha * acc[i][j];
        if (ACCUMULATE) { v += C[idx]; }
        C[idx] = v;
      }
    }
  }
}

// op(A)[m0 .. m0 + 3, k0 .. k0 + 3] as four vectors over m, one per k; zero outside A. RAW: the block
// lies inside A and VEC4 holds, so every quad is one vec4 load with no bounds arithmetic.
fn blockA(base: u32, m0: u32, k0: u32, RAW: bool) -> array<vec4<f32>, 4> {
  let M = p.M; let K = p.K;
  let vm = remaining(m0, M); let vk = remaining(k0, K);
  if (TRANS_A) {                         // A stored [K, M]: quads run along m
    if (RAW) {
      let i = (base + k0 * M + m0) >> 2u; let s = M >> 2u;
      return array<vec4<f32>, 4>(A[i], A[i + s], A[i + 2u * s], A[i + 3u * s]);
    }
    return array<vec4<f32>, 4>(
      quadA(base + k0 * M + m0, select(0u, vm, vk > 0u)),
      quadA(base + (k0 + 1u) * M + m0, select(0u, vm, vk > 1u)),
      quadA(base + (k0 + 2u) * M + m0, select(0u, vm, vk > 2u)),
      quadA(base + (k0 + 3u) * M + m0, select(0u, vm, vk > 3u)));
  }
  var q: mat4x4<f32>;                    // A stored [M, K]: quads run along k
  if (RAW) {
    let i = (base + m0 * K + k0) >> 2u; let s = K >> 2u;
    q = mat4x4<f32>(A[i], A[i + s], A[i + 2u * s], A[i + 3u * s]);
  } else {
    q = mat4x4<f32>(
      quadA(base + m0 * K + k0, select(0u, vk, vm > 0u)),
      quadA(base + (m0 + 1u) * K + k0, select(0u, vk, vm > 1u)),
      quadA(base + (m0 + 2u) * K + k0, select(0u, vk, vm > 2u)),
      quadA(base + (m0 + 3u) * K + k0, select(0u, vk, vm > 3u)));
  }
  let t = transpose(q);
  return array<vec4<f32>, 4>(t[0], t[1], t[2], t[3]);
}

// op(B)[k0 .. k0 + 3, n0 .. n0 + 3] as four vectors over n, one per k; zero outside B. RAW as in blockA.
fn blockB(base: u32, k0: u32, n0: u32, RAW: bool) -> array<vec4<f32>, 4> {
  let N = p.N; let K = p.K;
  let vn = remaining(n0, N); let vk = remaining(k0, K);
  if (!TRANS_B) {                        // B stored [K, N]: quads run along n
    if (RAW) {
      let i = (base + k0 * N + n0) >> 2u; let s = N >> 2u;
      return array<vec4<f32>, 4>(B[i], B[i + s], B[i + 2u * s], B[i + 3u * s]);
    }
    return array<vec4<f32>, 4>(
      quadB(base + k0 * N + n0, select(0u, vn, vk > 0u)),
      quadB(base + (k0 + 1u) * N + n0, select(0u, vn, vk > 1u)),
      quadB(base + (k0 + 2u) * N + n0, select(0u, vn, vk > 2u)),
      quadB(base + (k0 + 3u) * N + n0, select(0u, vn, vk > 3u)));
  }
  var q: mat4x4<f32>;                    // B stored [N, K]: quads run along k
  if (RAW) {
    let i = (base + n0 * K + k0) >> 2u; let s = K >> 2u;
    q = mat4x4<f32>(B[i], B[i + s], B[i + 2u * s], B[i + 3u * s]);
  } else {
    q = mat4x4<f32>(
      quadB(base + n0 * K + k0, select(0u, vk, vn > 0u)),
      quadB(base + (n0 + 1u) * K + k0, select(0u, vk, vn > 1u)),
      quadB(base + (n0 + 2u) * K + k0, select(0u, vk, vn > 2u)),
      quadB(base + (n0 + 3u) * K + k0, select(0u, vk, vn > 3u)));
  }
  let t = transpose(q);
  return array<vec4<f32>, 4>(t[0], t[1], t[2], t[3]);
}

// acc + op(A)-block · op(B)-block for one k-quad: a[kk][i] = op(A)[m + i, k + kk], b[kk][j] = op(B)[k + kk, n + j].
fn mac(acc: array<vec4<f32>, 4>, a: array<vec4<f32>, 4>, b: array<vec4<f32>, 4>) -> array<vec4<f32>, 4> {
  return array<vec4<f32>, 4>(
    acc[0] + a[0].x * b[0] + a[1].x * b[1] + a[2].x * b[2] + a[3].x * b[3],
    acc[1] + a[0].y * b[0] + a[1].y * b[1] + a[2].y * b[2] + a[3].y * b[3],
    acc[2] + a[0].z * b[0] + a[1].z * b[1] + a[2].z * b[2] + a[3].z * b[3],
    acc[3] + a[0].w * b[0] + a[1].w * b[1] + a[2].w * b[2] + a[3].w * b[3]);
}

// The four 4×4 blocks of an 8×8 block of C after one more k-quad: c[2·i + j] is rows m0 + 4i, columns n0 + 4j.
fn quadStep(c: array<array<vec4<f32>, 4>, 4>, baseA: u32, baseB: u32, m0: u32, n0: u32, k0: u32, RAW: bool)
    -> array<array<vec4<f32>, 4>, 4> {
  let a0 = blockA(baseA, m0, k0, RAW); let a1 = blockA(baseA, m0 + 4u, k0, RAW);
  let b0 = blockB(baseB, k0, n0, RAW); let b1 = blockB(baseB, k0, n0 + 4u, RAW);
  return array<array<vec4<f32>, 4>, 4>(mac(c[0], a0, b0), mac(c[1], a0, b1), mac(c[2], a1, b0), mac(c[3], a1, b1));
}

// An invocation owns an 8×8 block of C, so each loaded block of op(A) and op(B) serves two products.
// On SwiftShader the loads' bounds arithmetic, not the multiply-adds, bounded this kernel: blocks inside
// C with VEC4 read raw quads up to the last whole k-quad (3× faster), the rest checks bounds.
@compute @workgroup_size(8, 8)
fn direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = (wg.y * 8u + lid.y) * 8u;
  let n0 = (wg.x * 8u + lid.x) * 8u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let baseA = wg.z * p.strideA;
  let baseB = wg.z * p.strideB;
  var c: array<array<vec4<f32>, 4>, 4>;
  let interior = VEC4 && m0 + 8u <= p.M && n0 + 8u <= p.N;
  let kRaw = select(0u, p.K & ~3u, interior);
  var k0 = 0u;
  for (; k0 < kRaw; k0 += 4u) { c = quadStep(c, baseA, baseB, m0, n0, k0, true); }
  for (; k0 < p.K; k0 += 4u) { c = quadStep(c, baseA, baseB, m0, n0, k0, false); }
  store(m0, n0, wg.z, c[0]); store(m0, n0 + 4u, wg.z, c[1]);
  store(m0 + 4u, n0, wg.z, c[2]); store(m0 + 4u, n0 + 4u, wg.z, c[3]);
}
