// Reproduces the workbench's demo model, public/demo-model/, from scratch (`npm run train:demo`):
//   1. a byte-level BPE tokenizer (src/data/bpe.ts) trained on the Brown Corpus train split, all 15 genres;
//   2. a seeded random-init LLaMA written as a Hugging Face folder;
//   3. `moefy train` (src/train/task.ts) on the Brown train split, snapshots in WORK/checkpoints: run the
//      command again after an interruption and it resumes from the latest snapshot;
//   4. the final snapshot's weights written as public/demo-model/ (config.json, model.safetensors,
//      tokenizer.json, tokenizer_config.json) with metrics.json: held-out perplexity per Brown genre on the
//      valid split, measured by the engine's `moefy ppl` task, training tokens/s, wall time, seed, spec.
// Usage: node --import ./bin/register.mjs scripts/train-demo.ts [--work DIR] [--out DIR]
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { tokenizerConfigJson, trainByteLevelBpe } from '../src/data/bpe.ts';
import { BROWN_BUILTIN } from '../src/data/brown.ts';
import { loadBrown } from '../src/data/brown-node.ts';
import { Rng } from '../src/data/rng.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { parseSafetensors } from '../src/model/safetensors.ts';
import { writeSafetensors, type SafetensorsTensor } from '../src/model/safetensors-write.ts';
import { byteLength, decode, expectedShapes, numel } from '../src/model/weights.ts';
import { fileSourceNode } from '../src/model/source-node.ts';
import { parseSpec } from '../src/state/spec.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SEED = 0;
const VOCAB = 2048;
/** Held-out windows per genre for the perplexity table, of the training sequence length. */
const PPL_WINDOWS = 8;

const CONFIG: ModelConfig = {
  arch: 'llama', dim: 128, hiddenDim: 352, nLayers: 4, nHeads: 4, nKvHeads: 2, headDim: 32, vocabSize: VOCAB, maxSeqLen: 256,
  normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false, bosId: 0, eosId: 1,
};

/** The `moefy train` spec, less the paths (filled in below). */
const TRAIN = {
  domains: 'all', seqLen: 128, batchTokens: 512, steps: 2000, lr: 3e-3, warmup: 50, schedule: 'cosine', minLr: 0.1,
  weightDecay: 0.1, clip: 1, evalEvery: 250, logEvery: 25, checkpointEvery: 50,
};

