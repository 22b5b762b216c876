// The MoD head on the tape (ensemble.ts: per-layer RMSNorms, the router on the final normalised state,
// the shared LM head, the mixture loss, chunked over rows) against a float64 reference of the same
// objective: per-token CE and KL, and the gradients of the members' residual states, the norms, W_g, its
// bias and the head against central differences of the reference. Ragged chunks (T = 7 in chunks of 3),
// both mixing spaces, a trainable head.
import type { CheckCase } from '../../ops/check.ts';
import { TOL, relL2 } from '../../ops/check.ts';
import { fdError } from '../../ops/gradcheck.ts';
import type { Rng } from '../../data/rng.ts';
import type { Gpu } from '../../gpu/device.ts';
import { rmsNormRef } from '../../ops/norm.ref.ts';
import { matmulRef } from '../../ops/matmul.ref.ts';
import { modMixRef } from '../../ops/mod-mix.ref.ts';
import type { MixSpace } from '../../ops/mod-mix.ts';
import { rmsNorm, linear } from '../../train/ops.ts';
import { Param, Tape } from '../../train/tape.ts';
import { modHeadLoss } from './ensemble.ts';

interface Case { K: number; T: number; dim: number; V: number; chunkRows: number; mix: MixSpace }

const cases: Case[] = [
  { K: 3, T: 7, dim: 12, V: 37, chunkRows: 3, mix: 'prob' },
  { K: 4, T: 5, dim: 8, V: 50, chunkRows: 5, mix: 'logit' },
];

const EPS = 1e-5;
const ceScale = 0.3, klScale = 0.7;

/** The objective in float64: x = [h_0..h_{K−1} (K·T·dim), norms (K·dim), W_g (K·dim), b (K), head (V·dim)]. */
function objective(c: Case, x: ArrayLike<number>, targets: number[], teacherZ?: Float64Array): { loss: number; ce: Float64Array; kl: Float64Array; z0: Float64Array } {
  const { K, T, dim, V } = c;
  let o = 0;
  const take = (n: number) => Array.prototype.slice.call(x, o, (o += n)) as number[];
  const hs = Array.from({ length: K }, () => take(T * dim));
  const norms = Array.from({ length: K }, () => take(dim));
  const W = take(K * dim), b = take(K), head = take(V * dim);
  const ns = hs.map((h, i) => rmsNormRef(h, norms[i], T, dim, EPS));
  const A = matmulRef(ns[0], W, T, K, dim, false, true).map((v, i) => v + b[i % K]);
  const Z = new Float64Array(K * T * V);
  ns.forEach((n, i) => Z.set(matmulRef(n, head, T, V, dim, false, true), i * T * V));
  const z0 = Z.slice(0, T * V);
  const r = modMixRef(Z, A, targets, K, T, V, c.mix, ceScale, klScale, teacherZ);
  return { loss: r.ce.reduce((s, v) => s + ceScale * v, 0) + r.kl.reduce((s, v) => s + klScale * v, 0), ce: r.ce, kl: r.kl, z0 };
}

async function run(gpu: Gpu, rng: Rng, c: Case) {
  const { K, T, dim, V } = c;
  const hs = Array.from({ length: K }, () => rng.normals(T * dim));
  const norms = Array.from({ length: K }, () => rng.uniforms(dim, 0.5, 1.5));
  const W = rng.normals(K * dim, 0.3), b = rng.normals(K, 0.5), head = rng.normals(V * dim, 0.3);
  const targets = Array.from({ length: T }, () => rng.int(V));
  const P = (name: string, a: Float32Array, shape: number[]) => new Param(name, gpu.upload(a, shape, name), true);
  const ph = hs.map((h, i) => P(`h${i}`, h, [T, dim])), pn = norms.map((n, i) => P(`norm${i}`, n, [dim]));
  const pW = P('W_g', W, [K, dim]), pb = P('b', b, [K]), pHead = P('head', head, [V, dim]);
  const all = [...ph, ...pn, pW, pb, pHead];
  const tg = gpu.upload(Uint32Array.from(targets), [T], 'targets');
  const ce = gpu.tensor([T], 'f32', 'ce'), kl = gpu.tensor([T], 'f32', 'kl');
  const t = new Tape(gpu, true);
  try {
    const ns = ph.map((p, i) => rmsNorm(t, t.param(p), t.param(pn[i]), EPS));
    const router = linear(t, ns[0], { weight: t.param(pW), bias: t.param(pb) });
    modHeadLoss(t, ns, router, t.param(pHead), tg, { mix: c.mix, chunkRows: c.chunkRows }, { train: true, ceScale, klScale, out: { ce, kl, offset: 0 } });
    t.backward();
    const x = Float64Array.from([...hs, ...norms, W, b, head].flatMap((a) => Array.from(a)));
    const ref = objective(c, x, targets);
    const outputs: Record<string, number> = { ce: relL2(await ce.read(), ref.ce), kl: relL2(await kl.read(), ref.kl) };
    // the KL's teacher is held at its value, as the stop-gradient does
    const loss = (y: Float64Array) => objective(c, y, targets, ref.z0).loss;
    let off = 0;
    for (const p of all) {
      const n = p.value.size;
      const g = new Float64Array(x.length);
      g.set((await p.grad!.read()) as Float32Array, off);
      // probes restricted to this parameter's coordinates: differences of the others are not compared
      const sub = (y: Float64Array) => {
        const z = Float64Array.from(x);
        z.set(y, off);
        return loss(z);
      };
      outputs[p.name] = fdError(sub, x.subarray(off, off + n), g.subarray(off, off + n), rng, 12, 1e-4);
      off += n;
    }
    return { err: Math.max(...Object.values(outputs).map((e) => (Number.isNaN(e) ? Infinity : e))), outputs };
  } finally {
    t.release();
    for (const p of all) p.release();
    for (const u of [tg, ce, kl]) u.release();
  }
}

export const ensembleChecks: CheckCase[] = cases.map((c) => ({
  family: 'mod',
  name: `ensemble head on the tape vs float64 differences: ${c.mix}, K ${c.K}, T ${c.T} in chunks of ${c.chunkRows}, dim ${c.dim}, vocab ${c.V}`,
  tol: TOL.grad,
  run: (gpu, rng) => run(gpu, rng, c),
}));
