// Mixture-of-Depths ensemble tuning (src/methods/mod, arXiv:2410.13077) on SwiftShader inside headless
// Chromium: the mixture kernel against float64 (and its gradients against finite differences); the
// head's identities on corpus-llama-7m (k = 0 and all router weight on the final layer reproduce the base
// model, the KL term vanishes when every member is the final normalised state); the built-in problem
// generator; and the four-way comparison at the CI budget (examples/mod-corpus-llama-7m-ci.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { Rng } from '../src/data/rng.ts';
import { parseSpec } from '../src/state/spec.ts';
import { generateDocuments, parseProblems } from '../src/methods/mod/task-data.ts';
import { tokenType } from '../src/methods/mod/evaluate.ts';
import type { ModMetrics } from '../src/methods/mod/run.ts';

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

test('the four-way comparison at the CI budget: structure, parameter counts, a trained MoD', { skip }, async () => {
  const spec = { ...parseSpec(JSON.parse(readFileSync(join(root, 'examples/mod-corpus-llama-7m-ci.json'), 'utf8'))), model, data: corpus };
  const t0 = performance.now();
  const m = await runTask('mod', spec, (msg) => console.log(msg), [model, corpus]) as ModMetrics;
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
    assert.ok(v.train && v.train.steps === spec['train.steps']);
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
});
