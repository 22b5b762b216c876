// The LLaMA-family training forward, over the same weights as the inference forward (src/model/llama.ts),
// read top to bottom like HF modeling_llama.py, on the autograd tape (tape.ts):
//
//   x = embed_tokens[ids]
//   for each layer:                                         (recomputed in the backward when `recompute`)
//     x = x + o_proj(attn(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))),  h = input_layernorm(x)
//       with, in an attention MoE layer, attn gated per token to its top-k KV head groups (attention-moe.ts)
//     x = x + down_proj(silu(gate_proj(h)) ⊙ up_proj(h)),                 h = post_attention_layernorm(x)
//       or, in a MoE layer,
//     x = x + Σ_{e ∈ top-k} w_e·expert_e(h) (+ shared_expert(h))           (moe.ts, Qwen2-MoE's block)
//   loss = CE(lm_head(norm(x)), targets) (+ KL(teacher ‖ student)) (+ Σ_MoE layers α·L_aux), in chunks of rows
//     (an attention MoE's router has its own α·L_aux: LLaMA-MoE v2's balance loss is per router)
//
// Any linear layer may carry a LoRA adapter (lora.ts); parameters train or stay frozen by name
// (params.ts), a MoE layer's router, experts and shared expert included. One sequence per call:
// micro-batches are sequences whose gradients add up in the parameters until the optimizer steps.
import type { Tensor } from '../gpu/tensor.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LlamaModel } from '../model/llama.ts';
import { addLora, type LoraAdapter, type LoraOptions } from './lora.ts';
import { matmul } from '../ops/matmul.ts';
import { attentionMoe, checkAttentionRouting, type AttentionRouting } from './attention-moe.ts';
import { addExpertLora, checkMoeRouting, loraMerge, loraTargets, moe, type MoeRouting } from './moe.ts';
import { add, attention, embed, linear, lmHeadLoss, rmsNorm, rope, swiglu } from './ops.ts';
import { attentionRouterName, llamaParams, moeParamNames, selectTrainable, type FreezeOptions, type MoeLayerWeights, type ParamSet } from './params.ts';
import { Tape, type Var } from './tape.ts';

/** The linear layers of one decoder layer, as HF names the modules (model.layers.<l>.<name>). */
export const LAYER_LINEARS = [
  'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
  'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
] as const;

export interface TrainModel {
  config: ModelConfig;
  /** every weight by its checkpoint name, the LoRA adapters included */
  params: ParamSet;
  /** adapters by module name (model.layers.0.self_attn.q_proj) */
  lora: Map<string, LoraAdapter>;
  /** activation checkpointing: each decoder layer's forward runs again in the backward */
  recompute: boolean;
  /** rows of logits the loss computes at a time */
  lossChunkRows: number;
  /** the MoE layers' routing by layer (their weights are in params, named by moeParamNames) */
  moe: Map<number, MoeRouting>;
  /** the MoE layers' constant expert biases [E, H] by layer, where they have them */
  moeBias: Map<number, Tensor>;
  /** the attention MoE layers' routing by layer (their routers are in params, named by attentionRouterName) */
  attnMoe: Map<number, AttentionRouting>;
}

/** A MoE layer of a TrainModel: its weights (updated in place by training) and how it routes. */
export interface TrainMoeLayer {
  weights: MoeLayerWeights;
  routing: MoeRouting;
}

/** An attention MoE layer of a TrainModel: its router [G, dim] (updated in place by training) and how it routes. */
export interface TrainAttentionMoeLayer {
  router: Tensor;
  routing: AttentionRouting;
}

export interface TrainModelOptions {
  /** LoRA adapters (absent: none); with them, only the adapters train unless freeze.only says otherwise */
  lora?: LoraOptions;
  freeze: FreezeOptions;
  recompute: boolean;
  /** default: as many rows as keep a chunk of logits within 4M values (16 MiB) */
  lossChunkRows?: number;
  /** layers whose FFN is a MoE block (absent: all dense) */
  moe?: ReadonlyMap<number, TrainMoeLayer>;
  /** layers whose attention is an attention MoE (absent: none) */
  attention?: ReadonlyMap<number, TrainAttentionMoeLayer>;
}

/**
 * Every linear module name of a model of config c, layer by layer; a MoE layer has its shared expert's
 * instead of the dense mlp's (its router and stacked experts take no adapter).
 */
