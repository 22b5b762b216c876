import type { CheckCase } from './check.ts';
import { GEMM_KERNELS, TOL, compare, poisoned } from './check.ts';
import { dot, fdError } from './gradcheck.ts';
import { matmul, matmulBackward } from './matmul.ts';
import { bmmRef, matmulRef } from './matmul.ref.ts';

interface Shape { batch?: number; M: number; N: number; K: number; transA?: boolean; transB?: boolean; broadcastB?: boolean; smoke?: boolean }

const shapes: Shape[] = [
  { M: 64, N: 64, K: 64, smoke: true },
  { M: 1, N: 1, K: 1 },
  { M: 37, N: 61, K: 130, smoke: true },
  { M: 37, N: 61, K: 130, transA: true },
  { M: 37, N: 61, K: 130, transB: true, smoke: true },
  { M: 33, N: 29, K: 17, transA: true, transB: true },
  { M: 128, N: 96, K: 256, transB: true },
  { M: 5, N: 7, K: 4096, transB: true },
  { M: 8, N: 24, K: 4096 },
  { batch: 3, M: 19, N: 45, K: 23 },
  { batch: 4, M: 32, N: 20, K: 48, transB: true, broadcastB: true },
  // VEC4 with ragged edges: the direct kernel's raw interior blocks beside bounds-checked edge blocks
  { M: 76, N: 44, K: 36 },
  { M: 76, N: 44, K: 36, transA: true },
  { M: 77, N: 43, K: 36, transB: true },
  { batch: 2, M: 76, N: 44, K: 36, transA: true, transB: true },
];

function label(s: Shape): string {
  const op = `${s.transA ? 'Aᵀ' : 'A'}·${s.transB ? 'Bᵀ' : 'B'}`;
  return `${op} M${s.M} N${s.N} K${s.K}${s.batch ? ` batch ${s.batch}${s.broadcastB ? ' (B broadcast)' : ''}` : ''}`;
}

// Both kernels on every shape, passed explicitly (matmul's `kernel` option).
const forward: CheckCase[] = shapes.flatMap((s) => GEMM_KERNELS.map((kernel) => ({
  family: 'matmul',
  name: `${label(s)} ${kernel}`,
  tol: TOL.gemm,
  smoke: s.smoke,
  async run(gpu, rng) {
    const batch = s.batch ?? 1;
    const batched = s.batch !== undefined;
    const aShape = s.transA ? [s.K, s.M] : [s.M, s.K];
    const bShape = s.transB ? [s.N, s.K] : [s.K, s.N];
    const A = rng.normals(batch * s.M * s.K);
    const B = rng.normals((s.broadcastB ? 1 : batch) * s.K * s.N);
    const a = gpu.upload(A, batched ? [batch, ...aShape] : aShape, 'A');
    const b = gpu.upload(B, batched && !s.broadcastB ? [batch, ...bShape] : bShape, 'B');
    const out = poisoned(gpu, batched ? [batch, s.M, s.N] : [s.M, s.N]);
    matmul(a, b, { transA: s.transA, transB: s.transB, out, kernel });
    const want = bmmRef(A, B, batch, s.M, s.N, s.K, { transA: s.transA, transB: s.transB, batchB: !s.broadcastB });
    return compare({ C: [out, want] }, [a, b, out]);
  },
})));

const accumulate: CheckCase[] = GEMM_KERNELS.map((kernel) => ({
  family: 'matmul',
  name: `C += 0.5·A·B (accumulate) M23 N18 K41 ${kernel}`,
  tol: TOL.gemm,
  async run(gpu, rng) {
    const [M, N, K] = [23, 18, 41];
    const A = rng.normals(M * K), B = rng.normals(K * N), C0 = rng.normals(M * N);
    const a = gpu.upload(A, [M, K]), b = gpu.upload(B, [K, N]), c = gpu.upload(C0, [M, N]);
    matmul(a, b, { alpha: 0.5, accumulate: true, out: c, kernel });
    const want = matmulRef(A, B, M, N, K, false, false, 0.5).map((v, i) => v + C0[i]);
    return compare({ C: [c, want] }, [a, b, c]);
  },
}));

// dA = dC·Bᵀ, dB = Aᵀ·dC, with the float64 reference gradients checked against finite differences.
const backward: CheckCase = {
  family: 'matmul',
  name: 'backward dA, dB M21 N34 K19 (finite differences)',
  tol: TOL.grad,
  smoke: true,
  async run(gpu, rng) {
    const [M, N, K] = [21, 34, 19];
    const A = rng.normals(M * K), B = rng.normals(K * N), G = rng.normals(M * N);
    const dAref = matmulRef(G, B, M, K, N, false, true);
    const dBref = matmulRef(A, G, K, N, M, true, false);
    const fdA = fdError((x) => dot(G, matmulRef(x, B, M, N, K)), A, dAref, rng);
    const fdB = fdError((x) => dot(G, matmulRef(A, x, M, N, K)), B, dBref, rng);
    const a = gpu.upload(A, [M, K]), b = gpu.upload(B, [K, N]), g = gpu.upload(G, [M, N]);
    const dA = poisoned(gpu, [M, K]), dB = poisoned(gpu, [K, N]);
    matmulBackward(a, b, g, { dA, dB });
    const r = await compare({ dA: [dA, dAref], dB: [dB, dBref] }, [a, b, g, dA, dB]);
    r.outputs.fd_dA = fdA;
    r.outputs.fd_dB = fdB;
    r.err = Math.max(r.err, fdA, fdB);
    return r;
  },
};

export const matmulChecks: CheckCase[] = [...forward, ...accumulate, backward];
