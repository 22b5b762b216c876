// DIVE (arXiv 2506.09351) Tables 1–2 as questions: at equal activated parameters and training budget, does
// DIVE's model reach a lower perplexity than FLAP pruning alone, than LLaMA-MoE's random split, and than
// DIVE without affinity mining? Answered from a run's rows, on the geometric mean over the domains and
// domain by domain, after retraining when the run retrained (the paper compares retrained models).
import type { DiveConstruction, DiveModelRow } from './run.ts';

export interface DiveComparison {
  /** 'DIVE 1/8' */
  dive: string;
  /** the row it is compared with: 'FLAP 50%', 'random split (LLaMA-MoE) 1/8', … */
  baseline: string;
  baseline_construction: DiveConstruction;
  /** whose perplexities: after retraining when both rows were retrained, else as constructed */
  when: 'retrained' | 'constructed';
  ppl_geomean_dive: number;
  ppl_geomean_baseline: number;
  /** ppl_geomean_dive / ppl_geomean_baseline − 1: negative when DIVE is better */
  relative: number;
  /** domains where DIVE's perplexity is lower, of all */
  domains_better: number;
  domains: number;
}

const BASELINES: DiveConstruction[] = ['flap', 'random', 'dive-labels'];

/** Each DIVE k/N row against FLAP and against the random split and the ablation of the same k. */
export function diveComparisons(models: readonly DiveModelRow[]): DiveComparison[] {
  const out: DiveComparison[] = [];
  for (const d of models.filter((m) => m.construction === 'dive')) {
    for (const kind of BASELINES) {
      const b = models.find((m) => m.construction === kind && (kind === 'flap' || m.top_k === d.top_k));
      if (!b) continue;
      const when = d.retrained && b.retrained ? 'retrained' : 'constructed';
      const ppl = (m: DiveModelRow) => (when === 'retrained' ? m.retrained!.ppl : m.ppl);
      const geo = (m: DiveModelRow) => (when === 'retrained' ? m.retrained!.ppl_geomean : m.ppl_geomean);
      out.push({
        dive: d.name, baseline: b.name, baseline_construction: kind, when,
        ppl_geomean_dive: geo(d), ppl_geomean_baseline: geo(b), relative: geo(d) / geo(b) - 1,
        domains_better: ppl(d).filter((p, i) => p < ppl(b)[i]).length, domains: d.ppl.length,
      });
    }
  }
  return out;
}

/** "DIVE 1/8 beats FLAP 50% by 4.1% (perplexity 120.3 vs 125.4, lower on 12 of 17 domains), retrained" */
export function comparisonLine(c: DiveComparison): string {
  const verb = c.relative < 0 ? 'beats' : c.relative > 0 ? 'trails' : 'ties';
  const by = c.relative === 0 ? '' : ` by ${Math.abs(100 * c.relative).toFixed(1)}%`;
  return `${c.dive} ${verb} ${c.baseline}${by} (perplexity ${c.ppl_geomean_dive.toFixed(2)} vs ${c.ppl_geomean_baseline.toFixed(2)}, ` +
    `lower on ${c.domains_better} of ${c.domains} domains), ${c.when === 'retrained' ? 'both retrained' : 'as constructed, before retraining'}`;
}
