// Mixture-of-Depths ensemble tuning (src/methods/mod, arXiv:2410.13077) on SwiftShader inside headless
// Chromium: the mixture kernel against float64 (and its gradients against finite differences); the
// head's identities on corpus-llama-7m (k = 0 and all router weight on the final layer reproduce the base
// model, the KL term vanishes when every member is the final normalised state); the built-in problem
// generator; the report's intervals and verdicts, and a results file read back; and the four-way
// comparison at the CI budget (examples/mod-corpus-llama-7m-ci.json), resumed from its kept variants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { Rng } from '../src/data/rng.ts';
import { parseSpec } from '../src/state/spec.ts';
import { generateDocuments, parseProblems } from '../src/methods/mod/task-data.ts';
import { tokenType } from '../src/methods/mod/evaluate.ts';
import { clearDifference, modVerdicts, wilson } from '../src/methods/mod/report.ts';
import type { ModMetrics, VariantMetrics } from '../src/methods/mod/run.ts';
import { adoptSpec, fileSource, parseModFile, specDifferences } from '../src/state/results-file.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;
const corpus = join(shared, 'data/corpus');
const model = join(shared, 'models/corpus-llama-7m');

test('the built-in generator writes problems of the corpus kinds whose answers are right, the same for a seed', () => {
  const a = generateDocuments(new Rng(3), 20);
  assert.equal(a, generateDocuments(new Rng(3), 20));
  assert.notEqual(a, generateDocuments(new Rng(4), 20));
  const ps = parseProblems(a, 'generated');
  assert.equal(ps.length, 160);
  for (const p of ps) {
    const expr = /(\d+(?: [-+*/] \d+)+) =$/.exec(p.prompt);
    assert.ok(expr, p.prompt);
    // left to right with * and / first, as the problems are written
    assert.equal(Function(`return ${expr[1]}`)(), p.answer, p.prompt);
  }
  const real = parseProblems(readFileSync(join(corpus, 'math.valid.txt'), 'utf8'), 'math.valid.txt');
  assert.equal(real.length, 960);
  assert.deepEqual(real[0], { prompt: 'Pia had 42 coins and gave 15 of them to Eli. How many coins are left? 42 - 15 =', answer: 27 });
  assert.throws(() => parseProblems('no problems here', 'x.txt'), /x\.txt: no arithmetic word problems/);
  assert.deepEqual(['7', ' 42', ' -', '=', ' coins', '.'].map(tokenType), ['digits', 'digits', 'operators', 'operators', 'words', 'other']);
});

/** A scored variant with only what the report reads. */
const scored = (variant: VariantMetrics['variant'], correct: number, ppl = 50): VariantMetrics => ({
  variant, params: { total: 1000, trainable: variant === 'base' ? 0 : 10 }, accuracy: correct / 960, correct, scored: 960, ppl_prose: ppl,
  tokens_per_s: 100, train: null, samples: [], routing: null, eval_seconds: 1,
});

test('the report: Wilson intervals, which differences stand out of the noise, one verdict per MoD variant and reference', () => {
  // Wilson (1927) at z = 1.96: 54/960 → [0.0434, 0.0728]; 0/10 → [0, 0.2775]; symmetric about 1/2
  const [lo, hi] = wilson(54, 960);
  assert.ok(Math.abs(lo - 0.04338) < 1e-4 && Math.abs(hi - 0.07276) < 1e-4, `${lo} ${hi}`);
  const [z0, z1] = wilson(0, 10);
  assert.ok(z0 === 0 && Math.abs(z1 - 0.27753) < 1e-4, `${z0} ${z1}`);
  const [a, b] = wilson(3, 10), [c, d] = wilson(7, 10);
  assert.ok(Math.abs(a - (1 - d)) < 1e-12 && Math.abs(b - (1 - c)) < 1e-12);
  // 960 problems each: 54 vs 60 is noise, 54 vs 100 is not
  assert.equal(clearDifference(scored('mod', 60), scored('base', 54)), false);
  assert.equal(clearDifference(scored('mod', 100), scored('base', 54)), true);
  const lines = modVerdicts({ variants: [scored('base', 54, 85.25), scored('lora', 100, 86), scored('mod', 60, 85.3), scored('mod+lora', 100, 86.1)] });
  assert.deepEqual(lines.map((l) => [l.key, l.outcome]), [['mod vs base', 'better'], ['mod vs lora', 'worse'], ['mod+lora vs base', 'better'], ['mod+lora vs lora', 'even']]);
  assert.equal(lines[0].text, 'MoD alone beats the base model: exact match 6.3% against 5.6% (+0.6 points, within the sampling noise of 960 problems); prose perplexity 85.30 against 85.25.');
  assert.match(lines[1].text, /^MoD alone falls behind LoRA alone: exact match 6\.3% against 10\.4% \(−4\.2 points, a difference beyond chance at 95%\)/);
  assert.match(lines[3].text, /^MoD \+ LoRA ties with LoRA alone: exact match 10\.4% against 10\.4% \(\+0\.0 points\)/);
  assert.deepEqual(modVerdicts({ variants: [scored('base', 1), scored('lora', 2)] }), []);
});

