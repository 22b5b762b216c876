// LoRA (Hu et al. 2021, arXiv:2106.09685, §4.1): a frozen linear layer W [out, in] gains a trainable
// low-rank update, h = W x + (α/r)·B A x with A [r, in] and B [out, r]. As in the paper and PEFT, A starts
// random (PEFT's kaiming-uniform, a = √5: U(−1/√in, 1/√in)) and B zero, so a fresh adapter changes nothing.
// Adapters are parameters named after the layer, PEFT-style: <module>.lora_A.weight, <module>.lora_B.weight.
import type { Gpu } from '../gpu/device.ts';
import { Rng } from '../data/rng.ts';
import type { Param } from './tape.ts';
import { globMatch, type ParamSet } from './params.ts';
import { matmul } from '../ops/matmul.ts';

export interface LoraOptions {
  rank: number;
  /** the update is scaled by alpha / rank */
  alpha: number;
  /**
   * Which linear layers get an adapter: a name without '*' matches a module whose name ends in it at a dot
   * (PEFT's target_modules: 'q_proj', 'mlp.down_proj'); a name with '*' is a glob over the whole module name.
   */
  targets: string[];
  seed: number;
  /** spec field the targets came from, named in errors */
  field: string;
}

export interface LoraAdapter {
  A: Param;
  B: Param;
  scale: number;
}

function targets(module: string, target: string): boolean {
  return target.includes('*') ? globMatch(target, module) : module === target || module.endsWith(`.${target}`);
}

/**
 * Adds adapters to the `modules` (linear layers by module name, e.g. model.layers.0.self_attn.q_proj, whose
 * weight is <module>.weight in `params`) that the targets select. A seeded Rng draws every A in module
 * order, so the same seed gives the same adapters. Returns them by module name.
 */
export function addLora(gpu: Gpu, params: ParamSet, modules: readonly string[], o: LoraOptions): Map<string, LoraAdapter> {
  if (!Number.isInteger(o.rank) || o.rank < 1) throw new Error(`${o.field}: LoRA rank must be an integer ≥ 1, got ${o.rank}`);
  if (!o.targets.length) throw new Error(`${o.field}: name at least one linear layer to adapt (e.g. q_proj,v_proj)`);
  for (const t of o.targets) {
    if (!modules.some((m) => targets(m, t))) {
      const kinds = [...new Set(modules.map((m) => m.split('.').slice(-1)[0]))];
      throw new Error(`${o.field}: '${t}' matches no linear layer (layers: ${kinds.join(', ')}, as in ${modules[0]})`);
    }
  }
  const rng = new Rng(o.seed);
  const out = new Map<string, LoraAdapter>();
  for (const m of modules.filter((x) => o.targets.some((t) => targets(x, t)))) {
    const [outDim, inDim] = params.get(`${m}.weight`).value.shape;
    if (o.rank > Math.min(outDim, inDim)) throw new Error(`${o.field}: rank ${o.rank} exceeds ${m}'s dimensions [${outDim}, ${inDim}]`);
    const bound = 1 / Math.sqrt(inDim);
    const A = params.add(`${m}.lora_A.weight`, gpu.upload(rng.uniforms(o.rank * inDim, -bound, bound), [o.rank, inDim], `${m}.lora_A`));
    const B = params.add(`${m}.lora_B.weight`, gpu.upload(new Float32Array(outDim * o.rank), [outDim, o.rank], `${m}.lora_B`));
    out.set(m, { A, B, scale: o.alpha / o.rank });
  }
  return out;
}

/**
 * Folds each adapter into its frozen weight, W ← W + (α/r)·B·A (stacked experts per expert: B [E, out, r],
 * A [E, r, in]), so the inference forward, which has no adapters, serves the model as trained.
 */
export function mergeLora(params: ParamSet, adapters: ReadonlyMap<string, LoraAdapter>): void {
  for (const [module, a] of adapters) matmul(a.B.value, a.A.value, { alpha: a.scale, accumulate: true, out: params.get(`${module}.weight`).value });
}
