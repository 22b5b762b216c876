// LaDiMo: Layer-wise Distillation Inspired MoEfier. S. Kim, Y. Kim, K. Moon, M. Jang (Samsung SDS),
// arXiv:2408.04278. This file: the parameter accounting behind §5.3 ("6.7B parameters … the activated
// parameter size counts to 5.5B") for a partially MoEfied LLaMA-family model, stored and activated
// (used per token), in total, without embeddings, and per layer.
//
// Per layer (HF tensors, src/model/weights.ts expectedShapes):
//   attention = q_proj H·(nH·hd) + k_proj, v_proj H·(nKv·hd) each + o_proj (nH·hd)·H (+ q/k/v biases)
//   norms     = input_layernorm H + post_attention_layernorm H
//   dense FFN = 3·H·I                                  (gate_proj, up_proj, down_proj)
//   MoE FFN   = router E·H + k·3·H·I_e activated,   E·3·H·I_e stored
// with k = 1, 2, 3 for top-1/2/3 and, for a 'dynamic' layer, the expected k = 1·s1 + 2·s2 + 3·s3 from the
// measured shares s_k of tokens routed to k experts (router-policy.ts kShare). The router is always
// activated in full (every token computes all E logits). I_e counts padding neurons: they are computed.
// Model: embed_tokens V·H + the layers + final norm H + lm_head V·H unless tied (a tied lm_head is the
// embedding, counted once). "Non-embedding" leaves out embed_tokens and an untied lm_head.
import type { ModelConfig } from '../../model/config.ts';
import type { LayerPolicy } from './router-policy.ts';

/** One MoEfied layer's block. */
export interface MoeLayerSpec {
  /** E */
  nExperts: number;
  /** I_e: intermediate neurons per expert (padding included) */
  expertDim: number;
  /** Table 1 policy, or a fixed k ≥ 1 */
  policy: LayerPolicy | number;
  /** 'dynamic' only: shares of tokens routed to 1, 2 and 3 experts (normalised here) */
  kShare?: readonly [number, number, number];
}

export interface LayerParams {
  layer: number;
  kind: 'dense' | 'moe';
  /** experts per token (expected for 'dynamic'); null for a dense layer */
  k: number | null;
  attention: number;
  norms: number;
  /** router E·H, 0 for a dense layer */
  router: number;
  /** FFN weights used per token: 3·H·I dense, k·3·H·I_e MoE */
  ffnActivated: number;
  /** FFN weights stored: 3·H·I dense, E·3·H·I_e MoE */
  ffnStored: number;
  /** attention + norms + router + ffnActivated */
  activated: number;
  /** attention + norms + router + ffnStored */
  stored: number;
}

export interface ParamCounts {
  total: number;
  nonEmbedding: number;
}

export interface ParamReport {
  /** embed_tokens V·H */
  embedding: number;
  /** untied lm_head V·H; 0 when tied */
  lmHead: number;
  /** model.norm H */
  finalNorm: number;
  layers: LayerParams[];
  activated: ParamCounts;
  stored: ParamCounts;
}

/** Experts per token of a policy: 1/2/3, a fixed k, or the expected k of a dynamic layer. */
export function policyK(policy: LayerPolicy | number, kShare?: readonly [number, number, number]): number {
  if (typeof policy === 'number') {
    if (!Number.isInteger(policy) || policy < 1) throw new Error(`top-k: expected a positive integer, got ${policy}`);
    return policy;
  }
  switch (policy) {
    case 'top1': return 1;
    case 'top2': return 2;
    case 'top3': return 3;
    case 'dynamic': {
      if (!kShare) throw new Error("policy 'dynamic' needs kShare: the measured shares of tokens at k = 1, 2, 3");
      const [s1, s2, s3] = kShare;
      const sum = s1 + s2 + s3;
      if (!(s1 >= 0 && s2 >= 0 && s3 >= 0 && sum > 0)) throw new Error(`kShare: expected non-negative shares with a positive sum, got ${JSON.stringify(kShare)}`);
      return (s1 + 2 * s2 + 3 * s3) / sum;
    }
    default:
      throw new Error(`unknown policy ${JSON.stringify(policy)}`);
  }
}

/** Attention weights of one layer (q, k, v, o projections and q/k/v biases when the config has them). */
export function attentionParams(c: ModelConfig): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  return c.dim * q + 2 * c.dim * kv + q * c.dim + (c.qkvBias ? q + 2 * kv : 0);
}

/** Stored and activated parameters of the model with `moe[layer]` blocks in place of those layers' FFNs. */
export function countParams(c: ModelConfig, moe: Readonly<Record<number, MoeLayerSpec>> = {}): ParamReport {
  for (const key of Object.keys(moe)) {
    const l = Number(key);
    if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) throw new Error(`MoE layer ${key}: outside 0..${c.nLayers - 1}`);
  }
  const H = c.dim;
  const attention = attentionParams(c);
  const norms = 2 * H;
  const layers: LayerParams[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const spec = moe[l];
    if (!spec) {
      const ffn = 3 * H * c.hiddenDim;
      layers.push({
        layer: l, kind: 'dense', k: null, attention, norms, router: 0, ffnActivated: ffn, ffnStored: ffn,
        activated: attention + norms + ffn, stored: attention + norms + ffn,
      });
      continue;
    }
    const { nExperts: E, expertDim: Ie } = spec;
    if (!Number.isInteger(E) || E < 1 || !Number.isInteger(Ie) || Ie < 1) throw new Error(`MoE layer ${l}: bad nExperts ${E} / expertDim ${Ie}`);
    const k = policyK(spec.policy, spec.kShare);
    if (k > E) throw new Error(`MoE layer ${l}: k = ${k} > ${E} experts`);
    const router = E * H;
    const ffnActivated = k * 3 * H * Ie;
    const ffnStored = E * 3 * H * Ie;
    layers.push({
      layer: l, kind: 'moe', k, attention, norms, router, ffnActivated, ffnStored,
      activated: attention + norms + router + ffnActivated, stored: attention + norms + router + ffnStored,
    });
  }
  const embedding = c.vocabSize * H;
  const lmHead = c.tiedEmbeddings ? 0 : c.vocabSize * H;
  const finalNorm = H;
  const sum = (f: (p: LayerParams) => number) => layers.reduce((s, p) => s + f(p), 0) + finalNorm;
  const act = sum((p) => p.activated);
  const sto = sum((p) => p.stored);
  return {
    embedding, lmHead, finalNorm, layers,
    activated: { total: act + embedding + lmHead, nonEmbedding: act },
    stored: { total: sto + embedding + lmHead, nonEmbedding: sto },
  };
}
