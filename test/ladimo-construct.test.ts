// LaDiMo §4.1 expert construction (src/methods/ladimo/construct.ts): the experts together are the dense
// FFN (sum with every expert at weight 1; average for copies), ragged splits pad with exact zeros,
// splits are partitions, balanced and seeded; k-means recovers planted clusters; router init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/data/rng.ts';
import {
  balancedKmeans, coactivationPartition, coactivationProfiles, coactivationSimilarity, constructExperts,
  contiguousPartition, expertRef, expertSizes, ffnActivations, ffnRef, initRouter, kmeans,
  type DenseFfn, type ExpertWeights, type SplitMethod,
} from '../src/methods/ladimo/construct.ts';

function randomFfn(H: number, I: number, seed: number): DenseFfn {
  const rng = new Rng(seed);
  return { H, I, gate_proj: rng.normals(I * H, 0.5), up_proj: rng.normals(I * H, 0.5), down_proj: rng.normals(H * I, 0.5) };
}

/** Max |Σ_e f_e(x) (or its mean for copies) − f(x)| relative to max |f(x)|, over tokens. */
function identityError(ffn: DenseFfn, ex: ExpertWeights, X: Float32Array, average: boolean): number {
  let err = 0;
  for (let t = 0; t < X.length / ffn.H; t++) {
    const x = X.subarray(t * ffn.H, (t + 1) * ffn.H);
    const dense = ffnRef(ffn, x);
    const sum = new Float64Array(ffn.H);
    for (let e = 0; e < ex.nExperts; e++) expertRef(ex, e, x).forEach((v, h) => (sum[h] += v));
    const scale = Math.max(...dense.map(Math.abs));
    for (let h = 0; h < ffn.H; h++) err = Math.max(err, Math.abs((average ? sum[h] / ex.nExperts : sum[h]) - dense[h]) / scale);
  }
  return err;
}

function assertPartition(ex: ExpertWeights, I: number, N: number): void {
  const seen = new Array<number>(I).fill(0);
  const sizes = expertSizes(I, N);
  assert.equal(ex.expertDim, Math.ceil(I / N));
  ex.neurons.forEach((slots, e) => {
    assert.equal(slots.length, ex.expertDim);
    const real = slots.filter((j) => j >= 0);
    assert.equal(real.length, sizes[e], `expert ${e} size`);
    assert.ok(slots.slice(real.length).every((j) => j === -1), 'padding comes last');
    real.forEach((j) => seen[j]++);
  });
  assert.ok(seen.every((c) => c === 1), 'every dense neuron in exactly one expert');
}

test('expertSizes: remainder to the first experts; contiguous split is the paper\'s I_i', () => {
  assert.deepEqual(expertSizes(43, 4), [11, 11, 11, 10]);
  assert.deepEqual(expertSizes(43, 8), [6, 6, 6, 5, 5, 5, 5, 5]);
  assert.deepEqual(expertSizes(688, 8), new Array(8).fill(86));
  const parts = contiguousPartition(688, 8);
  parts.forEach((p, e) => assert.deepEqual(p, Array.from({ length: 86 }, (_, s) => e * 86 + s)));
  assert.throws(() => expertSizes(3, 4), /no neurons/);
});

