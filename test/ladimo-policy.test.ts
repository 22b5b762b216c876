// LaDiMo Appendix A adaptive router (src/methods/ladimo/router-policy.ts): the type-7 quantile, global
// and local α/β, every Table 1 cell from synthetic w_m distributions, ties, the token-wise dynamic k at
// its thresholds (and its agreement with the MoE reference router), the histogram.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/data/rng.ts';
import { routeRef } from '../src/ops/moe.ref.ts';
import {
  decideRouterPolicy, dynamicK, histogram, policyKShare, quantile, tablePolicy,
} from '../src/methods/ladimo/router-policy.ts';

/** m evenly spaced samples on [lo, hi] (a deterministic uniform distribution). */
function grid(lo: number, hi: number, m = 401): Float32Array {
  return Float32Array.from({ length: m }, (_, t) => lo + ((hi - lo) * t) / (m - 1));
}

test('quantile: type 7 (numpy linear) on known data', () => {
  assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75);
  assert.equal(quantile([4, 1, 3, 2], 0.75), 3.25);
  assert.equal(quantile([1, 2, 3, 4], 0), 1);
  assert.equal(quantile([1, 2, 3, 4], 1), 4);
  assert.equal(quantile([7], 0.3), 7);
  assert.ok(Math.abs(quantile(grid(0, 1), 0.9) - 0.9) < 1e-7);
  assert.throws(() => quantile([], 0.5), /no samples/);
});

test('α, β satisfy P(w ≥ α) ≈ pU and P(w ≤ β) ≈ pE on pooled samples; pU = pE = 0.25 gives the quartiles', () => {
  const rng = new Rng(3);
  const layers = [0, 1, 2].map(() => Float32Array.from({ length: 4000 }, () => 0.125 + 0.875 * rng.uniform() ** 2));
  const pooled = layers.flatMap((w) => [...w]);
  for (const [pU, pE] of [[0.25, 0.25], [0.1, 0.3]]) {
    const p = decideRouterPolicy(layers, { pU, pE });
    const above = pooled.filter((w) => w >= p.alpha).length / pooled.length;
    const below = pooled.filter((w) => w <= p.beta).length / pooled.length;
    assert.ok(Math.abs(above - pU) < 1e-3, `P(w ≥ α) = ${above}`);
    assert.ok(Math.abs(below - pE) < 1e-3, `P(w ≤ β) = ${below}`);
    assert.equal(p.alpha, Math.fround(quantile(pooled, 1 - pU)));
    assert.equal(p.beta, Math.fround(quantile(pooled, pE)));
    p.layers.forEach((l, i) => {
      assert.equal(l.alphaI, Math.fround(quantile(layers[i], 1 - pU)));
      assert.equal(l.betaI, Math.fround(quantile(layers[i], pE)));
    });
  }
});

test('Table 1: synthetic layers hit each of the four cells', () => {
  // uniform w_m on: [0.5, 0.9] (high: αI > α, βI > β), [0.1, 0.5] (low), [0.4, 0.6] (narrow), [0.05, 0.95] (wide).
  // Pooled quartiles: α ≈ 0.638, β ≈ 0.362 (the mixture is symmetric about 0.5).
  const samples = [grid(0.5, 0.9), grid(0.1, 0.5), grid(0.4, 0.6), grid(0.05, 0.95)];
  const p = decideRouterPolicy(samples, { pU: 0.25, pE: 0.25, layers: [4, 5, 6, 7] });
  assert.ok(Math.abs(p.alpha - 0.638) < 0.01 && Math.abs(p.beta - 0.362) < 0.01, `α ${p.alpha}, β ${p.beta}`);
  assert.deepEqual(p.layers.map((l) => [l.layer, l.policy]), [[4, 'top1'], [5, 'top3'], [6, 'top2'], [7, 'dynamic']]);
  const [hi, lo, narrow, wide] = p.layers;
  assert.ok(hi.alphaI > p.alpha && hi.betaI > p.beta);
  assert.ok(lo.alphaI < p.alpha && lo.betaI < p.beta);
  assert.ok(narrow.alphaI < p.alpha && narrow.betaI > p.beta);
  assert.ok(wide.alphaI > p.alpha && wide.betaI < p.beta);
  assert.ok(Math.abs(wide.alphaI - 0.725) < 1e-6 && Math.abs(wide.betaI - 0.275) < 1e-6);
  // static layers send every token to k experts; the dynamic layer splits ≈ 25% / 50% / 25%
  assert.deepEqual(hi.kShare, [1, 0, 0]);
  assert.deepEqual(lo.kShare, [0, 0, 1]);
  assert.deepEqual(narrow.kShare, [0, 1, 0]);
  wide.kShare.forEach((s, i) => assert.ok(Math.abs(s - [0.25, 0.5, 0.25][i]) < 0.01, `kShare ${wide.kShare}`));
  assert.equal(wide.samples, 401);
});

