// DIVE (arXiv 2506.09351), construction half: the affinity-mining math against hand-computed float64
// cases, FLAP's scores, pruning, bias and pooled statistics on small exact cases, the GPU identities
// (src/methods/dive/dive.check.ts: 100% kept = dense logits; bias compensation keeps the mean output),
// and a reduced run on stories260K with three domains, the same twice for one seed, resumed from its
// checkpoint folder with pieces lost, and with a retraining killed mid-stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { parseSpec, specToJson } from '../src/state/spec.ts';
import { killedRun } from './killed-run.ts';
import { averageLinkage, clusterDomains, cutTree, labelClusters, normaliseAffinity, pearsonRows } from '../src/methods/dive/cluster.ts';
import { compensationBias, flapScores, keptCount, poolStats, topChannels, variance, type ChannelStats } from '../src/methods/dive/importance.ts';
import { columnMomentsRef } from '../src/ops/moments.ref.ts';
import type { DiveMetrics, DiveModelRow } from '../src/methods/dive/run.ts';
import { comparisonLine, diveComparisons } from '../src/methods/dive/report.ts';
import { parseDiveFile } from '../src/state/results-file.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}]: ${a[i]} vs ${b[i]}`);
};

test('affinity normalisation: each column divided into its best (lowest) perplexity', () => {
  close(normaliseAffinity([2, 8, 4, 4], 2), [1, 0.5, 0.5, 1]);
  assert.throws(() => normaliseAffinity([1, 0, 1, 1], 2), /entry \(0, 1\) is 0/);
  assert.throws(() => normaliseAffinity([1, 2, 3], 2), /expected 2×2/);
});

test('Pearson correlation between rows, hand-computed', () => {
  // [1,2,3]~[2,4,6]: 1; [1,2,3]~[3,2,1]: −1; [1,0,0]~[0,1,0]: (−1/3)/(6/9) = −0.5; a constant row: 0
  const R = pearsonRows([1, 2, 3, 2, 4, 6, 3, 2, 1], 3, 3);
  close(R, [1, 1, -1, 1, 1, -1, -1, -1, 1]);
  close(pearsonRows([1, 0, 0, 0, 1, 0, 5, 5, 5], 3, 3), [1, -0.5, 0, -0.5, 1, 0, 0, 0, 1]);
});

test('average linkage: merge order, mean member distances, the tie rule, the cut', () => {
  const points = [0, 1, 5, 6.5];
  const dist = points.flatMap((x) => points.map((y) => Math.abs(x - y)));
  // {0,1} at 1, {5,6.5} at 1.5, then mean(5, 6.5, 4, 5.5) = 5.25
  assert.deepEqual(averageLinkage(dist, 4), [
    { a: 0, b: 1, distance: 1, size: 2 },
    { a: 2, b: 3, distance: 1.5, size: 2 },
    { a: 4, b: 5, distance: 5.25, size: 4 },
  ]);
  assert.deepEqual(cutTree(averageLinkage(dist, 4), 4, 2), [0, 0, 1, 1]);
  assert.deepEqual(cutTree(averageLinkage(dist, 4), 4, 4), [0, 1, 2, 3]);
  assert.deepEqual(cutTree(averageLinkage(dist, 4), 4, 1), [0, 0, 0, 0]);
  // 0–1 and 1–2 tie at 1: the pair with the lower first member merges; then {0,1}–2 = (2 + 1)/2
  const line = [0, 1, 2].flatMap((x) => [0, 1, 2].map((y) => Math.abs(x - y)));
  assert.deepEqual(averageLinkage(line, 3), [{ a: 0, b: 1, distance: 1, size: 2 }, { a: 2, b: 3, distance: 1.5, size: 3 }]);
  // clusters are numbered by their first domain, whatever order the merges came in
  const far = [10, 0, 0.5, 10.2];
  assert.deepEqual(cutTree(averageLinkage(far.flatMap((x) => far.map((y) => Math.abs(x - y))), 4), 4, 2), [0, 1, 1, 0]);
  assert.throws(() => cutTree([], 3, 4), /cannot cut 3 domains into 4 clusters/);
});

