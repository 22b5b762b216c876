// Finite-difference checks for the float64 backward references: the analytic gradient of a scalar loss
// must match central differences of the forward reference. The GPU backward kernels are then compared
// with those verified references (check.ts), so each backward op is tied to its forward's math.
import type { Rng } from '../data/rng.ts';
import type { CheckResult } from './check.ts';

/**
 * Relative L2 error between `grad` and central differences of `loss` at `probes` random coordinates
 * of x (all of them when x is small). `loss` must not keep references to x between calls.
 */
export function fdError(
  loss: (x: Float64Array) => number,
  x: ArrayLike<number>,
  grad: ArrayLike<number>,
  rng: Rng,
  probes = 24,
  h = 1e-5,
): number {
  const xs = Float64Array.from(x);
  const idx = xs.length <= probes ? [...xs.keys()] : Array.from({ length: probes }, () => rng.int(xs.length));
  let num = 0;
  let den = 0;
  for (const i of idx) {
    const x0 = xs[i];
    xs[i] = x0 + h;
    const lp = loss(xs);
    xs[i] = x0 - h;
    const lm = loss(xs);
    xs[i] = x0;
    const fd = (lp - lm) / (2 * h);
    num += (fd - grad[i]) ** 2;
    den += fd * fd;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Σ g_i·y_i: a scalar loss whose gradient with respect to y is g (a random upstream gradient). */
export function dot(g: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += g[i] * y[i];
  return s;
}

/**
 * Folds finite-difference errors of the float64 references into a GPU-vs-reference result: each is
 * reported as fd_<name> and bounds err, so a wrong reference fails the case as a wrong kernel does.
 */
export function withFd(r: CheckResult, fd: Record<string, number>): CheckResult {
  for (const [name, e] of Object.entries(fd)) {
    r.outputs[`fd_${name}`] = e;
    r.err = Math.max(r.err, Number.isNaN(e) ? Infinity : e);
  }
  return r;
}