test('a MoD results file reads back, older files get the fields they lack, and a malformed one names what is wrong', () => {
  const variants = [{ ...scored('lora', 100), train: { steps: 3, tokens: 96, seconds: 1, tokens_per_s: 96, evals: [], kl_last: null } }];
  const metrics = { layers: [5, 6], variants };
  const m = parseModFile(JSON.stringify({ spec: { method: 'mod' }, metrics }), 'run.json');
  assert.deepEqual(m.variants[0].train!.curve, []);
  assert.equal(parseModFile(JSON.stringify(metrics), 'm.json').variants[0].correct, 100);
  const bad = (doc: unknown, re: RegExp) => assert.throws(() => parseModFile(JSON.stringify(doc), 'f.json'), re);
  bad({ spec: { method: 'dive' }, metrics }, /f\.json: spec\.method is "dive"; this page shows runs of method 'mod'/);
  bad({ layers: [], variants: [] }, /f\.json: metrics\.variants must be a non-empty list/);
  bad({ layers: [], variants: [{ ...scored('lora', 1), variant: 'qlora' }] }, /f\.json: metrics\.variants\[0\] needs a variant \(base, lora, mod, mod\+lora\)/);
  bad({ layers: [], variants: [{ ...scored('lora', 1), ppl_prose: 'n/a' }] }, /metrics\.variants\[0\] needs/);
  bad({ variants }, /f\.json: metrics\.layers must be a list/);
});

test("a results file's run spec is read as the CLI reads specs and compared with the page's, sources and output folders aside", () => {
  const page = parseSpec({ method: 'mod', model: 'demo', data: 'builtin:brown', train: { steps: 300 } });
  const made = { method: 'mod', model: '/srv/models/7m', data: '/srv/corpus', 'train.steps': 60, 'mod.k': 2, 'checkpoint.dir': '/srv/cp' };
  const src = fileSource(JSON.stringify({ spec: made, metrics: {} }), 'run.json');
  assert.equal(src.specError, null);
  assert.deepEqual(specDifferences(page, src.spec!), ['train.steps', 'mod.k']);
  const adopted = adoptSpec(page, src.spec!);
  assert.deepEqual(specDifferences(adopted, src.spec!), []);
  assert.deepEqual([adopted.model, adopted.data, adopted['checkpoint.dir'], adopted['train.steps']], ['demo', 'builtin:brown', '', 60]);
  assert.deepEqual(fileSource(JSON.stringify({ variants: [] }), 'm.json'), { file: 'm.json', spec: null, specError: null });
  assert.match(fileSource(JSON.stringify({ spec: { version: 9 }, metrics: {} }), 'old.json').specError!, /^old\.json: spec: version 9 is not supported/);
});

test('mod spec fields name themselves when wrong', () => {
  assert.throws(() => parseSpec({ method: 'mod', mod: { mix: 'log' } }), /mod\.mix must be one of prob, logit/);
  assert.throws(() => parseSpec({ mod: { k: 1.5 } }), /mod\.k must be an integer/);
  assert.equal(parseSpec({ method: 'mod' })['mod.variants'], 'base,lora,mod,mod+lora');
});

test("the 'mod' kernel checks: the mixture loss and the head on the tape vs float64 and finite differences", async () => {
  const { reports } = await runTask('kernelsCheck', { filter: ['mod ensemble'] });
  assert.equal(reports.length, 10);
  for (const r of reports) assert.ok(r.ok, `${r.name}: ${r.err} > ${r.tol} ${JSON.stringify(r.outputs)} ${r.error ?? ''}`);
});

test('identities on corpus-llama-7m: k = 0 and all weight on the final layer are the base model; equal members have zero KL', { skip }, async () => {
  const ref = JSON.parse(readFileSync(join(model, 'reference.json'), 'utf8')) as { input_ids: number[] };
  const r = await runTask('modIdentities', { model, ids: ref.input_ids }, (m) => console.log(m), [model]);
  // the training forward (f32, other kernels' order) against the inference forward: f32 rounding only
  assert.ok(r.k0.logProbs < 1e-5 && r.k0.ce < 1e-5, JSON.stringify(r.k0));
  for (const mix of ['prob', 'logit'] as const) assert.ok(r.allFinal[mix].logProbs < 1e-5 && r.allFinal[mix].ce < 1e-5, `${mix} ${JSON.stringify(r.allFinal[mix])}`);
  assert.equal(r.klEqualMembers.maxAbsKl, 0);
  assert.ok(r.klEqualMembers.ce < 1e-5, JSON.stringify(r.klEqualMembers));
});