for (const N of [4, 8]) {
  const H = 12;
  const I = 43;
  const n = 64;
  const ffn = randomFfn(H, I, 100 + N);
  const X = new Rng(7).normals(n * H);
  for (const method of ['contiguous', 'random', 'coactivation'] as SplitMethod[]) {
    test(`${method}, I = ${I}, N = ${N}: Σ experts (all active, weight 1) = dense FFN in float64; partition; zero padding`, () => {
      const ex = constructExperts(ffn, { nExperts: N, method, seed: 3, X });
      assert.equal(ex.gate_proj.length, N * ex.expertDim * H);
      assert.equal(ex.down_proj.length, N * H * ex.expertDim);
      assertPartition(ex, I, N);
      const err = identityError(ffn, ex, X.subarray(0, 16 * H), false);
      assert.ok(err < 1e-13, `relative error ${err}`);
      // padding slots hold exact zeros in all three matrices; real slots are exact copies
      for (let e = 0; e < N; e++) {
        ex.neurons[e].forEach((j, s) => {
          for (let h = 0; h < H; h++) {
            const g = ex.gate_proj[(e * ex.expertDim + s) * H + h];
            const u = ex.up_proj[(e * ex.expertDim + s) * H + h];
            const d = ex.down_proj[(e * H + h) * ex.expertDim + s];
            if (j < 0) assert.ok(g === 0 && u === 0 && d === 0);
            else assert.ok(g === ffn.gate_proj[j * H + h] && u === ffn.up_proj[j * H + h] && d === ffn.down_proj[h * I + j]);
          }
        });
      }
    });
  }
  test(`copy, I = ${I}, N = ${N}: every expert the whole FFN, their average = dense FFN`, () => {
    const ex = constructExperts(ffn, { nExperts: N, method: 'copy' });
    assert.equal(ex.expertDim, I);
    ex.neurons.forEach((slots) => assert.deepEqual(slots, Array.from({ length: I }, (_, j) => j)));
    const err = identityError(ffn, ex, X.subarray(0, 16 * H), true);
    assert.ok(err < 1e-13, `relative error ${err}`);
  });
}

test('random and coactivation splits: same seed → same experts, another seed → another split', () => {
  const ffn = randomFfn(10, 43, 1);
  const X = new Rng(2).normals(48 * 10);
  for (const method of ['random', 'coactivation'] as SplitMethod[]) {
    const a = constructExperts(ffn, { nExperts: 4, method, seed: 11, X });
    const b = constructExperts(ffn, { nExperts: 4, method, seed: 11, X });
    assert.deepEqual(a.neurons, b.neurons);
    assert.deepEqual(a.gate_proj, b.gate_proj);
    assert.deepEqual(a.down_proj, b.down_proj);
    if (method === 'random') {
      const c = constructExperts(ffn, { nExperts: 4, method, seed: 12, X });
      assert.notDeepEqual(a.neurons, c.neurons);
    }
  }
});

test('coactivation: neurons planted in co-firing groups end up in the same expert (both profiles)', () => {
  // H = 4 blocks of 6 input dims; each token lights one block; neuron j reads only block j mod 4, so
  // neurons with the same j mod 4 fire together. 40 neurons → 4 groups of 10.
  const N = 4, B = 6, H = N * B, I = 40, n = 200;
  const rng = new Rng(5);
  const ffn: DenseFfn = { H, I, gate_proj: new Float32Array(I * H), up_proj: new Float32Array(I * H), down_proj: rng.normals(H * I) };
  for (let j = 0; j < I; j++) {
    const blk = j % N;
    for (let i = 0; i < B; i++) {
      ffn.gate_proj[j * H + blk * B + i] = 0.5 + rng.uniform();
      ffn.up_proj[j * H + blk * B + i] = 0.5 + rng.uniform();
    }
  }
  const X = new Float32Array(n * H);
  for (let t = 0; t < n; t++) {
    const blk = rng.int(N);
    for (let i = 0; i < B; i++) X[t * H + blk * B + i] = 0.5 + rng.uniform();
    for (let h = 0; h < H; h++) X[t * H + h] += 0.01 * rng.normal();
  }
  for (const profile of ['abs', 'binary'] as const) {
    const ex = constructExperts(ffn, { nExperts: N, method: 'coactivation', seed: 9, X, coactivation: { profile } });
    for (const part of ex.neurons) {
      const groups = new Set(part.map((j) => j % N));
      assert.equal(groups.size, 1, `${profile}: expert ${JSON.stringify(part)} mixes planted groups`);
      assert.equal(part.length, 10);
    }
  }
  // the similarity the clustering maximises: within-group correlation ≈ 1, across groups < 0
  const act = ffnActivations(ffn, X);
  const S = coactivationSimilarity(coactivationProfiles(act, n, I), I, n);
  assert.ok(S[0 * I + 4] > 0.9 && S[0 * I + 1] < 0, `S within ${S[4]}, across ${S[1]}`);
});

