// Where the workbench keeps a training run (method 'train') in the browser, checked in Node on the memory
// backend: the run key (which fields give a new run), the snapshots the trainer writes (src/train/checkpoint.ts),
// only the latest kept, an incomplete one ignored, and the run as a Storage panel item that deletes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textDataFromFiles } from '../src/methods/ladimo/data.ts';
import { bytesSource } from '../src/model/source.ts';
import { memoryBlobCache } from '../src/model/source-hub.ts';
import { defaultSpec, type RunSpec } from '../src/state/spec.ts';
import { latestSnapshot, saveSnapshot } from '../src/train/checkpoint.ts';
import type { TrainSnapshot } from '../src/train/trainer.ts';
import type { ModelSummary } from '../src/worker/model.ts';
import { deleteRunItem, dropOlderSnapshots, runItems, runKey, snapshotSteps, trainRunKey } from '../src/worker/runs.ts';
import { blobStore } from '../src/worker/storage.ts';

const enc = new TextEncoder();
const memory = () => blobStore(memoryBlobCache(), 'memory', async () => ({ usage: null, quota: null }));
const model = { name: 'stories260K.bin', files: [{ name: 'stories260K.bin', size: 1056540 }, { name: 'tok512.bin', size: 6227 }] } as ModelSummary;
const spec: RunSpec = { ...defaultSpec(), method: 'train', 'train.steps': 8 };
const data = () => textDataFromFiles([bytesSource('a.train.txt', enc.encode('x\n')), bytesSource('a.valid.txt', enc.encode('y\n'))], 'files');

function snapshot(step: number): TrainSnapshot {
  const w = Float32Array.of(step, -step);
  return {
    step, windowsDrawn: 2 * step, seconds: step / 10,
    curve: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 5 - i / 10, lr: 1e-3, gradNorm: 1 })),
    evals: [{ step: 0, loss: 5, ppl: Math.exp(5) }],
    tensors: { 'model.norm.weight': { shape: [2], value: w, m: w.map((x) => x / 2), v: w.map((x) => x * x) } },
  };
}

test("a training run's key: its own folder, the same for neutral fields, another for what the weights depend on", async () => {
  const d = await data();
  const { dir, identity } = await trainRunKey(spec, model, d);
  assert.match(dir, /^runs\/[0-9a-f]{16}$/);
  assert.notEqual(dir, (await runKey(spec, model, d)).dir, 'not the LaDiMo run of the same spec');
  assert.deepEqual(identity.model, { name: 'stories260K.bin', files: model.files }, "the loaded files stand in for the spec's model");
  assert.equal(identity.tokenizer, undefined);
  assert.equal((await trainRunKey({ ...spec, 'train.checkpointEvery': 4, 'train.logEvery': 1, model: 'elsewhere' }, model, d)).dir, dir);
  assert.notEqual((await trainRunKey({ ...spec, 'train.lr': 2e-3 }, model, d)).dir, dir);
  assert.notEqual((await trainRunKey(spec, { ...model, files: [model.files[0]] } as ModelSummary, d)).dir, dir);
});

test('only the latest snapshot is kept, an incomplete one is not counted, and the run deletes as one item', async () => {
  const s = memory();
  const { dir, identity } = await trainRunKey(spec, model, await data());
  assert.deepEqual(await snapshotSteps(s, dir), []);
  await s.write(`${dir}/spec.json`, enc.encode(JSON.stringify(identity)));
  for (const step of [4, 8]) {
    await saveSnapshot(s, dir, snapshot(step), identity);
    await dropOlderSnapshots(s, dir, step);
  }
  assert.deepEqual(await snapshotSteps(s, dir), [8]);
  assert.deepEqual((await s.list()).map((f) => f.path.slice(dir.length + 1)).sort(), ['spec.json', 'train-step-00000008.json', 'train-step-00000008.safetensors']);
  const back = await latestSnapshot(s, dir, identity);
  assert.equal(back?.step, 8);
  assert.deepEqual(back?.tensors['model.norm.weight'].v, Float32Array.of(64, 64));
  // weights written, the state file not yet: no snapshot at step 12
  await s.write(`${dir}/train-step-00000012.safetensors`, new Uint8Array(8));
  assert.deepEqual(await snapshotSteps(s, dir), [8]);

  const items = await runItems(s);
  assert.equal(items.length, 1);
  assert.equal(items[0].key, `${dir}/checkpoint`);
  assert.equal(items[0].label, 'stories260K.bin · training · 8 steps of 512 tokens · seed 0: training snapshot at step 8');
  await deleteRunItem(s, items[0].key);
  assert.deepEqual(await s.list(), []);
});