export function linearModules(c: ModelConfig, moeLayers: ReadonlyMap<number, TrainMoeLayer> = new Map()): string[] {
  return Array.from({ length: c.nLayers }, (_, l) => {
    const m = moeLayers.get(l);
    const own = LAYER_LINEARS.filter((n) => !m || n.startsWith('self_attn.')).map((n) => `model.layers.${l}.${n}`);
    return m?.weights.shared ? [...own, ...Object.values(moeParamNames(l).shared)] : own;
  }).flat();
}

/**
 * The model's weights as parameters (the model's own tensors: training updates it in place), with LoRA
 * adapters added and the trainable set chosen.
 */
export function trainModel(model: LlamaModel, o: TrainModelOptions): TrainModel {
  const c = model.config;
  const moeLayers = o.moe ?? new Map<number, TrainMoeLayer>();
  for (const [l, m] of moeLayers) {
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) throw new Error(`trainModel: MoE layer ${l} is not in 0..${c.nLayers - 1}`);
    const E = m.weights.router.shape[0];
    checkMoeRouting(`model.layers.${l}.mlp`, E, m.routing);
    if (!!m.routing.noise !== !!m.weights.noise) {
      throw new Error(`model.layers.${l}.mlp: a noisy gate needs both routing.noise and the noise weights Wn (${m.routing.noise ? 'no Wn given' : 'Wn given without routing.noise'})`);
    }
    const b = m.weights.bias;
    if (b && (b.shape.length !== 2 || b.shape[0] !== E || b.shape[1] !== c.dim)) {
      throw new Error(`model.layers.${l}.mlp: the experts' bias must be [${E}, ${c.dim}], got [${b.shape}]`);
    }
  }
  const attnLayers = o.attention ?? new Map<number, TrainAttentionMoeLayer>();
  for (const [l, a] of attnLayers) {
    const where = `model.layers.${l}.self_attn`;
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) throw new Error(`trainModel: attention MoE layer ${l} is not in 0..${c.nLayers - 1}`);
    const [G, dim] = a.router.shape;
    if (a.router.shape.length !== 2 || G !== c.nKvHeads || dim !== c.dim) throw new Error(`${where}.gate: the router must be [${c.nKvHeads}, ${c.dim}] (one row per KV head group), got [${a.router.shape}]`);
    checkAttentionRouting(where, G, c.nHeads, a.routing);
  }
  const params = llamaParams(model.weights, c.tiedEmbeddings, new Map([...moeLayers].map(([l, m]) => [l, m.weights])), new Map([...attnLayers].map(([l, a]) => [l, a.router])));
  const lora = o.lora ? addAdapters(model, params, moeLayers, o.lora) : new Map<string, LoraAdapter>();
  // PEFT's default: with adapters, the base model is frozen
  const only = o.freeze.only.length || !o.lora ? o.freeze.only : ['*.lora_A.weight', '*.lora_B.weight'];
  try {
    selectTrainable(params, { ...o.freeze, only });
  } catch (e) {
    for (const a of lora.values()) [a.A, a.B].forEach((p) => p.release());
    throw e;
  }
  const lossChunkRows = o.lossChunkRows ?? Math.max(1, Math.floor(2 ** 22 / c.vocabSize));
  const moeRouting = new Map([...moeLayers].map(([l, m]) => [l, m.routing]));
  const moeBias = new Map([...moeLayers].flatMap(([l, m]) => (m.weights.bias ? [[l, m.weights.bias] as const] : [])));
  const attnMoe = new Map([...attnLayers].map(([l, a]) => [l, a.routing]));
  return { config: c, params, lora, recompute: o.recompute, lossChunkRows, moe: moeRouting, moeBias, attnMoe };
}

/** The stacked routed-expert modules of the MoE layers (module.weight [E, out, in]). */
function expertModules(moeLayers: ReadonlyMap<number, TrainMoeLayer>): string[] {
  return [...moeLayers.keys()].flatMap((l) => {
    const n = moeParamNames(l);
    return [n.gate_proj, n.up_proj, n.down_proj].map((w) => w.slice(0, -'.weight'.length));
  });
}

/**
 * LoRA adapters on the linear layers (lora.ts) and, per expert, on the routed experts the targets name
 * (moe.ts addExpertLora): 'gate_proj' adapts both, 'experts.gate_proj' the experts only.
 */
