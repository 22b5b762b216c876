// A constructed LLaMA-MoE v2 MLP MoE layer on the GPU, in the one layout both sides read: Qwen2-MoE's
// (router mlp.gate.weight [N, H]; experts stacked [N, out, in]; shared_expert.*). The same tensors serve
// the inference block (src/moe/block.ts MoeLayer, `shared` added to the routed output) and training
// (src/train/llama-train.ts TrainMoeLayer: MoeLayerWeights, updated in place).
import type { Gpu } from '../../gpu/device.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { RoutingOptions } from '../../ops/moe.ts';
import { uploadMoeWeights, type MoeLayer, type SharedExpert } from '../../moe/block.ts';
import type { MoeWeights } from '../../ops/moe.ts';
import type { MlpMoe } from './construct.ts';

/** MoeWeights plus the shared expert: structurally src/train/params.ts MoeLayerWeights. */
export type MlpMoeWeights = MoeWeights & { shared?: SharedExpert };

/** Uploads the experts, the router [N, H] and the shared expert (if any). */
export function uploadMlpMoe(gpu: Gpu, moe: MlpMoe, router: Float32Array): MlpMoeWeights {
  const { nExperts: N, H, expertDim } = moe.experts;
  if (router.length !== N * H) throw new Error(`router: expected [${N}, ${H}] = ${N * H} values, got ${router.length}`);
  const w: MlpMoeWeights = uploadMoeWeights(gpu, { router, ...moe.experts }, N, H, expertDim);
  if (moe.shared) {
    const { I, gate_proj, up_proj, down_proj } = moe.shared;
    w.shared = {
      gate_proj: gpu.upload(gate_proj, [I, H], 'shared_expert.gate_proj'),
      up_proj: gpu.upload(up_proj, [I, H], 'shared_expert.up_proj'),
      down_proj: gpu.upload(down_proj, [H, I], 'shared_expert.down_proj'),
    };
  }
  return w;
}

/** The inference block's layer over uploaded weights. */
export function mlpMoeLayer(w: MlpMoeWeights, routing: RoutingOptions): MoeLayer {
  const { shared, ...weights } = w;
  return { weights, routing, ...(shared && { shared }) };
}

export function releaseMlpMoe(w: MlpMoeWeights): void {
  const all: Tensor[] = [w.router, w.gate_proj, w.up_proj, w.down_proj, ...(w.shared ? Object.values(w.shared) : [])];
  for (const t of all) t.release();
}
