// float64 references for head-gate.ts: out[t, h, d] = s · Σ_j [topIds[t, j] = h / headsPerGroup]·topW[t, j] · att[t, h, d],
// and its gradient with respect to topW.

export function headGateRef(
  att: ArrayLike<number>, topIds: ArrayLike<number>, topW: ArrayLike<number>,
  T: number, heads: number, D: number, kMax: number, headsPerGroup: number, scale: number,
): Float64Array {
  const out = new Float64Array(T * heads * D);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      let w = 0;
      for (let j = 0; j < kMax; j++) if (topIds[t * kMax + j] === Math.floor(h / headsPerGroup)) w += topW[t * kMax + j];
      for (let d = 0; d < D; d++) out[(t * heads + h) * D + d] = scale * w * att[(t * heads + h) * D + d];
    }
  }
  return out;
}

/** dTopW[t, j] = s · Σ_{h : h / headsPerGroup = topIds[t, j]} Σ_d att[t, h, d] · dOut[t, h, d]; 0 for an id past the last group (NONE). */
export function headGateWeightGradRef(
  att: ArrayLike<number>, dOut: ArrayLike<number>, topIds: ArrayLike<number>,
  T: number, heads: number, D: number, kMax: number, headsPerGroup: number, scale: number,
): Float64Array {
  const dTopW = new Float64Array(T * kMax);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < kMax; j++) {
      const g = topIds[t * kMax + j];
      if (g >= heads / headsPerGroup) continue;
      let acc = 0;
      for (let h = g * headsPerGroup; h < (g + 1) * headsPerGroup; h++) {
        for (let d = 0; d < D; d++) acc += att[(t * heads + h) * D + d] * dOut[(t * heads + h) * D + d];
      }
      dTopW[t * kMax + j] = scale * acc;
    }
  }
  return dTopW;
}
