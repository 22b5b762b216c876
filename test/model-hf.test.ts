// Loading the Hugging Face test checkpoint corpus-llama-7m (../shared/models, see its README): config
// normalisation, every tensor with the shape config.json implies, tokenizer.json against reference.json,
// and bf16 → f32 against a decode written out by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openHf } from '../src/model/hf.ts';
import { openDirNode } from '../src/model/source-node.ts';
import { expectedShapes } from '../src/model/weights.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'models', 'corpus-llama-7m');
const skip = existsSync(join(DIR, 'config.json')) ? false : `test models not found at ${DIR} (../shared/models from the repo root)`;

test('corpus-llama-7m: config.json normalises to ModelConfig', { skip }, async () => {
  const { config } = await openHf(await openDirNode(DIR));
  assert.deepEqual(config, {
    arch: 'llama',
    dim: 256,
    hiddenDim: 688,
    nLayers: 8,
    nHeads: 8,
    nKvHeads: 4,
    headDim: 32,
    vocabSize: 4096,
    maxSeqLen: 1024,
    normEps: 1e-5,
    ropeTheta: 10000, // from rope_parameters.rope_theta (transformers 5)
    ropeStyle: 'half',
    tiedEmbeddings: true,
    qkvBias: false,
    bosId: 0,
    eosId: 1,
  });
});

test('corpus-llama-7m: every tensor present with the shape config.json implies', { skip }, async () => {
  const { config, weights } = await openHf(await openDirNode(DIR));
  const want = expectedShapes(config);
  assert.equal(want.size, 1 + 8 * 9 + 1); // embed, 9 per layer, final norm; tied so no lm_head
  assert.deepEqual(weights.names(), [...want.keys()]);
  for (const [name, shape] of want) {
    assert.deepEqual(weights.shape(name), shape, name);
    assert.equal(weights.dtype(name), 'BF16', name);
  }
  assert.deepEqual(weights.shape('model.layers.7.self_attn.k_proj.weight'), [4 * 32, 256]);
  assert.deepEqual(weights.shape('model.layers.0.mlp.down_proj.weight'), [256, 688]);
  assert.equal(weights.f32Bytes(), 6_852_864 * 4); // reference.json params × 4 bytes
  const o = await weights.read('model.layers.3.self_attn.o_proj.weight');
  assert.equal(o.length, 256 * 256);
  assert.ok(o.every(Number.isFinite));
});

test('corpus-llama-7m: bf16 → f32 matches a hand decode of the file bytes', { skip }, async () => {
  const { weights } = await openHf(await openDirNode(DIR));
  const name = 'model.layers.2.mlp.gate_proj.weight';
  // by hand: u64 header length, JSON header, data_offsets relative to the data section
  const file = await readFile(join(DIR, 'model.safetensors'));
  const n = Number(file.readBigUInt64LE(0));
  const info = JSON.parse(file.subarray(8, 8 + n).toString('utf8'))[name];
  assert.equal(info.dtype, 'BF16');
  const start = 8 + n + info.data_offsets[0];
  const got = await weights.read(name);
  for (let i = 0; i < 64; i++) {
    const bits = file.readUInt16LE(start + 2 * i); // sign 1, exponent 8, mantissa 7
    const sign = bits >> 15 ? -1 : 1;
    const exp = (bits >> 7) & 0xff;
    const man = bits & 0x7f;
    const want = exp === 0 ? sign * man * 2 ** -133 : sign * (1 + man / 128) * 2 ** (exp - 127);
    assert.equal(got[i], want, `element ${i}: bits 0x${bits.toString(16)}`);
  }
  assert.ok(got.some((x) => x !== 0));
});

test('corpus-llama-7m: tokenizer.json encodes reference.json text to its input_ids, BOS included', { skip }, async () => {
  const { tokenizer } = await openHf(await openDirNode(DIR));
  const ref = JSON.parse(await readFile(join(DIR, 'reference.json'), 'utf8'));
  assert.deepEqual(tokenizer.encode(ref.text), ref.input_ids); // the post-processor adds <s> = 0
  assert.deepEqual(tokenizer.encode(ref.text, { bos: false }), ref.input_ids.slice(1));
  assert.equal(tokenizer.bosId, 0);
  assert.equal(tokenizer.eosId, 1);
  assert.equal(tokenizer.vocabSize, 4096);
  assert.equal(tokenizer.decode(ref.greedy_continuation_ids), ref.greedy_continuation);
});

test('corpus-llama-7m: decode(encode(x)) == x', { skip }, async () => {
  const { tokenizer } = await openHf(await openDirNode(DIR));
  for (const x of [
    'The jury said that the city of Atlanta had',
    '  leading spaces, trailing ones  ',
    'function add(a, b) {\n\treturn a + b;\n}',
    'Tom has 3 apples , gives 2 away . How many ?',
    'naïve café — ünïcödé 😀',
  ]) {
    assert.equal(tokenizer.decode(tokenizer.encode(x)), x);
  }
  const ids = tokenizer.encode('The jury said');
  assert.deepEqual(ids.map((id, i) => tokenizer.decodeToken(id, ids[i - 1])), ['<s>', 'The', ' j', 'ury', ' said']);
});
