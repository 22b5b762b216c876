// Loader validation with small checkpoints this test writes itself (os.tmpdir()): each broken file must
// be rejected with a message naming the file and the problem. Also covers paths the shared test models
// do not: sharded safetensors, GGUF v3 with F16 and Q8_0 tensors and a '▁' vocabulary.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from '../src/model/config.ts';
import { openGguf } from '../src/model/gguf.ts';
import { openHf } from '../src/model/hf.ts';
import { openLlama2c } from '../src/model/llama2c.ts';
import { openSafetensors } from '../src/model/safetensors.ts';
import { bytesSource, CheckpointError } from '../src/model/source.ts';
import { fileSourceNode, openDirNode } from '../src/model/source-node.ts';
import { checkTokenizer } from '../src/model/tokenizer.ts';
import { readLlama2cTokenizer } from '../src/model/tokenizer-spm.ts';
import { expectedShapes, numel } from '../src/model/weights.ts';

let TMP = '';
before(async () => {
  TMP = await mkdtemp(join(tmpdir(), 'moefy-model-'));
});
after(async () => {
  await rm(TMP, { recursive: true, force: true });
});

/** Writes `files` into a fresh folder under TMP and returns its path. */
async function folder(name: string, files: Record<string, Uint8Array | string | object>): Promise<string> {
  const dir = join(TMP, name);
  await mkdir(dir);
  for (const [f, v] of Object.entries(files)) {
    await writeFile(join(dir, f), typeof v === 'string' || v instanceof Uint8Array ? v : JSON.stringify(v));
  }
  return dir;
}

/** Rejects with a CheckpointError whose message contains every fragment. */
async function rejectsWith(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof CheckpointError, `not a CheckpointError: ${e}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message lacks ${JSON.stringify(f)}: ${e.message}`);
    return true;
  });
}

// ---- a tiny Llama: dim 32, 1 layer, 2 heads / 1 KV head of 16, FFN 64, vocab 8

const HF_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 8,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 500000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};
const CONFIG: ModelConfig = {
  arch: 'llama',
  dim: 32,
  hiddenDim: 64,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  headDim: 16,
  vocabSize: 8,
  maxSeqLen: 64,
  normEps: 1e-6,
  ropeTheta: 500000,
  ropeStyle: 'half',
  tiedEmbeddings: false,
  qkvBias: false,
  bosId: 1,
  eosId: 2,
};

type StTensor = { dtype: string; shape: number[]; data: Uint8Array };

/** A safetensors file (8-byte LE header length, JSON header, data). `offsets` overrides data_offsets. */
function safetensors(tensors: Record<string, StTensor>, offsets: Record<string, [number, number]> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: offsets[name] ?? [at, at + t.data.length] };
    at += t.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const t of Object.values(tensors)) {
    out.set(t.data, p);
    p += t.data.length;
  }
  return out;
}

/** f32 tensor whose element i is `seed + i / 1024`. */
function f32Tensor(shape: number[], seed: number): StTensor {
  const a = Float32Array.from({ length: numel(shape) }, (_, i) => seed + i / 1024);
  return { dtype: 'F32', shape, data: new Uint8Array(a.buffer) };
}

/** Every tensor CONFIG implies, f32, with `change` applied to one (or deleting it with null). */
function tinyTensors(change: Record<string, StTensor | null> = {}): Record<string, StTensor> {
  const out: Record<string, StTensor> = {};
  let seed = 0;
  for (const [name, shape] of expectedShapes(CONFIG)) {
    const c = change[name];
    if (c === null) continue;
    out[name] = c ?? f32Tensor(shape, seed++);
  }
  return out;
}

// ---- safetensors

test('safetensors: a truncated file names the file, the expected and the actual size', async () => {
  const full = safetensors(tinyTensors());
  const dir = await folder('truncated', { 'config.json': HF_CONFIG, 'model.safetensors': full.subarray(0, full.length - 100) });
  await rejectsWith(openHf(await openDirNode(dir)), join(dir, 'model.safetensors'), 'truncated', `at least ${full.length} bytes`, `got ${full.length - 100}`);
  const cut = await folder('truncated-header', { 'model.safetensors': full.subarray(0, 40) });
  await rejectsWith(openSafetensors(await openDirNode(cut)), join(cut, 'model.safetensors'), 'truncated', 'header');
});

