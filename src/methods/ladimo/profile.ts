// LaDiMo (arXiv 2408.04278) Appendix A, Fig. 8–9, stage "Profile": run the converted model over profiling
// text and record, per MoE layer, each token's maximal routing weight w_m = max_e p_e (before any
// renormalisation), pooled and per text domain (Fig. 9 compares the distributions across datasets). The
// adaptive router (router-policy.ts) turns them into Table 1 policies. Also each token's full routing, for
// the classroom view. Both read the router outputs through the `observe` hook of a MoeBlock (or of an
// attention MoE: its head groups are experts too).
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';
import type { RouteReading, Routed } from '../../moe/block.ts';
import { bincount, reduceRows } from '../../ops/reduce.ts';

export interface MaxWeights {
  /** per layer, w_m of every profiled token */
  pooled: Map<number, Float32Array>;
  /** per domain, per layer, w_m of that domain's tokens */
  byDomain: Map<string, Map<number, Float32Array>>;
}

/** Runs `blocks`' router outputs of each chunk through `take` while the windows go through the model. */
async function observeWindows(
  model: LlamaModel,
  blocks: ReadonlyMap<number, Routed>,
  windows: readonly { ids: readonly number[] }[],
  take: (layer: number, r: RouteReading) => Tensor[],
  use: (window: number, layer: number, outputs: Tensor[]) => Promise<void>,
  onWindow?: (done: number, total: number) => void,
): Promise<void> {
  const pending: [number, Tensor[]][] = [];
  for (const [l, b] of blocks) b.observe = (r) => pending.push([l, take(l, r)]);
  try {
    for (const [w, { ids }] of windows.entries()) {
      model.reset();
      for (let i = 0; i < ids.length; i += model.chunk) {
        model.forward(ids.slice(i, i + model.chunk));
        for (const [l, ts] of pending.splice(0)) await use(w, l, ts);
      }
      onWindow?.(w + 1, windows.length);
    }
  } finally {
    for (const b of blocks.values()) b.observe = undefined;
  }
}

/** w_m per token for each layer in `blocks`, over every position of every window, pooled and by the windows' domains. */
export async function profileMaxWeights(
  model: LlamaModel,
  blocks: ReadonlyMap<number, Routed>,
  windows: readonly { ids: readonly number[]; domain: string }[],
  onWindow?: (done: number, total: number) => void,
): Promise<MaxWeights> {
  const pooled = new Map<number, number[]>();
  const byDomain = new Map<string, Map<number, number[]>>();
  const list = <K,>(m: Map<K, number[]>, k: K) => m.get(k) ?? m.set(k, []).get(k)!;
  await observeWindows(model, blocks, windows, (_, r) => [reduceRows(r.probs, 'max')], async (w, l, [t]) => {
    const wm = (await t.read()) as Float32Array;
    t.release();
    const domain = byDomain.get(windows[w].domain) ?? byDomain.set(windows[w].domain, new Map()).get(windows[w].domain)!;
    list(pooled, l).push(...wm);
    list(domain, l).push(...wm);
  }, onWindow);
  const f32 = (m: Map<number, number[]>) => new Map([...m].map(([l, s]) => [l, Float32Array.from(s)]));
  return { pooled: f32(pooled), byDomain: new Map([...byDomain].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, m]) => [d, f32(m)])) };
}

/** One layer's routing of every token: the full softmax, the selected experts (best first) and their weights. */
export interface TokenRoutes {
  /** per token, the softmax over the E experts */
  probs: number[][];
  /** per token, its experts (the unused slots of a dynamic-k token left out) */
  experts: number[][];
  weights: number[][];
}

/** Routes `ids` (from position 0) through the model and returns each MoE layer's routing of each token. */
export async function routeTokens(model: LlamaModel, blocks: ReadonlyMap<number, Routed>, ids: readonly number[]): Promise<Map<number, TokenRoutes>> {
  const out = new Map<number, TokenRoutes>([...blocks.keys()].map((l) => [l, { probs: [], experts: [], weights: [] }]));
  const kMax = new Map<number, number>();
  await observeWindows(model, blocks, [{ ids }], (l, r) => {
    kMax.set(l, r.kMax);
    return [r.probs, r.topIds, r.topW];
  }, async (_, l, [p, topIds, topW]) => {
    const [E, k] = [p.shape[1], kMax.get(l)!];
    const [P, I, W] = await Promise.all([p.read(), topIds.read(), topW.read()]);
    const r = out.get(l)!;
    for (let t = 0; t < P.length / E; t++) {
      const slots = Array.from({ length: k }, (_, j) => t * k + j).filter((s) => I[s] < E);
      r.probs.push(Array.from(P.subarray(t * E, (t + 1) * E)));
      r.experts.push(slots.map((s) => I[s]));
      r.weights.push(slots.map((s) => W[s]));
    }
  });
  return out;
}

/**
 * Runs `f` (windows through the model: a perplexity, a comparison) while counting the (token, slot)
 * assignments of each of `blocks`; f's result and, per layer, each expert's share of them (expert load).
 * Measured on the pass a run makes anyway, rather than a pass of its own: each call's selections are
 * added into the layer's counts on the GPU, and the counts are read once f is done.
 */
export async function countingRoutes<T>(blocks: ReadonlyMap<number, Routed>, f: () => Promise<T>): Promise<[T, Map<number, number[]>]> {
  const counts = new Map<number, Tensor>();
  for (const [layer, b] of blocks) {
    b.observe = (r) => {
      const tally = counts.get(layer);
      counts.set(layer, bincount(r.topIds, { bins: r.probs.shape[1], counts: tally, accumulate: tally !== undefined }));
    };
  }
  try {
    const result = await f();
    const shares = new Map<number, number[]>();
    for (const [layer, t] of counts) {
      const c = Array.from(await t.read());
      shares.set(layer, c.map((n) => n / c.reduce((a, b) => a + b, 0)));
    }
    return [result, shares];
  } finally {
    for (const b of blocks.values()) b.observe = undefined;
    for (const t of counts.values()) t.release();
  }
}
