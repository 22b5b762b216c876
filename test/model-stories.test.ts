// stories260K (../shared/models/stories260K, see its README) loaded two ways: the llama2.c .bin with
// tok512.bin, and llama.cpp's GGUF conversion with its embedded vocabulary. Both must give the same
// config, the same tensors (so no q/k un-permuting for this GGUF: see src/model/gguf.ts) and the same
// tokens, and the tokenizer must match a literal port of run.c's encode().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGguf } from '../src/model/gguf.ts';
import { openLlama2c } from '../src/model/llama2c.ts';
import { openCheckpoint } from '../src/model/load.ts';
import { fileSourceNode, openDirNode } from '../src/model/source-node.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'models', 'stories260K');
const skip = existsSync(join(DIR, 'stories260K.bin')) ? false : `test models not found at ${DIR} (../shared/models from the repo root)`;

const openBin = async () => openLlama2c(await fileSourceNode(join(DIR, 'stories260K.bin')), await fileSourceNode(join(DIR, 'tok512.bin')));
const openGg = async () => openGguf(await fileSourceNode(join(DIR, 'tinyllamas-stories-260k-f32.gguf')));

const SENTENCES = [
  'Once upon a time',
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'One day, she saw a big, red ball!',
  '  two  spaces, a tab\tand a newline\n',
  'Ünïcödé, € and 😀 fall back to bytes',
];

test('stories260K: .bin header and GGUF metadata give the same config', { skip }, async () => {
  const bin = (await openBin()).config;
  const gg = (await openGg()).config;
  assert.deepEqual(bin, {
    arch: 'llama',
    dim: 64,
    hiddenDim: 172,
    nLayers: 5,
    nHeads: 8,
    nKvHeads: 4,
    headDim: 8,
    vocabSize: 512,
    maxSeqLen: 512,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    tiedEmbeddings: true,
    qkvBias: false,
    bosId: 1,
    eosId: 2,
  });
  // The llama2c converter writes the shared classifier out again as output.weight, so the GGUF is untied.
  assert.deepEqual({ ...gg, tiedEmbeddings: true }, bin);
  assert.equal(gg.tiedEmbeddings, false);
});

test('stories260K: .bin and GGUF give identical tensors (q/k need no un-permuting)', { skip }, async () => {
  const bin = (await openBin()).weights;
  const gg = (await openGg()).weights;
  assert.deepEqual(gg.names(), [...bin.names(), 'lm_head.weight']);
  for (const name of bin.names()) {
    assert.deepEqual(gg.shape(name), bin.shape(name), name);
    const [a, b] = [await bin.read(name), await gg.read(name)];
    assert.equal(a.length, b.length, name);
    const diff = a.findIndex((x, i) => x !== b[i]);
    assert.equal(diff, -1, `${name} differs at ${diff}: ${a[diff]} vs ${b[diff]}`);
  }
  assert.deepEqual(await gg.read('lm_head.weight'), await bin.read('model.embed_tokens.weight'));
  assert.deepEqual(bin.shape('model.layers.0.self_attn.k_proj.weight'), [32, 64]); // [out, in]
  assert.equal(bin.f32Bytes(), (512 * 64 + 5 * (2 * 64 + 64 * 64 * 2 + 2 * 32 * 64 + 3 * 172 * 64) + 64) * 4);
  assert.equal(gg.f32Bytes(), bin.f32Bytes() + 512 * 64 * 4);
});

test('stories260K: tok512.bin and the GGUF vocabulary encode identically and round-trip', { skip }, async () => {
  const bin = (await openBin()).tokenizer;
  const gg = (await openGg()).tokenizer;
  const tok512 = await readFile(join(DIR, 'tok512.bin'));
  assert.equal(bin.vocabSize, 512);
  assert.equal(gg.vocabSize, 512);
  assert.deepEqual(bin.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  for (const x of SENTENCES) {
    const ids = bin.encode(x);
    assert.deepEqual(gg.encode(x), ids, x);
    assert.deepEqual(ids, runcEncode(tok512, x), `run.c port: ${x}`);
    assert.equal(bin.decode(ids), x);
    assert.equal(gg.decode(ids), x);
  }
  assert.deepEqual(bin.encode('', { bos: false }), []);
  const ids = bin.encode('Once upon');
  assert.deepEqual(ids.map((id, i) => bin.decodeToken(id, ids[i - 1])).slice(1), ['Once', ' upon']);
  assert.deepEqual(ids.map((id, i) => gg.decodeToken(id, ids[i - 1])), ['<s>', 'Once', ' upon']);
});

test('stories260K: openCheckpoint picks the loader from the files', { skip }, async () => {
  const files = await openDirNode(DIR);
  const gguf = files.filter((f) => f.name.endsWith('.gguf'));
  const bins = files.filter((f) => f.name.endsWith('.bin'));
  assert.equal((await openCheckpoint(gguf)).weights.names().length, 48);
  assert.equal((await openCheckpoint(bins)).weights.names().length, 47);
});

/**
 * run.c build_tokenizer + encode() transcribed: its own read of tok512.bin, ids of single characters
 * (else byte + 3), then scan for the best-scoring pair and merge it until none is left. O(n²), kept
 * literal as the reference for the heap version in src/model/tokenizer-spm.ts.
 */
function runcEncode(file: Buffer, text: string): number[] {
  const pieces: string[] = [];
  const scores: number[] = [];
  for (let p = 4; p < file.length; ) {
    scores.push(file.readFloatLE(p));
    const len = file.readInt32LE(p + 4);
    pieces.push(file.subarray(p + 8, p + 8 + len).toString('utf8'));
    p += 8 + len;
  }
  const lookup = (s: string) => pieces.indexOf(s); // str_lookup, -1 when absent
  const tokens: number[] = [lookup(' ')]; // add_dummy_prefix
  for (const ch of text) {
    const id = lookup(ch);
    if (id !== -1) tokens.push(id);
    else for (const b of new TextEncoder().encode(ch)) tokens.push(b + 3); // byte_fallback: first 3 are <unk>, <s>, </s>
  }
  for (;;) {
    let [best, bestId, bestIdx] = [-1e10, -1, -1];
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup(pieces[tokens[i]] + pieces[tokens[i + 1]]);
      if (id !== -1 && scores[id] > best) [best, bestId, bestIdx] = [scores[id], id, i];
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return [1, ...tokens]; // bos
}
