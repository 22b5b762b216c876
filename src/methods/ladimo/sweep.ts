// LaDiMo (arXiv 2408.04278) §5.2 sweeps from one run spec, distilling each layer once:
//   - the accuracy–throughput curve (Fig. 6): the last m layers converted, m = 0 … L;
//   - single-layer sensitivity (Fig. 5): one layer converted at a time;
//   - routers and constructions compared at the spec's layers: fixed top-1/2/3 and the adaptive router
//     (Appendix A), for the spec's construction and one alternative (co-activation experts with k-means
//     routers, or contiguous with random routers when the spec already uses the former), with the
//     perplexity / activated-parameter Pareto front marked, wherever the adaptive router lands.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { specLayers, type RunSpec } from '../../state/spec.ts';
import { distillLayers, evaluate, prepare, releaseRun, type DistilledLayer, type RunContext } from './run.ts';
import type { LayerPolicy } from './router-policy.ts';

export interface SweepPoint {
  layers: number[];
  ppl_dense: number;
  ppl_moe: number;
  agreement: number;
  kl: number;
  activated_non_embedding_dense: number;
  activated_non_embedding_moe: number;
  prefill_tokens_per_s_dense: number;
  prefill_tokens_per_s_moe: number;
  decode_tokens_per_s_dense: number;
  decode_tokens_per_s_moe: number;
  policies: LayerPolicy[];
}

export interface ComparisonRow extends SweepPoint {
  construction: string;
  router: RunSpec['router.policy'];
  /** no other row has both lower perplexity and fewer activated non-embedding parameters */
  pareto: boolean;
}

export interface SweepReport {
  curve: (SweepPoint & { m: number })[];
  sensitivity: (SweepPoint & { layer: number })[];
  comparison: ComparisonRow[];
}

async function point(ctx: RunContext, distilled: ReadonlyMap<number, DistilledLayer>, layers: number[], router: RunSpec['router.policy']): Promise<SweepPoint> {
  const ev = await evaluate(ctx, distilled, layers, router);
  ev.restore();
  return { layers, ...pick(ev.model), policies: layers.map((l) => ev.policies.get(l)!.policy) };
}

function pick(m: Awaited<ReturnType<typeof evaluate>>['model']): Omit<SweepPoint, 'layers' | 'policies'> {
  const { activated_params_dense, activated_params_moe, ...rest } = m;
  void activated_params_dense, activated_params_moe;
  return rest;
}

/** Marks the rows no other row beats on both perplexity and activated parameters. */
export function paretoFront<T extends { ppl_moe: number; activated_non_embedding_moe: number }>(rows: T[]): (T & { pareto: boolean })[] {
  return rows.map((r) => ({
    ...r,
    pareto: !rows.some((o) => o !== r && o.ppl_moe <= r.ppl_moe && o.activated_non_embedding_moe <= r.activated_non_embedding_moe &&
      (o.ppl_moe < r.ppl_moe || o.activated_non_embedding_moe < r.activated_non_embedding_moe)),
  }));
}

export async function sweepLadimo(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<SweepReport> {
  const ctx = await prepare(gpu, spec, io, (n) => Array.from({ length: n }, (_, i) => i), progress);
  const L = ctx.ckpt.config.nLayers;
  const all = ctx.layers;
  const distilled = await distillLayers(ctx, all);

  const curve: SweepReport['curve'] = [];
  for (let m = 0; m <= L; m++) {
    progress(`sweep: last ${m} of ${L} layers`);
    curve.push({ m, ...(await point(ctx, distilled, all.slice(L - m), spec['router.policy'])) });
  }
  const sensitivity: SweepReport['sensitivity'] = [];
  for (const l of all) {
    progress(`sweep: layer ${l} alone`);
    sensitivity.push({ layer: l, ...(await point(ctx, distilled, [l], spec['router.policy'])) });
  }

  const layers = specLayers(spec, L);
  const specConstruction = { split: spec['construct.split'], routerInit: spec['construct.routerInit'] };
  const alternative = specConstruction.split === 'coactivation' && specConstruction.routerInit === 'kmeans'
    ? { split: 'contiguous' as const, routerInit: 'random' as const }
    : { split: 'coactivation' as const, routerInit: 'kmeans' as const };
  const altDistilled = await distillLayers(ctx, layers, alternative);
  const rows: Omit<ComparisonRow, 'pareto'>[] = [];
  for (const [construction, d] of [[specConstruction, distilled], [alternative, altDistilled]] as const) {
    for (const router of ['top1', 'top2', 'top3', 'adaptive'] as const) {
      progress(`sweep: ${construction.split} experts, ${construction.routerInit} routers, ${router}`);
      rows.push({ construction: `${construction.split} + ${construction.routerInit} router`, router, ...(await point(ctx, d, layers, router)) });
    }
  }
  releaseRun(ctx, [distilled, altDistilled]);
  return { curve, sensitivity, comparison: paretoFront(rows) };
}
