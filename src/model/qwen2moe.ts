// A converted model as a Hugging Face Qwen2-MoE folder (transformers' Qwen2MoeForCausalLM,
// modeling_qwen2_moe.py), and that folder read back into this engine. LaDiMo (Kim et al., arXiv:2408.04278)
// §5 deploys its MoEfied LLaMA models as ordinary MoE checkpoints; Qwen2-MoE is the stock format closest to
// them: LLaMA's attention (+ q/k/v biases) and SwiGLU experts, a softmax router with optional top-k
// renormalisation (norm_topk_prob), and per-layer dense/sparse choice (mlp_only_layers).
//
//   config.json        model_type qwen2_moe; dense layers listed in mlp_only_layers; intermediate_size is
//                      the dense layers' width, moe_intermediate_size the experts' (I_e)
//   model.safetensors  dense tensors under their HF names; MoE layer L as model.layers.L.mlp.gate.weight
//                      [E, H] (the router) and model.layers.L.mlp.experts.{e}.{gate,up,down}_proj.weight;
//                      zero q/k/v biases where the source has none (Qwen2 attention always has them)
//                      (sharded with model.safetensors.index.json past `maxShardBytes`)
//   moefy.json         this run's spec and every MoE layer's policy (top-k or LaDiMo's token-wise dynamic
//                      k with αI, βI): config.json has one num_experts_per_tok for all layers; and the
//                      attention MoE layers (LLaMA-MoE v2), this project's own format: their routers are
//                      model.layers.L.self_attn.gate.weight [G, H] (one row per KV head group), routed as
//                      src/moe/attention.ts does by the top-k and scale listed here. Stock transformers
//                      has no attention MoE: it warns that those tensors are unused and runs the attention
//                      dense, which is a different model; this engine's reader runs them.
//   tokenizer files    copied as given
//
// Shared expert. Qwen2MoeSparseMoeBlock always builds one: y = Σ_k w_k·expert_k(x) + σ(x·w_sᵀ)·shared(x).
// A residual MoE (LLaMA-MoE v2) has an always-on shared expert with no gate: the export writes its gate
// weight as 0, so σ = ½ for every token, and its down_proj doubled, so σ·shared(x) is the engine's
// shared(x) exactly (a power-of-two scale, exact in any float format). config.json has one
// shared_expert_intermediate_size, so every MoE layer's shared expert has the same width; a layer without
// one gets zeros of that width. With no shared expert anywhere, shared_expert_intermediate_size 0 is fine
// for PyTorch's arithmetic (nn.Linear(H, 0)), but its zero-element tensors must then survive safetensors
// (which has disallowed and re-allowed them; torch.frombuffer rejects 0-byte buffers in
// safetensors.torch.load) and transformers' loading and init paths in 4.4x and 5.x, none of which can be
// run from this engine. So the export writes the smallest shared expert instead: intermediate size 1,
// every weight 0, gate weight 0, which adds exactly σ(0)·down(silu(0)·0) = 0 at a cost of 4·H parameters
// per MoE layer. Reading a folder back loads a shared expert whose gate weight is all zero (as ½ of it),
// skips one whose down_proj is all zero, and refuses any other (the engine's shared expert has no gate).
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { MAX_EXPERTS, MAX_TOP_K, type RoutingOptions } from '../ops/moe.ts';
import { convertLayers, uploadMoeWeights, type MoeBlock, type MoeLayer } from '../moe/block.ts';
import { convertAttention, uploadAttentionRouter, type AttentionMoe } from '../moe/attention.ts';
import { configFromHf, type ModelConfig } from './config.ts';
import { LlamaModel, type LoadOptions } from './llama.ts';
import { openSafetensors } from './safetensors.ts';
import { writeSafetensors, type SafetensorsTensor } from './safetensors-write.ts';
import { baseName, CheckpointError, dirName, findFile, readJson, type ByteSource } from './source.ts';
import { checkTokenizer, type Tokenizer } from './tokenizer.ts';
import { readHfTokenizer } from './tokenizer-hf.ts';
import { expectedShapes, fmtShape, numel, weightIndex, type TensorEntry, type WeightIndex } from './weights.ts';

// ----------------------------------------------------------------------------------------------- types

/** How one MoE layer routes: a fixed top-k, or LaDiMo's token-wise k (Appendix A) with αI, βI. */
export type MoePolicy = { topK: number } | { dynamic: { alpha: number; beta: number } };

/** One converted layer, host-side (construct.ts output + router), as the run used it. */
export interface ExportMoeLayer {
  /** [E, H] */
  router: Float32Array;
  /** [E, Ie, H] */
  gate_proj: Float32Array;
  /** [E, Ie, H] */
  up_proj: Float32Array;
  /** [E, H, Ie] */
  down_proj: Float32Array;
  E: number;
  Ie: number;
  policy: MoePolicy;
  normTopK: boolean;
  /** Table 1 local quantiles (router-policy.ts LayerDecision), recorded for fixed layers when known. */
  alphaI?: number;
  betaI?: number;
  /** an always-on shared expert (LLaMA-MoE v2's residual MoE): gate_proj, up_proj [S, H], down_proj [H, S] */
  shared?: { S: number; gate_proj: Float32Array; up_proj: Float32Array; down_proj: Float32Array };
}