test('the four-way comparison at the CI budget: structure, parameter counts, a trained MoD; a stopped run resumes from its kept variants', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-mod-'));
  try {
    const spec = { ...parseSpec(JSON.parse(readFileSync(join(root, 'examples/mod-corpus-llama-7m-ci.json'), 'utf8'))), model, data: corpus, 'checkpoint.dir': dir };
    const t0 = performance.now();
    const m = await runTask('mod', spec, (msg) => console.log(msg), [model, corpus, dir]) as ModMetrics;
    console.log(`four-way comparison: ${((performance.now() - t0) / 1000).toFixed(0)} s; ${m.variants.map((v) => `${v.variant} ${v.correct}/${v.scored} ppl ${v.ppl_prose.toFixed(2)}`).join('; ')}`);
    assert.deepEqual(m.variants.map((v) => v.variant), ['base', 'lora', 'mod', 'mod+lora']);
    assert.deepEqual(m.layers, [4, 5, 6]);
    const [base, lora, mod, modLora] = m.variants;
    // LoRA r 8 on q_proj [256, 256] and v_proj [128, 256] of 8 layers; MoD: 3 norms [256], W_g [4, 256], bias [4]
    const loraParams = 8 * 8 * (256 + 256) + 8 * 8 * (256 + 128);
    const modParams = 3 * 256 + 4 * 256 + 4;
    assert.equal(base.params.trainable, 0);
    assert.equal(lora.params.trainable, loraParams);
    assert.equal(mod.params.trainable, modParams);
    assert.equal(modLora.params.trainable, loraParams + modParams);
    assert.ok(m.mod_share_of_lora_params! < 0.05, `MoD trains ${m.mod_share_of_lora_params} of LoRA's parameters`);
    assert.equal(base.train, null);
    for (const v of [lora, mod, modLora]) {
      assert.ok(v.train && v.train.steps === spec['train.steps'] && v.train.curve.length > 0);
      assert.ok(v.train.evals.at(-1)!.loss < v.train.evals[0].loss, `${v.variant}: held-out loss ${v.train.evals[0].loss} → ${v.train.evals.at(-1)!.loss}`);
    }
    for (const v of m.variants) {
      assert.equal(v.scored, spec['mod.evalProblems']);
      assert.ok(v.accuracy >= 0 && v.accuracy <= 1 && v.correct === Math.round(v.accuracy * v.scored));
      assert.ok(Number.isFinite(v.ppl_prose) && v.ppl_prose > 1 && v.tokens_per_s > 0);
      assert.equal(v.routing === null, !v.variant.startsWith('mod'));
    }
    for (const v of [mod, modLora]) {
      const r = v.routing!;
      assert.deepEqual(r.members, ['final', 'layer 4', 'layer 5', 'layer 6']);
      for (const t of ['digits', 'operators', 'words'] as const) {
        assert.ok(r.byType[t].tokens > 0);
        assert.ok(Math.abs(r.byType[t].mean.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${t}: router weights sum to ${r.byType[t].mean}`);
      }
    }

    // each finished variant is kept, its training snapshots gone; without the MoD piece only MoD runs again, to the same numbers
    const kept = readdirSync(dir).filter((f) => f.startsWith('mod-variant-')).sort();
    assert.deepEqual(kept, ['mod-variant-base.json', 'mod-variant-lora.json', 'mod-variant-mod+lora.json', 'mod-variant-mod.json']);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('train-')).flatMap((d) => readdirSync(join(dir, d))), []);
    rmSync(join(dir, 'mod-variant-mod.json'));
    const log: string[] = [];
    const again = await runTask('mod', spec, (msg) => log.push(msg), [model, corpus, dir]) as ModMetrics;
    assert.deepEqual(log.filter((l) => / training \d+ of/.test(l)), [`mod: training ${modParams} of ${mod.params.total} parameters`]);
    const scores = (x: ModMetrics) => x.variants.map((v) => [v.variant, v.correct, v.ppl_prose, v.samples, v.routing, v.train?.evals.map((e) => e.loss), v.train?.curve.map((p) => p.loss)]);
    assert.deepEqual(scores(again), scores(m));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
