// LaDiMo (arXiv 2408.04278) §5.2 sweeps from one run spec, distilling each layer once:
//   - the accuracy–throughput curve (Fig. 6): the last m layers converted, m = 0 … L;
//   - single-layer sensitivity (Fig. 5): one layer converted at a time;
//   - routers and constructions compared at the spec's layers: fixed top-1/2/3 and the adaptive router
//     (Appendix A), for the spec's construction and one alternative (co-activation experts with k-means
//     routers, or contiguous with random routers when the spec already uses the former), with the
//     perplexity / activated-parameter Pareto front marked, and where each adaptive router lands said in
//     words: on the front or beaten, and by how much against the fixed top-k nearest in parameters.
// The first two (layerSweep) are also the UI's sweep over the spec's converted layers (src/worker/pipeline.ts).
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { specLayers, type RunSpec } from '../../state/spec.ts';
import { specConstruction, type Construction, type RunContext } from './context.ts';
import { distillLayers, type DistilledLayer } from './distill-stage.ts';
import { evaluate, type ModelScores } from './evaluate.ts';
import { meter, textControl, type TaskControl } from './progress.ts';
import { prepare, releaseRun } from './run.ts';
import type { LayerPolicy } from './router-policy.ts';
import { decideRouting } from './routing.ts';

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

/**
 * Where one construction's adaptive router stands among the compared rows: on the Pareto front or which
 * rows beat it, and against the fixed top-k of its construction that activates the nearest number of
 * parameters (ties: the smaller k).
 */
export interface AdaptiveVerdict {
  construction: string;
  policies: LayerPolicy[];
  pareto: boolean;
  /** the rows with no higher perplexity and no more activated parameters, better in one ('construction, router') */
  dominated_by: string[];
  fixed: { router: RunSpec['router.policy']; ppl_moe: number; activated_non_embedding_moe: number };
  /** ppl_moe / fixed.ppl_moe − 1: negative when the adaptive router is better */
  ppl_change: number;
  /** activated_non_embedding_moe / fixed's − 1 */
  activated_change: number;
  sentence: string;
}

export interface SweepReport {
  curve: (SweepPoint & { m: number })[];
  sensitivity: (SweepPoint & { layer: number })[];
  comparison: ComparisonRow[];
  adaptive: AdaptiveVerdict[];
}

/** `layers` converted with routes decided under `router`, scored. */
export async function sweepPoint(ctx: RunContext, distilled: ReadonlyMap<number, DistilledLayer>, layers: number[], router: RunSpec['router.policy'], control: TaskControl = {}): Promise<SweepPoint> {
  const { routes } = await decideRouting(ctx, distilled, layers, router, control);
  const ev = await evaluate(ctx, distilled, routes, control);
  return { layers, ...pick(ev.model), policies: layers.map((l) => routes.get(l)!.policy) };
}

function pick(m: ModelScores): Omit<SweepPoint, 'layers' | 'policies'> {
  const { activated_params_dense, activated_params_moe, ...rest } = m;
  void activated_params_dense, activated_params_moe;
  return rest;
}

/**
 * Fig. 6 and Fig. 5 over the distilled `layers`: the last m of them converted for m = 0 … layers.length
 * (m = 0 is the dense model), then each one alone, every point routed under `router`.
 */
export async function layerSweep(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  layers: readonly number[],
  router: RunSpec['router.policy'],
  control: TaskControl = {},
): Promise<Pick<SweepReport, 'curve' | 'sensitivity'>> {
  const L = layers.length;
  const report = meter(control, 'sweep', 'points', 2 * L + 1);
  // the points report progress; each point's stages only log and stop
  const inner: TaskControl = { onLog: control.onLog, signal: control.signal };
  const curve: SweepReport['curve'] = [];
  for (let m = 0; m <= L; m++) {
    report(curve.length, `last ${m} of ${L} layers`);
    curve.push({ m, ...(await sweepPoint(ctx, distilled, layers.slice(L - m), router, inner)) });
  }
  const sensitivity: SweepReport['sensitivity'] = [];
  for (const l of layers) {
    report(curve.length + sensitivity.length, `layer ${l} alone`);
    sensitivity.push({ layer: l, ...(await sweepPoint(ctx, distilled, [l], router, inner)) });
  }
  report(2 * L + 1, 'done');
  return { curve, sensitivity };
}

