// LaDiMo (arXiv 2408.04278) stage 6, "Evaluate" (§5.2–5.3): the model with the routed blocks in place of
// their layers' FFNs against the dense model on held-out text (perplexity, next-token agreement, KL), the
// speed of both (prefill and decode tokens/s), and the parameters each activates per token. The model is
// dense again when it returns.
import { compareDenseMoe, throughput } from '../../eval/compare.ts';
import { convertLayers } from '../../moe/block.ts';
import { evalSet, type RunContext } from './context.ts';
import type { DistilledLayer } from './distill-stage.ts';
import { countParams, type ParamReport } from './params.ts';
import { meter, throwIfAborted, type TaskControl } from './progress.ts';
import { moeLayerSpecs, moeLayers, routingOptions, type LayerRoute } from './routing.ts';

export interface ModelScores {
  activated_params_dense: number;
  activated_params_moe: number;
  activated_non_embedding_dense: number;
  activated_non_embedding_moe: number;
  ppl_dense: number;
  ppl_moe: number;
  agreement: number;
  kl: number;
  prefill_tokens_per_s_dense: number;
  prefill_tokens_per_s_moe: number;
  decode_tokens_per_s_dense: number;
  decode_tokens_per_s_moe: number;
}

export interface Evaluation {
  model: ModelScores;
  evalTokens: number;
  /** tokens each prefill throughput was measured over */
  prefillTokens: number;
  params: { dense: ParamReport; moe: ParamReport };
}

/** Scores the model with `routes`' layers converted against the dense one. */
export async function evaluate(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  routes: ReadonlyMap<number, LayerRoute>,
  control: TaskControl = {},
): Promise<Evaluation> {
  const { spec, model } = ctx;
  const layers = [...routes.keys()];
  const windows = await evalSet(ctx);
  const blocks = convertLayers(model, moeLayers(distilled, layers, (l) => routingOptions(routes.get(l)!, spec['train.normTopK'])));
  const useDense = () => layers.forEach((l) => model.restoreDense(l));
  const useMoe = () => layers.forEach((l) => (model.ffn[l] = blocks.get(l)!.ffn));
  // the last unit is the throughput measurement
  const report = meter(control, 'evaluate', 'windows', windows.length + 1);
  try {
    const cmp = await compareDenseMoe(model, windows, useDense, useMoe, (d, n) => {
      report(d, `dense vs MoE, window ${d}/${n}`);
      throwIfAborted(control.signal, 'evaluate');
    });
    const tpIds = ctx.calib.flatMap((w) => w.ids).slice(0, spec['eval.throughputTokens']);
    useDense();
    const tDense = await throughput(model, tpIds, spec['eval.decodeTokens']);
    useMoe();
    const tMoe = await throughput(model, tpIds, spec['eval.decodeTokens']);
    report(windows.length + 1, 'throughput');
    const dense = countParams(ctx.ckpt.config);
    const moe = countParams(ctx.ckpt.config, moeLayerSpecs(spec, distilled, routes));
    return {
      evalTokens: cmp.tokens,
      prefillTokens: tpIds.length,
      params: { dense, moe },
      model: {
        activated_params_dense: dense.activated.total,
        activated_params_moe: moe.activated.total,
        activated_non_embedding_dense: dense.activated.nonEmbedding,
        activated_non_embedding_moe: moe.activated.nonEmbedding,
        ppl_dense: cmp.pplDense,
        ppl_moe: cmp.pplMoe,
        agreement: cmp.agreement,
        kl: cmp.kl,
        prefill_tokens_per_s_dense: tDense.prefillTokensPerS,
        prefill_tokens_per_s_moe: tMoe.prefillTokensPerS,
        decode_tokens_per_s_dense: tDense.decodeTokensPerS,
        decode_tokens_per_s_moe: tMoe.decodeTokensPerS,
      },
    };
  } finally {
    useDense();
    for (const b of blocks.values()) b.release();
  }
}