test('Table 1 ties: αI == α counts as αI < α, βI == β as βI > β (towards top-2)', () => {
  assert.equal(tablePolicy(0.6, 0.3, 0.6, 0.3), 'top2');
  assert.equal(tablePolicy(0.6, 0.2, 0.6, 0.3), 'top3');
  assert.equal(tablePolicy(0.7, 0.3, 0.6, 0.3), 'top1');
  assert.equal(tablePolicy(0.7, 0.2, 0.6, 0.3), 'dynamic');
  // one profiled layer is its own pool: αI = α, βI = β → top-2
  const p = decideRouterPolicy([grid(0.2, 0.9)], { pU: 0.25, pE: 0.25 });
  assert.equal(p.layers[0].alphaI, p.alpha);
  assert.equal(p.layers[0].policy, 'top2');
});

test('dynamic k at the thresholds: w ≥ αI → 1, w ≤ βI → 3, between → 2; agrees with the MoE reference router', () => {
  const alphaI = Math.fround(0.7), betaI = Math.fround(0.3);
  const up = (v: number) => v + 2 ** -24, down = (v: number) => v - 2 ** -24;
  assert.equal(dynamicK(alphaI, alphaI, betaI), 1);
  assert.equal(dynamicK(up(alphaI), alphaI, betaI), 1);
  assert.equal(dynamicK(down(alphaI), alphaI, betaI), 2);
  assert.equal(dynamicK(up(betaI), alphaI, betaI), 2);
  assert.equal(dynamicK(betaI, alphaI, betaI), 3);
  assert.equal(dynamicK(down(betaI), alphaI, betaI), 3);
  assert.equal(dynamicK(0.5, 0.5, 0.5), 1); // αI = βI: the αI test comes first
  assert.deepEqual(policyKShare([alphaI, 0.5, betaI, 0.1], 'dynamic', alphaI, betaI), [0.25, 0.25, 0.5]);

  // routeRef's token-wise k (src/ops/moe.ref.ts) on random logits uses the same rule
  const rng = new Rng(9);
  const T = 200, E = 8;
  const logits = rng.normals(T * E, 1.5);
  const r = routeRef(logits, T, E, { dynamic: { alpha: alphaI, beta: betaI } });
  for (let t = 0; t < T; t++) {
    let wm = 0;
    for (let e = 0; e < E; e++) wm = Math.max(wm, r.probs[t * E + e]);
    assert.equal(r.k[t], dynamicK(wm, alphaI, betaI));
  }
});

test('histogram: fixed bins on [0, 1], 1 in the last bin, out-of-range counted apart, density integrates to 1', () => {
  const h = histogram([0, 0.05, 0.1, 0.5, 0.99, 1, 1.2, -0.1, NaN], 10);
  assert.deepEqual(h.edges, [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  assert.deepEqual(h.counts, [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]);
  assert.equal(h.total, 6);
  assert.equal(h.outOfRange, 3);
  assert.ok(Math.abs(h.density.reduce((s, v) => s + v / 10, 0) - 1) < 1e-12);
  assert.equal(histogram(grid(0, 1, 1000)).counts.length, 20);
});

test('bad input is refused', () => {
  assert.throws(() => decideRouterPolicy([], { pU: 0.25, pE: 0.25 }), /no layers/);
  assert.throws(() => decideRouterPolicy([grid(0, 1)], { pU: 1.5, pE: 0.25 }), /pU/);
  assert.throws(() => decideRouterPolicy([new Float32Array([0.5, NaN])], { pU: 0.25, pE: 0.25 }), /NaN/);
  assert.throws(() => decideRouterPolicy([grid(0, 1)], { pU: 0.25, pE: 0.25, layers: [1, 2] }), /ids/);
});