type Scored = Pick<SweepPoint, 'ppl_moe' | 'activated_non_embedding_moe'>;

const dominates = (o: Scored, r: Scored) =>
  o.ppl_moe <= r.ppl_moe && o.activated_non_embedding_moe <= r.activated_non_embedding_moe &&
  (o.ppl_moe < r.ppl_moe || o.activated_non_embedding_moe < r.activated_non_embedding_moe);

/** Marks the rows no other row beats on both perplexity and activated parameters. */
export function paretoFront<T extends Scored>(rows: T[]): (T & { pareto: boolean })[] {
  return rows.map((r) => ({ ...r, pareto: !rows.some((o) => o !== r && dominates(o, r)) }));
}

const pct = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}%`;

/** Each adaptive row of `rows` judged against the others, in words as well as numbers. */
export function adaptiveVerdicts(rows: ComparisonRow[]): AdaptiveVerdict[] {
  return rows.filter((a) => a.router === 'adaptive').map((a) => {
    const fixed = rows
      .filter((r) => r.construction === a.construction && r.router !== 'adaptive')
      .map((r) => ({ r, gap: Math.abs(r.activated_non_embedding_moe - a.activated_non_embedding_moe) }))
      .sort((x, y) => x.gap - y.gap || (x.r.router < y.r.router ? -1 : 1))[0].r;
    const dominatedBy = rows.filter((o) => o !== a && dominates(o, a)).map((o) => `${o.construction}, ${o.router}`);
    const pplChange = a.ppl_moe / fixed.ppl_moe - 1;
    const activatedChange = a.activated_non_embedding_moe / fixed.activated_non_embedding_moe - 1;
    const standing = a.pareto ? 'is on the Pareto front' : `is not on the Pareto front: ${dominatedBy.join('; ')} beat${dominatedBy.length === 1 ? 's' : ''} it`;
    const sentence = `${a.construction}, adaptive [${a.policies.join(' ')}]: perplexity ${a.ppl_moe.toFixed(3)}, ${standing}. ` +
      `Against fixed ${fixed.router} (${fixed.ppl_moe.toFixed(3)}): perplexity ${pct(pplChange)}, activated parameters ${pct(activatedChange)}.`;
    return {
      construction: a.construction, policies: a.policies, pareto: a.pareto, dominated_by: dominatedBy,
      fixed: { router: fixed.router, ppl_moe: fixed.ppl_moe, activated_non_embedding_moe: fixed.activated_non_embedding_moe },
      ppl_change: pplChange, activated_change: activatedChange, sentence,
    };
  });
}

export async function sweepLadimo(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<SweepReport> {
  const control = textControl(progress);
  const { ctx, capture } = await prepare(gpu, spec, io, (n) => Array.from({ length: n }, (_, i) => i), control);
  const distilled = await distillLayers(ctx, capture, ctx.layers, control);
  const { curve, sensitivity } = await layerSweep(ctx, distilled, ctx.layers, spec['router.policy'], control);

  const layers = specLayers(spec, ctx.ckpt.config.nLayers);
  const mine = specConstruction(spec);
  const alternative: Construction = mine.split === 'coactivation' && mine.routerInit === 'kmeans'
    ? { split: 'contiguous', routerInit: 'random' }
    : { split: 'coactivation', routerInit: 'kmeans' };
  const altDistilled = await distillLayers(ctx, capture, layers, control, { construction: alternative });
  const rows: Omit<ComparisonRow, 'pareto'>[] = [];
  for (const [construction, d] of [[mine, distilled], [alternative, altDistilled]] as const) {
    for (const router of ['top1', 'top2', 'top3', 'adaptive'] as const) {
      progress(`sweep: ${construction.split} experts, ${construction.routerInit} routers, ${router}`);
      rows.push({ construction: `${construction.split} + ${construction.routerInit} router`, router, ...(await sweepPoint(ctx, d, layers, router)) });
    }
  }
  releaseRun(ctx, capture, [distilled, altDistilled]);
  const comparison = paretoFront(rows);
  return { curve, sensitivity, comparison, adaptive: adaptiveVerdicts(comparison) };
}
