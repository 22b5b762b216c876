// float64 references for matmul.ts.

/** op(A)·op(B) for one batch item; A, B row-major as stored. */
export function matmulRef(
  A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number,
  transA = false, transB = false, alpha = 1,
): Float64Array {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = transA ? A[k * M + m] : A[m * K + k];
        const b = transB ? B[n * K + k] : B[k * N + n];
        s += a * b;
      }
      C[m * N + n] = alpha * s;
    }
  }
  return C;
}

/** Batched: A [batch, ...], B [batch, ...] (batchA/batchB false broadcasts a 2-D operand). */
export function bmmRef(
  A: ArrayLike<number>, B: ArrayLike<number>, batch: number, M: number, N: number, K: number,
  opts: { transA?: boolean; transB?: boolean; batchA?: boolean; batchB?: boolean; alpha?: number } = {},
): Float64Array {
  const { transA = false, transB = false, batchA = true, batchB = true, alpha = 1 } = opts;
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    const a = Array.prototype.slice.call(A, batchA ? b * M * K : 0, (batchA ? b : 0) * M * K + M * K);
    const bb = Array.prototype.slice.call(B, batchB ? b * K * N : 0, (batchB ? b : 0) * K * N + K * N);
    C.set(matmulRef(a, bb, M, N, K, transA, transB, alpha), b * M * N);
  }
  return C;
}
