// Real dense models on the engine (issue 3's acceptance): known greedy text of stories260K from the
// llama2.c .bin and the GGUF; corpus-llama-7m logits against float64, transformers and onnxruntime-web;
// greedy continuation; perplexity measured like reference.json's valid_ppl; bad input through the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { nodeIO } from '../src/cli/io-node.ts';
import { openCheckpoint } from '../src/model/load.ts';
import { readAllWeights } from '../src/model/export.ts';
import { buildOnnx } from '../src/model/onnx.ts';
import { runOnnx } from '../src/model/onnx-run.ts';
import { llamaForwardRef } from '../src/model/llama.ref.ts';
import { relL2 } from '../src/ops/check.ts';

const models = fileURLToPath(new URL('../../shared/models/', import.meta.url));
const corpus = fileURLToPath(new URL('../../shared/data/corpus/', import.meta.url));
const skip = existsSync(models) ? false : `test models not found at ${models} (../shared beside the repo)`;
const stories = join(models, 'stories260K');
const llama7m = join(models, 'corpus-llama-7m');
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.';
const reference = skip ? null : JSON.parse(readFileSync(join(llama7m, 'reference.json'), 'utf8'));

test('stories260K llama2.c .bin + tok512.bin: greedy from BOS gives the known text', { skip }, async () => {
  const r = await runTask('generate', { model: join(stories, 'stories260K.bin'), tokenizer: join(stories, 'tok512.bin'), maxTokens: 48 }, () => {}, [stories]);
  assert.ok(r.text.startsWith(STORY), r.text);
});

test('stories260K GGUF: greedy from BOS gives the known text', { skip }, async () => {
  const r = await runTask('generate', { model: join(stories, 'tinyllamas-stories-260k-f32.gguf'), maxTokens: 48 }, () => {}, [stories]);
  assert.ok(r.text.startsWith(STORY), r.text);
});

async function engineLogits(model: string, ids: number[], paths: string[]): Promise<Float32Array> {
  const out = join(mkdtempSync(join(tmpdir(), 'moefy-')), 'logits.f32');
  await runTask('logits', { model, ids, out }, () => {}, [...paths, out]);
  const b = readFileSync(out);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

test('corpus-llama-7m logits: engine vs float64 reference ≤ 1e-4, vs transformers and ONNX', { skip }, async () => {
  const ids: number[] = reference.input_ids;
  const got = await engineLogits(llama7m, ids, [llama7m]);
  const ckpt = await openCheckpoint(await nodeIO.open([llama7m]));
  const weights = await readAllWeights(ckpt);
  const f64 = llamaForwardRef(ckpt.config, weights, ids);
  const hfBytes = readFileSync(join(llama7m, 'reference-logits.f32'));
  const hf = new Float32Array(hfBytes.buffer, hfBytes.byteOffset, hfBytes.byteLength / 4);
  const onnx = await runOnnx(buildOnnx(ckpt.config, weights), ids);
  const V = ckpt.config.vocabSize;
  const argmax = (a: ArrayLike<number>, t: number) => { let b = 0; for (let i = 1; i < V; i++) if (a[t * V + i] > a[t * V + b]) b = i; return b; };
  const e = { f64: relL2(got, f64), onnx: relL2(onnx, got), hf: relL2(got, hf) };
  console.log(`corpus-llama-7m logits rel L2: engine vs float64 ${e.f64.toExponential(2)}, onnxruntime vs engine ${e.onnx.toExponential(2)}, engine vs transformers ${e.hf.toExponential(2)} (float64 vs transformers ${relL2(f64, hf).toExponential(2)})`);
  assert.ok(e.f64 <= 1e-4, `engine vs float64 ${e.f64}`);
  assert.ok(e.onnx <= 1e-4, `onnxruntime-web vs engine ${e.onnx}`);
  // The transformers file sits 1.7e-4 from an exact float64 forward (TF32-like rounding, see docs/perf.md),
  // so the engine is held to that file within 3e-4 and to its argmax at every position.
  assert.ok(e.hf <= 3e-4, `engine vs transformers ${e.hf}`);
  for (let t = 0; t < ids.length; t++) assert.equal(argmax(got, t), argmax(hf, t), `argmax at position ${t}`);
});

test('stories260K logits: onnxruntime-web agrees with the engine ≤ 1e-4', { skip }, async () => {
  const ids = [1, 403, 407, 261, 378, 29, 13, 400];
  const bin = join(stories, 'stories260K.bin'), tok = join(stories, 'tok512.bin');
  const out = join(mkdtempSync(join(tmpdir(), 'moefy-')), 'logits.f32');
  await runTask('logits', { model: bin, tokenizer: tok, ids, out }, () => {}, [stories, out]);
  const b = readFileSync(out);
  const got = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const ckpt = await openCheckpoint(await nodeIO.open([bin, tok]));
  const onnx = await runOnnx(buildOnnx(ckpt.config, await readAllWeights(ckpt)), ids);
  assert.ok(relL2(onnx, got) <= 1e-4, `onnx vs engine ${relL2(onnx, got)}`);
});

test('corpus-llama-7m greedy continuation reproduces transformers for at least 20 tokens', { skip }, async () => {
  const r = await runTask('generate', { model: llama7m, prompt: reference.text, maxTokens: 24 }, () => {}, [llama7m]);
  const want: number[] = reference.greedy_continuation_ids;
  let same = 0;
  while (same < r.ids.length && r.ids[same] === want[same]) same++;
  assert.ok(same >= 20, `first ${same} ids agree: ${r.ids.join(',')} vs ${want.slice(0, 24).join(',')}`);
});

test('corpus-llama-7m perplexity on brown-news.valid within 3% of reference.json', { skip }, async () => {
  const r = await runTask('ppl', { model: llama7m, text: join(corpus, 'brown-news.valid.txt'), window: 256, maxWindows: 64 }, () => {}, [llama7m, corpus]);
  const want = reference.valid_ppl['brown-news'];
  console.log(`brown-news perplexity ${r.ppl.toFixed(3)} (reference ${want}) over ${r.tokens} tokens, ${r.tokensPerS.toFixed(1)} tokens/s`);
  assert.ok(Math.abs(r.ppl / want - 1) <= 0.03, `${r.ppl} vs ${want}`);
});

const bin = fileURLToPath(new URL('../bin/moefy.mjs', import.meta.url));
const moefy = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });

test('CLI: a truncated safetensors file fails naming the file, never a hang', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-trunc-'));
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(llama7m, f), join(dir, f));
  const full = readFileSync(join(llama7m, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), full.subarray(0, full.length >> 1));
  const r = moefy('generate', '--model', dir, '--max-tokens', '4');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /model\.safetensors/);
  assert.match(r.stderr, /truncat|past the end|short/i);
});

test('CLI: an unsupported architecture is named with the supported ones', { skip }, () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'moefy-gpt2-')), 'gpt2');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 64 }));
  const r = moefy('ppl', '--model', dir, '--text', join(corpus, 'math.valid.txt'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /config\.json/);
  assert.match(r.stderr, /gpt2/i);
  assert.match(r.stderr, /llama/);
});