function addAdapters(model: LlamaModel, params: ParamSet, moeLayers: ReadonlyMap<number, TrainMoeLayer>, o: LoraOptions): Map<string, LoraAdapter> {
  const linears = linearModules(model.config, moeLayers);
  const experts = expertModules(moeLayers);
  const hits = (mods: string[], target: string) => mods.some((m) => loraTargets(m, target));
  // lora.ts checks the targets against the linear layers: it is given those that are not experts' only
  const linearTargets = o.targets.filter((t) => hits(linears, t) || !hits(experts, t));
  const out = linearTargets.length || !o.targets.length ? addLora(model.gpu, params, linears, { ...o, targets: linearTargets }) : new Map<string, LoraAdapter>();
  const adapted = experts.filter((m) => o.targets.some((t) => loraTargets(m, t)));
  try {
    for (const [m, a] of addExpertLora(model.gpu, params, adapted, o)) out.set(m, a);
  } catch (e) {
    for (const a of out.values()) [a.A, a.B].forEach((p) => p.release());
    throw e;
  }
  return out;
}

/** Gives back the gradients and the adapters (the base weights are the LlamaModel's). */
export function releaseTrainModel(m: TrainModel): void {
  const adapters = new Set([...m.lora.values()].flatMap((a) => [a.A, a.B]));
  for (const p of m.params.all()) {
    if (adapters.has(p)) p.release();
    else {
      p.grad?.release();
      p.grad = null;
    }
  }
}

/** One sequence: ids and next-token targets u32 [T], and the teacher's logits [T, vocab] when distilling. */
export interface Sequence {
  ids: Tensor;
  targets: Tensor;
  teacherLogits?: Tensor;
  /** the sequence's index in the training stream: seeds a noisy-gated router's noise (absent: no noise, as served) */
  key?: number;
}

export interface SequenceLossOptions {
  /** record the backward and add the gradients into the parameters (else: the loss only) */
  train: boolean;
  /** objective = ceScale·Σ_t CE_t + klScale·Σ_t KL_t (e.g. 1/tokens per step for a mean) */
  ceScale: number;
  klScale: number;
  /**
   * per-token losses go to ce (and kl) at rows offset .. offset+T−1; each MoE layer l with a balance
   * loss writes its L_aux on this sequence to aux [nLayers] at element l, an attention MoE's to attnAux
   */
  out: { ce: Tensor; kl?: Tensor; aux?: Tensor; attnAux?: Tensor; offset: number };
  /** the objective adds auxScale·α_l·L_aux,l per MoE layer l (default 1; e.g. 1/sequences per step) */
  auxScale?: number;
}

/** What a decoder layer's MoE block does with its balance loss: its scale, and where L_aux goes. */
export interface AuxOptions {
  scale: number;
  /** the sequence's key (Sequence.key), for a noisy-gated layer's noise */
  key?: number;
  /** [nLayers]: L_aux of layer l at element l */
  out?: Tensor;
  /** [nLayers]: the attention MoE's L_aux of layer l at element l */
  attnOut?: Tensor;
}

/**
 * The logits [T, vocab] of ids u32 [T] into out, by the training forward (no tape recorded): what the
 * loss sees, for checks and evaluation.
 */
