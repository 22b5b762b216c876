// The sweep's Pareto front: a row is on it unless another row has lower-or-equal perplexity and
// activated parameters, better in at least one; the adaptive routers' verdicts; and `moefy sweep` itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adaptiveVerdicts, paretoFront, type ComparisonRow, type SweepReport } from '../src/methods/ladimo/sweep.ts';
import type { LayerPolicy } from '../src/methods/ladimo/router-policy.ts';

test('paretoFront marks exactly the non-dominated rows', () => {
  const rows = [
    { name: 'a', ppl_moe: 10, activated_non_embedding_moe: 100 },
    { name: 'b', ppl_moe: 9, activated_non_embedding_moe: 120 },
    { name: 'c', ppl_moe: 11, activated_non_embedding_moe: 110 }, // dominated by a
    { name: 'd', ppl_moe: 10, activated_non_embedding_moe: 100 }, // ties a: neither dominates
    { name: 'e', ppl_moe: 12, activated_non_embedding_moe: 90 },
  ];
  const front = paretoFront(rows).filter((r) => r.pareto).map((r) => r.name);
  assert.deepEqual(front, ['a', 'b', 'd', 'e']);
});

// Rows as the stories260K sweep gave them: the adaptive router of one construction beaten, of the other on the front.
function row(construction: string, router: ComparisonRow['router'], ppl: number, activated: number, policies: LayerPolicy[]): Omit<ComparisonRow, 'pareto'> {
  return {
    construction, router, layers: [3, 4], ppl_dense: 36.3, ppl_moe: ppl, agreement: 0.8, kl: 0.1,
    activated_non_embedding_dense: 227264, activated_non_embedding_moe: activated,
    prefill_tokens_per_s_dense: 1, prefill_tokens_per_s_moe: 1, decode_tokens_per_s_dense: 1, decode_tokens_per_s_moe: 1, policies,
  };
}

test('adaptive verdicts: on the front or beaten by whom, and against the fixed top-k nearest in activated parameters', () => {
  const [c, k] = ['contiguous + random router', 'coactivation + kmeans router'];
  const rows = paretoFront([
    row(c, 'top1', 61.044, 178240, ['top1', 'top1']),
    row(c, 'top2', 43.71, 194752, ['top2', 'top2']),
    row(c, 'top3', 40.143, 211264, ['top3', 'top3']),
    row(c, 'adaptive', 48.283, 194752, ['top1', 'top3']),
    row(k, 'top1', 57.831, 178240, ['top1', 'top1']),
    row(k, 'top2', 42.781, 194752, ['top2', 'top2']),
    row(k, 'top3', 37.589, 211264, ['top3', 'top3']),
    row(k, 'adaptive', 42.205, 194752, ['top1', 'top3']),
  ]);
  const [a, b] = adaptiveVerdicts(rows);
  assert.equal(a.pareto, false);
  assert.deepEqual(a.dominated_by, [`${c}, top2`, `${k}, top2`, `${k}, adaptive`]);
  assert.equal(a.fixed.router, 'top2');
  assert.ok(Math.abs(a.ppl_change - (48.283 / 43.71 - 1)) < 1e-12 && a.activated_change === 0);
  assert.equal(a.sentence, `${c}, adaptive [top1 top3]: perplexity 48.283, is not on the Pareto front: ${c}, top2; ${k}, top2; ${k}, adaptive beat it. ` +
    'Against fixed top2 (43.710): perplexity +10.5%, activated parameters +0.0%.');
  assert.equal(b.pareto, true);
  assert.deepEqual(b.dominated_by, []);
  assert.equal(b.sentence, `${k}, adaptive [top1 top3]: perplexity 42.205, is on the Pareto front. Against fixed top2 (42.781): perplexity −1.3%, activated parameters +0.0%.`);
});

const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

test('moefy sweep on stories260K: the curve over m, each layer alone and routers × constructions agree where they score the same model', { skip, timeout: 900_000 }, () => {
  const example = JSON.parse(readFileSync(fileURLToPath(new URL('../examples/ladimo-stories260K-tiny.json', import.meta.url)), 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'moefy-sweep-'));
  try {
    const file = join(dir, 'spec.json');
    writeFileSync(file, JSON.stringify({
      ...example, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`,
      calibration: { ...example.calibration, tokens: 1500 },
      train: { ...example.train, steps: 10, batchTokens: 128 },
      eval: { ...example.eval, window: 64, maxWindows: 2, throughputTokens: 128, decodeTokens: 4 },
    }));
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../bin/moefy.mjs', import.meta.url)), 'sweep', file, '--json'], { encoding: 'utf8', timeout: 880_000 });
    assert.equal(r.status, 0, r.stderr);
    const { sweep } = JSON.parse(r.stdout) as { sweep: SweepReport };
    const L = 5;   // stories260K's layers
    assert.deepEqual(sweep.curve.map((p) => p.layers), Array.from({ length: L + 1 }, (_, m) => Array.from({ length: m }, (_, i) => L - m + i)));
    assert.equal(sweep.curve[0].ppl_moe, sweep.curve[0].ppl_dense, 'm = 0 is the dense model');
    assert.deepEqual(sweep.sensitivity.map((p) => p.layers), Array.from({ length: L }, (_, l) => [l]));
    // the same layer set under the same router is the same model, wherever the sweep scores it
    assert.equal(sweep.sensitivity[L - 1].ppl_moe, sweep.curve[1].ppl_moe);
    const mine = sweep.comparison.find((c) => c.construction === 'contiguous + random router' && c.router === 'adaptive')!;
    assert.deepEqual(mine.layers, [3, 4]);
    assert.equal(mine.ppl_moe, sweep.curve[2].ppl_moe);
    assert.deepEqual(sweep.comparison.map((c) => `${c.construction}, ${c.router}`), ['contiguous + random router', 'coactivation + kmeans router']
      .flatMap((c) => ['top1', 'top2', 'top3', 'adaptive'].map((k) => `${c}, ${k}`)));
    for (const c of sweep.comparison) if (c.router !== 'adaptive') assert.deepEqual(c.policies, [c.router, c.router]);
    assert.deepEqual(sweep.comparison.map((c) => c.pareto), paretoFront(sweep.comparison).map((c) => c.pareto));
    assert.ok(sweep.comparison.some((c) => c.pareto));
    assert.deepEqual(sweep.adaptive.map((v) => v.construction), ['contiguous + random router', 'coactivation + kmeans router']);
    for (const v of sweep.adaptive) assert.match(v.sentence, v.pareto ? /is on the Pareto front/ : /is not on the Pareto front: .+ beats? it/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
