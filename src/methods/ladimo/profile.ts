// LaDiMo (arXiv 2408.04278) Appendix A, Fig. 8–9, stage "Profile": run the converted model over a
// profiling text and record, per MoE layer, each token's maximal routing weight w_m = max_e p_e
// (before any renormalisation). The adaptive router (router-policy.ts) turns these into Table 1 policies.
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';
import type { MoeBlock } from '../../moe/block.ts';
import { reduceRows } from '../../ops/reduce.ts';

/** w_m per token for each layer in `blocks`, over every position of every window. */
export async function profileMaxWeights(
  model: LlamaModel,
  blocks: ReadonlyMap<number, MoeBlock>,
  windows: readonly number[][],
): Promise<Map<number, Float32Array>> {
  const samples = new Map<number, number[]>([...blocks.keys()].map((l) => [l, []]));
  const pending: [number, Tensor][] = [];
  for (const [l, b] of blocks) b.observe = (r) => pending.push([l, reduceRows(r.probs, 'max')]);
  try {
    for (const ids of windows) {
      model.reset();
      for (let i = 0; i < ids.length; i += model.chunk) {
        model.forward(ids.slice(i, i + model.chunk));
        for (const [l, t] of pending.splice(0)) {
          samples.get(l)!.push(...((await t.read()) as Float32Array));
          t.release();
        }
      }
    }
  } finally {
    for (const b of blocks.values()) b.observe = undefined;
  }
  return new Map([...samples].map(([l, s]) => [l, Float32Array.from(s)]));
}
