// LLaMA-MoE v2 (arXiv 2411.15708) construction (src/methods/llama-moe-v2/): the shared expert takes the
// most-used neurons, vanilla and residual MLP MoE with every expert active at the zero router's weight 1/N
// equal the dense FFN in float64 (and do not without the scale factor N), the gate-row clustering recovers
// planted neuron groups, the three router initialisations. On the GPU (identity.check.ts and the kernel
// checks, run through `kernels check`): the neuron statistics, the head gate and the captured attention
// inputs against float64; every layer converted to a vanilla or a residual MLP MoE, or to an attention MoE
// (alone and with the residual MLP MoE), all experts active, reproduces the dense model's logits ≤ 1e-4;
// the training forward over the constructed layers equals the inference forward. Reduced runs on stories260K:
// MLP MoE through both stages, LoRA with the export read back, and the attention MoE trained beside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/data/rng.ts';
import { runTask } from '../src/cli/host.ts';
import { defaultSpec, parseSpec, type RunSpec } from '../src/state/spec.ts';
import { comparedSpecs, type V2Metrics, type V2Variant } from '../src/methods/llama-moe-v2/run.ts';
import { comparisonLines } from '../src/methods/llama-moe-v2/report.ts';
import { expertRef, ffnRef, initRouter, type DenseFfn } from '../src/methods/ladimo/construct.ts';
import { activatedShare, constructMlpMoe, mostUsedNeurons, partitionNeurons, type MlpMoe } from '../src/methods/llama-moe-v2/construct.ts';
import { initRouterV2 } from '../src/methods/llama-moe-v2/router.ts';
import type { NeuronStats } from '../src/methods/llama-moe-v2/stats.ts';

function randomFfn(H: number, I: number, seed: number): DenseFfn {
  const rng = new Rng(seed);
  return { H, I, gate_proj: rng.normals(I * H, 0.5), up_proj: rng.normals(I * H, 0.5), down_proj: rng.normals(H * I, 0.5) };
}

function randomStats(I: number, seed: number): NeuronStats {
  const rng = new Rng(seed);
  return { n: 100, threshold: 0.1, frequency: Float64Array.from({ length: I }, () => rng.int(101) / 100), magnitude: Float64Array.from({ length: I }, () => rng.uniform()) };
}

/** Max over tokens of |shared(x) + Σ_e (1/N)·expert_e(x) − f(x)| / max |f(x)|, in float64. */
function identityError(ffn: DenseFfn, moe: MlpMoe, X: Float32Array): number {
  const N = moe.experts.nExperts;
  let err = 0;
  for (let t = 0; t < X.length / ffn.H; t++) {
    const x = X.subarray(t * ffn.H, (t + 1) * ffn.H);
    const dense = ffnRef(ffn, x);
    const y = moe.shared ? ffnRef(moe.shared, x) : new Float64Array(ffn.H);
    for (let e = 0; e < N; e++) expertRef(moe.experts, e, x).forEach((v, h) => (y[h] += v / N));
    const scale = Math.max(...dense.map(Math.abs));
    for (let h = 0; h < ffn.H; h++) err = Math.max(err, Math.abs(y[h] - dense[h]) / scale);
  }
  return err;
}

test('shared expert: the most-used neurons by frequency (ties by magnitude) or by magnitude', () => {
  const stats: NeuronStats = { n: 10, threshold: 1, frequency: Float64Array.of(0.1, 0.5, 0.5, 0.9, 0.2), magnitude: Float64Array.of(1, 2, 3, 0, 2.5) };
  assert.deepEqual(mostUsedNeurons(stats, 2), [2, 3]);
  assert.deepEqual(mostUsedNeurons(stats, 3), [1, 2, 3]);
  assert.deepEqual(mostUsedNeurons(stats, 2, 'magnitude'), [2, 4]);
  assert.throws(() => mostUsedNeurons(stats, 6), /shared neurons: expected an integer in \[0, 5\], got 6/);
});

