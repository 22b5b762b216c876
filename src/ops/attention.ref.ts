// float64 reference for attention.ts.

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
      const n = past + t + 1;
      const s = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qo + d] * k[(j * Hkv + kvh) * D + d];
        s[j] = dot * scale;
      }
      const max = s.reduce((a, b) => Math.max(a, b), -Infinity);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += (s[j] = Math.exp(s[j] - max));
      for (let j = 0; j < n; j++) {
        for (let d = 0; d < D; d++) out[qo + d] += (s[j] / sum) * v[(j * Hkv + kvh) * D + d];
      }
    }
  }
  return out;
}
