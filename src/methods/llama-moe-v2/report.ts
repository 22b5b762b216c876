// LLaMA-MoE v2 (arXiv 2411.15708) ablations, as sentences: the spec's construction against each one
// v2.compare ran beside it (the other MLP kind at matched activated neurons, the other router
// initialisation, dense attention), after stage 1 at the same budget, on the stage 1 and the stage 2
// domains; whichever is lower says so, by how much (of the higher perplexity).
import type { V2Variant } from './run.ts';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** What a compared construction changes against the spec's own: a phrase, and a short name for each side. */
function contrast(own: V2Variant, v: V2Variant): { what: string; names: [string, string] } {
  if (own.mlp !== v.mlp) {
    return { what: `${own.mlp} vs ${v.mlp} MLP MoE (${pct(own.activated_share)} vs ${pct(v.activated_share)} of the MLP active)`, names: [own.mlp, v.mlp] };
  }
  if (own.router_init !== v.router_init) return { what: `${own.router_init} vs ${v.router_init} routers`, names: [own.router_init, v.router_init] };
  const side = (x: V2Variant) => (x.attention_top_k === null ? 'dense attention' : `attention MoE top-${x.attention_top_k}`);
  return { what: `${side(own)} vs ${side(v)} (${pct(own.activated_attention_share)} vs ${pct(v.activated_attention_share)} of attention active)`, names: [side(own), side(v)] };
}

/** One sentence per compared construction: the spec's (rows[0]) against it, after stage 1; `ownLower`: on the stage 1 domains. */
export function comparisonLines(rows: readonly V2Variant[]): { text: string; ownLower: boolean }[] {
  const [own, ...others] = rows;
  const afterStage1 = (v: V2Variant) => v.points.find((p) => p.after === 'stage 1');
  const a = afterStage1(own);
  return others.flatMap((v) => {
    const b = afterStage1(v);
    if (!a || !b) return [];
    const { what, names } = contrast(own, v);
    const side = (x: number, y: number, domains: string) => {
      const verdict = x === y ? 'equal' : `${x < y ? names[0] : names[1]} lower by ${pct(Math.abs(x - y) / Math.max(x, y))}`;
      return `${x.toFixed(2)} vs ${y.toFixed(2)} on the ${domains} domains (${verdict})`;
    };
    const text = `${what}: after stage 1, ${side(a.ppl_stage1_domains, b.ppl_stage1_domains, 'stage 1')}; ${side(a.ppl_stage2_domains, b.ppl_stage2_domains, 'stage 2')}`;
    return [{ text, ownLower: a.ppl_stage1_domains < b.ppl_stage1_domains }];
  });
}