for (const [kind, N, S] of [['vanilla', 4, 0], ['vanilla', 6, 0], ['residual', 8, 11], ['residual', 6, 13]] as const) {
  test(`${kind} MLP MoE, I = 43, N = ${N}${S ? `, ${S} shared` : ''}: shared + Σ_e (1/N)·expert_e = dense FFN in float64; a partition`, () => {
    const H = 12;
    const I = 43;
    const ffn = randomFfn(H, I, 10 + N);
    const stats = randomStats(I, 3);
    const X = new Rng(7).normals(16 * H);
    const moe = constructMlpMoe(ffn, { kind, nExperts: N, sharedNeurons: S || undefined, stats, partition: 'cluster', seed: 1 });
    assert.equal(moe.scale, N);
    assert.deepEqual(moe.sharedNeurons, mostUsedNeurons(stats, S));
    assert.equal(moe.shared?.I ?? 0, S);
    const seen = new Array<number>(I).fill(0);
    moe.sharedNeurons.forEach((j) => seen[j]++);
    moe.experts.neurons.flat().filter((j) => j >= 0).forEach((j) => seen[j]++);
    assert.ok(seen.every((c) => c === 1), 'every dense neuron in exactly one expert');
    // N a power of two: the scale is exact in f32; N = 6 rounds each scaled down_proj entry once
    const tol = N & (N - 1) ? 1e-6 : 1e-12;
    const err = identityError(ffn, moe, X);
    assert.ok(err < tol, `relative error ${err}`);
    // without the scale factor the routed part is 1/N of what it should be: the identity fails
    const unscaled = constructMlpMoe(ffn, { kind, nExperts: N, sharedNeurons: S || undefined, stats, partition: 'cluster', seed: 1, scale: 1 });
    assert.ok(identityError(ffn, unscaled, X) > 1e-2);
  });
}

test("the default spec's residual MoE activates 50% of the dense FFN (corpus-llama-7m: I = 688)", () => {
  const s = defaultSpec();
  const I = 688;
  const S = Math.round(s['v2.sharedRatio'] * I);
  const moe = constructMlpMoe(randomFfn(4, I, 1), { kind: s['v2.mlp'], nExperts: s['v2.experts'], sharedNeurons: S, stats: randomStats(I, 2), partition: 'random', seed: 0 });
  assert.equal(activatedShare(moe, I, s['v2.topK']), 0.5);
});

test('gate-row clustering recovers planted neuron groups; random partition is seeded', () => {
  const H = 16;
  const groups = 4;
  const per = 6;
  const rng = new Rng(4);
  const dirs = Array.from({ length: groups }, () => rng.normals(H));
  const I = groups * per;
  // neuron j belongs to group j mod 4: its gate row is the group's direction plus small noise
  const gate = new Float32Array(I * H);
  for (let j = 0; j < I; j++) for (let h = 0; h < H; h++) gate[j * H + h] = dirs[j % groups][h] + 0.05 * rng.normal();
  const ffn: DenseFfn = { H, I, gate_proj: gate, up_proj: rng.normals(I * H), down_proj: rng.normals(H * I) };
  const all = Array.from({ length: I }, (_, j) => j);
  const parts = partitionNeurons(ffn, all, groups, 'cluster', new Rng(9));
  for (const p of parts) {
    assert.equal(p.length, per);
    assert.ok(p.every((j) => j % groups === p[0] % groups), `mixed group ${p}`);
  }
  const r1 = partitionNeurons(ffn, all, groups, 'random', new Rng(9));
  assert.deepEqual(r1, partitionNeurons(ffn, all, groups, 'random', new Rng(9)));
  assert.notDeepEqual(r1, partitionNeurons(ffn, all, groups, 'random', new Rng(10)));
});

