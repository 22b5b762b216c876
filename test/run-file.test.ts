// Run files: spec + results as one JSON document; read back exactly, and broken files are errors naming
// the file and the path inside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultSpec } from '../src/state/spec.ts';
import { RunFileError, parseRunFile, runFileText } from '../src/state/run-file.ts';
import type { RunResults } from '../src/worker/pipeline-types.ts';

const histogram = { counts: [0, 3, 5, 2], samples: 10 };

/** Results of every stage, with the non-finite measurements a diverged run can produce. */
function results(): RunResults {
  return {
    capture: { tokens: 4096, layers: [6, 7] },
    distill: [6, 7].map((layer) => ({
      layer,
      mseBefore: 0.5,
      mseFinal: layer === 7 ? Infinity : 0.01,
      relErr: layer === 7 ? NaN : 0.12,
      expertLoad: [0.25, 0.25, 0.5, 0],
      seconds: 1.5,
      curve: [0, 10, 20].map((step) => ({ step, mse: 0.1 / (step + 1), aux: 1.02, total: 0.1 / (step + 1) + 0.01 })),
    })),
    routing: {
      pU: 0.25,
      pE: 0.25,
      alpha: 0.8,
      beta: 0.4,
      layers: [{ layer: 6, histogram, byDomain: [{ domain: 'brown-news', histogram }], alphaI: 0.1, betaI: 0.3, policy: 'dynamic', kShare: [0.5, 0.3, 0.2] }],
    },
    evaluation: {
      ppl_dense: 12.5,
      ppl_moe: Infinity,
      agreement: 0.9,
      kl: 0.05,
      prefill_tokens_per_s_dense: 1000,
      prefill_tokens_per_s_moe: 1200,
      decode_tokens_per_s_dense: 50,
      decode_tokens_per_s_moe: 55,
      activated: { dense: { total: 6_850_000, nonEmbedding: 5_800_000 }, moe: { total: 6_000_000, nonEmbedding: 4_900_000 }, perLayer: [{ layer: 6, dense: 528_384, moe: 264_192 }] },
      eval_tokens: 2048,
    },
    sweep: {
      curve: [{ m: 0, layers: [], ppl: 12.5, agreement: 1, relThroughput: 1, activatedNonEmbedding: 5_800_000 }],
      sensitivity: [{ layer: 6, ppl: 13, agreement: 0.95 }],
      ppl_dense: 12.5,
    },
  };
}

const spec = { ...defaultSpec(), data: 'builtin:brown', seed: 9, 'router.policy': 'top2' as const };

test('a run file reads back its spec, results (Infinity and NaN included) and date', () => {
  const when = new Date('2025-01-02T03:04:05.000Z');
  const text = runFileText(spec, results(), when);
  const doc = JSON.parse(text);
  assert.equal(doc.format, 'moefy-run');
  assert.equal(doc.version, 1);
  assert.equal(doc.spec.router.policy, 'top2');
  assert.equal(doc.results.evaluation.ppl_moe, 'Infinity');
  const back = parseRunFile(text, 'run.json');
  assert.deepEqual(back, { spec, results: results(), createdAt: when.toISOString() });
  // Stages not run yet are null or empty.
  const empty: RunResults = { capture: null, distill: [], routing: null, evaluation: null, sweep: null };
  assert.deepEqual(parseRunFile(runFileText(spec, empty), 'a.json').results, empty);
});

test('broken run files name the file and the path that is wrong', () => {
  const good = () => JSON.parse(runFileText(spec, results(), new Date(0)));
  const edit = (f: (d: ReturnType<typeof good>) => void) => {
    const d = good();
    f(d);
    return JSON.stringify(d);
  };
  const bad: [string, RegExp][] = [
    ['{"format":', /^run\.json: not valid JSON: /],
    ['[1, 2]', /^run\.json: not a MoEfy run file \(expected a JSON object with format 'moefy-run'\)$/],
    [edit((d) => (d.version = 2)), /^run\.json: version 2: made by a newer MoEfy; this build reads run files of version ≤ 1$/],
    [edit((d) => (d.version = '1')), /^run\.json: version must be 1, got "1"$/],
    [edit((d) => (d.createdAt = 'yesterday')), /^run\.json: createdAt must be a date and time \(ISO 8601\), got "yesterday"$/],
    [edit((d) => (d.spec.train.steps = 2.5)), /^run\.json: spec: train\.steps must be an integer, got 2\.5$/],
    [edit((d) => (d.spec.train.stepz = 3)), /^run\.json: spec: unknown field 'train\.stepz'/],
    [edit((d) => delete d.results), /^run\.json: results must be an object, got undefined$/],
    [edit((d) => (d.results.distill[1].curve[2].mse = 'low')), /^run\.json: results\.distill\[1\]\.curve\[2\]\.mse must be a number, got "low"$/],
    [edit((d) => (d.results.distill[0].expertLoad[3] = 1.5)), /^run\.json: results\.distill\[0\]\.expertLoad\[3\] must be a number from 0 to 1, got 1\.5$/],
    [edit((d) => (d.results.capture.layers[1] = 6.5)), /^run\.json: results\.capture\.layers\[1\] must be a whole number ≥ 0, got 6\.5$/],
    [edit((d) => (d.results.capture.tokens = 'Infinity')), /^run\.json: results\.capture\.tokens must be a whole number ≥ 0, got "Infinity"$/],
    [edit((d) => (d.results.routing.layers[0].policy = 'top4')), /^run\.json: results\.routing\.layers\[0\]\.policy must be one of top1, top2, top3, dynamic, got "top4"$/],
    [edit((d) => (d.results.routing.layers[0].kShare = [0.5, 0.5])), /^run\.json: results\.routing\.layers\[0\]\.kShare must have 3 entries, got 2$/],
    [edit((d) => (d.results.routing.layers[0].byDomain[0].histogram.counts = {})), /^run\.json: results\.routing\.layers\[0\]\.byDomain\[0\]\.histogram\.counts must be an array, got \{\}$/],
    [edit((d) => delete d.results.evaluation.activated), /^run\.json: results\.evaluation\.activated is missing$/],
    [edit((d) => (d.results.sweep.sensitivity[0].agreement = null)), /^run\.json: results\.sweep\.sensitivity\[0\]\.agreement must be a number from 0 to 1, got null$/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseRunFile(text, 'run.json'), (e: unknown) => e instanceof RunFileError && re.test(e.message), text.slice(0, 80));
});

test('unknown keys are dropped, so what comes back is exactly RunResults', () => {
  const d = JSON.parse(runFileText(spec, results()));
  d.results.extra = 1;
  d.results.distill[0].note = 'hand-edited';
  const back = parseRunFile(JSON.stringify(d), 'run.json').results;
  assert.deepEqual(back, results());
});
