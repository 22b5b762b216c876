// float64 reference for embedding.ts.

/** Rows ids[t] of table [vocab, dim]; a row of NaN where ids[t] ≥ vocab, as the kernel writes. */
export function embeddingRef(table: ArrayLike<number>, ids: ArrayLike<number>, vocab: number, dim: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    for (let i = 0; i < dim; i++) out[t * dim + i] = ids[t] < vocab ? table[ids[t] * dim + i] : NaN;
  }
  return out;
}

/** Gradient with respect to the table: row v = init[v] (0 without init) + Σ dOut[t] over ids[t] = v. */
export function embeddingBackwardRef(
  ids: ArrayLike<number>, dOut: ArrayLike<number>, vocab: number, dim: number, init?: ArrayLike<number>,
): Float64Array {
  const d = init ? Float64Array.from(init) : new Float64Array(vocab * dim);
  for (let t = 0; t < ids.length; t++) {
    if (ids[t] >= vocab) continue;
    for (let i = 0; i < dim; i++) d[ids[t] * dim + i] += dOut[t * dim + i];
  }
  return d;
}
