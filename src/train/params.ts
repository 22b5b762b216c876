// A model's weights as named training parameters (the checkpoint's names, so saving and loading is copying
// by name), and which of them train: name patterns select them (train only the routers, only LoRA
// adapters, only norms), as PEFT's target_modules / requires_grad_ settings do. A MoE layer's FFN
// parameters are named as Qwen2-MoE names them (modeling_qwen2_moe.py), the routed experts stacked.
import type { Tensor } from '../gpu/tensor.ts';
import type { Weights } from '../model/llama.ts';
import type { MoeWeights } from '../ops/moe.ts';
import { Param } from './tape.ts';

export class ParamSet {
  private readonly byName = new Map<string, Param>();

  add(name: string, value: Tensor, trainable = true): Param {
    if (this.byName.has(name)) throw new Error(`ParamSet: parameter ${name} is given twice`);
    const p = new Param(name, value, trainable);
    this.byName.set(name, p);
    return p;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): Param {
    const p = this.byName.get(name);
    if (!p) throw new Error(`ParamSet: no parameter ${name} (it has ${this.byName.size}: ${[...this.byName.keys()].slice(0, 3).join(', ')}, …)`);
    return p;
  }

  /** Every parameter, in the order added (the checkpoint's order). */
  all(): Param[] {
    return [...this.byName.values()];
  }

  trainable(): Param[] {
    return this.all().filter((p) => p.trainable);
  }

  /** Elements of all parameters, and of the trainable ones. */
  counts(): { total: number; trainable: number } {
    const n = (ps: Param[]) => ps.reduce((s, p) => s + p.value.size, 0);
    return { total: n(this.all()), trainable: n(this.trainable()) };
  }
}

/** A MoE layer's FFN weights (the caller's tensors: training updates them in place). */
export interface MoeLayerWeights extends MoeWeights {
  /** an always-active dense SwiGLU added to the routed output (LLaMA-MoE v2's residual MoE) */
  shared?: { gate_proj: Tensor; up_proj: Tensor; down_proj: Tensor };
  /** each expert's down_proj bias [E, H] (DIVE's FLAP compensation): a constant, not a parameter */
  bias?: Tensor;
  /** the noisy gate's noise weights Wn [E, H] (LLaMA-MoE's gate.weight_noise), trained with the router */
  noise?: Tensor;
}

/**
 * Parameter names of MoE layer l's FFN, Qwen2-MoE's with the experts stacked (HF's
 * mlp.experts.{e}.gate_proj.weight [I, H] is row block e of mlp.experts.gate_proj.weight [E, I, H]).
 */
export function moeParamNames(l: number) {
  const p = `model.layers.${l}.mlp.`;
  return {
    router: `${p}gate.weight`,
    /** the noisy gate's Wn (LLaMA-MoE names it gate.weight_noise) */
    routerNoise: `${p}gate.weight_noise.weight`,
    gate_proj: `${p}experts.gate_proj.weight`,
    up_proj: `${p}experts.up_proj.weight`,
    down_proj: `${p}experts.down_proj.weight`,
    /** the experts' constant down_proj biases (not a parameter) */
    bias: `${p}experts.down_proj.bias`,
    /** module names (add .weight) of the shared expert's linear layers */
    shared: { gate_proj: `${p}shared_expert.gate_proj`, up_proj: `${p}shared_expert.up_proj`, down_proj: `${p}shared_expert.down_proj` },
  };
}

/** The router over layer l's KV head groups in an attention MoE (LLaMA-MoE v2): [G, dim]. */
export function attentionRouterName(l: number): string {
  return `model.layers.${l}.self_attn.gate.weight`;
}

/**
 * The weights of a LlamaModel under their HF names (expectedShapes' order); a tied lm_head is
 * embed_tokens itself, one parameter with both roles. The tensors stay the model's: training updates the
 * model in place, so its inference forward sees the trained weights. The layers in `moe` have the MoE
 * FFN given there instead of their dense mlp; those in `attnRouters` an attention MoE router.
 */
export function llamaParams(
  w: Weights, tied: boolean, moe: ReadonlyMap<number, MoeLayerWeights> = new Map(), attnRouters: ReadonlyMap<number, Tensor> = new Map(),
): ParamSet {
  const s = new ParamSet();
  s.add('model.embed_tokens.weight', w.embed_tokens);
  w.layers.forEach((L, l) => {
    const p = `model.layers.${l}.`;
    s.add(`${p}input_layernorm.weight`, L.input_layernorm);
    for (const k of ['q', 'k', 'v'] as const) {
      s.add(`${p}self_attn.${k}_proj.weight`, L[`${k}_proj`]);
      const bias = L[`${k}_bias`];
      if (bias) s.add(`${p}self_attn.${k}_proj.bias`, bias);
    }
    s.add(`${p}self_attn.o_proj.weight`, L.o_proj);
    const router = attnRouters.get(l);
    if (router) s.add(attentionRouterName(l), router);
    s.add(`${p}post_attention_layernorm.weight`, L.post_attention_layernorm);
    const m = moe.get(l);
    if (!m) {
      for (const k of ['gate_proj', 'up_proj', 'down_proj'] as const) s.add(`${p}mlp.${k}.weight`, L[k]);
      return;
    }
    const n = moeParamNames(l);
    for (const k of ['router', 'gate_proj', 'up_proj', 'down_proj'] as const) s.add(n[k], m[k]);
    if (m.noise) s.add(n.routerNoise, m.noise);
    if (m.shared) for (const k of ['gate_proj', 'up_proj', 'down_proj'] as const) s.add(`${n.shared[k]}.weight`, m.shared[k]);
  });
  s.add('model.norm.weight', w.norm);
  if (!tied) s.add('lm_head.weight', w.lm_head);
  return s;
}

/** A comma-separated list of glob patterns ('*' any run of characters) → the patterns, blanks dropped. */
export function patternList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

/** Whether `name` matches the glob `pattern` as a whole ('*' matches any run, dots included). */
export function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

export interface FreezeOptions {
  /** glob patterns of the parameters that train; empty: all of them */
  only: string[];
  /** glob patterns of parameters kept fixed (applied after `only`) */
  freeze: string[];
  /** spec fields the patterns came from, named in errors */
  fields: { only: string; freeze: string };
}

/**
 * Sets each parameter's `trainable`: it matches `only` (or `only` is empty) and no `freeze` pattern. A
 * pattern that matches no parameter is an error (a typo would otherwise train everything or nothing).
 */
export function selectTrainable(params: ParamSet, o: FreezeOptions): void {
  const names = params.all().map((p) => p.name);
  for (const [field, list] of [[o.fields.only, o.only], [o.fields.freeze, o.freeze]] as const) {
    for (const pat of list) {
      if (!names.some((n) => globMatch(pat, n))) {
        throw new Error(`${field}: '${pat}' matches no parameter (names look like ${names.slice(0, 2).join(', ')}, …; '*' matches any run of characters)`);
      }
    }
  }
  for (const p of params.all()) {
    p.trainable = (o.only.length === 0 || o.only.some((pat) => globMatch(pat, p.name))) && !o.freeze.some((pat) => globMatch(pat, p.name));
  }
  if (!params.trainable().length) throw new Error(`${o.fields.only}, ${o.fields.freeze}: together they leave no parameter to train`);
}
