// LaDiMo (arXiv 2408.04278) stages 4–5, "Profile" and "Route" (Appendix A): the distilled blocks go into
// the model, the profiling text runs through it and each layer's w_m samples decide its Table 1 policy
// (router-policy.ts), or every layer takes the spec's fixed top-k. A layer's route is what the converted
// model runs it with, and what the parameter count (§5.3) and the export record.
import { convertLayers, type MoeLayer } from '../../moe/block.ts';
import type { RoutingOptions } from '../../ops/moe.ts';
import type { RunSpec } from '../../state/spec.ts';
import { trainRouting, type RunContext } from './context.ts';
import type { DistilledLayer } from './distill-stage.ts';
import type { MoeLayerSpec } from './params.ts';
import { profileMaxWeights, type MaxWeights } from './profile.ts';
import { meter, throwIfAborted, type TaskControl } from './progress.ts';
import { decideRouterPolicy, policyKShare, type LayerPolicy, type RouterPolicy } from './router-policy.ts';

/** How one converted layer routes at inference. */
export interface LayerRoute {
  policy: LayerPolicy;
  /** Table 1's local quantiles, when the layer was profiled */
  alphaI: number | null;
  betaI: number | null;
  /** share of tokens sent to 1, 2, 3 experts (params.ts' expected k of a dynamic layer) */
  kShare: [number, number, number];
}

export interface Routing {
  /** global quantiles α, β when profiled */
  global: { alpha: number | null; beta: number | null };
  routes: Map<number, LayerRoute>;
}

/** Profiles w_m of `layers` (their blocks routing as in training) and decides Table 1 for each. */
export async function profileRouting(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  layers: readonly number[],
  control: TaskControl = {},
): Promise<MaxWeights & { decided: RouterPolicy }> {
  const { model, spec } = ctx;
  const windows = ctx.calib.slice(0, Math.max(1, Math.ceil(spec['router.profileTokens'] / ctx.window)));
  const blocks = convertLayers(model, moeLayers(distilled, layers, () => trainRouting(spec)));
  const report = meter(control, 'profile', 'windows', windows.length);
  let wm: MaxWeights;
  try {
    wm = await profileMaxWeights(model, blocks, windows, (done, total) => {
      report(done, `w_m of layers ${layers.join(', ')}, window ${done}/${total}`);
      throwIfAborted(control.signal, 'profile');
    });
  } finally {
    for (const [l, b] of blocks) {
      model.restoreDense(l);
      b.release();
    }
  }
  const decided = decideRouterPolicy(layers.map((l) => wm.pooled.get(l)!), { pU: spec['router.pU'], pE: spec['router.pE'], layers: [...layers] });
  return { ...wm, decided };
}

/** Each layer's route under `policy`: Table 1 from `decided` for 'adaptive', else the fixed top-k (with the profile's αI, βI if there is one). */
export function routesFor(policy: RunSpec['router.policy'], layers: readonly number[], decided?: RouterPolicy): Routing {
  if (policy === 'adaptive' && !decided) throw new Error("router.policy 'adaptive' needs the w_m profile (Appendix A)");
  const byLayer = new Map(decided?.layers.map((d) => [d.layer, d]));
  const routes = new Map(layers.map((l): [number, LayerRoute] => {
    const d = byLayer.get(l);
    if (policy === 'adaptive') return [l, { policy: d!.policy, alphaI: d!.alphaI, betaI: d!.betaI, kShare: d!.kShare }];
    return [l, { policy, alphaI: d?.alphaI ?? null, betaI: d?.betaI ?? null, kShare: policyKShare([], policy, 0, 0) }];
  }));
  return { global: { alpha: decided?.alpha ?? null, beta: decided?.beta ?? null }, routes };
}

/** The routes of `layers` under the spec's router.policy; profiles only for 'adaptive'. */
export async function decideRouting(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  layers: readonly number[],
  policy: RunSpec['router.policy'],
  control: TaskControl = {},
): Promise<Routing> {
  if (policy !== 'adaptive' || !layers.length) return routesFor(policy === 'adaptive' ? 'top2' : policy, layers);
  return routesFor(policy, layers, (await profileRouting(ctx, distilled, layers, control)).decided);
}

export function routingOptions(route: LayerRoute, normTopK: boolean): RoutingOptions {
  if (route.policy === 'dynamic') return { dynamic: { alpha: route.alphaI!, beta: route.betaI! }, normTopK };
  return { topK: Number(route.policy.slice(3)), normTopK };
}

/** The distilled blocks of `layers`, each with the routing `routing(layer)` gives: what convertLayers takes. */
export function moeLayers(distilled: ReadonlyMap<number, DistilledLayer>, layers: Iterable<number>, routing: (layer: number) => RoutingOptions): Map<number, MoeLayer> {
  const out = new Map<number, MoeLayer>();
  for (const l of layers) {
    const d = distilled.get(l);
    if (!d) throw new Error(`layer ${l} is not distilled`);
    out.set(l, { weights: d.weights, routing: routing(l) });
  }
  return out;
}

/** The routed layers as params.ts counts them. */
export function moeLayerSpecs(spec: RunSpec, distilled: ReadonlyMap<number, DistilledLayer>, routes: ReadonlyMap<number, LayerRoute>): Record<number, MoeLayerSpec> {
  const out: Record<number, MoeLayerSpec> = {};
  for (const [l, r] of routes) {
    out[l] = { nExperts: spec['construct.experts'], expertDim: distilled.get(l)!.expertDim, policy: r.policy, kShare: r.kShare };
  }
  return out;
}
