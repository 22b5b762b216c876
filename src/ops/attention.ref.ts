// float64 references for attention.ts.

/** Scores scale·q[qo..]·k[j, kvh] of one query against keys 0..n−1, and their logsumexp. */
function scoreRow(
  q: ArrayLike<number>, k: ArrayLike<number>, qo: number, kvh: number, n: number, Hkv: number, D: number, scale: number,
): { s: Float64Array; lse: number } {
  const s = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qo + d] * k[(j * Hkv + kvh) * D + d];
    s[j] = dot * scale;
  }
  const max = s.reduce((a, b) => Math.max(a, b), -Infinity);
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(s[j] - max);
  return { s, lse: max + Math.log(sum) };
}

/**
 * Causal GQA attention: q [T, Hq, D]; k, v [S, Hkv, D] with S ≥ past + T; query t at position past + t
 * attends to positions 0 .. past + t. Returns [T, Hq, D].
 */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  T: number, past: number, Hq: number, Hkv: number, D: number, scale = 1 / Math.sqrt(D),
): Float64Array {
  const out = new Float64Array(T * Hq * D);
  const G = Hq / Hkv;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / G);
      const qo = (t * Hq + h) * D;
      const { s, lse } = scoreRow(q, k, qo, kvh, past + t + 1, Hkv, D, scale);
      for (let j = 0; j < s.length; j++) {
        const pj = Math.exp(s[j] - lse);
        for (let d = 0; d < D; d++) out[qo + d] += pj * v[(j * Hkv + kvh) * D + d];
      }
    }
  }
  return out;
}

/** logsumexp of the causal scores of each query row of a whole sequence (past 0): [T, Hq]. */
export function attentionLseRef(
  q: ArrayLike<number>, k: ArrayLike<number>, T: number, Hq: number, Hkv: number, D: number, scale = 1 / Math.sqrt(D),
): Float64Array {
  const lse = new Float64Array(T * Hq);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hq; h++) lse[t * Hq + h] = scoreRow(q, k, (t * Hq + h) * D, Math.floor(h / (Hq / Hkv)), t + 1, Hkv, D, scale).lse;
  }
  return lse;
}

/**
 * Gradients of attentionRef over a whole sequence (past 0) given dOut [T, Hq, D]. Per query row, with
 * P = softmax(scores), dP_j = dOut·v_j, Δ = Σ_j P_j·dP_j and dS_j = P_j(dP_j − Δ):
 * dq = scale·Σ_j dS_j·k_j, dk_j += scale·dS_j·q, dv_j += P_j·dOut.
 */
export function attentionBackwardRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dOut: ArrayLike<number>,
  T: number, Hq: number, Hkv: number, D: number, scale = 1 / Math.sqrt(D),
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const dq = new Float64Array(T * Hq * D);
  const dk = new Float64Array(T * Hkv * D);
  const dv = new Float64Array(T * Hkv * D);
  const G = Hq / Hkv;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / G);
      const qo = (t * Hq + h) * D;
      const { s, lse } = scoreRow(q, k, qo, kvh, t + 1, Hkv, D, scale);
      const P = s.map((x) => Math.exp(x - lse));
      const dP = P.map((_, j) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += dOut[qo + d] * v[(j * Hkv + kvh) * D + d];
        return dot;
      });
      const delta = P.reduce((a, pj, j) => a + pj * dP[j], 0);
      for (let j = 0; j <= t; j++) {
        const ds = P[j] * (dP[j] - delta);
        const ko = (j * Hkv + kvh) * D;
        for (let d = 0; d < D; d++) {
          dq[qo + d] += scale * ds * k[ko + d];
          dk[ko + d] += scale * ds * q[qo + d];
          dv[ko + d] += P[j] * dOut[qo + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}