/** An attention MoE layer, host-side: the router [G, H] over the KV head groups, its top-k and scale s. */
export interface ExportAttentionLayer {
  router: Float32Array;
  topK: number;
  scale: number;
}

export interface ExportOptions {
  /** The run spec, stored verbatim in moefy.json. */
  spec?: unknown;
  /** Attention MoE layers (their routers go into the safetensors, their routing into moefy.json). */
  attention?: ReadonlyMap<number, ExportAttentionLayer>;
  /** Tokenizer files (tokenizer.json, tokenizer_config.json, …), copied under their base names. */
  tokenizer?: readonly ExportedFile[];
  /**
   * num_experts_per_tok: the k stock transformers routes every MoE layer with. Default: the layers' k when
   * every layer has the same fixed k, else 2 (LaDiMo's default policy, and the middle of dynamic's 1..3).
   */
  topK?: number;
  /** router_aux_loss_coef (transformers' default 0.001); only used if someone trains the export. */
  routerAuxLossCoef?: number;
  /** Largest model shard in bytes before splitting into model-0000i-of-0000n.safetensors (default 1 GiB). */
  maxShardBytes?: number;
}

export interface ExportedFile {
  name: string;
  bytes: Uint8Array;
}

/** moefy.json: what config.json cannot say. */
export interface MoefySidecar {
  format: 'moefy-qwen2moe';
  version: 1;
  spec: unknown;
  /** The k written as num_experts_per_tok (what stock transformers uses at every MoE layer). */
  transformersTopK: number;
  note: string;
  /** The model the experts came from. */
  source: { arch: ModelConfig['arch']; ropeStyle: ModelConfig['ropeStyle']; qkvBias: boolean };
  layers: SidecarLayer[];
  /** attention MoE layers (absent in files from before them: none) */
  attention: SidecarAttention[];
}

/** An attention MoE layer: router model.layers.<layer>.self_attn.gate.weight, top-k of its KV head groups, scale s. */
export interface SidecarAttention {
  layer: number;
  topK: number;
  scale: number;
}

export interface SidecarLayer {
  layer: number;
  /** 'top1' … 'top8', or 'dynamic' (top-1 if w_max ≥ alphaI, top-3 if ≤ betaI, else top-2) */
  policy: SidecarPolicy;
  alphaI: number | null;
  betaI: number | null;
  normTopK: boolean;
}

export type SidecarPolicy = `top${number}` | 'dynamic';

/** A Qwen2-MoE config.json as the engine reads it. */
export interface Qwen2MoeConfig {
  /** The dense blueprint: arch qwen2, hiddenDim = intermediate_size (the dense layers' FFN width). */
  config: ModelConfig;
  /** num_experts */
  nExperts: number;
  /** moe_intermediate_size (I_e) */
  expertDim: number;
  /** num_experts_per_tok */
  topK: number;
  /** norm_topk_prob */
  normTopK: boolean;
  /** shared_expert_intermediate_size */
  sharedExpertDim: number;
  /** Layers with a sparse MoE block, ascending (transformers' rule: not in mlp_only_layers, (l+1) % step = 0). */
  moeLayers: number[];
  /** mlp_only_layers, ascending */
  mlpOnlyLayers: number[];
}

export interface OpenQwen2MoeOptions extends LoadOptions {
  /** Route each MoE layer by moefy.json's policy instead of config.json's num_experts_per_tok / norm_topk_prob. */
  usePolicies?: boolean;
}

/** A Qwen2-MoE folder on the GPU: the dense forward with MoE blocks in the sparse layers' FFN slots. */
export interface OpenedQwen2Moe {
  model: LlamaModel;
  moe: Qwen2MoeConfig;
  layers: Map<number, MoeLayer>;
  blocks: Map<number, MoeBlock>;
  /** moefy.json's attention MoE layers, set as the model's attention gates */
  attention: Map<number, AttentionMoe>;
  sidecar?: MoefySidecar;
  tokenizer?: Tokenizer;
  /** Frees the blocks' buffers, the expert weights and the model. */
  release(): void;
}

const SHARED_EXPERT_DIM = 1;
const DEFAULT_SHARD = 2 ** 30;
const SIDECAR = 'moefy.json';

// ----------------------------------------------------------------------------------------------- export

/**
 * The files of a Hugging Face Qwen2-MoE folder for `config` + dense `weights` (HF names) with the layers
 * in `moeLayers` replaced by their experts. MoE layers' dense mlp weights are not needed in `weights`.
 */