const USAGE = 'usage: node --import ./bin/register.mjs scripts/train-demo.ts [--work DIR] [--out DIR]';
let values;
try {
  ({ values } = parseArgs({ options: { work: { type: 'string' }, out: { type: 'string' } } }));
} catch (e) {
  console.error(`train-demo: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
const work = resolve(values.work ?? join(tmpdir(), 'moefy-train-demo'));
const out = resolve(values.out ?? join(root, 'public/demo-model'));
const initDir = join(work, 'init');
const ckptDir = join(work, 'checkpoints');
const validDir = join(work, 'valid');
const t0 = performance.now();
const log = (m: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${m}`);

// ---- 1. tokenizer
const genres = await loadBrown();
const tokenizer = trainByteLevelBpe(genres.map((d) => d.train), { vocabSize: VOCAB, minFrequency: 2 });
const vocab = Object.keys(tokenizer.model.vocab).length;
if (vocab !== VOCAB) throw new Error(`train-demo: the BPE trainer stopped at ${vocab} tokens, not ${VOCAB}`);
const tokenizerFiles: [string, string][] = [
  ['tokenizer.json', `${JSON.stringify(tokenizer)}\n`],
  ['tokenizer_config.json', `${JSON.stringify(tokenizerConfigJson(), null, 2)}\n`],
];
log(`tokenizer: ${vocab} tokens from the Brown train split of ${genres.length} genres`);

// ---- 2. the random-init model (the same bytes on every run, so a resumed run trains the same model)
await mkdir(initDir, { recursive: true });
await writeFile(join(initDir, 'config.json'), hfConfig(CONFIG));
await writeFile(join(initDir, 'model.safetensors'), writeSafetensors(initWeights(CONFIG, new Rng(SEED)), { format: 'pt' }));
for (const [name, text] of tokenizerFiles) await writeFile(join(initDir, name), text);
const params = [...expectedShapes(CONFIG).values()].reduce((s, shape) => s + numel(shape), 0);
log(`random init: ${params} parameters (${JSON.stringify(CONFIG)})`);

// ---- 3. training
const spec = parseSpec({ version: 1, model: initDir, data: BROWN_BUILTIN, method: 'train', train: TRAIN, eval: { maxWindows: 15 }, checkpoint: { dir: ckptDir }, seed: SEED });
const trained = await runTask('train', spec, log, [initDir, BROWN_BUILTIN, ckptDir]);
log(`trained: held-out loss ${trained.loss_before.toFixed(3)} → ${trained.loss_after.toFixed(3)}, ${trained.tokens_per_s.toFixed(1)} tokens/s`);

// ---- 4. the trained weights as a Hugging Face folder
await mkdir(out, { recursive: true });
await writeFile(join(out, 'config.json'), hfConfig(CONFIG));
await writeFile(join(out, 'model.safetensors'), writeSafetensors(await snapshotWeights(join(ckptDir, `train-step-${String(TRAIN.steps).padStart(8, '0')}.safetensors`), CONFIG), { format: 'pt' }));
for (const [name, text] of tokenizerFiles) await writeFile(join(out, name), text);

// ---- held-out perplexity per genre, by the engine
await mkdir(validDir, { recursive: true });
const perplexity: Record<string, { ppl: number; tokens: number }> = {};
for (const g of genres) {
  const text = join(validDir, `${g.name}.valid.txt`);
  await writeFile(text, g.valid);
  const r = await runTask('ppl', { model: out, text, window: TRAIN.seqLen, maxWindows: PPL_WINDOWS }, () => {}, [out, text]);
  perplexity[g.name] = { ppl: r.ppl, tokens: r.tokens };
  log(`${g.name}: perplexity ${r.ppl.toFixed(2)} over ${r.tokens} tokens`);
}
const seconds = (performance.now() - t0) / 1000;
const metrics = {
  params, seed: SEED, config: CONFIG,
  spec: { ...spec, model: 'WORK/init', 'checkpoint.dir': 'WORK/checkpoints' },
  train: {
    steps: trained.steps, tokens: trained.tokens, seconds: trained.seconds, tokens_per_s: trained.tokens_per_s,
    loss_before: trained.loss_before, loss_after: trained.loss_after, resumed_from: trained.resumed_from, device: trained.device,
  },
  perplexity_valid: { window: TRAIN.seqLen, windows_per_genre: PPL_WINDOWS, by_genre: perplexity },
  wall_seconds: seconds,
};
await writeFile(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
log(`wrote ${out} (${(await readdir(out)).join(', ')}) in ${(seconds / 60).toFixed(1)} min`);

// ------------------------------------------------------------------------------------------------ helpers

function hfConfig(c: ModelConfig): string {
  return `${JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.dim, intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers, num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, head_dim: c.headDim,
    vocab_size: c.vocabSize, max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps, rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings, bos_token_id: c.bosId, eos_token_id: c.eosId, hidden_act: 'silu', torch_dtype: 'float32',
  }, null, 2)}\n`;
}

/**
 * GPT-2's initialisation (Radford et al. 2019): weights N(0, 0.02), the projections that write into the
 * residual stream (o_proj, down_proj) scaled by 1/√(2·layers) so the stream's variance does not grow with
 * depth; norms 1.
 */
function initWeights(c: ModelConfig, rng: Rng): SafetensorsTensor[] {
  return [...expectedShapes(c)].map(([name, shape]) => {
    const n = numel(shape);
    if (name.endsWith('norm.weight')) return [name, shape, new Float32Array(n).fill(1)];
    const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
    return [name, shape, rng.normals(n, residual ? 0.02 / Math.sqrt(2 * c.nLayers) : 0.02)];
  });
}

/** The model's tensors from a training snapshot (each trainable parameter under its name, beside its moments). */
async function snapshotWeights(path: string, c: ModelConfig): Promise<SafetensorsTensor[]> {
  const src = await fileSourceNode(path);
  const entries = await parseSafetensors(src);
  const tensors: SafetensorsTensor[] = [];
  for (const [name, shape] of expectedShapes(c)) {
    const e = entries.get(name);
    if (!e) throw new Error(`${path}: no tensor ${name} (the snapshot of a run that trained every parameter was expected)`);
    if (e.shape.join() !== shape.join()) throw new Error(`${path}: ${name} has shape [${e.shape}], expected [${shape}]`);
    tensors.push([name, shape, decode(e.dtype, await src.read(e.offset, byteLength(e.dtype, numel(shape))), numel(shape))]);
  }
  return tensors;
}