test('safetensors: header offsets past the end of the file are refused', async () => {
  const t = f32Tensor([16], 0); // 64 bytes declared, only the first 32 written
  const bytes = safetensors({ 'model.norm.weight': { ...t, data: t.data.subarray(0, 32) } }, { 'model.norm.weight': [0, 64] });
  await rejectsWith(openSafetensors([bytesSource('overrun.safetensors', bytes)]), 'overrun.safetensors', '"model.norm.weight" ends at data offset 64', 'past the end of the data section (32 bytes)');
  const bad = safetensors({ 'model.norm.weight': t }, { 'model.norm.weight': [0, 60] });
  await rejectsWith(openSafetensors([bytesSource('span.safetensors', bad)]), 'span.safetensors', 'span 60 bytes', 'F32 × [16] needs 64');
});

test('safetensors: dtypes other than F32/F16/BF16 are refused by name', async () => {
  for (const [dtype, size] of [['I8', 1], ['F64', 8]] as const) {
    const bytes = safetensors({ 'model.layers.0.mlp.up_proj.weight': { dtype, shape: [4], data: new Uint8Array(4 * size) } });
    await rejectsWith(
      openSafetensors([bytesSource(`${dtype}.safetensors`, bytes)]),
      `${dtype}.safetensors`,
      `"model.layers.0.mlp.up_proj.weight" has dtype ${dtype}`,
      'supported: F32, F16, BF16',
    );
  }
});

test('hf: a tensor shape disagreeing with config.json names the tensor, both shapes and the file', async () => {
  const dir = await folder('shape', {
    'config.json': HF_CONFIG,
    'model.safetensors': safetensors(tinyTensors({ 'model.layers.0.self_attn.k_proj.weight': f32Tensor([32, 32], 9) })),
  });
  await rejectsWith(
    openHf(await openDirNode(dir)),
    join(dir, 'model.safetensors'),
    'tensor "model.layers.0.self_attn.k_proj.weight" has shape [32, 32] but config.json implies [16, 32]',
  );
});

test('hf: a missing tensor is named with the file', async () => {
  const dir = await folder('missing', {
    'config.json': HF_CONFIG,
    'model.safetensors': safetensors(tinyTensors({ 'model.layers.0.post_attention_layernorm.weight': null })),
  });
  await rejectsWith(openHf(await openDirNode(dir)), join(dir, 'model.safetensors'), 'missing tensor "model.layers.0.post_attention_layernorm.weight"', 'config.json implies shape [32]');
});

test('hf: an unsupported architecture (GPT-2) names config.json, the field and what is supported', async () => {
  const gpt2 = { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, vocab_size: 50257 };
  const dir = await folder('gpt2', { 'config.json': gpt2, 'model.safetensors': safetensors({}) });
  await rejectsWith(openHf(await openDirNode(dir)), join(dir, 'config.json'), 'model_type', '"gpt2" is not supported', 'supported: llama, mistral, qwen2');
});

test('hf: config.json variants (qwen2 biases, rope_parameters, head_dim) normalise', async () => {
  const { configFromHf } = await import('../src/model/config.ts');
  assert.deepEqual(configFromHf(HF_CONFIG), CONFIG);
  const qwen = configFromHf({ ...HF_CONFIG, model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 1e6 }, head_dim: 8 });
  assert.deepEqual([qwen.arch, qwen.qkvBias, qwen.ropeTheta, qwen.headDim], ['qwen2', true, 1e6, 8]);
  assert.ok(expectedShapes(qwen).has('model.layers.0.self_attn.k_proj.bias'));
  assert.throws(() => configFromHf({ ...HF_CONFIG, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'x/config.json'), /x\/config\.json: rope_scaling: "llama3" is not supported/);
  assert.throws(() => configFromHf({ ...HF_CONFIG, hidden_size: undefined }, 'x/config.json'), /x\/config\.json: hidden_size: missing/);
});