export function exportQwen2Moe(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  moeLayers: ReadonlyMap<number, ExportMoeLayer>,
  opts: ExportOptions = {},
): ExportedFile[] {
  const c = config;
  const fail = (detail: string): never => {
    throw new Error(`exportQwen2Moe: ${detail}`);
  };
  if (c.headDim * c.nHeads !== c.dim) {
    fail(`head_dim ${c.headDim} × ${c.nHeads} heads ≠ hidden_size ${c.dim}: transformers' Qwen2-MoE attention requires head_dim = hidden_size / heads`);
  }
  // ---- the MoE layers, in layer order (never Map insertion order)
  const order = [...moeLayers.keys()].sort((a, b) => a - b);
  if (order.length === 0) fail('no MoE layers: export the dense model instead');
  const first = moeLayers.get(order[0])!;
  const { E, Ie } = first;
  const H = c.dim;
  for (const l of order) {
    const m = moeLayers.get(l)!;
    const at = `layer ${l}`;
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) fail(`${at} is not in 0..${c.nLayers - 1}`);
    if (m.E !== E || m.Ie !== Ie) fail(`${at} has ${m.E} experts × ${m.Ie}, layer ${order[0]} ${E} × ${Ie}: config.json has one num_experts and one moe_intermediate_size`);
    if (!Number.isInteger(E) || E < 1 || E > MAX_EXPERTS || !Number.isInteger(Ie) || Ie < 1) fail(`${at}: E ${E}, Ie ${Ie} must be positive integers (E ≤ ${MAX_EXPERTS})`);
    for (const [name, want] of [['router', E * H], ['gate_proj', E * Ie * H], ['up_proj', E * Ie * H], ['down_proj', E * H * Ie]] as const) {
      if (m[name].length !== want) fail(`${at} ${name} has ${m[name].length} values, expected ${want} (E ${E}, Ie ${Ie}, H ${H})`);
    }
    if (m.normTopK !== first.normTopK) {
      fail(`${at} has normTopK ${m.normTopK} but layer ${order[0]} ${first.normTopK}: config.json has one norm_topk_prob`);
    }
    policyK(m.policy, E, at, fail);
    if (m.shared) {
      const { S: Sl } = m.shared;
      if (!Number.isInteger(Sl) || Sl < 1) fail(`${at} shared expert width ${Sl} must be a positive integer`);
      for (const [name, v] of [['gate_proj', m.shared.gate_proj], ['up_proj', m.shared.up_proj], ['down_proj', m.shared.down_proj]] as const) {
        if (v.length !== Sl * H) fail(`${at} shared_expert.${name} has ${v.length} values, expected ${Sl * H} (S ${Sl}, H ${H})`);
      }
    }
  }
  const widths = new Set(order.flatMap((l) => (moeLayers.get(l)!.shared ? [moeLayers.get(l)!.shared!.S] : [])));
  if (widths.size > 1) fail(`shared experts of widths ${[...widths].join(', ')}: config.json has one shared_expert_intermediate_size`);
  const S = widths.size ? [...widths][0] : SHARED_EXPERT_DIM;
  const ks = new Set(order.map((l) => {
    const p = moeLayers.get(l)!.policy;
    return 'topK' in p ? p.topK : 0; // 0: dynamic
  }));
  const topK = opts.topK ?? (ks.size === 1 && !ks.has(0) ? [...ks][0] : 2);
  if (!Number.isInteger(topK) || topK < 1 || topK > E) fail(`num_experts_per_tok ${topK} must be an integer in [1, ${E}]`);
  const attention = [...(opts.attention ?? new Map<number, ExportAttentionLayer>())].sort(([a], [b]) => a - b);
  for (const [l, a] of attention) {
    const at = `attention MoE layer ${l}`;
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) fail(`${at} is not in 0..${c.nLayers - 1}`);
    if (a.router.length !== c.nKvHeads * H) fail(`${at}: router has ${a.router.length} values, expected ${c.nKvHeads * H} (${c.nKvHeads} KV head groups × H ${H})`);
    if (!Number.isInteger(a.topK) || a.topK < 1 || a.topK > Math.min(MAX_TOP_K, c.nKvHeads)) fail(`${at}: top-k ${a.topK} must be an integer in [1, ${Math.min(MAX_TOP_K, c.nKvHeads)}]`);
    if (!Number.isFinite(a.scale)) fail(`${at}: scale ${a.scale} must be a finite number`);
  }

  // ---- tensors: dense ones by expectedShapes order, HF rotate-half RoPE, zero q/k/v biases if absent
  const moe = new Set(order);
  const tensors: SafetensorsTensor[] = [];
  const need = (name: string, shape: number[]): Float32Array => {
    const w = weights.get(name);
    if (!w) return fail(`no weight "${name}" (the config implies ${fmtShape(shape)})`);
    if (w.length !== numel(shape)) fail(`weight "${name}" has ${w.length} values, the config implies ${fmtShape(shape)}`);
    return w;
  };
  const interleaved = c.ropeStyle === 'interleaved';
  for (const [name, shape] of expectedShapes({ ...c, qkvBias: true })) {
    const l = layerOf(name);
    if (l !== undefined && moe.has(l) && name.includes('.mlp.')) continue;
    let w = name.endsWith('.bias') && !c.qkvBias ? new Float32Array(numel(shape)) : need(name, shape);
    if (interleaved && /\.self_attn\.[qk]_proj\./.test(name)) {
      w = interleavedToHalf(w, name.includes('.q_proj.') ? c.nHeads : c.nKvHeads, c.headDim);
    }
    tensors.push([name, shape, w]);
  }
  for (const l of order) {
    const m = moeLayers.get(l)!;
    const p = `model.layers.${l}.mlp.`;
    tensors.push([`${p}gate.weight`, [E, H], m.router]);
    for (let e = 0; e < E; e++) {
      const s = e * Ie * H;
      tensors.push([`${p}experts.${e}.gate_proj.weight`, [Ie, H], m.gate_proj.subarray(s, s + Ie * H)]);
      tensors.push([`${p}experts.${e}.up_proj.weight`, [Ie, H], m.up_proj.subarray(s, s + Ie * H)]);
      tensors.push([`${p}experts.${e}.down_proj.weight`, [H, Ie], m.down_proj.subarray(s, s + H * Ie)]);
    }
    // σ(0) = ½ on a doubled down_proj: the shared expert contributes fully (zeros where the layer has none)
    const sh = m.shared;
    tensors.push([`${p}shared_expert.gate_proj.weight`, [S, H], sh?.gate_proj ?? new Float32Array(S * H)]);
    tensors.push([`${p}shared_expert.up_proj.weight`, [S, H], sh?.up_proj ?? new Float32Array(S * H)]);
    tensors.push([`${p}shared_expert.down_proj.weight`, [H, S], sh ? sh.down_proj.map((v) => 2 * v) : new Float32Array(H * S)]);
    tensors.push([`${p}shared_expert_gate.weight`, [1, H], new Float32Array(H)]);
  }
  for (const [l, a] of attention) tensors.push([attentionRouterTensor(l), [c.nKvHeads, H], a.router]);

  // ---- config.json (Qwen2MoeConfig's fields)
  const mlpOnly = Array.from({ length: c.nLayers }, (_, l) => l).filter((l) => !moe.has(l));
  const hfConfig = {
    architectures: ['Qwen2MoeForCausalLM'],
    model_type: 'qwen2_moe',
    vocab_size: c.vocabSize,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: c.tiedEmbeddings,
    qkv_bias: true,
    use_sliding_window: false,
    attention_dropout: 0,
    decoder_sparse_step: 1,
    mlp_only_layers: mlpOnly,
    num_experts: E,
    num_experts_per_tok: topK,
    moe_intermediate_size: Ie,
    shared_expert_intermediate_size: S,
    norm_topk_prob: first.normTopK,
    output_router_logits: false,
    router_aux_loss_coef: opts.routerAuxLossCoef ?? 0.001,
    bos_token_id: c.bosId,
    eos_token_id: c.eosId,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };

  // ---- moefy.json
  const sidecar: MoefySidecar = {
    format: 'moefy-qwen2moe',
    version: 1,
    spec: opts.spec ?? null,
    transformersTopK: topK,
    note:
      `config.json routes every MoE layer top-${topK}${first.normTopK ? ' with renormalised weights' : ''}; the layers below are how this run routed. ` +
      `Dynamic layers route token-wise (top-1 if the largest routing weight ≥ alphaI, top-3 if ≤ betaI, else top-2); stock transformers runs them top-${topK}. ` +
      (widths.size
        ? `The shared experts (width ${S}) are always on: each gate weight is 0 (σ = ½) and each down_proj doubled, so they contribute fully.`
        : 'Each MoE layer carries a zero shared expert of size 1 (its output is exactly 0).') +
      (attention.length
        ? ` Layers ${attention.map(([l]) => l).join(', ')} have an attention MoE (listed under attention): a router model.layers.L.self_attn.gate.weight picks each token's top-k KV head groups, whose attention outputs are kept, scaled by s·(routing weight), the others zeroed before o_proj. Stock transformers ignores those routers and runs dense attention, a different model; moefy opens this folder as it ran.`
        : ''),
    source: { arch: c.arch, ropeStyle: c.ropeStyle, qkvBias: c.qkvBias },
    layers: order.map((l) => {
      const m = moeLayers.get(l)!;
      if ('dynamic' in m.policy) return { layer: l, policy: 'dynamic', alphaI: m.policy.dynamic.alpha, betaI: m.policy.dynamic.beta, normTopK: m.normTopK };
      return { layer: l, policy: `top${m.policy.topK}`, alphaI: m.alphaI ?? null, betaI: m.betaI ?? null, normTopK: m.normTopK };
    }),
    attention: attention.map(([layer, a]) => ({ layer, topK: a.topK, scale: a.scale })),
  };

  // ---- files
  const json = (name: string, v: unknown): ExportedFile => ({ name, bytes: new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n') });
  const files: ExportedFile[] = [json('config.json', hfConfig), ...modelFiles(tensors, opts.maxShardBytes ?? DEFAULT_SHARD), json(SIDECAR, sidecar)];
  for (const t of opts.tokenizer ?? []) {
    const name = baseName(t.name);
    if (files.some((f) => f.name === name)) fail(`tokenizer file "${t.name}" would overwrite the exported ${name}`);
    files.push({ name, bytes: t.bytes });
  }
  return files;
}

/** model.safetensors, or shards of at most maxBytes of data with model.safetensors.index.json (HF names). */
function modelFiles(tensors: SafetensorsTensor[], maxBytes: number): ExportedFile[] {
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const shards: SafetensorsTensor[][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of sorted) {
    if (size > 0 && size + t[2].byteLength > maxBytes) [shards[shards.length], size] = [[], 0];
    shards.at(-1)!.push(t);
    size += t[2].byteLength;
    total += t[2].byteLength;
  }
  const meta = { format: 'pt' }; // transformers refuses safetensors without it
  if (shards.length === 1) return [{ name: 'model.safetensors', bytes: writeSafetensors(sorted, meta) }];
  const n = String(shards.length).padStart(5, '0');
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`);
  const weight_map: Record<string, string> = {};
  shards.forEach((s, i) => s.forEach(([name]) => (weight_map[name] = names[i])));
  const index = { metadata: { total_size: total }, weight_map };
  return [
    ...shards.map((s, i) => ({ name: names[i], bytes: writeSafetensors(s, meta) })),
    { name: 'model.safetensors.index.json', bytes: new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n') },
  ];
}

/**
 * q_proj / k_proj rows (or their biases) from interleaved RoPE pairs (2i, 2i+1) (llama2.c, GGUF) to HF's
 * rotate-half pairs (i, i + d/2), per head: row j·d/2 + i ← row 2i + j. Pair i keeps its angle
 * pos·θ^(−2i/d), and q·k is unchanged because q and k are permuted alike (what HF's
 * convert_llama_weights_to_hf.py `permute` does).
 */
export function interleavedToHalf(w: Float32Array, heads: number, headDim: number): Float32Array {
  const cols = w.length / (heads * headDim);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * cols;
        out.set(w.subarray(src, src + cols), (h * headDim + j * half + i) * cols);
      }
    }
  }
  return out;
}

/** The tensor of layer l's attention MoE router. */
function attentionRouterTensor(l: number): string {
  return `model.layers.${l}.self_attn.gate.weight`;
}

function layerOf(name: string): number | undefined {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Slots per token of a policy, after checking it against E experts. */
function policyK(policy: MoePolicy, E: number, at: string, fail: (detail: string) => never): number {
  if ('topK' in policy) {
    const k = policy.topK;
    if (!Number.isInteger(k) || k < 1 || k > Math.min(MAX_TOP_K, E)) fail(`${at}: top-k ${k} must be an integer in [1, ${Math.min(MAX_TOP_K, E)}]`);
    return k;
  }
  const { alpha, beta } = policy.dynamic;
  if (!Number.isFinite(alpha) || !Number.isFinite(beta) || beta > alpha) fail(`${at}: dynamic k needs finite beta ≤ alpha, got alpha ${alpha}, beta ${beta}`);
  if (E < 3) fail(`${at}: dynamic k picks up to 3 experts but there are ${E}`);
  return 3;
}

// ----------------------------------------------------------------------------------------------- reading

/** Reads a parsed Qwen2-MoE config.json; `file` names it in errors. */
export function readQwen2MoeConfig(json: unknown, file = 'config.json'): Qwen2MoeConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CheckpointError(file, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  const fail = (field: string, detail: string): never => {
    throw new CheckpointError(file, `${field}: ${detail}`);
  };
  if (j.model_type !== 'qwen2_moe') fail('model_type', `expected "qwen2_moe", got ${JSON.stringify(j.model_type)}`);
  if (j.use_sliding_window === true) fail('use_sliding_window', 'true is not supported (the engine attends over the whole context)');
  // The dense part is a Qwen2 model: configFromHf checks and reads those fields (errors name the same file).
  const dense = configFromHf({ ...j, model_type: 'qwen2', architectures: undefined }, file);
  const config: ModelConfig = { ...dense, qkvBias: j.qkv_bias !== false };

  const int = (field: string, fallback: number | undefined, lo: number, hi = Infinity): number => {
    const v = j[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      return fail(field, v === undefined ? 'missing' : `expected an integer in [${lo}, ${hi === Infinity ? '∞' : hi}], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const nExperts = int('num_experts', 60, 1, MAX_EXPERTS);
  const topK = int('num_experts_per_tok', 4, 1, Math.min(MAX_TOP_K, nExperts));
  const expertDim = int('moe_intermediate_size', 1408, 1);
  const sharedExpertDim = int('shared_expert_intermediate_size', 5632, 0);
  const step = int('decoder_sparse_step', 1, 1);
  const normTopK = j.norm_topk_prob ?? false;
  if (typeof normTopK !== 'boolean') fail('norm_topk_prob', `expected true or false, got ${JSON.stringify(normTopK)}`);
  const only = j.mlp_only_layers ?? [];
  if (!Array.isArray(only) || !only.every((l) => Number.isInteger(l) && l >= 0 && l < config.nLayers)) {
    fail('mlp_only_layers', `expected a list of layer indices in 0..${config.nLayers - 1}, got ${JSON.stringify(only)}`);
  }
  const mlpOnlyLayers = [...new Set(only as number[])].sort((a, b) => a - b);
  const moeLayers = Array.from({ length: config.nLayers }, (_, l) => l).filter((l) => !mlpOnlyLayers.includes(l) && (l + 1) % step === 0);
  return { config, nExperts, expertDim, topK, normTopK: normTopK as boolean, sharedExpertDim, moeLayers, mlpOnlyLayers };
}

/** Reads a parsed moefy.json against the config: one entry per MoE layer, each policy runnable. */
export function readSidecar(json: unknown, moe: Qwen2MoeConfig, file = SIDECAR): MoefySidecar {
  const fail = (field: string, detail: string): never => {
    throw new CheckpointError(file, `${field}: ${detail}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CheckpointError(file, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  if (j.format !== 'moefy-qwen2moe') fail('format', `expected "moefy-qwen2moe", got ${JSON.stringify(j.format)}`);
  if (j.version !== 1) fail('version', `expected 1, got ${JSON.stringify(j.version)}`);
  if (!Array.isArray(j.layers)) fail('layers', `expected a list, got ${JSON.stringify(j.layers)}`);
  const seen = new Set<number>();
  const layers = (j.layers as unknown[]).map((x, i): SidecarLayer => {
    const at = `layers[${i}]`;
    if (typeof x !== 'object' || x === null) return fail(at, `expected an object, got ${JSON.stringify(x)}`);
    const { layer, policy, alphaI, betaI, normTopK } = x as Record<string, unknown>;
    if (typeof layer !== 'number' || !moe.moeLayers.includes(layer)) {
      fail(`${at}.layer`, `${JSON.stringify(layer)} is not a MoE layer of config.json (MoE layers: ${moe.moeLayers.join(', ')})`);
    }
    if (seen.has(layer as number)) fail(`${at}.layer`, `layer ${layer} is listed twice`);
    seen.add(layer as number);
    const k = typeof policy === 'string' ? /^top([1-9])$/.exec(policy)?.[1] : undefined;
    if (policy !== 'dynamic' && !(k && Number(k) <= Math.min(MAX_TOP_K, moe.nExperts))) {
      fail(`${at}.policy`, `expected top1..top${Math.min(MAX_TOP_K, moe.nExperts)} or dynamic, got ${JSON.stringify(policy)}`);
    }
    const num = (field: string, v: unknown): number | null => {
      if (v === null || v === undefined) {
        if (policy === 'dynamic') fail(`${at}.${field}`, 'a dynamic layer needs a number');
        return null;
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${at}.${field}`, `expected a number or null, got ${JSON.stringify(v)}`);
      return v as number;
    };
    const a = num('alphaI', alphaI);
    const b = num('betaI', betaI);
    if (policy === 'dynamic' && (b! > a! || moe.nExperts < 3)) {
      fail(at, moe.nExperts < 3 ? `dynamic k picks up to 3 experts but num_experts is ${moe.nExperts}` : `dynamic k needs betaI ≤ alphaI, got alphaI ${a}, betaI ${b}`);
    }
    if (normTopK !== undefined && typeof normTopK !== 'boolean') fail(`${at}.normTopK`, `expected true or false, got ${JSON.stringify(normTopK)}`);
    return { layer: layer as number, policy: policy as SidecarPolicy, alphaI: a, betaI: b, normTopK: (normTopK as boolean | undefined) ?? moe.normTopK };
  });
  const missing = moe.moeLayers.filter((l) => !seen.has(l));
  if (missing.length > 0) fail('layers', `no policy for MoE layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  layers.sort((a, b) => a.layer - b.layer);
  const attention = readSidecarAttention(j.attention ?? [], moe.config, fail);
  const s = j.source as Record<string, unknown> | undefined;
  return {
    format: 'moefy-qwen2moe',
    version: 1,
    spec: j.spec ?? null,
    transformersTopK: typeof j.transformersTopK === 'number' ? j.transformersTopK : moe.topK,
    note: typeof j.note === 'string' ? j.note : '',
    source: { arch: (s?.arch as ModelConfig['arch']) ?? 'qwen2', ropeStyle: (s?.ropeStyle as ModelConfig['ropeStyle']) ?? 'half', qkvBias: s?.qkvBias !== false },
    layers,
    attention,
  };
}

/** moefy.json's attention list: each a layer of the model (once), a top-k within its KV head groups, a finite scale. */
function readSidecarAttention(v: unknown, c: ModelConfig, fail: (field: string, detail: string) => never): SidecarAttention[] {
  if (!Array.isArray(v)) return fail('attention', `expected a list, got ${JSON.stringify(v)}`);
  const kMax = Math.min(MAX_TOP_K, c.nKvHeads);
  const seen = new Set<number>();
  return v.map((x, i): SidecarAttention => {
    const at = `attention[${i}]`;
    const { layer, topK, scale } = (x ?? {}) as Record<string, unknown>;
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= c.nLayers) fail(`${at}.layer`, `expected a layer in 0..${c.nLayers - 1}, got ${JSON.stringify(layer)}`);
    if (seen.has(layer as number)) fail(`${at}.layer`, `layer ${layer} is listed twice`);
    seen.add(layer as number);
    if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1 || topK > kMax) fail(`${at}.topK`, `expected an integer in [1, ${kMax}] (${c.nKvHeads} KV head groups), got ${JSON.stringify(topK)}`);
    if (typeof scale !== 'number' || !Number.isFinite(scale)) fail(`${at}.scale`, `expected a finite number, got ${JSON.stringify(scale)}`);
    return { layer: layer as number, topK: topK as number, scale: scale as number };
  }).sort((a, b) => a.layer - b.layer);
}

/**
 * Opens a Qwen2-MoE folder on the GPU: the dense part through LlamaModel.load (arch qwen2), then each MoE
 * layer's router and experts as a MoeBlock in its FFN slot, routed top-k = num_experts_per_tok with
 * norm_topk_prob, or by moefy.json's per-layer policies with `usePolicies`. Every file and shape is
 * checked before anything is uploaded.
 *
 * The dense index LlamaModel.load reads gives the MoE layers' dense mlp slots one-neuron zero placeholders
 * ([1, H], [1, H], [H, 1]): the folder has no dense FFN there, full-size zeros would cost 3·I·H floats a
 * layer, and restoreDense(l) on such a layer fails on the shapes instead of silently computing 0.
 */
export async function openQwen2Moe(files: readonly ByteSource[], gpu: Gpu, opts: OpenQwen2MoeOptions = {}): Promise<OpenedQwen2Moe> {
  const dir = dirName(files);
  const configFile = findFile(files, 'config.json');
  if (!configFile) throw new CheckpointError(dir, `no config.json (files: ${files.map((f) => baseName(f.name)).join(', ')})`);
  const moe = readQwen2MoeConfig(await readJson(configFile), configFile.name);
  const c = moe.config;
  const sidecarFile = findFile(files, SIDECAR);
  const sidecar = sidecarFile ? readSidecar(await readJson(sidecarFile), moe, sidecarFile.name) : undefined;
  if (opts.usePolicies && !sidecar) throw new CheckpointError(dir, `usePolicies needs ${SIDECAR}, which is not among the files`);

  // ---- locate and check every tensor
  const { file, tensors } = await openSafetensors(files);
  const at = (name: string, want: readonly number[], why: string): TensorEntry => {
    const e = tensors.get(name);
    if (!e) throw new CheckpointError(file, `missing tensor "${name}" (config.json implies shape ${fmtShape(want)}: ${why})`);
    if (e.shape.length !== want.length || e.shape.some((d, i) => d !== want[i])) {
      throw new CheckpointError(file, `tensor "${name}" has shape ${fmtShape(e.shape)} but config.json implies ${fmtShape(want)} (${why})`);
    }
    return e;
  };
  const H = c.dim;
  const { nExperts: E, expertDim: Ie, sharedExpertDim: S } = moe;
  const sparse = new Set(moe.moeLayers);
  const dense = new Map<string, TensorEntry>();
  for (const [name, want] of expectedShapes(c)) {
    const l = layerOf(name);
    if (l !== undefined && sparse.has(l) && name.includes('.mlp.')) continue;
    dense.set(name, at(name, want, `hidden_size ${H}, intermediate_size ${c.hiddenDim}, heads ${c.nHeads}/${c.nKvHeads} kv × head_dim ${c.headDim}, vocab ${c.vocabSize}`));
  }
  const expertWhy = `num_experts ${E}, moe_intermediate_size ${Ie}, hidden_size ${H}`;
  const sparseEntries = new Map<string, TensorEntry>();
  const want = (name: string, shape: number[], why: string) => sparseEntries.set(name, at(name, shape, why));
  for (const l of moe.moeLayers) {
    const p = `model.layers.${l}.mlp.`;
    want(`${p}gate.weight`, [E, H], expertWhy);
    for (let e = 0; e < E; e++) {
      want(`${p}experts.${e}.gate_proj.weight`, [Ie, H], expertWhy);
      want(`${p}experts.${e}.up_proj.weight`, [Ie, H], expertWhy);
      want(`${p}experts.${e}.down_proj.weight`, [H, Ie], expertWhy);
    }
    if (S > 0) {
      const why = `shared_expert_intermediate_size ${S}`;
      want(`${p}shared_expert.gate_proj.weight`, [S, H], why);
      want(`${p}shared_expert.up_proj.weight`, [S, H], why);
      want(`${p}shared_expert.down_proj.weight`, [H, S], why);
      want(`${p}shared_expert_gate.weight`, [1, H], why);
    }
  }
  for (const a of sidecar?.attention ?? []) want(attentionRouterTensor(a.layer), [c.nKvHeads, H], `moefy.json lists layer ${a.layer} as an attention MoE over ${c.nKvHeads} KV head groups, hidden_size ${H}`);
  const read = weightIndex(c, sparseEntries).read;
  // each layer's shared expert as the engine runs it (no gate): ½·down_proj under a zero gate; none when it is zero
  const shared = new Map<number, { gate_proj: Float32Array; up_proj: Float32Array; down_proj: Float32Array }>();
  for (const l of S > 0 ? moe.moeLayers : []) {
    const p = `model.layers.${l}.mlp.shared_expert`;
    const down = await read(`${p}.down_proj.weight`);
    if (down.every((v) => v === 0)) continue;
    if ((await read(`${p}_gate.weight`)).some((v) => v !== 0)) {
      throw new CheckpointError(file, `tensor "${p}_gate.weight" is not zero: the engine's shared expert is always on, so only a zero gate (σ = ½, as MoEfy exports it) loads`);
    }
    shared.set(l, { gate_proj: await read(`${p}.gate_proj.weight`), up_proj: await read(`${p}.up_proj.weight`), down_proj: down.map((v) => 0.5 * v) });
  }
  let tokenizer: Tokenizer | undefined;
  const tokFile = findFile(files, 'tokenizer.json');
  if (tokFile) {
    tokenizer = await readHfTokenizer(tokFile, findFile(files, 'tokenizer_config.json'), c);
    checkTokenizer(tokenizer, c, { allowPadded: true });
  }

  // ---- routing per layer
  const routing = (l: number): RoutingOptions => {
    if (!opts.usePolicies) return { topK: moe.topK, normTopK: moe.normTopK };
    const s = sidecar!.layers.find((x) => x.layer === l)!;
    if (s.policy === 'dynamic') return { dynamic: { alpha: s.alphaI!, beta: s.betaI! }, normTopK: s.normTopK };
    return { topK: Number(s.policy.slice(3)), normTopK: s.normTopK };
  };

  // ---- upload: the dense forward, then the experts
  const moeBytes = moe.moeLayers.length * 4 * (E * H + 3 * E * Ie * H);
  const onProgress = opts.onProgress;
  const index = denseIndex(c, dense, moe.moeLayers);
  const model = await LlamaModel.load(gpu, index, { ...opts, onProgress: onProgress && ((n, _total, t) => onProgress(n, index.f32Bytes() + moeBytes, t)) });
  const layers = new Map<number, MoeLayer>();
  const attnRouters = new Map<number, Tensor>();
  const releaseWeights = () => {
    for (const L of layers.values()) [...Object.values(L.weights), ...Object.values(L.shared ?? {})].forEach((t: Tensor) => t.release());
    for (const r of attnRouters.values()) r.release();
  };
  try {
    let loaded = index.f32Bytes();
    for (const l of moe.moeLayers) {
      const p = `model.layers.${l}.mlp.`;
      const stack = async (proj: string, per: number): Promise<Float32Array> => {
        const out = new Float32Array(E * per); // [E, …]: expert e's [Ie, H] or [H, Ie] at e·per
        for (let e = 0; e < E; e++) out.set(await read(`${p}experts.${e}.${proj}.weight`), e * per);
        return out;
      };
      const w = { router: await read(`${p}gate.weight`), gate_proj: await stack('gate_proj', Ie * H), up_proj: await stack('up_proj', Ie * H), down_proj: await stack('down_proj', H * Ie) };
      const sh = shared.get(l);
      layers.set(l, {
        weights: uploadMoeWeights(gpu, w, E, H, Ie),
        routing: routing(l),
        shared: sh && { gate_proj: gpu.upload(sh.gate_proj, [S, H], `${p}shared_expert.gate_proj`), up_proj: gpu.upload(sh.up_proj, [S, H], `${p}shared_expert.up_proj`), down_proj: gpu.upload(sh.down_proj, [H, S], `${p}shared_expert.down_proj`) },
      });
      loaded += 4 * (E * H + 3 * E * Ie * H);
      onProgress?.(loaded, index.f32Bytes() + moeBytes, `${p}experts`);
    }
    for (const a of sidecar?.attention ?? []) attnRouters.set(a.layer, uploadAttentionRouter(gpu, await read(attentionRouterTensor(a.layer)), c.nKvHeads, H));
  } catch (e) {
    releaseWeights();
    model.release();
    throw e;
  }
  const blocks = convertLayers(model, layers);
  const attention = convertAttention(model, new Map((sidecar?.attention ?? []).map((a) => [a.layer, { router: attnRouters.get(a.layer)!, topK: a.topK, scale: a.scale }])));
  return {
    model,
    moe,
    layers,
    blocks,
    attention,
    sidecar,
    tokenizer,
    release() {
      for (const b of blocks.values()) b.release();
      for (const g of attention.values()) g.release();
      releaseWeights();
      model.release();
    },
  };
}

/** The dense tensors, plus one-neuron zero placeholders for the MoE layers' dense mlp slots (see openQwen2Moe). */
function denseIndex(c: ModelConfig, entries: ReadonlyMap<string, TensorEntry>, moeLayers: readonly number[]): WeightIndex {
  const base = weightIndex(c, entries);
  const placeholders = new Map<string, number[]>();
  for (const l of moeLayers) {
    const p = `model.layers.${l}.mlp.`;
    placeholders.set(`${p}gate_proj.weight`, [1, c.dim]);
    placeholders.set(`${p}up_proj.weight`, [1, c.dim]);
    placeholders.set(`${p}down_proj.weight`, [c.dim, 1]);
  }
  const names = [...expectedShapes(c).keys()];
  const extra = moeLayers.length * 3 * c.dim * 4;
  return {
    config: c,
    names: () => [...names],
    shape: (name) => [...(placeholders.get(name) ?? base.shape(name))],
    dtype: (name) => (placeholders.has(name) ? 'F32' : base.dtype(name)),
    read: async (name) => {
      const s = placeholders.get(name);
      return s ? new Float32Array(numel(s)) : base.read(name);
    },
    f32Bytes: () => base.f32Bytes() + extra,
  };
}