test('clustering a perplexity matrix is deterministic, and by labels is contiguous by name', () => {
  // domains 0,1 prune alike (both best on 0,1), 2,3 alike (both best on 2,3)
  const P = [10, 12, 30, 31, 11, 10, 29, 30, 30, 33, 10, 11, 31, 30, 11, 10];
  const a = clusterDomains(P, 4, 2);
  const b = clusterDomains(Float64Array.from(P), 4, 2);
  assert.deepEqual(a.labels, [0, 0, 1, 1]);
  assert.deepEqual(a, b);
  for (let j = 0; j < 4; j++) assert.equal(Math.max(...[0, 1, 2, 3].map((i) => a.normalised[i * 4 + j])), 1);
  assert.deepEqual(labelClusters(17, 8), [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
  assert.deepEqual(labelClusters(3, 3), [0, 1, 2]);
  assert.throws(() => labelClusters(2, 3), /cannot group 2 domains into 3 clusters/);
});

test('FLAP: scores Var·‖W_down[:, j]‖², the top channels, the compensation bias, pooled statistics', () => {
  // X [4 tokens, 3 channels]; W_down [H = 2, I = 3]
  const X = [1, 0, 2, 3, 0, 2, 5, 1, 2, 7, 1, 2];
  const { mean, m2 } = columnMomentsRef(X, 4, 3);
  const s: ChannelStats = { n: 4, mean, m2 };
  close(mean, [4, 0.5, 2]);
  close(variance(s), [20 / 3, 1 / 3, 0]);
  const W = Float32Array.from([1, 2, 3, 1, 0, 4]);
  close(flapScores(s, W, 2, 3), [(20 / 3) * 2, (1 / 3) * 4, 0]);
  assert.deepEqual(topChannels([5, 1, 5, 0], 2), [0, 2]);
  assert.deepEqual(topChannels([1, 3, 2], 1), [1]);
  // channels 1 and 2 pruned: b = W[:,1]·0.5 + W[:,2]·2 = (2·0.5 + 3·2, 0·0.5 + 4·2)
  close(compensationBias(W, 2, 3, [0], mean), [7, 8]);
  close(compensationBias(W, 2, 3, [0, 1, 2], mean), [0, 0]);
  assert.equal(keptCount(688, 0.5), 344);
  assert.equal(keptCount(688, 0.25), 172);
  assert.equal(keptCount(3, 0.01), 1);
  assert.throws(() => keptCount(10, 0), /kept ratio must be in \(0, 1\]/);
  // pooled statistics equal the statistics of the concatenated tokens
  const parts = [X.slice(0, 3), X.slice(3, 9), X.slice(9)].map((x) => ({ n: x.length / 3, ...columnMomentsRef(x, x.length / 3, 3) }));
  const pooled = poolStats(parts);
  assert.equal(pooled.n, 4);
  close(pooled.mean, mean);
  close(pooled.m2, m2);
});

test('GPU identities: channel statistics, 100% kept = dense logits, bias compensation keeps the mean output', async () => {
  const { device, reports } = await runTask('kernelsCheck', { seed: 20261122, filter: ['dive ', 'moments ', 'moe-bias '] });
  assert.ok(reports.length >= 9, `${reports.length} checks ran`);
  for (const r of reports) assert.ok(r.ok, `${r.name}: ${r.err} > ${r.tol} on ${device} ${JSON.stringify(r.outputs)}${r.error ?? ''}`);
});

function spec() {
  const s = parseSpec(JSON.parse(readFileSync(`${root}/examples/dive-stories260K-tiny.json`, 'utf8')));
  return { ...s, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus` };
}

/** The reduced run; with `dir`, its pieces kept in checkpoint.dir (read back where already there). */
const run = (dir = '') => {
  const s = { ...spec(), 'checkpoint.dir': dir };
  return runTask('dive', s, () => {}, [s.model, s.tokenizer, s.data, ...(dir ? [dir] : [])]);
};

test('DIVE reduced run on stories260K: affinity matrix, clusters, every construction retrained in two stages; the same again, and resumed from checkpoint.dir', { skip }, async () => {
  const m: DiveMetrics = await run();
  const D = 3;
  assert.deepEqual(m.domains, ['brown-fiction', 'code', 'math']);
  assert.match(m.stage, /retraining of every construction/);
  assert.ok(m.calibration_tokens.every((n) => n === 256), `calibration tokens ${m.calibration_tokens}`);
  const A = m.affinity!;
  for (const M of [A.ppl, A.normalised, A.correlation]) assert.ok(M.length === D && M.every((r) => r.length === D && r.every(Number.isFinite)));
  for (let j = 0; j < D; j++) assert.equal(Math.max(...A.normalised.map((r) => r[j])), 1);
  for (let i = 0; i < D; i++) assert.equal(A.correlation[i][i], 1);
  assert.equal(A.merges.length, D - 1);
  assert.equal(m.clusters.groups.length, 2);
  assert.deepEqual(m.clusters.groups.flat().sort(), m.domains);
  assert.ok(m.clusters.groups.every((g) => g.length > 0));
  assert.deepEqual(m.label_clusters, [['brown-fiction', 'code'], ['math']]);
  assert.deepEqual(m.models.map((r) => r.name), [
    'dense', 'FLAP 50%',
    'DIVE 1/2', 'DIVE w/o affinity mining 1/2', 'random split (LLaMA-MoE) 1/2',
    'DIVE 2/2', 'DIVE w/o affinity mining 2/2', 'random split (LLaMA-MoE) 2/2',
  ]);
  const I = 172; // stories260K hidden_dim
  for (const r of m.models.slice(1)) {
    assert.ok(Math.abs(r.activated_ffn_share - 0.5) <= 1 / I, `${r.name} activates ${r.activated_ffn_share}`);
    assert.ok(r.ppl.length === D && r.ppl.every((p) => Number.isFinite(p) && p > 1), `${r.name}: ${r.ppl}`);
  }
  const [dense, flap] = m.models;
  assert.ok(flap.ppl_geomean > dense.ppl_geomean, `pruning half of every FFN costs perplexity: ${flap.ppl_geomean} vs dense ${dense.ppl_geomean}`);

  // retraining: stage 1 moved exactly the 5 noisy gates (router and noise weights), stage 2 exactly the
  // expert adapters and the norms;
  // a change to any other weight (the experts' biases included) would have thrown
  assert.equal(dense.retrained, null);
  const L = 5;
  for (const r of m.models.slice(1)) {
    const t = r.retrained!;
    assert.ok(t.ppl.length === D && t.ppl.every((p) => Number.isFinite(p) && p > 1), `${r.name} retrained: ${t.ppl}`);
    // served (adapters merged, inference forward) = trained (adapters apart, training forward)
    t.ppl.forEach((p, i) => assert.ok(Math.abs(p / t.ppl_training_forward[i] - 1) < 1e-3, `${r.name}: served ${p} vs training forward ${t.ppl_training_forward[i]}`));
    // routing analysis: per domain and layer, each expert's share of the assignments
    assert.equal(t.expert_share.length, D);
    for (const layers of t.expert_share) {
      assert.equal(layers.length, L);
      for (const share of layers) {
        assert.equal(share.length, r.experts);
        assert.ok(Math.abs(share.reduce((a, b) => a + b, 0) - 1) < 1e-9 && share.every((x) => x >= 0), `${r.name}: shares ${share}`);
        if (r.top_k === r.experts) assert.ok(share.every((x) => Math.abs(x - 1 / r.experts) < 1e-9), 'every token takes every expert at k = N');
      }
    }
    assert.equal(t.stage2.steps, 4);
    assert.deepEqual(t.stage2.trainable, ['*lora_*', '*norm.weight']);
    // per layer 2 norms + 3 adapted projections × (A, B); the final norm
    assert.equal(t.stage2.tensors_trainable, L * (2 + 3 * 2) + 1, `${r.name}: stage 2 trains ${t.stage2.tensors_trainable} tensors`);
    assert.equal(t.stage2.tensors_changed, t.stage2.tensors_trainable, `${r.name}: every adapter and norm moved in stage 2`);
    if (r.construction === 'flap') {
      assert.equal(t.stage1, null, 'the single-expert FLAP baseline has no router to train');
      continue;
    }
    assert.equal(t.stage1!.steps, 4);
    assert.deepEqual(t.stage1!.trainable, ['*.mlp.gate.weight', '*.mlp.gate.weight_noise.weight']);
    assert.equal(t.stage1!.tensors_trainable, 2 * L);
    assert.equal(t.stage1!.tensors_changed, 2 * L, `${r.name}: stage 1 moved the ${L} routers and their noise weights, nothing else`);
    assert.ok(t.stage1!.tensors_compared > 2 * L + L * 4, 'stage 1 compared every weight, the biases included');
  }
  // the report: each DIVE k/N against FLAP, the random split and the ablation of its k, after retraining
  assert.deepEqual(m.comparisons.map((c) => `${c.dive} | ${c.baseline}`), [
    'DIVE 1/2 | FLAP 50%', 'DIVE 1/2 | random split (LLaMA-MoE) 1/2', 'DIVE 1/2 | DIVE w/o affinity mining 1/2',
    'DIVE 2/2 | FLAP 50%', 'DIVE 2/2 | random split (LLaMA-MoE) 2/2', 'DIVE 2/2 | DIVE w/o affinity mining 2/2',
  ]);
  for (const c of m.comparisons) {
    const [d, b] = [c.dive, c.baseline].map((n) => m.models.find((r) => r.name === n)!.retrained!);
    assert.equal(c.when, 'retrained');
    assert.equal(c.relative, d.ppl_geomean / b.ppl_geomean - 1);
    assert.equal(c.domains_better, d.ppl.filter((p, i) => p < b.ppl[i]).length);
  }
  const stable = (x: DiveMetrics) => ({
    ...x, seconds: null,
    models: x.models.map((r) => ({ ...r, retrained: r.retrained && { ...r.retrained, stage1: r.retrained.stage1 && { ...r.retrained.stage1, seconds: 0 }, stage2: { ...r.retrained.stage2, seconds: 0 } } })),
  });
  // the same seed again, its pieces saved as it goes; then a "crashed" run (its last two models lost)
  // resumed from the folder: the same numbers, the missing pieces recomputed and nothing else
  const dir = mkdtempSync(join(tmpdir(), 'moefy-dive-'));
  try {
    assert.deepEqual(stable(await run(dir)), stable(m));
    const pieces = readdirSync(dir).filter((f) => f.startsWith('dive-')).sort();
    assert.deepEqual(pieces, [...[0, 1, 2].map((i) => `dive-affinity-${i}.json`), ...m.models.map((_, i) => `dive-model-${i}.json`)].sort());
    for (const i of [6, 7]) unlinkSync(join(dir, `dive-model-${i}.json`));
    const t0 = performance.now();
    const resumed = await run(dir);
    assert.deepEqual(stable(resumed), stable(m));
    assert.ok(resumed.seconds.retraining < m.seconds.retraining / 2, `only 2 of 7 retrainings ran again: ${resumed.seconds.retraining.toFixed(1)} s vs ${m.seconds.retraining.toFixed(1)} s (${((performance.now() - t0) / 1000).toFixed(1)} s in all)`);
    // the last model lost again, and its retraining killed once stage 2 saved its step 2 (snapshots every 2
    // steps): the run resumes that model from its stages' snapshots, to the same numbers
    unlinkSync(join(dir, 'dive-model-7.json'));
    const file = `${dir}.json`;   // beside the folder: its own spec.json is the run's identity
    writeFileSync(file, JSON.stringify(specToJson({ ...spec(), 'checkpoint.dir': dir, 'train.checkpointEvery': 2 })));
    await killedRun(['run', file, '--json'], join(dir, 'train-dive-model-7-stage2', 'train-step-00000002.json'));
    const lines: string[] = [];
    const again = await runTask('dive', { ...spec(), 'checkpoint.dir': dir }, (l) => lines.push(l), [spec().model, spec().tokenizer, spec().data, dir]);
    assert.ok(lines.some((l) => /random split \(LLaMA-MoE\) 2\/2, stage 1: resuming from its snapshot at step 4 of 4/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /random split \(LLaMA-MoE\) 2\/2, stage 2: resuming from its snapshot at step [24] of 4/.test(l)), lines.join('\n'));
    assert.deepEqual(stable(again), stable(m));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.json`, { force: true });
  }
});