export function sequenceLogits(m: TrainModel, ids: Tensor, out: Tensor): void {
  const t = new Tape(m.params.get('model.embed_tokens.weight').value.gpu, false);
  try {
    const h = trunk(t, m, ids, { scale: 1 });
    matmul(h.value, m.params.get(m.config.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight').value, { transB: true, out });
  } finally {
    t.release();
  }
}

/** Records the forward of one sequence and, when training, its backward. Allocates nothing once warm. */
export function sequenceLoss(m: TrainModel, s: Sequence, o: SequenceLossOptions): void {
  const t = new Tape(m.params.get('model.embed_tokens.weight').value.gpu, o.train);
  try {
    forward(t, m, s, o);
    if (o.train) t.backward();
  } finally {
    t.release();
  }
}

// ----------------------------------------------------------------------------------------------- forward

function forward(t: Tape, m: TrainModel, s: Sequence, o: SequenceLossOptions): void {
  const c = m.config;
  const P = (name: string) => t.param(m.params.get(name));
  const h = trunk(t, m, s.ids, { scale: o.auxScale ?? 1, out: o.out.aux, attnOut: o.out.attnAux, key: s.key });

  // loss = CE(lm_head(h), targets) (+ KL(teacher ‖ student)); lm_head is embed_tokens when tied
  const head = P(c.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  if (o.out.kl && !s.teacherLogits) throw new Error('sequenceLoss: out.kl needs the teacher logits');
  lmHeadLoss(t, h, head, {
    targets: s.targets,
    ceScale: o.ceScale,
    teacher: s.teacherLogits && { logits: s.teacherLogits, klScale: o.klScale },
    chunkRows: m.lossChunkRows,
    out: o.out,
  });
}

/** h = norm(x) after every decoder layer, x = embed_tokens[ids]. */
function trunk(t: Tape, m: TrainModel, ids: Tensor, aux: AuxOptions): Var {
  const c = m.config;
  let x = embed(t, t.param(m.params.get('model.embed_tokens.weight')), ids);
  for (let l = 0; l < c.nLayers; l++) {
    x = m.recompute ? t.checkpoint(x, (tl, xl) => decoderLayer(tl, m, l, xl, aux)) : decoderLayer(t, m, l, x, aux);
  }
  return rmsNorm(t, x, t.param(m.params.get('model.norm.weight')), c.normEps);
}

/**
 * One decoder layer on the tape (methods/mod reads the residual stream between layers). `aux`: a MoE
 * layer's balance-loss scale and output (default: scale 1, not written).
 */
export function decoderLayer(t: Tape, m: TrainModel, l: number, x: Var, aux: AuxOptions = { scale: 1 }): Var {
  const c = m.config;
  const p = `model.layers.${l}.`;
  const P = (name: string) => t.param(m.params.get(p + name));
  const lin = (v: Var, module: string) => {
    const a = m.lora.get(p + module);
    const bias = m.params.has(`${p}${module}.bias`) ? P(`${module}.bias`) : undefined;
    return linear(t, v, { weight: P(`${module}.weight`), bias, lora: a && { A: t.param(a.A), B: t.param(a.B), scale: a.scale } });
  };
  const ropeHeads = (heads: number) => ({ heads, theta: c.ropeTheta, interleaved: c.ropeStyle === 'interleaved' });

  // ---- attention: x = x + o_proj(attn(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))), h = input_layernorm(x)
  const h = rmsNorm(t, x, P('input_layernorm.weight'), c.normEps);
  const q = rope(t, lin(h, 'self_attn.q_proj'), ropeHeads(c.nHeads));
  const k = rope(t, lin(h, 'self_attn.k_proj'), ropeHeads(c.nKvHeads));
  const v = lin(h, 'self_attn.v_proj');
  let att = attention(t, q, k, v, c.nHeads, c.nKvHeads);
  const attnRouting = m.attnMoe.get(l);
  if (attnRouting) {
    const auxOut = aux.attnOut && { loss: aux.attnOut, offset: l };
    att = attentionMoe(t, h, att, t.param(m.params.get(attentionRouterName(l))), { ...attnRouting, heads: c.nHeads, auxScale: aux.scale, auxOut });
  }
  x = add(t, x, lin(att, 'self_attn.o_proj'));

  // ---- feed-forward: x = x + down_proj(silu(gate_proj(h)) ⊙ up_proj(h)), h = post_attention_layernorm(x)
  const h2 = rmsNorm(t, x, P('post_attention_layernorm.weight'), c.normEps);
  const routing = m.moe.get(l);
  if (!routing) return add(t, x, lin(swiglu(t, lin(h2, 'mlp.gate_proj'), lin(h2, 'mlp.up_proj')), 'mlp.down_proj'));

  // ---- or MoE: x = x + Σ_{e ∈ top-k} w_e·down_e(silu(gate_e(h)) ⊙ up_e(h)) (+ shared_expert(h))
  const n = moeParamNames(l);
  const W = (name: string) => {
    const a = m.lora.get(name.slice(0, -'.weight'.length));
    const w = t.param(m.params.get(name));
    return a ? loraMerge(t, w, { A: t.param(a.A), B: t.param(a.B), scale: a.scale }) : w;
  };
  const noise = m.params.has(n.routerNoise) ? W(n.routerNoise) : undefined;
  const experts = { router: W(n.router), gate: W(n.gate_proj), up: W(n.up_proj), down: W(n.down_proj), bias: m.moeBias.get(l), noise };
  const auxOut = aux.out && { loss: aux.out, offset: l };
  let y = moe(t, h2, experts, { ...routing, auxScale: aux.scale, auxOut, noiseKey: aux.key });
  if (m.params.has(`${n.shared.down_proj}.weight`)) {
    const sl = (v: Var, module: string) => lin(v, module.slice(p.length));
    y = add(t, y, sl(swiglu(t, sl(h2, n.shared.gate_proj), sl(h2, n.shared.up_proj)), n.shared.down_proj));
  }
  return add(t, x, y);
}
