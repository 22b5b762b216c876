// Whole-model training (src/train) through `moefy train`'s task, on SwiftShader inside headless Chromium:
// a random 2-layer model learns the corpus (held-out loss falls), repeats bit for bit with the same seed,
// and resumes from a mid-run snapshot onto the uninterrupted loss curve; LoRA on corpus-llama-7m lowers
// its math perplexity and leaves the base weights bit-identical. The gradients themselves are checked
// against float64 differences by the 'train' kernel checks (src/train/train.check.ts), run here too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { Rng } from '../src/data/rng.ts';
import { randomModel } from '../src/model/llama.check.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { writeSafetensors } from '../src/model/safetensors-write.ts';
import { expectedShapes } from '../src/model/weights.ts';
import { parseSpec, type RunSpec } from '../src/state/spec.ts';
import { learningRate } from '../src/train/optim.ts';
import { globMatch } from '../src/train/params.ts';
import type { TrainMetrics } from '../src/train/task.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;
const corpus = join(shared, 'data/corpus');
const teacher = join(shared, 'models/corpus-llama-7m');

test('learning rate: linear warm-up, then cosine to the floor at the last step', () => {
  const s = { kind: 'cosine' as const, lr: 1e-3, warmup: 10, steps: 110, minLrRatio: 0.1 };
  assert.equal(learningRate(s, 5), 5e-4);
  assert.equal(learningRate(s, 10), 1e-3);
  assert.ok(Math.abs(learningRate(s, 60) - 1e-3 * (0.1 + 0.9 * 0.5)) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 110) - 1e-4) < 1e-15);
  assert.equal(learningRate({ ...s, kind: 'constant' }, 110), 1e-3);
});

test('parameter globs match whole names', () => {
  assert.ok(globMatch('*norm*', 'model.layers.0.input_layernorm.weight'));
  assert.ok(globMatch('model.layers.1.*', 'model.layers.1.mlp.up_proj.weight'));
  assert.ok(!globMatch('model.layers.1.*', 'model.layers.10.mlp.up_proj.weight'));
  assert.ok(!globMatch('q_proj', 'model.layers.0.self_attn.q_proj.weight'));
});

test('moefy train refuses a spec whose method is not train, and bad training fields name themselves', () => {
  const bin = join(root, 'bin/moefy.mjs');
  const r = spawnSync(process.execPath, [bin, 'train', join(root, 'examples/ladimo-stories260K-tiny.json')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /method is 'ladimo'; moefy train runs specs whose method is 'train'/);
  assert.throws(() => parseSpec({ method: 'train', train: { schedule: 'step' } }), /train\.schedule must be one of cosine, constant/);
  assert.throws(() => parseSpec({ train: { lora: { rank: 1.5 } } }), /train\.lora\.rank must be an integer/);
});

test("the 'train' kernel checks: whole-model gradients vs float64 differences, gradient clipping", async () => {
  const { reports } = await runTask('kernelsCheck', { filter: ['train whole-model', 'train gradient-norm'] });
  assert.equal(reports.length, 6);
  for (const r of reports) assert.ok(r.ok, `${r.name}: ${r.err} > ${r.tol} ${JSON.stringify(r.outputs)} ${r.error ?? ''}`);
});

/** A random 2-layer model with corpus-llama-7m's tokenizer, written as a Hugging Face folder. */
function randomCheckpoint(): string {
  const c: ModelConfig = {
    arch: 'llama', dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 4096, maxSeqLen: 256,
    normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false, bosId: 0, eosId: 1,
  };
  const dir = mkdtempSync(join(tmpdir(), 'moefy-random-llama-'));
  const { weights } = randomModel(c, new Rng(7));
  const shapes = expectedShapes(c);
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors([...weights].map(([n, w]) => [n, shapes.get(n)!, w]), { format: 'pt' }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.dim, intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers, num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, head_dim: c.headDim,
    vocab_size: c.vocabSize, max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps, rope_theta: c.ropeTheta,
    tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 1, hidden_act: 'silu',
  }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(teacher, f), join(dir, f));
  return dir;
}

