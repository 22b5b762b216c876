// The Qwen2-MoE export (qwen2moe.ts) against the engine it came from: a random tiny LLaMA (no biases) with
// layers 1.. converted to LaDiMo experts (construct.ts) and a random router runs the MoE forward; the
// exported folder, read back from memory with openQwen2Moe, must give the same logits. Also: config.json
// lists the dense layers in mlp_only_layers, the added q/k/v biases are zero, the sidecar's per-layer
// policies route as the run did, safetensors files survive the existing parser, and malformed files are
// named with the field at fault.
import type { CheckCase, CheckResult } from '../ops/check.ts';
import { TOL, relL2 } from '../ops/check.ts';
import type { Gpu } from '../gpu/device.ts';
import type { Rng } from '../data/rng.ts';
import { convertAttention, uploadAttentionRouter } from '../moe/attention.ts';
import { convertLayers, uploadMoeWeights, type MoeLayer } from '../moe/block.ts';
import { constructExperts, type SplitMethod } from '../methods/ladimo/construct.ts';
import type { ModelConfig } from './config.ts';
import { LlamaModel } from './llama.ts';
import { base, randomModel } from './llama.check.ts';
import { exportQwen2Moe, openQwen2Moe, type ExportedFile, type ExportMoeLayer, type MoePolicy } from './qwen2moe.ts';
import { openSafetensors, parseSafetensors } from './safetensors.ts';
import { writeSafetensors } from './safetensors-write.ts';
import { bytesSource, type ByteSource } from './source.ts';
import { weightIndex } from './weights.ts';

const E = 4;
const pass = (ok: boolean): number => (ok ? 0 : Infinity);
const sources = (files: readonly ExportedFile[]): ByteSource[] => files.map((f) => bytesSource(`qwen2moe-out/${f.name}`, f.bytes));
const parse = (files: readonly ExportedFile[], name: string): Record<string, unknown> =>
  JSON.parse(new TextDecoder().decode(files.find((f) => f.name === name)!.bytes));

interface RoundTrip {
  label: string;
  over: Partial<ModelConfig>;
  method: SplitMethod;
  /** per MoE layer 1, 2, … */
  policies: MoePolicy[];
  normTopK: boolean;
  /** what config.json must say */
  topK: number;
  usePolicies?: boolean;
  maxShardBytes?: number;
  /** a shared expert of this width in layer 1 (LLaMA-MoE v2's residual MoE); layer 2 has none */
  shared?: number;
  /** attention MoE (LLaMA-MoE v2) in these layers, top-k of the KV head groups, s = G */
  attention?: { layers: number[]; topK: number };
}

const roundTrips: RoundTrip[] = [
  { label: 'fixed top-2, norm_topk_prob true', over: {}, method: 'contiguous', policies: [{ topK: 2 }, { topK: 2 }], normTopK: true, topK: 2 },
  {
    label: 'top-1, norm_topk_prob false (interleaved-RoPE source, ragged experts, sharded)',
    over: { ropeStyle: 'interleaved', hiddenDim: 42, tiedEmbeddings: false },
    method: 'random', policies: [{ topK: 1 }, { topK: 1 }], normTopK: false, topK: 1, maxShardBytes: 16 << 10,
  },
  {
    label: "per-layer policies from moefy.json (top-1, dynamic), usePolicies",
    over: {}, method: 'contiguous', policies: [{ topK: 1 }, { dynamic: { alpha: 0.55, beta: 0.35 } }], normTopK: true, topK: 2, usePolicies: true,
  },
  {
    label: 'shared expert S 6 in layer 1 (σ(0)·2·down_proj), none in layer 2 (zeros of width 6), top-2',
    over: {}, method: 'random', policies: [{ topK: 2 }, { topK: 2 }], normTopK: true, topK: 2, shared: 6,
  },
  {
    label: 'attention MoE top-1 of 2 KV head groups in layers 0 (dense MLP) and 2, listed in moefy.json, shared expert S 6',
    over: {}, method: 'random', policies: [{ topK: 2 }, { topK: 2 }], normTopK: false, topK: 2, shared: 6, attention: { layers: [0, 2], topK: 1 },
  },
];