test('router init: hidden k-means (LaDiMo k-means), random hidden features, random; rows at the random norm', () => {
  const H = 8;
  const N = 4;
  const X = new Rng(5).normals(50 * H);
  const std = 0.02;
  const rowNorm = (W: Float32Array, e: number) => Math.hypot(...W.subarray(e * H, (e + 1) * H));
  const km = initRouterV2({ method: 'hidden-kmeans', nExperts: N, H, X, seed: 2 });
  assert.deepEqual(km, initRouter({ method: 'kmeans', nExperts: N, H, X, seed: 2 }));
  const rf = initRouterV2({ method: 'random-features', nExperts: N, H, X, seed: 2 });
  const picked = new Set<number>();
  for (let e = 0; e < N; e++) {
    assert.ok(Math.abs(rowNorm(rf, e) - std * Math.sqrt(H)) < 1e-6);
    // row e is a hidden state scaled: exactly one row of X is parallel to it
    const t = [...Array(50).keys()].find((i) => {
      const x = X.subarray(i * H, (i + 1) * H);
      const f = rowNorm(rf, e) / Math.hypot(...x);
      return x.every((v, h) => Math.abs(v * f - rf[e * H + h]) < 1e-6);
    });
    assert.ok(t !== undefined, `row ${e} is no hidden state`);
    picked.add(t);
  }
  assert.equal(picked.size, N, 'distinct hidden states');
  assert.deepEqual(rf, initRouterV2({ method: 'random-features', nExperts: N, H, X, seed: 2 }));
  assert.equal(initRouterV2({ method: 'random', nExperts: N, H, seed: 2 }).length, N * H);
  assert.throws(() => initRouterV2({ method: 'random-features', nExperts: N, H }), /needs sampled hidden states/);
  assert.throws(() => initRouterV2({ method: 'hidden-kmeans', nExperts: N, H, X: X.subarray(0, 3 * H) }), /3 hidden states for 4 experts/);
});

test('bad constructions are errors naming what is wrong', () => {
  const ffn = randomFfn(4, 20, 1);
  const stats = randomStats(20, 1);
  assert.throws(() => constructMlpMoe(ffn, { kind: 'residual', nExperts: 4, sharedNeurons: 5, partition: 'cluster' }), /needs the neuron statistics/);
  assert.throws(() => constructMlpMoe(ffn, { kind: 'residual', nExperts: 4, sharedNeurons: 17, stats, partition: 'cluster' }), /shared neurons must be an integer in \[1, 16\]/);
  assert.throws(() => constructMlpMoe(ffn, { kind: 'vanilla', nExperts: 21, partition: 'cluster' }), /v2\.experts 21 > the 20 routed neurons/);
  assert.throws(() => constructMlpMoe(ffn, { kind: 'residual', nExperts: 4, sharedNeurons: 5, stats: randomStats(19, 1), partition: 'cluster' }), /statistics for 19 neurons, the FFN has 20/);
});

test('GPU: neuron statistics and head gate vs float64; vanilla, residual MLP and attention MoE, all experts active = dense logits; attention inputs captured; training forward = inference forward', async () => {
  const { device, reports } = await runTask('kernelsCheck', { seed: 20261122, filter: ['llama-moe-v2 ', 'neuron-stats ', 'head-gate '] });
  assert.ok(reports.length >= 13, `${reports.length} checks ran`);
  for (const r of reports) assert.ok(r.ok, `${r.name}: ${r.err} > ${r.tol} on ${device} ${JSON.stringify(r.outputs)}${r.error ?? ''}`);
});

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

