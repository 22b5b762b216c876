// Where the LaDiMo pipeline keeps its work in the browser, checked in Node on the memory backend: the store
// as a HostIO, quota errors, checkpoint sets, the run key (which spec fields give a new run), the Storage
// panel's items and their deletion, and the data sets a folder of .txt files gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointIdentity, RunCheckpoint } from '../src/methods/ladimo/checkpoint.ts';
import { calibrationWindows, evaluationWindows, textDataFromFiles } from '../src/methods/ladimo/data.ts';
import type { Tokenizer } from '../src/model/tokenizer.ts';
import { bytesSource } from '../src/model/source.ts';
import { memoryBlobCache, type BlobCache } from '../src/model/source-hub.ts';
import { defaultSpec } from '../src/state/spec.ts';
import type { ModelSummary } from '../src/worker/model.ts';
import { deleteRunItem, runItems, runKey } from '../src/worker/runs.ts';
import { blobStore, StorageQuotaError } from '../src/worker/storage.ts';

const enc = new TextEncoder();
const memory = () => blobStore(memoryBlobCache(), 'memory', async () => ({ usage: null, quota: null }));

test('the browser store opens files and folders as a HostIO, lists and removes', async () => {
  const s = memory();
  await s.write('runs/a/spec.json', enc.encode('{}'));
  await s.write('runs/a/x.f32', new Uint8Array(8));
  await s.write('runs/ab/y.f32', new Uint8Array(4));
  assert.deepEqual((await s.open(['runs/a'])).map((f) => [f.name, f.size]), [['runs/a/spec.json', 2], ['runs/a/x.f32', 8]]);
  assert.deepEqual((await s.open(['runs/ab/y.f32'])).map((f) => f.name), ['runs/ab/y.f32']);
  await assert.rejects(s.open(['runs/b']), /^Error: runs\/b: not in browser storage$/);
  await s.remove('runs/a/x.f32');
  assert.deepEqual((await s.list()).map((f) => f.path).sort(), ['runs/a/spec.json', 'runs/ab/y.f32']);
});

test('a write past the quota says how much was needed and how much is free', async () => {
  const full: BlobCache = { ...memoryBlobCache(), put: async () => { throw new DOMException('no room', 'QuotaExceededError'); } };
  const s = blobStore(full, 'opfs', async () => ({ usage: 900, quota: 1000 }));
  const err = await s.write('runs/a/x.f32', new Uint8Array(2048)).catch((e: unknown) => e);
  assert.ok(err instanceof StorageQuotaError);
  assert.equal(err.message, 'storage quota exceeded: 2.0 KiB needed, 100 B free; delete stored runs in the Storage panel');
  const other: BlobCache = { ...memoryBlobCache(), put: async () => { throw new Error('disk on fire'); } };
  await assert.rejects(blobStore(other, 'opfs').write('a', new Uint8Array(1)), /^Error: disk on fire$/);
});