test('safetensors: a sharded checkpoint reads through model.safetensors.index.json', async () => {
  const all = tinyTensors();
  const names = Object.keys(all);
  const half = Math.floor(names.length / 2);
  const shard = (ns: string[]) => safetensors(Object.fromEntries(ns.map((n) => [n, all[n]])));
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weight_map = Object.fromEntries(names.map((n, i) => [n, files[i < half ? 0 : 1]]));
  const dir = await folder('sharded', {
    'config.json': HF_CONFIG,
    [files[0]]: shard(names.slice(0, half)),
    [files[1]]: shard(names.slice(half)),
    'model.safetensors.index.json': { metadata: {}, weight_map },
  });
  const { tensors } = await openSafetensors(await openDirNode(dir));
  assert.deepEqual([...tensors.keys()].sort(), [...names].sort());
  // the whole folder lacks only tokenizer.json, which must be named
  await rejectsWith(openHf(await openDirNode(dir)), dir, 'no tokenizer.json');
  const gone = await folder('sharded-missing', { [files[0]]: shard(names.slice(0, half)), 'model.safetensors.index.json': { weight_map } });
  await rejectsWith(openSafetensors(await openDirNode(gone)), 'model.safetensors.index.json', `shard "${files[1]}"`);
});

// ---- llama2.c

/** A llama2.c .bin for the tiny model with a shared classifier: header then f32 arrays. */
function llama2cBin(vocab: number): Uint8Array {
  const [dim, hidden, layers, heads, kvHeads, seq] = [32, 64, 1, 2, 1, 4];
  const kv = (kvHeads * dim) / heads;
  const floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) + dim + seq * (dim / heads);
  const out = new Uint8Array(28 + 4 * floats);
  const dv = new DataView(out.buffer);
  [dim, hidden, layers, heads, kvHeads, vocab, seq].forEach((x, i) => dv.setInt32(4 * i, x, true));
  for (let i = 0; i < floats; i++) dv.setFloat32(28 + 4 * i, i / 100, true);
  return out;
}

/** A llama2.c tokenizer.bin: <unk>, <s>, </s>, 256 byte pieces, then `extra`. */
function llama2cTokenizer(extra: string[]): Uint8Array {
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), ...extra];
  const enc = pieces.map((p) => new TextEncoder().encode(p));
  const out = new Uint8Array(4 + enc.reduce((s, e) => s + 8 + e.length, 0));
  const dv = new DataView(out.buffer);
  dv.setInt32(0, 8, true);
  let p = 4;
  enc.forEach((e, i) => {
    dv.setFloat32(p, i < 259 ? 0 : -i, true);
    dv.setInt32(p + 4, e.length, true);
    out.set(e, p + 8);
    p += 8 + e.length;
  });
  return out;
}

test('llama2.c: a file shorter than its header implies says so with both sizes', async () => {
  const full = llama2cBin(260);
  const dir = await folder('llama2c-short', { 'model.bin': full.subarray(0, full.length - 4), 'tok.bin': llama2cTokenizer([' ']) });
  await rejectsWith(
    openLlama2c(await fileSourceNode(join(dir, 'model.bin')), await fileSourceNode(join(dir, 'tok.bin'))),
    join(dir, 'model.bin'),
    'shorter than its header implies',
    `dim=32 hidden_dim=64 n_layers=1 n_heads=2 n_kv_heads=1 vocab_size=260 seq_len=4 needs ${full.length} bytes, the file has ${full.length - 4}`,
  );
});

test('llama2.c: a tokenizer whose vocabulary size differs from the model is refused, naming it', async () => {
  const dir = await folder('llama2c-vocab', { 'model.bin': llama2cBin(300), 'tok.bin': llama2cTokenizer([' ', 'a']) });
  const tokFile = join(dir, 'tok.bin');
  await rejectsWith(
    openLlama2c(await fileSourceNode(join(dir, 'model.bin')), await fileSourceNode(tokFile)),
    tokFile,
    "tokenizer vocabulary has 261 tokens but the model's vocab_size is 300",
  );
  const tok = await readLlama2cTokenizer(await fileSourceNode(tokFile));
  assert.throws(() => checkTokenizer(tok, { ...CONFIG, vocabSize: 4096 }), (e: Error) => e.message.startsWith(`${tokFile}: tokenizer vocabulary has 261`));
  checkTokenizer(tok, { ...CONFIG, vocabSize: 4096 }, { allowPadded: true }); // a padded embedding may be larger,
  assert.throws(() => checkTokenizer(tok, { ...CONFIG, vocabSize: 8 }, { allowPadded: true }), /has 261 tokens/); // never smaller
  // and the pair loads when it matches: the tiny model reads back what was written
  const good = await folder('llama2c-ok', { 'model.bin': llama2cBin(261), 'tok.bin': llama2cTokenizer([' ', 'a']) });
  const ck = await openLlama2c(await fileSourceNode(join(good, 'model.bin')), await fileSourceNode(join(good, 'tok.bin')));
  const q = await ck.weights.read('model.layers.0.self_attn.q_proj.weight'); // after embed (261×32) and rms_att (32)
  assert.equal(q[0], Math.fround((261 * 32 + 32) / 100));
  assert.deepEqual(ck.tokenizer.encode(' a a'), [1, 259, 259, 260, 259, 260]);
});

