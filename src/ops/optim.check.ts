import type { CheckCase } from './check.ts';
import { TOL, compare, relL2 } from './check.ts';
import { adamStep, type AdamOptions } from './optim.ts';
import { adamRef } from './optim.ref.ts';

interface Case { shape: number[]; opts: AdamOptions; smoke?: boolean }

const STEPS = 5;

// Sizes: 1, ragged over one workgroup (37), several workgroups (1000), ragged 2-D (33×129).
const cases: Case[] = [
  { shape: [1], opts: { lr: 1e-2 } },
  { shape: [1000], opts: { lr: 1e-2 } },
  { shape: [37], opts: { lr: 1e-2, weightDecay: 0.1 }, smoke: true },
  { shape: [33, 129], opts: { lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.01 } },
];

const label = (c: Case) => {
  const { lr, beta1, beta2, eps, weightDecay } = c.opts;
  const extra = [beta1 && `β1 ${beta1}`, beta2 && `β2 ${beta2}`, eps && `eps ${eps}`, weightDecay && `wd ${weightDecay}`].filter(Boolean);
  return `${weightDecay ? 'adamW' : 'adam'} [${c.shape.join(', ')}] ${STEPS} steps lr ${lr}${extra.length ? `, ${extra.join(', ')}` : ''}`;
};

// STEPS updates in a row from m = v = 0 with a fresh gradient each step, against the float64 update.
// The parameter is compared as its total change, so the update itself is held to the tolerance.
const steps: CheckCase[] = cases.map((c) => ({
  family: 'optim',
  name: label(c),
  tol: TOL.grad,
  smoke: c.smoke,
  async run(gpu, rng) {
    const len = c.shape.reduce((a, b) => a * b, 1);
    const P0 = rng.normals(len);
    const G = Array.from({ length: STEPS }, () => rng.normals(len));
    const P = Float64Array.from(P0), M = new Float64Array(len), V = new Float64Array(len);
    G.forEach((g, i) => adamRef(P, g, M, V, i + 1, c.opts));
    const param = gpu.upload(P0, c.shape, 'param');
    const m = gpu.upload(new Float32Array(len), c.shape, 'm'), v = gpu.upload(new Float32Array(len), c.shape, 'v');
    // One tensor per step: an upload into a tensor that recorded steps still read would land before them.
    const grads = G.map((g) => gpu.upload(g, c.shape, 'grad'));
    grads.forEach((g, i) => adamStep(param, g, m, v, i + 1, c.opts));
    const got = await param.read();
    const r = await compare({ m: [m, M], v: [v, V] }, [param, m, v, ...grads]);
    r.outputs.dparam = relL2(got.map((p, i) => p - P0[i]), P.map((p, i) => p - P0[i]));
    r.err = Math.max(r.err, r.outputs.dparam);
    return r;
  },
}));

// Out-of-range hyperparameters throw before anything is recorded, naming the op and the value.
const rejects: CheckCase = {
  family: 'optim',
  name: 'adam/adamW reject NaN lr, beta1 = 1, eps = 0, step 0',
  tol: TOL.grad,
  async run(gpu) {
    const t = () => gpu.upload(new Float32Array(3), [3], 'x');
    const [param, grad, m, v] = [t(), t(), t(), t()];
    const message = (step: number, opts: AdamOptions) => {
      try {
        adamStep(param, grad, m, v, step, opts);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    const want: [string, number, AdamOptions, RegExp][] = [
      ['nan_lr', 1, { lr: NaN }, /^adam: lr must be finite/],
      ['beta1_1', 1, { lr: 1e-3, beta1: 1 }, /^adam: beta1 must be in \[0, 1\), got 1/],
      ['eps_0', 1, { lr: 1e-3, eps: 0, weightDecay: 0.1 }, /^adamW: eps must be finite and > 0, got 0/],
      ['step_0', 0, { lr: 1e-3 }, /^adam: step must be an integer/],
    ];
    const outputs = Object.fromEntries(want.map(([k, step, opts, re]) => [k, re.test(message(step, opts)) ? 0 : Infinity]));
    for (const x of [param, grad, m, v]) x.release();
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const optimChecks: CheckCase[] = [...steps, rejects];