test('checkpoint sets round-trip f32 and u32 arrays, complete only with their index, and refuse another run', async () => {
  const s = memory();
  const spec = defaultSpec();
  const cp = await RunCheckpoint.open(s, 'runs/r', checkpointIdentity(spec));
  assert.equal(await cp.loadArrays('set'), null);
  await cp.saveArrays('set', { w: { data: Float32Array.of(1.5, -2, 3e-8), shape: [3] }, ids: { data: Uint32Array.of(7, 0xffffffff), shape: [2, 1] } }, { step: 4 });
  const back = await cp.loadArrays<{ step: number }>('set');
  assert.deepEqual(back?.meta, { step: 4 });
  assert.deepEqual(back?.arrays.w, { data: Float32Array.of(1.5, -2, 3e-8), shape: [3] });
  assert.deepEqual(back?.arrays.ids, { data: Uint32Array.of(7, 0xffffffff), shape: [2, 1] });
  await s.remove('runs/r/set.json');
  assert.equal(await cp.has('set'), true, 'the listing is kept until refreshed');
  cp.refresh();
  assert.equal(await cp.has('set'), false, 'arrays without their index are no set');
  await cp.remove('set');
  assert.deepEqual((await s.list()).map((f) => f.path), ['runs/r/spec.json']);
  // router and evaluation fields, and other methods' fields, change nothing a checkpoint holds; LaDiMo's own do
  await RunCheckpoint.open(s, 'runs/r', checkpointIdentity({ ...spec, 'router.pU': 0.5, 'eval.maxWindows': 3, 'train.seqLen': 32, 'train.lora.rank': 4 }));
  await assert.rejects(RunCheckpoint.open(s, 'runs/r', checkpointIdentity({ ...spec, 'eval.window': 64 })), /its eval\.window is 256, this spec's is 64/);
  assert.equal(await RunCheckpoint.find(s, 'runs/none', checkpointIdentity(spec)), null);
  assert.equal((await s.list()).length, 1, 'find writes nothing');
});

const model = { name: 'stories260K.bin', files: [{ name: 'stories260K.bin', size: 1056540 }, { name: 'tok512.bin', size: 6227 }] } as ModelSummary;

test('a run key depends on the result-determining fields, the model and the data', async () => {
  const data = await textDataFromFiles([bytesSource('a.train.txt', enc.encode('x\n')), bytesSource('a.valid.txt', enc.encode('y\n'))], 'files');
  const spec = defaultSpec();
  const { dir } = await runKey(spec, model, data);
  assert.match(dir, /^runs\/[0-9a-f]{16}$/);
  assert.equal((await runKey({ ...spec, 'router.policy': 'top1', data: 'another label', model: 'elsewhere' }, model, data)).dir, dir);
  assert.notEqual((await runKey({ ...spec, 'train.steps': 1 }, model, data)).dir, dir);
  assert.notEqual((await runKey(spec, { ...model, files: [model.files[0]] } as ModelSummary, data)).dir, dir);
  const more = await textDataFromFiles([bytesSource('a.train.txt', enc.encode('xx\n')), bytesSource('a.valid.txt', enc.encode('y\n'))], 'files');
  assert.notEqual((await runKey(spec, model, more)).dir, dir);
});

test('the Storage panel sees each run as its capture and its layers, each deleted on its own', async () => {
  const s = memory();
  const spec = { ...defaultSpec(), 'construct.layers': 'last:2', 'construct.experts': 4, 'train.steps': 60 };
  const write = (name: string, n: number) => s.write(`runs/r/${name}`, new Uint8Array(n));
  await RunCheckpoint.open(s, 'runs/r', checkpointIdentity(spec, { model: { name: 'stories260K.bin' }, data: {} }));
  for (const f of ['capture.c0000.l3.x.f32', 'capture.c0000.l3.fx.f32']) await write(f, 100);
  await write('capture.c0000.json', 10);
  await write('layer-4-contiguous-random.router.f32', 40);
  await write('layer-4-contiguous-random.json', 5);
  await write('layer-3-contiguous-random.partial-a.router.f32', 40);
  await write('layer-3-contiguous-random.partial.json', 5);
  const items = await runItems(s);
  const run = 'stories260K.bin · layers last:2 · 4 experts · 60 steps · seed 0';
  assert.deepEqual(items.map(({ bytes, ...i }) => (void bytes, i)), [
    { key: 'runs/r/capture', kind: 'capture', label: `${run}: captured activations (incomplete)` },
    { key: 'runs/r/checkpoint', kind: 'checkpoint', label: `${run}: distilled layers 4, layer 3 part-way` },
  ]);
  assert.equal(items[0].bytes, 210);
  await deleteRunItem(s, 'runs/r/capture');
  assert.ok((await s.list()).every((f) => !f.path.includes('capture')));
  assert.ok((await s.list()).some((f) => f.path === 'runs/r/spec.json'), 'the run keeps its spec while it has layers');
  await deleteRunItem(s, 'runs/r/checkpoint');
  assert.deepEqual(await s.list(), []);
  await assert.rejects(deleteRunItem(s, 'runs/r/checkpoint'), /runs\/r\/checkpoint: nothing stored under it/);
  await assert.rejects(deleteRunItem(s, 'weights'), /weights: not a stored item/);
});

test('data: .train/.valid pairs, a lone .txt split as the Brown Corpus is, and clear errors', async () => {
  const lines = Array.from({ length: 20 }, (_, i) => `doc ${i}`).join('\n');
  const data = await textDataFromFiles([
    bytesSource('dir/b.train.txt', enc.encode('train\n')), bytesSource('dir/b.valid.txt', enc.encode('valid\n')),
    bytesSource('dir/a.txt', enc.encode(lines)), bytesSource('dir/.DS_Store', new Uint8Array(3)),
  ], 'dir');
  assert.deepEqual(data.domains.map((d) => d.name), ['a', 'b']);
  assert.equal(await data.domains[0].text('valid'), 'doc 9\ndoc 19\n');
  assert.equal((await data.domains[0].text('train')).split('\n').length - 1, 18);
  assert.equal(await data.domains[1].text('valid'), 'valid\n');
  await assert.rejects(textDataFromFiles([bytesSource('notes.md', enc.encode('x'))], 'dir'), /notes\.md: not a \.txt file/);
  await assert.rejects(textDataFromFiles([bytesSource('b.train.txt', enc.encode('x'))], 'dir'), /b\.train\.txt: no b\.valid\.txt beside it/);
  await assert.rejects(textDataFromFiles([bytesSource('one.txt', enc.encode('only line'))], 'dir'), /one\.txt: needs at least 2 documents/);
});

test('calibration and evaluation windows: round-robin across the named domains, as many as asked', async () => {
  // a token per character after BOS 0, then EOS 1: each 6-letter document fills two 4-token windows
  const tok = { encode: (t: string, o?: { bos?: boolean }) => [...(o?.bos ? [0] : []), ...[...t].map((c) => c.charCodeAt(0))], eosId: 1 } as unknown as Tokenizer;
  const files = (d: string, docs: number) => [
    bytesSource(`${d}.train.txt`, enc.encode(`${d.repeat(6)}\n`.repeat(docs))),
    bytesSource(`${d}.valid.txt`, enc.encode(`${d.toUpperCase().repeat(6)}\n`.repeat(docs))),
  ];
  const data = await textDataFromFiles([...files('a', 2), ...files('b', 1), ...files('c', 2)], 'dir');
  const spec = { ...defaultSpec(), 'calibration.domains': 'all', 'calibration.tokens': 20, 'eval.domain': 'c, a', 'eval.maxWindows': 3 };
  const calib = await calibrationWindows(data, spec, tok, 4);
  assert.deepEqual(calib.map((w) => w.domain), ['a', 'b', 'c', 'a', 'b'], '20 tokens: 5 windows, a domain at a time');
  assert.deepEqual(calib.map((w) => w.ids), [[0, 97, 97, 97], [0, 98, 98, 98], [0, 99, 99, 99], [97, 97, 97, 1], [98, 98, 98, 1]]);
  const letters = (ws: number[][]) => ws.map((w) => String.fromCharCode(w.find((t) => t > 1)!)).join('');
  assert.equal(letters(await evaluationWindows(data, spec, tok, 4)), 'CAC', 'the held-out text of the domains named, in their order');
  assert.equal(letters(await evaluationWindows(data, { ...spec, 'eval.domain': 'all', 'eval.maxWindows': 8 }, tok, 4)), 'ABCABCAC', "'all': b has only 2 windows, the others go on");
  await assert.rejects(evaluationWindows(data, { ...spec, 'eval.domain': 'a,zz' }, tok, 4), /eval\.domain: no domain 'zz' in dir \(domains: a, b, c\)/);
});
