// float64 references for rope.ts.

/** Turns each pair of x [T, heads, headDim] by sign·(pos0 + t)·θ^(−2i/headDim). */
function rotateRef(
  x: ArrayLike<number>, T: number, heads: number, headDim: number, pos0: number, theta: number, interleaved: boolean, sign: 1 | -1,
): Float64Array {
  const y = Float64Array.from(x);
  const half = headDim / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const angle = sign * (pos0 + t) * theta ** ((-2 * i) / headDim);
        const [ia, ib] = interleaved ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
        const a = x[ia], b = x[ib];
        y[ia] = a * Math.cos(angle) - b * Math.sin(angle);
        y[ib] = a * Math.sin(angle) + b * Math.cos(angle);
      }
    }
  }
  return y;
}

/** RoPE of x [T, heads, headDim] at positions pos0 + t; rotate-half pairs, or interleaved (llama2.c). */
export function ropeRef(
  x: ArrayLike<number>, T: number, heads: number, headDim: number, pos0: number, theta: number, interleaved = false,
): Float64Array {
  return rotateRef(x, T, heads, headDim, pos0, theta, interleaved, 1);
}

/** Gradient of ropeRef given dy: the transposed rotation, i.e. the rotation by the negated angle. */
export function ropeBackwardRef(
  dy: ArrayLike<number>, T: number, heads: number, headDim: number, pos0: number, theta: number, interleaved = false,
): Float64Array {
  return rotateRef(dy, T, heads, headDim, pos0, theta, interleaved, -1);
}
