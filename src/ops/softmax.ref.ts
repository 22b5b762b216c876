// float64 references for softmax.ts. All arrays row-major [rows, n].

/** Per row: max and log Σ exp(x − max), so logsumexp = max + logSumExp. */
function rowLogZ(X: ArrayLike<number>, base: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, X[base + j]);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(X[base + j] - m);
  return m + Math.log(s);
}

export function softmaxRef(X: ArrayLike<number>, rows: number, n: number, log = false): Float64Array {
  const Y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const logZ = rowLogZ(X, r * n, n);
    for (let j = 0; j < n; j++) {
      const ls = X[r * n + j] - logZ;
      Y[r * n + j] = log ? ls : Math.exp(ls);
    }
  }
  return Y;
}

/** loss[r] = logsumexp(X[r]) − X[r, targets[r]]; NaN for a target ≥ n, as the kernel writes. */
export function crossEntropyRef(X: ArrayLike<number>, targets: ArrayLike<number>, rows: number, n: number): Float64Array {
  const loss = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    loss[r] = t < n ? rowLogZ(X, r * n, n) - X[r * n + t] : NaN;
  }
  return loss;
}

/** d(scale·Σ_r loss[r]) / dX = (softmax(X) − onehot(targets))·scale. */
export function crossEntropyGradRef(
  X: ArrayLike<number>, targets: ArrayLike<number>, rows: number, n: number, scale = 1,
): Float64Array {
  const d = softmaxRef(X, rows, n);
  for (let r = 0; r < rows; r++) {
    d[r * n + targets[r]] -= 1;
    for (let j = 0; j < n; j++) d[r * n + j] *= scale;
  }
  return d;
}

/** KL(softmax(P[r]) ‖ softmax(Q[r])) per row = Σ_j p_j·(log p_j − log q_j). */
export function klRef(P: ArrayLike<number>, Q: ArrayLike<number>, rows: number, n: number): Float64Array {
  const lp = softmaxRef(P, rows, n, true), lq = softmaxRef(Q, rows, n, true);
  const kl = new Float64Array(rows);
  for (let i = 0; i < rows * n; i++) kl[Math.floor(i / n)] += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return kl;
}

/** d(scale·Σ_r KL_r) / dQ = (softmax(Q) − softmax(P))·scale; P is a constant. */
export function klGradRef(P: ArrayLike<number>, Q: ArrayLike<number>, rows: number, n: number, scale = 1): Float64Array {
  const sp = softmaxRef(P, rows, n), sq = softmaxRef(Q, rows, n);
  return sq.map((q, i) => (q - sp[i]) * scale);
}