test('balancedKmeans: exact capacities even when the data wants unequal clusters; deterministic', () => {
  // 30 points at one spot, 10 at another, 3 clusters of sizes [14, 13, 13]
  const rng = new Rng(1);
  const d = 3, m = 40;
  const P = new Float32Array(m * d);
  for (let p = 0; p < m; p++) for (let i = 0; i < d; i++) P[p * d + i] = (p < 30 ? (i === 0 ? 1 : 0) : (i === 1 ? 1 : 0)) + 0.05 * rng.normal();
  const sizes = [14, 13, 13];
  const a = balancedKmeans(P, m, d, sizes, new Rng(4));
  const count = [0, 0, 0];
  a.assign.forEach((c) => count[c]++);
  assert.deepEqual(count, sizes);
  assert.deepEqual(balancedKmeans(P, m, d, sizes, new Rng(4)).assign, a.assign);
  // coactivationPartition orders groups so expert e has expertSizes[e] neurons
  const act = new Rng(3).normals(50 * 43);
  const parts = coactivationPartition(act, 50, 43, 8, new Rng(0));
  assert.deepEqual(parts.map((p) => p.length), expertSizes(43, 8));
});

/** Well-separated synthetic clusters: k random directions, points = 5·centre + small noise. */
function plantedClusters(k: number, d: number, per: number, seed: number): { X: Float32Array; label: number[] } {
  const rng = new Rng(seed);
  const centres = rng.normals(k * d);
  const X = new Float32Array(k * per * d);
  const label: number[] = [];
  for (let p = 0; p < k * per; p++) {
    const c = (p * 7) % k; // interleaved, so the order gives nothing away
    label.push(c);
    for (let i = 0; i < d; i++) X[p * d + i] = 5 * centres[c * d + i] + 0.1 * rng.normal();
  }
  return { X, label };
}

/** Same partition up to relabelling. */
function samePartition(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  const ab = new Map<number, number>();
  const ba = new Map<number, number>();
  for (let p = 0; p < a.length; p++) {
    if ((ab.get(a[p]) ?? b[p]) !== b[p] || (ba.get(b[p]) ?? a[p]) !== a[p]) return false;
    ab.set(a[p], b[p]);
    ba.set(b[p], a[p]);
  }
  return true;
}

test('kmeans recovers well-separated clusters (euclidean and cosine), converged and deterministic', () => {
  const { X, label } = plantedClusters(6, 16, 40, 21);
  for (const metric of ['euclidean', 'cosine'] as const) {
    const r = kmeans(X, 16, 6, new Rng(8), { metric });
    assert.ok(r.converged, `${metric}: not converged after ${r.iters}`);
    assert.ok(samePartition(r.assign, label), `${metric}: planted clusters not recovered`);
    assert.deepEqual(kmeans(X, 16, 6, new Rng(8), { metric }).centroids, r.centroids);
  }
});

test('initRouter: random rows N(0, std²); kmeans rows have the random-init norm and route X to its cluster', () => {
  const H = 32, N = 8;
  const std = 0.05;
  const r = initRouter({ nExperts: N, H, method: 'random', std, seed: 1 });
  assert.equal(r.length, N * H);
  const sd = Math.sqrt(r.reduce((s, v) => s + v * v, 0) / r.length);
  assert.ok(Math.abs(sd - std) < 0.15 * std, `sample std ${sd}`);
  assert.deepEqual(initRouter({ nExperts: N, H, method: 'random', std, seed: 1 }), r);

  const { X, label } = plantedClusters(N, H, 25, 4);
  const W = initRouter({ nExperts: N, H, method: 'kmeans', std, seed: 2, X });
  assert.deepEqual(initRouter({ nExperts: N, H, method: 'kmeans', std, seed: 2, X }), W);
  for (let e = 0; e < N; e++) {
    let s = 0;
    for (let h = 0; h < H; h++) s += W[e * H + h] ** 2;
    assert.ok(Math.abs(Math.sqrt(s) - std * Math.sqrt(H)) < 1e-6, `row ${e} norm ${Math.sqrt(s)}`);
  }
  const routed = label.map((_, p) => {
    let best = 0;
    let bv = -Infinity;
    for (let e = 0; e < N; e++) {
      let v = 0;
      for (let h = 0; h < H; h++) v += X[p * H + h] * W[e * H + h];
      if (v > bv) [bv, best] = [v, e];
    }
    return best;
  });
  assert.ok(samePartition(routed, label), 'router argmax does not recover the planted clusters');
  assert.throws(() => initRouter({ nExperts: N, H, method: 'kmeans' }), /needs captured hidden states/);
});
