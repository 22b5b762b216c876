// The LLaMA-family training forward, over the same weights as the inference forward (src/model/llama.ts),
// read top to bottom like HF modeling_llama.py, on the autograd tape (tape.ts):
//
//   x = embed_tokens[ids]
//   for each layer:                                         (recomputed in the backward when `recompute`)
//     x = x + o_proj(attn(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))),  h = input_layernorm(x)
//     x = x + down_proj(silu(gate_proj(h)) ⊙ up_proj(h)),                 h = post_attention_layernorm(x)
//   loss = CE(lm_head(norm(x)), targets) (+ KL(teacher ‖ student)), in chunks of rows
//
// Any linear layer may carry a LoRA adapter (lora.ts); parameters train or stay frozen by name
// (params.ts). One sequence per call: micro-batches are sequences whose gradients add up in the
// parameters until the optimizer steps. The FFN is the dense SwiGLU; a MoE block needs the expert
// input gradient, which the expert kernels (src/ops/moe-train.ts) do not produce yet.
import type { Tensor } from '../gpu/tensor.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LlamaModel } from '../model/llama.ts';
import { addLora, type LoraAdapter, type LoraOptions } from './lora.ts';
import { add, attention, embed, linear, lmHeadLoss, rmsNorm, rope, swiglu } from './ops.ts';
import { llamaParams, selectTrainable, type FreezeOptions, type ParamSet } from './params.ts';
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
}

export interface TrainModelOptions {
  /** LoRA adapters (absent: none); with them, only the adapters train unless freeze.only says otherwise */
  lora?: LoraOptions;
  freeze: FreezeOptions;
  recompute: boolean;
  /** default: as many rows as keep a chunk of logits within 4M values (16 MiB) */
  lossChunkRows?: number;
}

/** Every linear module name of a model of config c, layer by layer. */
export function linearModules(c: ModelConfig): string[] {
  return Array.from({ length: c.nLayers }, (_, l) => LAYER_LINEARS.map((m) => `model.layers.${l}.${m}`)).flat();
}

/**
 * The model's weights as parameters (the model's own tensors: training updates it in place), with LoRA
 * adapters added and the trainable set chosen.
 */
export function trainModel(model: LlamaModel, o: TrainModelOptions): TrainModel {
  const c = model.config;
  const params = llamaParams(model.weights, c.tiedEmbeddings);
  const lora = o.lora ? addLora(model.gpu, params, linearModules(c), o.lora) : new Map<string, LoraAdapter>();
  // PEFT's default: with adapters, the base model is frozen
  const only = o.freeze.only.length || !o.lora ? o.freeze.only : ['*.lora_A.weight', '*.lora_B.weight'];
  try {
    selectTrainable(params, { ...o.freeze, only });
  } catch (e) {
    for (const a of lora.values()) [a.A, a.B].forEach((p) => p.release());
    throw e;
  }
  const lossChunkRows = o.lossChunkRows ?? Math.max(1, Math.floor(2 ** 22 / c.vocabSize));
  return { config: c, params, lora, recompute: o.recompute, lossChunkRows };
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
}

export interface SequenceLossOptions {
  /** record the backward and add the gradients into the parameters (else: the loss only) */
  train: boolean;
  /** objective = ceScale·Σ_t CE_t + klScale·Σ_t KL_t (e.g. 1/tokens per step for a mean) */
  ceScale: number;
  klScale: number;
  /** per-token losses go to ce (and kl) at rows offset .. offset+T−1 */
  out: { ce: Tensor; kl?: Tensor; offset: number };
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

  // x = embed_tokens[ids]
  let x = embed(t, P('model.embed_tokens.weight'), s.ids);

  for (let l = 0; l < c.nLayers; l++) {
    x = m.recompute ? t.checkpoint(x, (tl, xl) => decoderLayer(tl, m, l, xl)) : decoderLayer(t, m, l, x);
  }

  // loss = CE(lm_head(norm(x)), targets) (+ KL(teacher ‖ student)); lm_head is embed_tokens when tied
  const h = rmsNorm(t, x, P('model.norm.weight'), c.normEps);
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

function decoderLayer(t: Tape, m: TrainModel, l: number, x: Var): Var {
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
  x = add(t, x, lin(attention(t, q, k, v, c.nHeads, c.nKvHeads), 'self_attn.o_proj'));

  // ---- feed-forward: x = x + down_proj(silu(gate_proj(h)) ⊙ up_proj(h)), h = post_attention_layernorm(x)
  const h2 = rmsNorm(t, x, P('post_attention_layernorm.weight'), c.normEps);
  return add(t, x, lin(swiglu(t, lin(h2, 'mlp.gate_proj'), lin(h2, 'mlp.up_proj')), 'mlp.down_proj'));
}
