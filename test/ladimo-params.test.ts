// Parameter accounting for partially MoEfied models (src/methods/ladimo/params.ts), against numbers
// worked out by hand for corpus-llama-7m's config (H 256, I 688, 8 layers, 8 heads, 4 KV heads,
// head_dim 32, vocab 4096, tied embeddings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelConfig } from '../src/model/config.ts';
import { attentionParams, countParams, policyK, type MoeLayerSpec } from '../src/methods/ladimo/params.ts';

const llama7m: ModelConfig = {
  arch: 'llama', dim: 256, hiddenDim: 688, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 32, vocabSize: 4096,
  maxSeqLen: 1024, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false,
  bosId: 0, eosId: 1,
};

// By hand:
//   attention: q 256·256 = 65536, k 256·128 = 32768, v 32768, o 65536        → 196608
//   norms 2·256 = 512; dense FFN 3·256·688 = 528384; dense layer                → 725504
//   embed_tokens 4096·256 = 1048576 (tied: counted once); model.norm 256
//   dense model: 1048576 + 8·725504 + 256                                      → 6852864
//   MoE layer, 8 experts of 688/8 = 86, top-2: router 8·256 = 2048,
//     activated FFN 2·3·256·86 = 132096 → layer 196608 + 512 + 2048 + 132096   → 331264
//     stored FFN 8·3·256·86 = 528384   → layer 727552
const DENSE_LAYER = 725504;
const EMB = 1048576;

test('dense corpus-llama-7m: 6 852 864 parameters, 5 804 288 without the (tied) embedding', () => {
  assert.equal(attentionParams(llama7m), 196608);
  const r = countParams(llama7m);
  assert.equal(r.embedding, EMB);
  assert.equal(r.lmHead, 0);
  assert.ok(r.layers.every((l) => l.kind === 'dense' && l.activated === DENSE_LAYER && l.stored === DENSE_LAYER && l.k === null));
  assert.deepEqual(r.activated, { total: 6852864, nonEmbedding: 5804288 });
  assert.deepEqual(r.stored, r.activated);
});

test('last 4 of 8 layers MoEfied, 8 experts of 86 neurons, top-2', () => {
  const moe: Record<number, MoeLayerSpec> = {};
  for (const l of [4, 5, 6, 7]) moe[l] = { nExperts: 8, expertDim: 86, policy: 'top2' };
  const r = countParams(llama7m, moe);
  for (const l of r.layers) {
    if (l.layer < 4) {
      assert.equal(l.activated, DENSE_LAYER);
      continue;
    }
    assert.deepEqual(l, {
      layer: l.layer, kind: 'moe', k: 2, attention: 196608, norms: 512, router: 2048,
      ffnActivated: 132096, ffnStored: 528384, activated: 331264, stored: 727552,
    });
  }
  // activated: 1048576 + 256 + 4·725504 + 4·331264 = 5275904; stored: 6852864 + 4·2048 = 6861056
  assert.deepEqual(r.activated, { total: 5275904, nonEmbedding: 5275904 - EMB });
  assert.deepEqual(r.stored, { total: 6861056, nonEmbedding: 6861056 - EMB });
});

test('mixed Table 1 policies with a dynamic layer: expected k from the measured shares', () => {
  // top-1: FFN 3·256·86 = 66048; top-3: 198144; dynamic with shares (0.5, 0.3, 0.2): E[k] = 1.7 → 112281.6
  const r = countParams(llama7m, {
    4: { nExperts: 8, expertDim: 86, policy: 'top1' },
    5: { nExperts: 8, expertDim: 86, policy: 'top3' },
    6: { nExperts: 8, expertDim: 86, policy: 'dynamic', kShare: [0.5, 0.3, 0.2] },
    7: { nExperts: 8, expertDim: 86, policy: 2 },
  });
  r.layers.slice(4).forEach((l, i) => assert.ok(Math.abs(l.k! - [1, 3, 1.7, 2][i]) < 1e-12, `k ${l.k}`));
  assert.equal(r.layers[4].ffnActivated, 66048);
  assert.equal(r.layers[5].ffnActivated, 198144);
  assert.ok(Math.abs(r.layers[6].ffnActivated - 112281.6) < 1e-6);
  // 1048576 + 256 + 4·725504 + 4·(196608 + 512 + 2048) + 66048 + 198144 + 112281.6 + 132096 = 5256089.6
  assert.ok(Math.abs(r.activated.total - 5256089.6) < 1e-6, `${r.activated.total}`);
  assert.equal(policyK('dynamic', [1, 1, 2]), 2.25); // shares are normalised
});

test('untied lm_head and qkv biases are counted; upcycled copies (I_e = I)', () => {
  const c = { ...llama7m, tiedEmbeddings: false, qkvBias: true };
  assert.equal(attentionParams(c), 196608 + 256 + 128 + 128);
  const r = countParams(c, { 7: { nExperts: 4, expertDim: 688, policy: 'top1' } });
  assert.equal(r.lmHead, EMB);
  // layer 7: 197120 + 512 + 4·256 + 528384 activated, + 3·528384 more stored
  assert.equal(r.layers[7].activated, 197120 + 512 + 1024 + 528384);
  assert.equal(r.stored.total - r.activated.total, 3 * 528384);
  assert.equal(r.activated.total - r.activated.nonEmbedding, 2 * EMB);
});

test('bad specs are refused', () => {
  assert.throws(() => countParams(llama7m, { 8: { nExperts: 8, expertDim: 86, policy: 'top2' } }), /outside/);
  assert.throws(() => countParams(llama7m, { 3: { nExperts: 2, expertDim: 86, policy: 'top3' } }), /k = 3 > 2/);
  assert.throws(() => policyK('dynamic'), /kShare/);
});