async function roundTrip(gpu: Gpu, rng: Rng, t: RoundTrip): Promise<CheckResult> {
  const c: ModelConfig = { ...base, nLayers: 1 + t.policies.length, ...t.over };
  const { index, weights } = randomModel(c, rng);
  const ids = Array.from({ length: 9 }, () => rng.int(c.vocabSize));

  // ---- the run: layers 1.. as MoE in the engine (inserted last-first: export order must not follow the Map)
  const host = new Map<number, ExportMoeLayer>();
  const gpuLayers = new Map<number, MoeLayer>();
  for (let l = c.nLayers - 1; l >= 1; l--) {
    const w = (n: string) => weights.get(`model.layers.${l}.mlp.${n}.weight`)!;
    const ex = constructExperts({ H: c.dim, I: c.hiddenDim, gate_proj: w('gate_proj'), up_proj: w('up_proj'), down_proj: w('down_proj') }, { nExperts: E, method: t.method, seed: l });
    const router = rng.normals(E * c.dim, 1 / Math.sqrt(c.dim));
    const policy = t.policies[l - 1];
    const S = t.shared ?? 0;
    const sh = S && l === 1 ? { S, gate_proj: rng.normals(S * c.dim, 1 / Math.sqrt(c.dim)), up_proj: rng.normals(S * c.dim, 1 / Math.sqrt(c.dim)), down_proj: rng.normals(c.dim * S, 1 / Math.sqrt(S)) } : undefined;
    host.set(l, { ...ex, router, E, Ie: ex.expertDim, policy, normTopK: t.normTopK, shared: sh });
    gpuLayers.set(l, {
      weights: uploadMoeWeights(gpu, { ...ex, router }, E, c.dim, ex.expertDim),
      routing: { ...policy, normTopK: t.normTopK },
      shared: sh && { gate_proj: gpu.upload(sh.gate_proj, [S, c.dim]), up_proj: gpu.upload(sh.up_proj, [S, c.dim]), down_proj: gpu.upload(sh.down_proj, [c.dim, S]) },
    });
  }
  const G = c.nKvHeads;
  const attention = new Map((t.attention?.layers ?? []).map((l) => [l, { router: rng.normals(G * c.dim, 2 / Math.sqrt(c.dim)), topK: t.attention!.topK, scale: G }]));
  const model = await LlamaModel.load(gpu, index);
  const blocks = convertLayers(model, gpuLayers);
  const routers = new Map([...attention].map(([l, a]) => [l, { router: uploadAttentionRouter(gpu, a.router, G, c.dim), topK: a.topK, scale: a.scale }]));
  const gates = convertAttention(model, routers);
  const want = (await model.forward(ids).read()) as Float32Array;
  for (const g of gates.values()) g.release();
  for (const r of routers.values()) r.router.release();
  for (const b of blocks.values()) b.release();
  for (const L of gpuLayers.values()) [...Object.values(L.weights), ...Object.values(L.shared ?? {})].forEach((x) => x.release());
  model.release();

  // ---- export (MoE layers' dense mlp weights left out of the map: the exporter must not need them)
  const dense = new Map([...weights].filter(([name]) => !/^model\.layers\.([1-9]\d*)\.mlp\./.test(name)));
  const tokConfig = new TextEncoder().encode('{"model_max_length": 32}\n');
  const spec = { method: 'ladimo', seed: 1234 };
  const files = exportQwen2Moe(c, dense, host, { spec, tokenizer: [{ name: 'src-model/tokenizer_config.json', bytes: tokConfig }], maxShardBytes: t.maxShardBytes, attention });

  // ---- read back
  const opened = await openQwen2Moe(sources(files), gpu, { usePolicies: t.usePolicies });
  const got = (await opened.model.forward(ids).read()) as Float32Array;
  const qkvBias = opened.model.config.qkvBias;
  const sidecar = opened.sidecar;
  const gated = [...opened.attention.keys()].join(',');
  opened.release();

  const cfg = parse(files, 'config.json');
  const mlpOnly = JSON.stringify(cfg.mlp_only_layers) === '[0]';
  const fields =
    cfg.model_type === 'qwen2_moe' && JSON.stringify(cfg.architectures) === '["Qwen2MoeForCausalLM"]' &&
    cfg.num_experts === E && cfg.num_experts_per_tok === t.topK && cfg.norm_topk_prob === t.normTopK &&
    cfg.moe_intermediate_size === host.get(1)!.Ie && cfg.intermediate_size === c.hiddenDim && cfg.decoder_sparse_step === 1 &&
    cfg.shared_expert_intermediate_size === (t.shared ?? 1) && cfg.output_router_logits === false && cfg.tie_word_embeddings === c.tiedEmbeddings;
  const { tensors } = await openSafetensors(sources(files));
  const read = weightIndex(c, tensors).read;
  let biases = qkvBias;
  for (let l = 0; l < c.nLayers; l++) {
    for (const p of ['q', 'k', 'v']) {
      const b = tensors.has(`model.layers.${l}.self_attn.${p}_proj.bias`) ? await read(`model.layers.${l}.self_attn.${p}_proj.bias`) : undefined;
      biases &&= b !== undefined && b.every((v) => v === 0);
    }
  }
  // the shared expert as written: its gate 0 (σ = ½) and down_proj doubled, or zeros where a layer has none
  let shared = true;
  for (let l = 1; l < c.nLayers; l++) {
    const sh = host.get(l)!.shared;
    const expect: [string, (v: number, i: number) => number][] = [
      ['shared_expert.gate_proj', (_, i) => sh?.gate_proj[i] ?? 0],
      ['shared_expert.up_proj', (_, i) => sh?.up_proj[i] ?? 0],
      ['shared_expert.down_proj', (_, i) => 2 * (sh?.down_proj[i] ?? 0)],
      ['shared_expert_gate', () => 0],
    ];
    for (const [n, f] of expect) shared &&= (await read(`model.layers.${l}.mlp.${n}.weight`)).every((v, i) => v === f(v, i));
  }
  const policies = sidecar?.layers.map((s) => `${s.layer}:${s.policy}`).join(',') === t.policies.map((p, i) => `${i + 1}:${'topK' in p ? `top${p.topK}` : 'dynamic'}`).join(',');
  const tok = files.find((f) => f.name === 'tokenizer_config.json');
  const copied = tok !== undefined && tok.bytes.length === tokConfig.length && tok.bytes.every((v, i) => v === tokConfig[i]);
  const sharded = t.maxShardBytes === undefined ? files.some((f) => f.name === 'model.safetensors') : files.some((f) => f.name === 'model.safetensors.index.json');
  const e = relL2(got, want);
  const outputs: Record<string, number> = {
    'logits: read back vs engine': e,
    'config.json mlp_only_layers = [0]': pass(mlpOnly),
    'config.json MoE fields': pass(fields),
    'q/k/v biases present and zero': pass(biases),
    [t.shared ? 'shared expert: gate 0, down_proj doubled, zeros elsewhere' : 'shared expert all zero']: pass(shared),
    'moefy.json policies and spec': pass(policies && JSON.stringify(sidecar?.spec) === JSON.stringify(spec)),
    'tokenizer file copied': pass(copied),
    'moefy.json attention MoE layers, read back as gates': pass(
      JSON.stringify(sidecar?.attention) === JSON.stringify([...attention].map(([layer, a]) => ({ layer, topK: a.topK, scale: a.scale }))) && gated === [...attention.keys()].join(','),
    ),
    [t.maxShardBytes === undefined ? 'single model.safetensors' : 'sharded with index.json']: pass(sharded),
  };
  return { err: Math.max(...Object.values(outputs)), outputs };
}