/** The reduced-budget example, its paths resolved from the repo root, with `over` changed. */
function tinyRun(over: Partial<RunSpec> = {}): Promise<V2Metrics> {
  const s = parseSpec(JSON.parse(readFileSync(`${root}/examples/llama-moe-v2-stories260K-tiny.json`, 'utf8')));
  const spec = { ...s, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`, ...over };
  return runTask('llamaMoeV2', spec, () => {}, [spec.model, spec.tokenizer, spec.data, ...(spec['export.dir'] ? [spec['export.dir']] : [])]);
}

test('reduced run on stories260K: residual MLP MoE in 2 layers, scored after construction and after each post-training stage; the same twice', { skip }, async () => {
  const m = await tinyRun();
  assert.deepEqual(m.layers, [3, 4]);
  const k = m.construction;
  assert.equal(k.shared_neurons, 43);   // round(0.25 · 172)
  assert.equal(k.expert_neurons, 33);   // ceil(129 / 4)
  assert.equal(m.activated.mlp_dense, 2 * 3 * 64 * 172);
  assert.equal(m.activated.mlp_moe, 2 * (4 * 64 + 3 * 64 * (43 + 2 * 33)));
  const domains = ['brown-fiction', 'code', 'math'];
  assert.deepEqual(m.dense.map((d) => d.domain), domains);
  assert.deepEqual(m.points.map((p) => p.after), ['construction', 'stage 1', 'stage 2']);
  for (const p of m.points) {
    assert.deepEqual(p.scores.map((s) => s.domain), domains);
    for (const s of p.scores) assert.ok(s.ppl > 1 && Number.isFinite(s.ppl) && s.agreement >= 0 && s.agreement <= 1 && s.kl >= 0, `${p.after} ${JSON.stringify(s)}`);
  }
  // converting costs perplexity before any training: the dense model is the reference
  const [built] = m.points;
  assert.ok(built.scores.every((s, i) => s.ppl > m.dense[i].ppl && s.agreement < 1 && s.kl > 0), 'the converted model differs from the dense one');
  assert.deepEqual(m.stages.map((s) => [s.stage, s.domains, s.replay, s.steps]), [[1, ['brown-fiction'], 0, 4], [2, ['code', 'math', 'brown-fiction'], 0.2, 4]]);
  // each stage's loss curve, and the routed experts' load per layer after the last stage
  assert.deepEqual(m.stages.map((s) => [s.curve.length, s.evals.map((e) => e.step)]), [[4, [0, 4]], [4, [0, 4]]]);
  assert.deepEqual(m.expert_load.map((r) => r.layer), [3, 4]);
  assert.deepEqual(m.attention_load, [], 'dense attention has no head-group load');
  for (const r of m.expert_load) assert.ok(r.share.length === 4 && Math.abs(r.share.reduce((a, b) => a + b, 0) - 1) < 1e-9, `layer ${r.layer}: ${r.share}`);
  // v2.compare: the spec's construction, vanilla at matched activated neurons, random routers; each through stage 1
  assert.deepEqual(m.comparison!.map((v) => [v.name, v.points.map((p) => p.after)]), [
    ['residual, hidden-kmeans routers, top-2 of 4', ['construction', 'stage 1', 'stage 2']],
    ['vanilla, hidden-kmeans routers, top-3 of 4', ['construction', 'stage 1']],
    ['residual, random routers, top-2 of 4', ['construction', 'stage 1']],
  ]);
  const [own, vanilla, random] = m.comparison!;
  assert.equal(own.activated_share, (43 + 2 * 33) / 172);
  assert.equal(vanilla.activated_share, (3 * 43) / 172);   // the closest a vanilla expert count comes to 109 neurons
  assert.deepEqual(random.points[0].scores.length, 3);
  const again = await tinyRun();
  const stable = (x: V2Metrics) => ({ ...x, throughput: null, stages: x.stages.map((s) => ({ ...s, seconds: 0, tokens_per_s: 0 })) });
  assert.deepEqual(stable(again), stable(m));
});

test('LoRA post-training reaches the scores (adapters folded in after each stage), and the export reads back as the run scored it', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-v2-export-'));
  try {
    const m = await tinyRun({ 'v2.compare': false, 'train.lora.rank': 2, 'train.lora.targets': 'q_proj,v_proj,experts.down_proj', 'train.lr': 0.01, 'export.dir': dir });
    // B starts at zero: scores that moved after a stage come from the adapters it trained
    const [built, s1, s2] = m.points.map((p) => p.scores.map((s) => s.ppl));
    assert.ok(s1.some((p, i) => p !== built[i]) && s2.some((p, i) => p !== s1[i]), `LoRA moved the scores: ${built} → ${s1} → ${s2}`);
    assert.ok(m.stages.every((s) => s.params.trainable < s.params.total / 10), 'only adapters trained');
    // the folder: Qwen2-MoE with the residual MoE's shared expert (43 neurons), read back at the run's perplexity
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual([config.model_type, config.shared_expert_intermediate_size, config.num_experts, config.num_experts_per_tok, config.mlp_only_layers], ['qwen2_moe', 43, 4, 2, [0, 1, 2]]);
    assert.ok(existsSync(join(dir, 'model.safetensors')) && existsSync(join(dir, 'moefy.json')));
    const e = m.export!;
    assert.deepEqual(e.ppl_read_back.map((x) => x.domain), m.points[2].scores.map((s) => s.domain));
    assert.ok(e.max_rel_diff <= 1e-4, `read back within ${e.max_rel_diff}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attention MoE: its routers trained beside the MLP MoE in both stages, fewer attention parameters activated, compared with dense attention, exported and read back as scored', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-v2-attention-'));
  try {
    const m = await tinyRun({ 'v2.attention': true, 'v2.attentionTopK': 2, 'export.dir': dir });
    // stories260K: dim 64, 8 heads and 4 KV heads of 8: top-2 of 4 groups keeps half the q/o slices, all of k/v
    const dense = 64 * 64 + 2 * 64 * 32 + 64 * 64;
    assert.equal(m.activated.attention_dense, 2 * dense);
    assert.equal(m.activated.attention, 2 * ((2 / 4) * (2 * 64 * 64) + 2 * 64 * 32 + 4 * 64));
    assert.deepEqual(m.comparison!.map((v) => [v.name, v.attention_top_k, v.points.length]), [
      ['residual, hidden-kmeans routers, top-2 of 4, attention top-2', 2, 3],
      ['vanilla, hidden-kmeans routers, top-3 of 4, attention top-2', 2, 2],
      ['residual, random routers, top-2 of 4, attention top-2', 2, 2],
      ['residual, hidden-kmeans routers, top-2 of 4', null, 2],
    ]);
    // every parameter trains, the two attention routers [4, 64] included (stories260K ties lm_head to the embedding)
    const mlpMoeModel = 512 * 64 + 5 * (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64) + 3 * 3 * 64 * 172 + 2 * (4 * 64 + 3 * 4 * 33 * 64 + 3 * 43 * 64) + 64;
    const total = mlpMoeModel + 2 * 4 * 64;
    assert.deepEqual(m.stages.map((s) => s.params), [{ total, trainable: total }, { total, trainable: total }]);
    const [own, , , denseAttention] = m.comparison!;
    assert.equal(own.activated_attention_share, m.activated.attention / m.activated.attention_dense);
    assert.equal(denseAttention.activated_attention_share, 1);
    // the head-group load after the last stage: per layer, shares of the 4 groups summing to 1
    assert.deepEqual(m.attention_load.map((r) => r.layer), [3, 4]);
    for (const r of m.attention_load) assert.ok(r.share.length === 4 && Math.abs(r.share.reduce((a, b) => a + b, 0) - 1) < 1e-9, `layer ${r.layer}: ${r.share}`);
    // the same MLP MoE with dense attention scores differently as constructed: the attention MoE is in the forward
    assert.ok(own.points[0].scores.every((s, i) => s.ppl !== denseAttention.points[0].scores[i].ppl));
    // the folder lists the attention MoE layers in moefy.json and reads back at the run's perplexity
    const sidecar = JSON.parse(readFileSync(join(dir, 'moefy.json'), 'utf8'));
    assert.deepEqual(sidecar.attention, [{ layer: 3, topK: 2, scale: 4 }, { layer: 4, topK: 2, scale: 4 }]);
    assert.ok(m.export!.max_rel_diff <= 1e-4, `read back within ${m.export!.max_rel_diff}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an attention MoE asking for more head groups than the model has is refused before any work, naming the field', { skip }, async () => {
  await assert.rejects(tinyRun({ 'v2.attention': true, 'v2.attentionTopK': 5 }), /v2\.attentionTopK.*5 head groups per token, but the model has 4 KV head groups/);
});

test('v2.compare: the other MLP kind at the nearest activated neuron count, and the other router initialisation', () => {
  const spec = { ...defaultSpec(), method: 'llama-moe-v2' as const, 'v2.mlp': 'residual' as const, 'v2.experts': 6, 'v2.topK': 2, 'v2.sharedRatio': 0.25 };
  // I 688: shared 172 + 2 experts of 86 = 344 = 50%; vanilla experts of 115 (688 / 6, rounded up) → 3 of them = 345
  assert.deepEqual(comparedSpecs(spec, 688).map((v) => [v.name, v.spec['v2.topK']]), [
    ['vanilla, hidden-kmeans routers, top-3 of 6', 3],
    ['residual, random routers, top-2 of 6', 2],
  ]);
  // from vanilla 2 of 8 (I 688: 2·86 = 172): residual shared 172 leaves 516 in 8 experts of 65 → k = round(0) clamps to 1
  const v = comparedSpecs({ ...spec, 'v2.mlp': 'vanilla', 'v2.experts': 8, 'v2.routerInit': 'random' }, 688);
  assert.deepEqual(v.map((x) => [x.name, x.spec['v2.topK']]), [['residual, random routers, top-1 of 8', 1], ['vanilla, hidden-kmeans routers, top-2 of 8', 2]]);
});

test('the comparison as sentences: what each construction changes, and which is lower after stage 1 by how much, either way', () => {
  const variant = (over: Partial<V2Variant>, s1: number, s2: number): V2Variant => ({
    name: '', mlp: 'residual', router_init: 'hidden-kmeans', experts: 6, top_k: 2, activated_share: 0.5, attention_top_k: 2, activated_attention_share: 0.6,
    points: [
      { after: 'construction', scores: [], ppl_stage1_domains: 999, ppl_stage2_domains: 999 },
      { after: 'stage 1', scores: [], ppl_stage1_domains: s1, ppl_stage2_domains: s2 },
    ],
    ...over,
  });
  const lines = comparisonLines([
    variant({}, 100, 20),
    variant({ mlp: 'vanilla', top_k: 3, activated_share: 0.5015 }, 110, 19),
    variant({ router_init: 'random' }, 100, 25),
    variant({ attention_top_k: null, activated_attention_share: 1 }, 90, 20),
  ]);
  assert.deepEqual(lines, [
    { text: 'residual vs vanilla MLP MoE (50.0% vs 50.1% of the MLP active): after stage 1, 100.00 vs 110.00 on the stage 1 domains (residual lower by 9.1%); 20.00 vs 19.00 on the stage 2 domains (vanilla lower by 5.0%)', ownLower: true },
    { text: 'hidden-kmeans vs random routers: after stage 1, 100.00 vs 100.00 on the stage 1 domains (equal); 20.00 vs 25.00 on the stage 2 domains (hidden-kmeans lower by 20.0%)', ownLower: false },
    { text: 'attention MoE top-2 vs dense attention (60.0% vs 100.0% of attention active): after stage 1, 100.00 vs 90.00 on the stage 1 domains (dense attention lower by 10.0%); 20.00 vs 20.00 on the stage 2 domains (equal)', ownLower: false },
  ]);
});
