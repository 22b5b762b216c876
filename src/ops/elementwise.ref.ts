// float64 references for elementwise.ts.

export const addRef = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);

export const addBiasRef = (x: ArrayLike<number>, bias: ArrayLike<number>) => Float64Array.from(x, (v, i) => v + bias[i % bias.length]);

export const scaleRef = (a: ArrayLike<number>, s: number) => Float64Array.from(a, (v) => s * v);