// ---- GGUF

/** A GGUF v3 file: metadata, tensors (dims innermost-first), data aligned to `align`. */
function gguf(md: [string, number, unknown, number?][], tensors: { name: string; dims: number[]; type: number; data: Uint8Array }[], align = 32, magic = 'GGUF'): Uint8Array {
  const parts: number[] = [];
  const u32 = (x: number) => parts.push(x & 0xff, (x >> 8) & 0xff, (x >> 16) & 0xff, (x >>> 24) & 0xff);
  const u64 = (x: number) => (u32(x % 2 ** 32), u32(Math.floor(x / 2 ** 32)));
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    u64(b.length);
    parts.push(...b);
  };
  const f32 = (x: number) => parts.push(...new Uint8Array(new Float32Array([x]).buffer));
  const value = (type: number, v: unknown, elem?: number): void => {
    if (type === 4 || type === 5) u32(v as number);
    else if (type === 6) f32(v as number);
    else if (type === 8) str(v as string);
    else if (type === 9) {
      u32(elem!);
      u64((v as unknown[]).length);
      for (const x of v as unknown[]) value(elem!, x);
    } else throw new Error(`type ${type}`);
  };
  parts.push(...new TextEncoder().encode(magic));
  u32(3);
  u64(tensors.length);
  u64(md.length);
  for (const [k, type, v, elem] of md) {
    str(k);
    u32(type);
    value(type, v, elem);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach((d) => u64(d));
    u32(t.type);
    u64(off);
    offsets.push(off);
    off = Math.ceil((off + t.data.length) / align) * align;
  }
  const start = Math.ceil(parts.length / align) * align;
  const out = new Uint8Array(start + off);
  out.set(parts);
  tensors.forEach((t, i) => out.set(t.data, start + offsets[i]));
  return out;
}

const GGUF_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'model.layers.0.input_layernorm.weight': 'blk.0.attn_norm.weight',
  'model.layers.0.post_attention_layernorm.weight': 'blk.0.ffn_norm.weight',
  'model.layers.0.self_attn.q_proj.weight': 'blk.0.attn_q.weight',
  'model.layers.0.self_attn.k_proj.weight': 'blk.0.attn_k.weight',
  'model.layers.0.self_attn.v_proj.weight': 'blk.0.attn_v.weight',
  'model.layers.0.self_attn.o_proj.weight': 'blk.0.attn_output.weight',
  'model.layers.0.mlp.gate_proj.weight': 'blk.0.ffn_gate.weight',
  'model.layers.0.mlp.up_proj.weight': 'blk.0.ffn_up.weight',
  'model.layers.0.mlp.down_proj.weight': 'blk.0.ffn_down.weight',
};

