// LaDiMo end to end on a real tiny model (stories260K) with a CI budget: every stage runs, the distilled
// blocks beat their untrained selves on held-out rows, and the same spec and seed give the same metrics
// twice (throughput aside, which is a measurement of time).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { parseSpec } from '../src/state/spec.ts';
import type { RunMetrics } from '../src/methods/ladimo/run.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

function spec() {
  const s = parseSpec(JSON.parse(readFileSync(`${root}/examples/ladimo-stories260K-tiny.json`, 'utf8')));
  return { ...s, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`, 'train.steps': 40, 'eval.maxWindows': 2 };
}

async function run(exportDir = ''): Promise<RunMetrics> {
  const s = { ...spec(), 'export.dir': exportDir };
  return runTask('run', s, () => {}, [s.model, s.tokenizer, s.data, ...(exportDir ? [exportDir] : [])]);
}

const timing = new Set(['prefill_tokens_per_s_dense', 'prefill_tokens_per_s_moe', 'decode_tokens_per_s_dense', 'decode_tokens_per_s_moe', 'distill_seconds']);

function numbers(x: unknown, path = '', out = new Map<string, number>()): Map<string, number> {
  if (typeof x === 'number') out.set(path, x);
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) if (!timing.has(k)) numbers(v, `${path}.${k}`, out);
  return out;
}

test('LaDiMo run on stories260K: every stage, the Qwen2-MoE export, and the same metrics twice', { skip }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'moefy-export-'));
  const a = await run(out);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'qwen2_moe');
  assert.deepEqual(config.mlp_only_layers, [0, 1, 2]);
  const sidecar = JSON.parse(readFileSync(join(out, 'moefy.json'), 'utf8'));
  assert.deepEqual(sidecar.layers.map((l: { policy: string }) => l.policy), a.layers.map((l) => l.policy));
  assert.equal(a.layers.length, 2);
  for (const l of a.layers) {
    assert.ok(l.mse_final < l.mse_before, `layer ${l.layer}: held-out mse ${l.mse_before} → ${l.mse_final}`);
    assert.ok(Math.abs(l.expert_load.reduce((s, v) => s + v, 0) - 1) < 1e-9);
    assert.ok(['top1', 'top2', 'top3', 'dynamic'].includes(l.policy));
  }
  const m = a.model;
  assert.ok(m.activated_non_embedding_moe < m.activated_non_embedding_dense);
  for (const v of [m.ppl_dense, m.ppl_moe, m.kl, m.agreement]) assert.ok(Number.isFinite(v));
  assert.ok(m.agreement > 0 && m.agreement <= 1);
  const b = await run();
  const [na, nb] = [numbers(a), numbers(b)];
  assert.equal(na.size, nb.size);
  for (const [k, v] of na) {
    const w = nb.get(k)!;
    assert.ok(Math.abs(v - w) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}: ${v} then ${w}`);
  }
});

test('LaDiMo run resumes from its checkpoints and refuses another run\'s', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-ckpt-'));
  const s = { ...spec(), 'checkpoint.dir': dir };
  const paths = [s.model, s.tokenizer, s.data, dir];
  const lines: string[] = [];
  const first = await runTask('run', s, () => {}, paths);
  const again = await runTask('run', s, (m) => lines.push(m), paths);
  assert.ok(lines.some((m) => /distilled block loaded/.test(m)), 'the second run loads the distilled layers');
  assert.ok(!lines.some((m) => /^capture: /.test(m)), 'the second run does not capture again');
  const [na, nb] = [numbers(first), numbers(again)];
  for (const [k, v] of na) assert.ok(Math.abs(v - nb.get(k)!) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}: ${v} then ${nb.get(k)}`);
  await assert.rejects(runTask('run', { ...s, 'train.steps': 41 }, () => {}, paths), /holds checkpoints of another run \(its train\.steps is 40, this spec's is 41\)/);
});