function spec(json: unknown, over: Partial<RunSpec>): RunSpec {
  return { ...parseSpec(json), ...over };
}

async function trainRun(s: RunSpec): Promise<TrainMetrics> {
  const paths = [s.model, s.data, ...(s['checkpoint.dir'] ? [s['checkpoint.dir']] : [])];
  return runTask('train', s, (m) => console.log(m), paths);
}

test('a random 2-layer model learns the corpus, repeats bit for bit, and resumes onto the same curve', { skip }, async () => {
  const model = randomCheckpoint();
  const base = spec({
    method: 'train', model, data: corpus,
    train: {
      domains: 'math,brown-news', seqLen: 64, batchTokens: 64, steps: 300, lr: 5e-3, warmup: 10, schedule: 'cosine', minLr: 0.1,
      weightDecay: 0.01, clip: 1, evalEvery: 150, logEvery: 20, checkpointEvery: 150,
    },
    eval: { maxWindows: 8 },
    seed: 3,
  }, {});
  const dirA = mkdtempSync(join(tmpdir(), 'moefy-train-a-'));
  const a = await trainRun({ ...base, 'checkpoint.dir': dirA });
  console.log(`random 2-layer: held-out loss ${a.loss_before.toFixed(3)} → ${a.loss_after.toFixed(3)}, ${a.tokens_per_s.toFixed(0)} tokens/s`);
  assert.equal(a.curve.length, 300);
  assert.ok(a.loss_after < a.loss_before - 1.5, `held-out loss ${a.loss_before} → ${a.loss_after}`);
  assert.deepEqual(a.evals.map((e) => e.step), [0, 150, 300]);
  assert.ok(a.curve.every((p) => p.gradNorm > 0 && p.lr > 0));
  assert.equal(a.gpu_bytes.last, a.gpu_bytes.first, 'steps after the first reading allocate no GPU memory');

  const b = await trainRun(base);
  assert.deepEqual(b.curve, a.curve, 'the same seed gives the same loss curve');
  assert.deepEqual(b.evals, a.evals);

  // resume from the step-150 snapshot alone: the curve from step 61 on is the uninterrupted run's
  const dirB = mkdtempSync(join(tmpdir(), 'moefy-train-b-'));
  for (const ext of ['safetensors', 'json']) copyFileSync(join(dirA, `train-step-00000150.${ext}`), join(dirB, `train-step-00000150.${ext}`));
  const r = await trainRun({ ...base, 'checkpoint.dir': dirB });
  assert.equal(r.resumed_from, 150);
  assert.deepEqual(r.curve, a.curve);
  assert.deepEqual(r.evals, a.evals);
  assert.ok(existsSync(join(dirB, 'train-step-00000300.json')));
  await assert.rejects(trainRun({ ...base, 'checkpoint.dir': dirB, 'train.lr': 1e-3 }), /holds snapshots of another run \(its train\.lr is 0\.005, this spec's is 0\.001\)/);
});

test('LoRA r 8 on corpus-llama-7m lowers math perplexity; the base weights stay bit-identical', { skip }, async () => {
  const s = spec(JSON.parse(readFileSync(join(root, 'examples/train-corpus-llama-7m-lora-math.json'), 'utf8')), { model: teacher, data: corpus });
  const m = await trainRun(s);
  console.log(`LoRA math: held-out perplexity ${m.ppl_before.toFixed(3)} → ${m.ppl_after.toFixed(3)}, ${m.params.trainable} trainable, ${m.tokens_per_s.toFixed(1)} tokens/s`);
  // r·(in + out) per adapter, q_proj [256, 256] and v_proj [128, 256] in each of 8 layers
  assert.equal(m.params.trainable, 8 * 8 * (256 + 256) + 8 * 8 * (256 + 128));
  assert.equal(m.micro_batches, 1);
  assert.equal(m.steps, 200);
  assert.ok(m.ppl_after < m.ppl_before * 0.997, `math perplexity ${m.ppl_before} → ${m.ppl_after}`);
  assert.ok(m.frozen_digest);
  assert.equal(m.frozen_digest.after, m.frozen_digest.before);
});