/** A model row with perplexities `ppl` as constructed and `after` retrained (null: not retrained). */
function row(name: string, construction: DiveModelRow['construction'], k: number, ppl: number[], after: number[] | null): DiveModelRow {
  const geo = (v: number[]) => Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length);
  const retrained = after && { stage1: null, stage2: {} as never, ppl: after, ppl_training_forward: after, expert_share: [], ppl_geomean: geo(after) };
  return { name, construction, experts: construction === 'flap' || construction === 'dense' ? 1 : 4, top_k: k, kept_channels: 8, activated_ffn_share: 0.5, ppl, ppl_geomean: geo(ppl), retrained };
}

test('the report compares each DIVE k/N with FLAP and with the random split and the ablation of its own k, retrained when both were', () => {
  const models = [
    row('dense', 'dense', 1, [10, 10], null),
    row('FLAP 50%', 'flap', 1, [20, 40], [16, 32]),
    row('DIVE 1/4', 'dive', 1, [30, 30], [8, 50]),
    row('random split (LLaMA-MoE) 1/4', 'random', 1, [60, 60], [20, 20]),
    row('DIVE 2/4', 'dive', 2, [25, 25], null),
    row('random split (LLaMA-MoE) 2/4', 'random', 2, [50, 12.5], null),
  ];
  const c = diveComparisons(models);
  assert.deepEqual(c.map((x) => [x.dive, x.baseline, x.when]), [
    ['DIVE 1/4', 'FLAP 50%', 'retrained'],
    ['DIVE 1/4', 'random split (LLaMA-MoE) 1/4', 'retrained'],
    ['DIVE 2/4', 'FLAP 50%', 'constructed'],
    ['DIVE 2/4', 'random split (LLaMA-MoE) 2/4', 'constructed'],
  ]);
  // geomeans: DIVE 1/4 √400 = 20 vs FLAP √512 ≈ 22.63 → 11.6% lower; vs random 20: a tie on the mean, lower on 1 of 2
  assert.ok(Math.abs(c[0].relative - (20 / Math.sqrt(512) - 1)) < 1e-12);
  assert.equal(c[0].domains_better, 1);
  assert.ok(Math.abs(c[1].relative) < 1e-12);
  assert.equal(comparisonLine(c[0]), 'DIVE 1/4 beats FLAP 50% by 11.6% (perplexity 20.00 vs 22.63, lower on 1 of 2 domains), both retrained');
  // as constructed: 25 vs √800 ≈ 28.28 (FLAP), 25 vs 25 (random)
  assert.match(comparisonLine(c[2]), /^DIVE 2\/4 beats FLAP 50% by 11\.6% .*as constructed, before retraining$/);
  assert.equal(comparisonLine({ ...c[3], relative: 0.05 }).split(' (perplexity')[0], 'DIVE 2/4 trails random split (LLaMA-MoE) 2/4 by 5.0%');
});