test('gguf: v3 with F16 and Q8_0 tensors dequantises, renames and reshapes to HF', async () => {
  const tied = { ...CONFIG, tiedEmbeddings: true };
  // F16 q_proj: a cycle of half bit patterns with known values (1, -2, 1/3 rounded, smallest subnormal)
  const halves: [number, number][] = [[0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x0001, 2 ** -24]];
  const qShape = [32, 32];
  const qData = new Uint8Array(numel(qShape) * 2);
  for (let i = 0; i < numel(qShape); i++) new DataView(qData.buffer).setUint16(2 * i, halves[i % 4][0], true);
  // Q8_0 gate_proj [64, 32]: one block per row, scale 0.5 (f16 0x3800), quants (i % 61) - 30
  const gData = new Uint8Array(64 * 34);
  for (let b = 0; b < 64; b++) {
    new DataView(gData.buffer).setUint16(b * 34, 0x3800, true);
    for (let j = 0; j < 32; j++) new DataView(gData.buffer).setInt8(b * 34 + 2 + j, ((b * 32 + j) % 61) - 30);
  }
  const tensors = [...expectedShapes(tied)].map(([name, shape], i) => {
    const dims = [...shape].reverse();
    if (name.endsWith('q_proj.weight')) return { name: GGUF_NAMES[name], dims, type: 1, data: qData };
    if (name.endsWith('gate_proj.weight')) return { name: GGUF_NAMES[name], dims, type: 8, data: gData };
    return { name: GGUF_NAMES[name], dims, type: 0, data: f32Tensor(shape, i).data };
  });
  const pieces = ['<unk>', '<s>', '</s>', '▁', 'a', 'b', '▁a', 'ab'];
  const md: [string, number, unknown, number?][] = [
    ['general.architecture', 8, 'llama'],
    ['general.alignment', 4, 64],
    ['llama.context_length', 4, 64],
    ['llama.embedding_length', 4, 32],
    ['llama.block_count', 4, 1],
    ['llama.feed_forward_length', 4, 64],
    ['llama.attention.head_count', 4, 2],
    ['llama.attention.head_count_kv', 4, 1],
    ['llama.attention.layer_norm_rms_epsilon', 6, 1e-6],
    ['llama.rope.freq_base', 6, 500000],
    ['tokenizer.ggml.model', 8, 'llama'],
    ['tokenizer.ggml.tokens', 9, pieces, 8],
    ['tokenizer.ggml.scores', 9, [0, 0, 0, 0, 0, 0, -1, -2], 6],
    ['tokenizer.ggml.token_type', 9, [2, 3, 3, 1, 1, 1, 1, 1], 5],
    ['tokenizer.ggml.bos_token_id', 4, 1],
    ['tokenizer.ggml.eos_token_id', 4, 2],
  ];
  const src = bytesSource('tiny.gguf', gguf(md, tensors, 64));
  const ck = await openGguf(src);
  assert.deepEqual(ck.config, { ...tied, ropeStyle: 'interleaved' });
  assert.equal(ck.weights.dtype('model.layers.0.self_attn.q_proj.weight'), 'F16');
  assert.equal(ck.weights.dtype('model.layers.0.mlp.gate_proj.weight'), 'Q8_0');
  assert.deepEqual(ck.weights.shape('model.layers.0.mlp.gate_proj.weight'), [64, 32]);
  const q = await ck.weights.read('model.layers.0.self_attn.q_proj.weight');
  q.forEach((x, i) => assert.equal(x, halves[i % 4][1]));
  const g = await ck.weights.read('model.layers.0.mlp.gate_proj.weight');
  g.forEach((x, i) => assert.equal(x, 0.5 * ((i % 61) - 30)));
  const downAt = [...expectedShapes(tied).keys()].indexOf('model.layers.0.mlp.down_proj.weight'); // its f32Tensor seed
  const down = await ck.weights.read('model.layers.0.mlp.down_proj.weight');
  assert.deepEqual(down, new Float32Array(f32Tensor([32, 64], downAt).data.buffer)); // HF [out, in] = GGUF dims reversed
  // '▁' pieces, a 3-piece vocabulary: ' ab a' merges ' a' (best) twice, never 'ab'
  assert.deepEqual(ck.tokenizer.encode('ab a'), [1, 6, 5, 6]);
  assert.equal(ck.tokenizer.decode([1, 6, 5, 6, 2]), 'ab a');
  assert.equal(ck.weights.f32Bytes(), [...expectedShapes(tied).values()].reduce((s, sh) => s + numel(sh) * 4, 0));
});

test('gguf: bad magic, an unsupported architecture and truncation name the file and the problem', async () => {
  const dir = await folder('gguf-bad', { 'bad.gguf': new TextEncoder().encode('GGML\x03\x00\x00\x00' + '\x00'.repeat(32)) });
  await rejectsWith(openGguf(await fileSourceNode(join(dir, 'bad.gguf'))), join(dir, 'bad.gguf'), 'bad magic "GGML"', 'not a GGUF file');
  const gpt2 = gguf([['general.architecture', 8, 'gpt2']], []);
  await rejectsWith(openGguf(bytesSource('gpt2.gguf', gpt2)), 'gpt2.gguf', 'general.architecture "gpt2" is not supported (supported: llama)');
  const cut = gguf([['general.architecture', 8, 'llama'], ['general.name', 8, 'x'.repeat(100)]], []).subarray(0, 60);
  await rejectsWith(openGguf(bytesSource('cut.gguf', cut)), 'cut.gguf', 'truncated');
});
