// Checks of the Mixture-of-Depths mixture loss (mod-mix.ts) against its float64 reference on fresh random
// inputs: ragged member counts, rows and vocabularies, a chunk in the middle of a longer sequence
// (row0 > 0), both mixing spaces, logits shifted by +90 (only max-shifted statistics survive), outputs
// NaN-poisoned first. The reference's gradients are themselves checked against central differences of its
// forward (the teacher held fixed in the KL, as the stop-gradient does).
import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned, relL2 } from './check.ts';
import { fdError, withFd } from './gradcheck.ts';
import { modMixLogProbs, modMixLoss, modMixLossBackward, type MixSpace } from './mod-mix.ts';
import { modMixRef } from './mod-mix.ref.ts';

interface Shape { K: number; rows: number; n: number; R: number; row0: number; offset?: number; smoke?: boolean }

const shapes: Shape[] = [
  { K: 1, rows: 3, n: 5, R: 3, row0: 0 },
  { K: 3, rows: 4, n: 300, R: 9, row0: 5, smoke: true },
  { K: 5, rows: 7, n: 64, R: 7, row0: 0, offset: 90 },
  { K: 4, rows: 2, n: 4096, R: 6, row0: 1 },
];

const label = (s: Shape, mix: MixSpace) => `${mix} K ${s.K}, rows ${s.row0}..${s.row0 + s.rows - 1} of ${s.R}, n ${s.n}${s.offset ? ` +${s.offset}` : ''}`;

export const modMixChecks: CheckCase[] = (['prob', 'logit'] as const).flatMap((mix) => shapes.map((s): CheckCase => ({
  family: 'mod',
  name: `ensemble mixture loss + gradient, ${label(s, mix)}`,
  tol: TOL.grad,
  smoke: s.smoke && mix === 'prob',
  async run(gpu, rng) {
    const { K, rows, n, R, row0 } = s;
    const Z = rng.normals(K * rows * n, 2).map((x) => x + (s.offset ?? 0));
    const A = rng.normals(R * K, 1.5);
    const tg = Uint32Array.from({ length: R }, () => rng.int(n));
    const ceScale = 0.37, klScale = 0.61;
    const chunk = (a: ArrayLike<number>, w: number) => Array.prototype.slice.call(a, row0 * w, (row0 + rows) * w) as number[];
    const ref = modMixRef(Z, chunk(A, K), chunk(tg, 1), K, rows, n, mix, ceScale, klScale);
    const logits = gpu.upload(Z, [K, rows, n], 'logits'), router = gpu.upload(A, [R, K], 'router'), targets = gpu.upload(tg, [R], 'targets');
    const ce = poisoned(gpu, [R]), kl = poisoned(gpu, [R]), ce2 = poisoned(gpu, [R]), kl2 = poisoned(gpu, [R]);
    const dLogits = poisoned(gpu, [K, rows, n]), dRouter = poisoned(gpu, [R, K]), logProbs = poisoned(gpu, [rows, n]);
    const args = { logits, router, targets, mix, row0 };
    modMixLoss(args, { ce, kl });
    modMixLossBackward({ ...args, ceScale, klScale }, { ce: ce2, kl: kl2, dLogits, dRouter });
    modMixLogProbs(args, logProbs);
    // only the chunk's rows are written: read them back as [rows] by a host slice
    const rowsOf = async (t: typeof ce, w: number) => chunk(await t.read(), w);
    const out = await compare({ dLogits: [dLogits, ref.dLogits], logProbs: [logProbs, ref.logProbs] });
    for (const [name, t, want, w] of [['ce', ce, ref.ce, 1], ['kl', kl, ref.kl, 1], ['ce (grad pass)', ce2, ref.ce, 1], ['kl (grad pass)', kl2, ref.kl, 1], ['dRouter', dRouter, ref.dRouter, K]] as const) {
      const e = relL2(await rowsOf(t, w), want);
      out.outputs[name] = e;
      out.err = Math.max(out.err, Number.isNaN(e) ? Infinity : e);
    }
    for (const t of [logits, router, targets, ce, kl, ce2, kl2, dLogits, dRouter, logProbs]) t.release();
    // the reference's gradients vs central differences of its own objective on a small copy
    const k = Math.min(K, 3), r = Math.min(rows, 2), m = Math.min(n, 7);
    const z = rng.normals(k * r * m, 1), a = rng.normals(r * k, 1), t = Array.from({ length: r }, () => rng.int(m));
    const teacher = z.slice(0, r * m);
    const obj = (zz: ArrayLike<number>, aa: ArrayLike<number>) => {
      const f = modMixRef(zz, aa, t, k, r, m, mix, ceScale, klScale, teacher);
      return f.ce.reduce((x, y) => x + ceScale * y, 0) + f.kl.reduce((x, y) => x + klScale * y, 0);
    };
    const g = modMixRef(z, a, t, k, r, m, mix, ceScale, klScale, teacher);
    return withFd(out, {
      dLogits: fdError((x) => obj(x, a), z, g.dLogits, rng, 40),
      dRouter: fdError((x) => obj(z, x), a, g.dRouter, rng, 40),
    });
  },
})));