test('a DIVE results file: moefy run --json output or the metrics alone; anything else is refused with the file and the field', () => {
  const models = [row('dense', 'dense', 1, [10, 10], null), row('FLAP 50%', 'flap', 1, [20, 40], null), row('DIVE 1/4', 'dive', 1, [30, 30], null)];
  const metrics = { stage: 's', domains: ['a', 'b'], calibration_tokens: [1, 1], eval_tokens: [1, 1], affinity: null, clusters: { source: 'labels', groups: [['a'], ['b']] }, label_clusters: [['a'], ['b']], models, seconds: { calibration: 0, affinity: 0, construction: 0, retraining: 0 } };
  const whole = parseDiveFile(JSON.stringify({ spec: { method: 'dive' }, metrics }), 'run.json');
  assert.deepEqual(whole.models, models);
  // a file from before the report: its comparisons are computed on opening
  assert.deepEqual(whole.comparisons, diveComparisons(models));
  assert.deepEqual(parseDiveFile(JSON.stringify(metrics), 'm.json').domains, ['a', 'b']);
  const bad = (doc: unknown, re: RegExp) => assert.throws(() => parseDiveFile(typeof doc === 'string' ? doc : JSON.stringify(doc), 'f.json'), re);
  bad('{', /^Error: f\.json: not JSON/);
  bad({ spec: { method: 'ladimo' }, metrics }, /f\.json: spec\.method is "ladimo"; this page shows runs of method 'dive'/);
  bad({ ...metrics, domains: [] }, /f\.json: metrics\.domains must be a non-empty list of domain names/);
  bad({ ...metrics, affinity: { ppl: [] } }, /f\.json: metrics\.affinity must be null or \{ ppl, normalised, correlation, merges \}/);
  bad({ ...metrics, models: [{ ...models[0], ppl: [1] }] }, /f\.json: metrics\.models\[0\] needs a name and 2 perplexities/);
});