const roundTripChecks: CheckCase[] = roundTrips.map((t) => ({
  family: 'export',
  name: `Qwen2-MoE folder read back = engine MoE logits: ${t.label}`,
  tol: TOL.gemm,
  run: (gpu, rng) => roundTrip(gpu, rng, t),
}));

const safetensorsCheck: CheckCase = {
  family: 'export',
  name: 'writeSafetensors: parsed back by parseSafetensors, sorted keys, header padded to 8 bytes',
  tol: 0,
  async run(_gpu, rng) {
    const tensors: [string, number[], Float32Array][] = [
      ['b.weight', [3, 5], rng.normals(15)],
      ['a.bias', [7], rng.normals(7)],
      ['c.scalar', [], Float32Array.of(Math.PI)],
    ];
    const bytes = writeSafetensors(tensors, { format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const parsed = await parseSafetensors(bytesSource('roundtrip.safetensors', bytes));
    let same = true;
    for (const [name, shape, data] of tensors) {
      const e = parsed.get(name);
      const back = e && new Float32Array(bytes.slice(e.offset, e.offset + data.byteLength).buffer);
      same &&= !!e && e.dtype === 'F32' && JSON.stringify(e.shape) === JSON.stringify(shape) && !!back && back.every((v, i) => Object.is(v, data[i]));
    }
    const keys = Object.keys(JSON.parse(header));
    const outputs = {
      'values and shapes': pass(same),
      'header length multiple of 8, space padded': pass(n % 8 === 0 && header.trimEnd().length <= n && /^ *$/.test(header.slice(header.trimEnd().length))),
      'keys: __metadata__, then sorted': pass(JSON.stringify(keys) === '["__metadata__","a.bias","b.weight","c.scalar"]'),
      'data section starts 8-aligned, offsets contiguous': pass((8 + n) % 8 === 0 && parsed.get('a.bias')!.offset === 8 + n),
    };
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

const errorsCheck: CheckCase = {
  family: 'export',
  name: 'malformed config.json / moefy.json / weights: errors name the file and the field',
  tol: 0,
  async run(gpu, rng) {
    const c: ModelConfig = { ...base, nLayers: 2 };
    const { weights } = randomModel(c, rng);
    const w = (n: string) => weights.get(`model.layers.1.mlp.${n}.weight`)!;
    const ex = constructExperts({ H: c.dim, I: c.hiddenDim, gate_proj: w('gate_proj'), up_proj: w('up_proj'), down_proj: w('down_proj') }, { nExperts: E, method: 'contiguous' });
    const host = new Map([[1, { ...ex, router: rng.normals(E * c.dim), E, Ie: ex.expertDim, policy: { topK: 2 }, normTopK: false }]]);
    const files = exportQwen2Moe(c, weights, host);
    const edit = (name: string, f: (j: Record<string, unknown>) => void): ExportedFile[] =>
      files.map((x) => {
        if (x.name !== name) return x;
        const j = parse(files, name);
        f(j);
        return { name, bytes: new TextEncoder().encode(JSON.stringify(j)) };
      });
    const message = async (fs: ExportedFile[], usePolicies = false): Promise<string> =>
      openQwen2Moe(sources(fs), gpu, { usePolicies }).then((m) => (m.release(), 'opened'), (e: Error) => e.message);
    const cases: [string, ExportedFile[], string[], boolean?][] = [
      ['num_experts not an integer', edit('config.json', (j) => (j.num_experts = 'four')), ['config.json', 'num_experts']],
      ['model_type', edit('config.json', (j) => (j.model_type = 'llama')), ['config.json', 'model_type', 'qwen2_moe']],
      ['mlp_only_layers out of range', edit('config.json', (j) => (j.mlp_only_layers = [0, 7])), ['config.json', 'mlp_only_layers']],
      ['sidecar policy', edit('moefy.json', (j) => ((j.layers as Record<string, unknown>[])[0].policy = 'top9')), ['moefy.json', 'layers[0].policy'], true],
      ['sidecar missing a layer', edit('moefy.json', (j) => (j.layers = [])), ['moefy.json', 'layers', 'MoE layer 1'], true],
      ['expert shape', edit('config.json', (j) => (j.moe_intermediate_size = 12)), ['model.safetensors', 'experts.0.gate_proj', 'moe_intermediate_size 12']],
      ['usePolicies without sidecar', files.filter((f) => f.name !== 'moefy.json'), ['moefy.json', 'usePolicies'], true],
      ['attention MoE top-k past the KV head groups', edit('moefy.json', (j) => (j.attention = [{ layer: 0, topK: c.nKvHeads + 1, scale: 2 }])), ['moefy.json', 'attention[0].topK', `[1, ${c.nKvHeads}]`]],
      ['attention MoE without its router', edit('moefy.json', (j) => (j.attention = [{ layer: 0, topK: 1, scale: 2 }])), ['model.safetensors', 'model.layers.0.self_attn.gate.weight', 'attention MoE']],
    ];
    // a shared expert whose gate is not zero: transformers would scale it per token, the engine cannot
    const S = 2;
    const withShared = exportQwen2Moe(c, weights, new Map([[1, { ...host.get(1)!, shared: { S, gate_proj: rng.normals(S * c.dim), up_proj: rng.normals(S * c.dim), down_proj: rng.normals(c.dim * S) } }]]));
    const st = withShared.find((f) => f.name === 'model.safetensors')!;
    const gate = (await parseSafetensors(bytesSource('model.safetensors', st.bytes))).get('model.layers.1.mlp.shared_expert_gate.weight')!;
    const gated = st.bytes.slice();
    new DataView(gated.buffer).setFloat32(gate.offset, 0.5, true);
    cases.push(['shared expert with a gate', withShared.map((f) => (f === st ? { name: f.name, bytes: gated } : f)), ['model.safetensors', 'shared_expert_gate.weight', 'is not zero']]);
    const outputs: Record<string, number> = {};
    for (const [label, fs, words, usePolicies] of cases) {
      const m = await message(fs, usePolicies);
      outputs[label] = pass(words.every((x) => m.includes(x)));
    }
    outputs['clean folder opens'] = pass((await message(files)) === 'opened');
    outputs['clean folder with a shared expert opens'] = pass((await message(withShared)) === 'opened');
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const qwen2moeChecks: CheckCase[] = [safetensorsCheck, ...roundTripChecks, errorsCheck];
